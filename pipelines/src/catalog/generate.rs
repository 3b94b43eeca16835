//! Static merchandising tables and the seeded generator behind
//! [`Catalog::generate_with`](super::Catalog::generate_with).

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{
    pick_weighted, snap_price, std_normal, Catalog, Category, Collection, Colour, Department, Line,
    Location, LocationKind, PriceTier, Product, SizeSystem, Stock, TaxClass, Variant,
};
use Department::{Bambino, Donna, Unisex, Uomo};
use SizeSystem as S;

/// Category row: id, name, department, sizes, median price (EUR, main line),
/// Italian path, English path, Italian noun, English search term, materials,
/// optional colour palette override.
type CatRow = (
    &'static str,
    &'static str,
    Department,
    SizeSystem,
    f64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    Option<&'static [&'static str]>,
);

/// Median prices are assumptions in line with Italian luxury ready-to-wear
/// (e.g. a main-line coat ~€1.7k, t-shirt ~€190, leather bag ~€1.3k).
#[rustfmt::skip]
const CATEGORIES: &[CatRow] = &[
    ("dresses", "Dresses", Donna, S::ItWomen, 790.0, "donna/abiti", "women/dresses", "Abito", "dress", &["seta", "crêpe", "maglia"], None),
    ("skirts", "Skirts", Donna, S::ItWomen, 450.0, "donna/gonne", "women/skirts", "Gonna", "skirt", &["lana", "pelle", "seta"], None),
    ("blouses", "Shirts & blouses", Donna, S::ItWomen, 390.0, "donna/camicie", "women/shirts", "Camicia", "blouse", &["seta", "popeline", "lino"], None),
    ("knitwear-w", "Knitwear (women)", Donna, S::Letter, 550.0, "donna/maglieria", "women/knitwear", "Maglione", "sweater", &["cashmere", "lana merino", "mohair"], None),
    ("trousers-w", "Trousers (women)", Donna, S::ItWomen, 420.0, "donna/pantaloni", "women/trousers", "Pantalone", "trousers", &["lana", "crêpe", "cotone"], None),
    ("jackets-w", "Jackets (women)", Donna, S::ItWomen, 1190.0, "donna/giacche", "women/jackets", "Giacca", "jacket", &["lana", "tweed", "velluto"], None),
    ("coats-w", "Coats (women)", Donna, S::ItWomen, 1690.0, "donna/cappotti", "women/coats", "Cappotto", "coat", &["cashmere", "lana doppiata", "alpaca"], None),
    ("tshirts-w", "T-shirts (women)", Donna, S::Letter, 190.0, "donna/t-shirt", "women/t-shirts", "T-shirt", "t-shirt", &["cotone", "jersey", "lino"], None),
    ("shoes-w", "Shoes (women)", Donna, S::ShoesWomen, 650.0, "donna/scarpe", "women/shoes", "Décolleté", "heels", &["vernice", "camoscio", "pelle"], None),
    ("bags", "Bags", Donna, S::OneSize, 1290.0, "donna/borse", "women/bags", "Borsa", "bag", &["pelle", "nappa", "camoscio"], None),
    ("jewellery", "Jewellery", Donna, S::OneSize, 390.0, "donna/gioielli", "women/jewellery", "Collana", "necklace", &["ottone", "argento"], Some(&["ORO", "ARG"])),
    ("shirts-m", "Shirts (men)", Uomo, S::ItMen, 290.0, "uomo/camicie", "men/shirts", "Camicia", "shirt", &["popeline", "oxford", "lino"], None),
    ("suits", "Suits", Uomo, S::ItMen, 1890.0, "uomo/abiti", "men/suits", "Abito", "suit", &["lana super 130", "flanella", "fresco lana"], None),
    ("knitwear-m", "Knitwear (men)", Uomo, S::Letter, 550.0, "uomo/maglieria", "men/knitwear", "Maglione", "sweater", &["cashmere", "lana merino", "cotone"], None),
    ("trousers-m", "Trousers (men)", Uomo, S::ItMen, 390.0, "uomo/pantaloni", "men/trousers", "Pantalone", "trousers", &["lana", "cotone", "velluto"], None),
    ("jackets-m", "Jackets (men)", Uomo, S::ItMen, 1290.0, "uomo/giacche", "men/jackets", "Giacca", "blazer", &["lana", "cashmere", "lino"], None),
    ("coats-m", "Coats (men)", Uomo, S::ItMen, 1790.0, "uomo/cappotti", "men/coats", "Cappotto", "coat", &["cashmere", "lana", "loden"], None),
    ("tshirts-m", "T-shirts (men)", Uomo, S::Letter, 190.0, "uomo/t-shirt", "men/t-shirts", "T-shirt", "t-shirt", &["cotone", "jersey", "piquet"], None),
    ("shoes-m", "Shoes (men)", Uomo, S::ShoesMen, 690.0, "uomo/scarpe", "men/shoes", "Mocassino", "loafers", &["pelle", "camoscio", "vitello"], None),
    ("belts", "Belts", Uomo, S::OneSize, 290.0, "uomo/cinture", "men/belts", "Cintura", "belt", &["pelle", "vitello"], None),
    ("jeans", "Jeans", Unisex, S::Jeans, 290.0, "jeans", "jeans", "Jeans", "jeans", &["denim", "denim stretch"], Some(&["DEN", "NER", "BIA"])),
    ("sneakers", "Sneakers", Unisex, S::ShoesUnisex, 490.0, "sneakers", "sneakers", "Sneaker", "sneakers", &["pelle", "camoscio", "tessuto tecnico"], None),
    ("scarves", "Scarves", Unisex, S::OneSize, 290.0, "accessori/sciarpe", "accessories/scarves", "Sciarpa", "scarf", &["cashmere", "seta", "lana"], None),
    ("sunglasses", "Sunglasses", Unisex, S::OneSize, 320.0, "accessori/occhiali", "accessories/sunglasses", "Occhiali da sole", "sunglasses", &["acetato", "metallo"], None),
    ("swimwear", "Swimwear", Unisex, S::Letter, 220.0, "mare/costumi", "beach/swimwear", "Costume", "swimwear", &["nylon", "lycra"], None),
    ("kids-clothing", "Kids clothing", Bambino, S::Kids, 180.0, "bambino/abbigliamento", "kids/clothing", "Felpa", "kids sweatshirt", &["cotone", "felpa", "lana"], None),
    ("kids-shoes", "Kids shoes", Bambino, S::KidsShoes, 220.0, "bambino/scarpe", "kids/shoes", "Sneaker bimbo", "kids sneakers", &["pelle", "tela"], None),
];

