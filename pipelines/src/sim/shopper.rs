//! Latent tastes: product embeddings and shopper population.
//!
//! Embedding layout (`EMBED_DIM` = 16): dimension 0 is a price feature
//! `(ln price − ln 400) / 1.2` (≈ −1.5 for €59, +2 for €4,900); dimensions
//! 1–15 hold `category + 0.45·line + 0.35·colour + 0.15·noise`, where each
//! part is a random unit vector drawn from the seed. Category vectors share
//! 80 % of their direction with their department's vector, so a womenswear
//! shopper likes all womenswear somewhat. A shopper's taste is built from the
//! same parts (department, three favourite categories, two lines, two colours,
//! price band) plus noise, so *true affinity = taste · embedding*; choices add
//! Gumbel noise (equivalent to a softmax over affinity).

use chrono::Duration;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use uuid::Builder;

use super::params::{Device, Segment, DEVICES, MARKETS};
use crate::catalog::{pick_weighted, std_normal, Catalog, Department, SizeSystem};

/// Dimension of taste and product embedding vectors.
pub const EMBED_DIM: usize = 16;
/// An embedding / taste vector.
pub type Vector = [f32; EMBED_DIM];

/// Reference price (EUR) whose price feature is 0.
const PRICE_REF: f64 = 400.0;
/// Log-price scale of the price feature.
const PRICE_SCALE: f64 = 1.2;

fn unit_random(rng: &mut ChaCha8Rng) -> Vector {
    let mut v = [0f32; EMBED_DIM];
    for x in v.iter_mut().skip(1) {
        *x = std_normal(rng) as f32;
    }
    normalise(v)
}

fn normalise(mut v: Vector) -> Vector {
    let n: f32 = v.iter().skip(1).map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().skip(1).for_each(|x| *x /= n);
    }
    v
}

fn add_scaled(acc: &mut Vector, v: &Vector, k: f32) {
    acc.iter_mut().zip(v).for_each(|(a, b)| *a += k * b);
}

/// Dot product.
pub fn dot(a: &Vector, b: &Vector) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn price_feature(price: f64) -> f32 {
    ((price.max(1.0).ln() - PRICE_REF.ln()) / PRICE_SCALE) as f32
}

fn dept_index(d: Department) -> usize {
    match d {
        Department::Donna => 0,
        Department::Uomo => 1,
        Department::Unisex => 2,
        Department::Bambino => 3,
    }
}

/// Component vectors and per-product embeddings (index = catalogue position).
pub(crate) struct Embeddings {
    pub dept: [Vector; 4],
    pub category: Vec<Vector>,
    pub line: Vec<Vector>,
    pub colour: Vec<Vector>,
    pub product: Vec<Vector>,
}

impl Embeddings {
    pub(crate) fn build(catalog: &Catalog, rng: &mut ChaCha8Rng) -> Embeddings {
        let women = unit_random(rng);
        let men = unit_random(rng);
        let mut unisex = women;
        add_scaled(&mut unisex, &men, 1.0);
        let dept = [women, men, normalise(unisex), unit_random(rng)];
        let category = catalog
            .categories()
            .iter()
            .map(|c| {
                let mut v = [0f32; EMBED_DIM];
                add_scaled(&mut v, &dept[dept_index(c.department)], 0.8);
                add_scaled(&mut v, &unit_random(rng), 0.6);
                normalise(v)
            })
            .collect::<Vec<_>>();
        let line = catalog.lines().iter().map(|_| unit_random(rng)).collect();
        let colour = catalog.colours().iter().map(|_| unit_random(rng)).collect();
        let mut e = Embeddings {
            dept,
            category,
            line,
            colour,
            product: Vec::new(),
        };
        e.product = catalog
            .iter()
            .map(|p| {
                let ci = catalog
                    .categories()
                    .iter()
                    .position(|c| c.id == p.category_id);
                let li = catalog.lines().iter().position(|l| l.id == p.line_id);
                let ki = catalog
                    .colours()
                    .iter()
                    .position(|c| c.code == p.colour_code);
                let mut v = [0f32; EMBED_DIM];
                add_scaled(&mut v, &e.category[ci.unwrap_or(0)], 1.0);
                add_scaled(&mut v, &e.line[li.unwrap_or(0)], 0.45);
                add_scaled(&mut v, &e.colour[ki.unwrap_or(0)], 0.35);
                add_scaled(&mut v, &unit_random(rng), 0.15);
                v[0] = price_feature(p.effective_price());
                v
            })
            .collect();
        e
    }
}

/// One simulated shopper with latent and explicit preferences.
#[derive(Debug, Clone)]
pub(crate) struct Shopper {
    pub anonymous_id: String,
    pub user_id: Option<String>,
    pub segment: Segment,
    pub market: usize,
    pub device: Device,
    pub department: Department,
    pub shops_kids: bool,
    pub taste: Vector,
    pub fav_categories: Vec<usize>,
    pub fav_lines: Vec<usize>,
    pub fav_colours: Vec<usize>,
    /// Comfortable price range in EUR (median / 2.5 … median · 2.5).
    pub price_band: (f64, f64),
    /// Body-size quantile in [0, 1]; index into a size run.
    pub size_rank: f64,
    /// Mean gap between sessions.
    pub mean_gap: Duration,
}