/// Line row: id, name, tier, price factor, share of products, categories carried.
type LineRow = (
    &'static str,
    &'static str,
    PriceTier,
    f64,
    f64,
    &'static [&'static str],
);

/// Line ladder of a house with couture → diffusion lines; shares are assumptions.
#[rustfmt::skip]
const LINES: &[LineRow] = &[
    ("atelier", "Lusso Atelier", PriceTier::Couture, 2.6, 0.07, &["dresses", "jackets-w", "coats-w", "bags", "jewellery", "suits", "coats-m", "shoes-w"]),
    ("sartoria", "Lusso Sartoria", PriceTier::Luxury, 1.5, 0.12, &["shirts-m", "suits", "trousers-m", "jackets-m", "coats-m", "knitwear-m", "shoes-m", "belts"]),
    ("milano", "Lusso Milano", PriceTier::Luxury, 1.0, 0.30, &["dresses", "skirts", "blouses", "knitwear-w", "trousers-w", "jackets-w", "coats-w", "tshirts-w", "shoes-w", "shirts-m", "knitwear-m", "trousers-m", "jackets-m", "coats-m", "tshirts-m", "shoes-m", "scarves", "sneakers"]),
    ("accessori", "Lusso Accessori", PriceTier::Premium, 1.0, 0.13, &["bags", "belts", "scarves", "sunglasses", "jewellery", "shoes-w", "shoes-m", "sneakers"]),
    ("sport", "Lusso Sport", PriceTier::Contemporary, 0.6, 0.11, &["sneakers", "tshirts-w", "tshirts-m", "knitwear-w", "knitwear-m", "jackets-w", "jackets-m", "trousers-m"]),
    ("jeans", "Lusso Jeans", PriceTier::Contemporary, 0.5, 0.13, &["jeans", "tshirts-w", "tshirts-m", "shirts-m", "jackets-m", "skirts", "sneakers", "blouses"]),
    ("mare", "Lusso Mare", PriceTier::Contemporary, 0.6, 0.05, &["swimwear", "tshirts-w", "tshirts-m", "sunglasses", "scarves"]),
    ("bimbo", "Lusso Bimbo", PriceTier::Contemporary, 0.45, 0.09, &["kids-clothing", "kids-shoes"]),
];

/// Colour row: code, Italian, English, hex, weight in the general palette
/// (0 = only via a category override). Black and navy dominate luxury assortments.
const COLOURS: &[(&str, &str, &str, &str, f64)] = &[
    ("NER", "nero", "black", "#111111", 0.20),
    ("BLU", "blu navy", "navy", "#1f2a44", 0.12),
    ("CAM", "cammello", "camel", "#c19a6b", 0.07),
    ("BIA", "bianco ottico", "optic white", "#fafafa", 0.10),
    ("BOR", "bordeaux", "burgundy", "#6d0f24", 0.05),
    ("GRI", "grigio melange", "grey melange", "#9e9e9e", 0.08),
    ("BEI", "beige", "beige", "#d8c8a8", 0.07),
    ("VER", "verde bosco", "forest green", "#2e4a2e", 0.04),
    ("RSS", "rosso", "red", "#b3121b", 0.04),
    ("MOR", "testa di moro", "dark brown", "#3b2a20", 0.06),
    ("AVO", "avorio", "ivory", "#f3ecd8", 0.05),
    ("CEL", "celeste", "sky blue", "#9cc7e4", 0.04),
    ("CIP", "rosa cipria", "powder pink", "#e8c4c0", 0.04),
    ("DEN", "denim", "denim", "#3c5a80", 0.0),
    ("ORO", "oro", "gold", "#c9a227", 0.0),
    ("ARG", "argento", "silver", "#c0c0c0", 0.0),
];

/// Collection row: id, name, launch (y, m, d), on sale, share of products.
type CollectionRow = (&'static str, &'static str, (i32, u32, u32), bool, f64);

/// FW25 is last season (on sale); Essentials is the continuative range.
const COLLECTIONS: &[CollectionRow] = &[
    ("FW25", "Fall/Winter 2025", (2025, 7, 15), true, 0.12),
    ("RESORT26", "Resort 26", (2025, 11, 10), false, 0.08),
    ("SS26", "Spring/Summer 2026", (2026, 1, 20), false, 0.15),
    (
        "CAPSULE-VENEZIA",
        "Capsule Venezia",
        (2026, 4, 1),
        false,
        0.05,
    ),
    ("FW26", "Fall/Winter 2026", (2026, 7, 15), false, 0.30),
    (
        "SS27",
        "Spring/Summer 2027 pre-collection",
        (2026, 11, 1),
        false,
        0.10,
    ),
    ("ESSENTIALS", "Essentials", (2025, 3, 1), false, 0.20),
];

/// Boutiques on Italy's main luxury streets plus the e-commerce warehouse.
const LOCATIONS: &[(&str, &str, LocationKind, &str)] = &[
    (
        "milano-montenapoleone",
        "Milano Via Montenapoleone",
        LocationKind::Store,
        "Milano",
    ),
    (
        "roma-condotti",
        "Roma Via Condotti",
        LocationKind::Store,
        "Roma",
    ),
    (
        "firenze-tornabuoni",
        "Firenze Via de' Tornabuoni",
        LocationKind::Store,
        "Firenze",
    ),
    (
        "online",
        "E-commerce warehouse (Piacenza)",
        LocationKind::Online,
        "Piacenza",
    ),
];

/// Log-space standard deviation of prices around the line×category median.
const PRICE_SIGMA: f64 = 0.30;
/// Share of products flagged discontinued / hidden.
const DISCONTINUED_SHARE: f64 = 0.04;
const HIDDEN_SHARE: f64 = 0.02;
/// Share of on-sale-collection products that are actually marked down.
const MARKDOWN_SHARE: f64 = 0.7;

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 8, 0, 0)
        .single()
        .expect("valid constant date")
}