impl Shopper {
    /// Draws shopper number `i` (0-based); registered ids are `U` + 7 digits of `i + 1`.
    pub(crate) fn generate(
        i: usize,
        catalog: &Catalog,
        emb: &Embeddings,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let seg_w: Vec<f64> = Segment::ALL
            .iter()
            .map(|s| s.params().population_share)
            .collect();
        let segment = Segment::ALL[pick_weighted(rng, &seg_w)];
        let p = segment.params();
        let market = pick_weighted(rng, &MARKETS.map(|m| m.1));
        let device = DEVICES[pick_weighted(rng, &DEVICES.map(|d| d.1))].0;
        let department = if rng.random_bool(0.6) {
            Department::Donna
        } else {
            Department::Uomo
        };
        let shops_kids = rng.random_bool(0.12);
        let cats = catalog.categories();
        let mut cat_w: Vec<f64> = cats
            .iter()
            .map(|c| match c.department {
                d if d == department => 1.0,
                Department::Unisex => 0.6,
                Department::Bambino if shops_kids => 1.0,
                _ => 0.0,
            })
            .collect();
        let mut fav_categories = Vec::new();
        for _ in 0..3 {
            let c = pick_weighted(rng, &cat_w);
            cat_w[c] = 0.0;
            fav_categories.push(c);
        }
        let median = p.price_band_median * (0.4 * std_normal(rng)).exp();
        let price_band = (median / 2.5, median * 2.5);
        // Lines whose main-line-equivalent price (~€400 × factor) fits the band.
        let mut line_w: Vec<f64> = catalog
            .lines()
            .iter()
            .map(|l| {
                let z = (400.0 * l.price_factor / median).ln();
                let kids = l.id == "bimbo";
                if kids && !shops_kids {
                    0.0
                } else {
                    (-z * z / 0.8).exp() + 0.02
                }
            })
            .collect();
        let mut fav_lines = Vec::new();
        for _ in 0..2 {
            let l = pick_weighted(rng, &line_w);
            line_w[l] = 0.0;
            fav_lines.push(l);
        }
        // The first 13 palette entries are the general colours (denim, gold
        // and silver are category-specific); pick two distinct ones.
        let k = catalog.colours().len().min(13);
        let first = rng.random_range(0..k);
        let fav_colours = vec![first, (first + 1 + rng.random_range(0..k - 1)) % k];

        let mut taste = [0f32; EMBED_DIM];
        add_scaled(&mut taste, &emb.dept[dept_index(department)], 1.0);
        if shops_kids {
            add_scaled(&mut taste, &emb.dept[3], 0.5);
        }
        for &c in &fav_categories {
            add_scaled(&mut taste, &emb.category[c], 0.9 / 3.0 * 3.0_f32.sqrt());
        }
        for &l in &fav_lines {
            add_scaled(&mut taste, &emb.line[l], 0.5);
        }
        for &k in &fav_colours {
            add_scaled(&mut taste, &emb.colour[k], 0.45);
        }
        for x in taste.iter_mut().skip(1) {
            *x += 0.3 * std_normal(rng) as f32 / (EMBED_DIM as f32).sqrt();
        }
        taste[0] = 0.35 * price_feature(median);

        let anonymous_id = Builder::from_random_bytes(rng.random())
            .into_uuid()
            .to_string();
        let user_id = rng
            .random_bool(p.registered_share)
            .then(|| format!("U{:07}", i + 1));
        let mean_gap = Duration::milliseconds((7.0 * 86_400_000.0 / p.sessions_per_week) as i64);
        Shopper {
            anonymous_id,
            user_id,
            segment,
            market,
            device,
            department,
            shops_kids,
            taste,
            fav_categories,
            fav_lines,
            fav_colours,
            price_band,
            size_rank: (0.5 + 0.22 * std_normal(rng)).clamp(0.0, 1.0),
            mean_gap,
        }
    }

    /// Size label this shopper picks in `system` (kids sizes are random:
    /// the child's age is not modelled).
    pub(crate) fn size_index(&self, system: SizeSystem, rng: &mut ChaCha8Rng) -> usize {
        let n = system.sizes().len();
        if system == SizeSystem::Kids || system == SizeSystem::KidsShoes {
            return rng.random_range(0..n);
        }
        let base = (self.size_rank * (n as f64 - 1.0)).round() as i64;
        let jitter = if rng.random_bool(0.15) {
            if rng.random_bool(0.5) {
                1
            } else {
                -1
            }
        } else {
            0
        };
        (base + jitter).clamp(0, n as i64 - 1) as usize
    }

    /// Deterministic (no RNG) preferred size in `system`.
    pub(crate) fn preferred_size(&self, system: SizeSystem) -> &'static str {
        let sizes = system.sizes();
        sizes[(self.size_rank * (sizes.len() as f64 - 1.0)).round() as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn tastes_favour_favourite_categories() {
        let cat = Catalog::generate_with(1, 600);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let emb = Embeddings::build(&cat, &mut rng);
        assert_eq!(emb.product.len(), 600);
        let mut wins = 0;
        let n = 200;
        for i in 0..n {
            let s = Shopper::generate(i, &cat, &emb, &mut rng);
            assert!(s.price_band.0 < s.price_band.1);
            let fav = dot(&s.taste, &emb.category[s.fav_categories[0]]);
            // Compare against a category of another adult department.
            let other = cat
                .categories()
                .iter()
                .position(|c| {
                    c.department != s.department
                        && matches!(c.department, Department::Donna | Department::Uomo)
                })
                .unwrap();
            if fav > dot(&s.taste, &emb.category[other]) {
                wins += 1;
            }
        }
        assert!(wins > n * 9 / 10, "{wins}/{n}");
    }
}