pub(super) fn build(seed: u64, n_products: usize) -> Catalog {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4c55_5353_4f43_4154); // "LUSSOCAT"
    let categories: Vec<Category> = CATEGORIES
        .iter()
        .map(|r| Category {
            id: r.0.into(),
            name: r.1.into(),
            department: r.2,
            size_system: r.3,
            base_price: r.4,
            path_it: r.5.into(),
            path_en: r.6.into(),
            query_it: r.7.to_lowercase(),
            query_en: r.8.into(),
        })
        .collect();
    let lines: Vec<Line> = LINES
        .iter()
        .map(|r| Line {
            id: r.0.into(),
            name: r.1.into(),
            tier: r.2,
            price_factor: r.3,
        })
        .collect();
    let colours: Vec<Colour> = COLOURS
        .iter()
        .map(|r| Colour {
            code: r.0.into(),
            name_it: r.1.into(),
            name_en: r.2.into(),
            hex: r.3.into(),
        })
        .collect();
    let collections: Vec<Collection> = COLLECTIONS
        .iter()
        .map(|r| Collection {
            id: r.0.into(),
            name: r.1.into(),
            launch: utc(r.2 .0, r.2 .1, r.2 .2),
            on_sale: r.3,
        })
        .collect();
    let locations: Vec<Location> = LOCATIONS
        .iter()
        .map(|r| Location {
            id: r.0.into(),
            name: r.1.into(),
            kind: r.2,
            city: r.3.into(),
            country: "IT".into(),
        })
        .collect();

    let line_w: Vec<f64> = LINES.iter().map(|r| r.4).collect();
    let colour_w: Vec<f64> = COLOURS.iter().map(|r| r.4).collect();
    let coll_w: Vec<f64> = COLLECTIONS.iter().map(|r| r.4).collect();
    // Every variant is stocked in every location: one shared, sorted list of their ids, and each variant's
    // units in that order (no per-variant copies of the ids, which would outlive the loop only to be freed
    // at the end, leaving the allocator's pages fragmented).
    let mut by_id: Vec<usize> = (0..LOCATIONS.len()).collect();
    by_id.sort_by_key(|&i| LOCATIONS[i].0);
    let shelves = Shelves {
        ids: by_id.iter().map(|&i| Arc::from(LOCATIONS[i].0)).collect(),
        order: by_id,
    };
    let mut products = Vec::with_capacity(n_products);
    for n in 1..=n_products {
        let li = pick_weighted(&mut rng, &line_w);
        let line_cats = LINES[li].5;
        let cat_id = line_cats[rng.random_range(0..line_cats.len())];
        let ci = CATEGORIES
            .iter()
            .position(|r| r.0 == cat_id)
            .expect("line table references known categories");
        let row = &CATEGORIES[ci];
        let colour = match row.10 {
            Some(palette) => palette[rng.random_range(0..palette.len())],
            None => COLOURS[pick_weighted(&mut rng, &colour_w)].0,
        };
        let colour_row = COLOURS.iter().find(|c| c.0 == colour).expect("palette");
        let coll = &COLLECTIONS[pick_weighted(&mut rng, &coll_w)];
        let median = row.4 * LINES[li].3;
        let price = snap_price(median * (PRICE_SIGMA * std_normal(&mut rng)).exp());
        let sale_price = (coll.3 && rng.random_bool(MARKDOWN_SHARE)).then(|| {
            let off = [0.3, 0.4, 0.5][rng.random_range(0..3)];
            (price * (1.0 - off)).round()
        });
        let discontinued = rng.random_bool(DISCONTINUED_SHARE);
        let hidden = rng.random_bool(HIDDEN_SHARE);
        let material = row.9[rng.random_range(0..row.9.len())];
        let id = format!("P{n:06}");
        let created_at = utc(coll.2 .0, coll.2 .1, coll.2 .2)
            - Duration::minutes(rng.random_range(0..30 * 24 * 60));
        let variants = make_variants(&mut rng, &shelves, &id, colour, row.3, price, discontinued);
        products.push(Product {
            name: format!("{} in {} {}", row.7, material, colour_row.1),
            id,
            line_id: LINES[li].0.into(),
            category_id: row.0.into(),
            department: row.2,
            collection_id: coll.0.into(),
            colour_code: colour.into(),
            price,
            sale_price,
            tax_class: TaxClass::Standard,
            discontinued,
            hidden,
            created_at,
            variants,
        });
    }
    Catalog::from_parts(
        seed,
        lines,
        categories,
        collections,
        colours,
        locations,
        products,
    )
}

/// The locations' ids sorted, shared by every variant's stock, and for each position the index of that
/// location in [`LOCATIONS`].
struct Shelves {
    ids: Arc<[Arc<str>]>,
    order: Vec<usize>,
}

/// Stock model (assumption): middle sizes sell most so are stocked most
/// (Gaussian-shaped size curve); online holds ~10 units of a core size,
/// boutiques 0–4 with ~35 % stock-outs; expensive items are stocked thinner.
fn make_variants(
    rng: &mut ChaCha8Rng,
    shelves: &Shelves,
    product_id: &str,
    colour: &str,
    sizes: SizeSystem,
    price: f64,
    discontinued: bool,
) -> Vec<Variant> {
    let labels = sizes.sizes();
    let n = labels.len() as f64;
    let centre = (n - 1.0) / 2.0;
    let depth = if price > 2000.0 { 0.4 } else { 1.0 };
    labels
        .iter()
        .enumerate()
        .map(|(i, size)| {
            let z = (i as f64 - centre) / (n / 3.0).max(1.0);
            let pop = (-z * z).exp() * depth;
            let units: Vec<u32> = LOCATIONS
                .iter()
                .map(|loc| {
                    if discontinued {
                        u32::from(loc.2 == LocationKind::Online && rng.random_bool(0.2))
                    } else if loc.2 == LocationKind::Online {
                        if rng.random_bool(0.06) {
                            0
                        } else {
                            (rng.random::<f64>() * 20.0 * pop).round() as u32 + 1
                        }
                    } else if rng.random_bool(0.35) {
                        0
                    } else {
                        (rng.random::<f64>() * 4.0 * pop).round() as u32 + 1
                    }
                })
                .collect();
            Variant {
                id: format!("{product_id}-{colour}-{size}"),
                size: (*size).to_string(),
                stock: Stock::new(
                    shelves.ids.clone(),
                    shelves.order.iter().map(|&i| units[i]).collect(),
                ),
            }
        })
        .collect()
}
