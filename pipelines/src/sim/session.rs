//! One shopping session → a burst of events (plus any later `return`).
//!
//! Funnel (per session): decide up-front whether the session converts
//! (segment rate × device factor) so the conversion target is met exactly in
//! expectation; non-converting sessions may bounce. Landing is the home page
//! (50 %: recs widget, hero banner), a category listing (30 %) or a product
//! page from ads/SEO (20 %). 20 % of engaged sessions search. Product views
//! are drawn by Gumbel-max over taste·embedding (softmax, temperature
//! [`VIEW_TEMPERATURE`]); each may show a recs widget (60 %) and may be added
//! to the cart. Converting sessions that did not add anything add their
//! best-liked viewed product, then go cart → checkout → purchase.

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use uuid::{Builder, Uuid};

use super::events::{lines_json, Envelope, OrderLine};
use super::params::{
    category_return_rate, device_conversion_factor, Device, ARM_IDS, DEVICES, HOME_HERO_SLOT,
    MARKETS, TRUE_BANNER_CTR,
};
use super::shopper::{dot, Shopper};
use super::world::World;
use crate::catalog::pick_weighted;

/// Softmax temperature for product choice (affinity units).
pub(crate) const VIEW_TEMPERATURE: f32 = 0.5;
/// Share of engaged sessions that use site search (assumption; ~15–30 % is typical).
const SEARCH_SHARE: f64 = 0.20;
/// Share of product pages that render a recommendations widget.
const REC_WIDGET_SHARE: f64 = 0.6;
/// Mean seconds spent on a page (exponential, floor 3 s).
const PAGE_DWELL_S: f64 = 35.0;
/// Days after purchase within which returns arrive (Italy's 14-day withdrawal
/// right plus shipping back).
const RETURN_DAYS: std::ops::RangeInclusive<i64> = 3..=21;

/// Draws a random UUID (v4 layout) from the seeded RNG.
pub(crate) fn uuid(rng: &mut ChaCha8Rng) -> Uuid {
    Builder::from_random_bytes(rng.random()).into_uuid()
}

fn gumbel(rng: &mut ChaCha8Rng) -> f32 {
    let u: f64 = rng.random::<f64>().max(1e-12);
    -(-u.ln()).ln() as f32
}

fn sigmoid(x: f32) -> f64 {
    1.0 / (1.0 + f64::from(-x).exp())
}

/// Percent-encodes a search query for a URL (`+` for spaces).
fn encode_query(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    for b in q.bytes() {
        match b {
            b' ' => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Position of `hero_new_in` in [`ARM_IDS`]; its assortment feeds the home recs.
const NEW_IN_ARM: usize = 2;

enum Pool {
    Category(usize),
    Arm(usize),
}

/// Candidate products of a pool (all listed products if the pool is empty).
fn pool_slice<'w>(w: &'w World, pool: &Pool) -> &'w [u32] {
    let p = match pool {
        Pool::Category(c) => &w.by_category[*c],
        Pool::Arm(a) => &w.by_arm[*a],
    };
    if p.is_empty() {
        &w.listed
    } else {
        p
    }
}

struct CartLine {
    product: u32,
    variant: usize,
    quantity: u32,
}

/// Events of one session: `(ts_ms, event)`; `end_ms` is the last in-session ts.
pub(crate) struct SessionOutput {
    pub events: Vec<(i64, Value)>,
    pub end_ms: i64,
}

/// Plays one session of shopper `user` starting at `start_ms`.
pub(crate) fn run_session(
    w: &World,
    rng: &mut ChaCha8Rng,
    order_seq: &mut u64,
    user: usize,
    start_ms: i64,
) -> SessionOutput {
    let s = &w.shoppers[user];
    let device = if rng.random_bool(0.8) {
        s.device
    } else {
        DEVICES[pick_weighted(rng, &DEVICES.map(|d| d.1))].0
    };
    let login_p = if device == Device::App { 0.95 } else { 0.6 };
    let logged_in = s.user_id.is_some() && rng.random_bool(login_p);
    let session_id = uuid(rng).to_string();
    let mut run = Run {
        w,
        s,
        rng,
        t: start_ms,
        user_id: if logged_in {
            s.user_id.as_deref()
        } else {
            None
        },
        session_id,
        device,
        lang: MARKETS[s.market].2,
        out: Vec::with_capacity(16),
        returns: Vec::new(),
    };
    run.play(order_seq);
    let end_ms = run.t;
    let mut events = run.out;
    events.append(&mut run.returns);
    SessionOutput { events, end_ms }
}

struct Run<'a> {
    w: &'a World,
    s: &'a Shopper,
    rng: &'a mut ChaCha8Rng,
    t: i64,
    user_id: Option<&'a str>,
    session_id: String,
    device: Device,
    lang: &'static str,
    out: Vec<(i64, Value)>,
    returns: Vec<(i64, Value)>,
}

impl Run<'_> {
    fn emit(&mut self, kind: &str, props: Value) {
        let id = uuid(self.rng);
        let env = Envelope {
            user_id: self.user_id,
            anonymous_id: &self.s.anonymous_id,
            session_id: &self.session_id,
            market: MARKETS[self.s.market].0,
            device: self.device,
        };
        self.out.push((self.t, env.event(id, kind, self.t, props)));
    }

    /// Advances the clock by an exponential dwell with mean `mean_s` seconds.
    fn wait(&mut self, mean_s: f64) {
        let u: f64 = self.rng.random();
        self.t += ((-(1.0 - u).ln() * mean_s).max(3.0) * 1000.0) as i64;
    }

    /// Sub-second gap between events fired by the same page.
    fn tick(&mut self) {
        self.t += self.rng.random_range(50..600);
    }

    fn page(&mut self, path: String) {
        self.emit("page_view", json!({ "path": path }));
    }

    fn category_path(&self, c: usize) -> String {
        let cat = &self.w.catalog.categories()[c];
        let p = if self.lang == "it" {
            &cat.path_it
        } else {
            &cat.path_en
        };
        format!("/{}/{}", self.lang, p)
    }

    fn pick_category(&mut self) -> usize {
        let weights = self.w.category_weights(&self.s.taste);
        pick_weighted(self.rng, &weights)
    }

    fn affinity(&self, p: u32) -> f32 {
        dot(&self.s.taste, &self.w.emb.product[p as usize])
    }

    /// Gumbel-max sample from softmax(affinity / VIEW_TEMPERATURE) over `cands`.
    fn choose(&mut self, cands: &[u32]) -> u32 {
        let mut best = (f32::NEG_INFINITY, cands[0]);
        for &p in cands {
            let score = self.affinity(p) / VIEW_TEMPERATURE + gumbel(self.rng);
            if score > best.0 {
                best = (score, p);
            }
        }
        best.1
    }

    fn play(&mut self, order_seq: &mut u64) {
        let p = self.s.segment.params();
        let conv = p.session_conversion * device_conversion_factor(self.device);
        let converting = self.rng.random_bool(conv.min(1.0));
        let bounce = !converting && self.rng.random_bool(p.bounce_rate);
        let mut views = if bounce {
            0
        } else {
            // 1 + geometric with mean (mean_product_views − 1); buyers browse
            // ~1.5× longer than the segment average.
            let boost = if converting { 1.5 } else { 1.0 };
            let q = 1.0 / (p.mean_product_views * boost);
            let mut n = 1;
            while !self.rng.random_bool(q) {
                n += 1;
            }
            n
        };
        let mut forced = None;
        let landing: f64 = self.rng.random();
        let first_category = self.pick_category();
        let mut pool = Pool::Category(first_category);
        let w = self.w;
        if landing < 0.5 {
            self.page(format!("/{}/", self.lang));
            if self.rng.random_bool(0.5) {
                // "New in" widget on the home page.
                let cands = self.sample(&w.by_arm[NEW_IN_ARM], 8, None);
                forced = self.recs(cands);
            }
            if let Some(arm) = self.banner() {
                pool = Pool::Arm(arm);
                views = views.max(1);
            }
        } else if landing < 0.8 {
            self.page(self.category_path(first_category));
        }
        if forced.is_some() || landing >= 0.8 {
            // A rec click, or landing straight on a product page, means ≥ 1 product view.
            views = views.max(1);
        }
        if views > 0 && self.rng.random_bool(SEARCH_SHARE) {
            pool = Pool::Category(self.search());
        }
        let mut cart: Vec<CartLine> = Vec::new();
        let mut viewed: Vec<u32> = Vec::new();
        let mut v = 0;
        while v < views {
            let pi = match forced.take() {
                Some(pi) => pi,
                None => {
                    if v > 0 && self.rng.random_bool(0.25) {
                        let c = self.pick_category();
                        pool = Pool::Category(c);
                        self.wait(PAGE_DWELL_S);
                        self.page(self.category_path(c));
                    }
                    self.choose(pool_slice(w, &pool))
                }
            };
            if v > 0 || landing < 0.8 {
                self.wait(PAGE_DWELL_S);
            }
            let pid = self.w.catalog.products()[pi as usize].id.clone();
            self.page(format!("/{}/p/{}", self.lang, pid));
            self.tick();
            self.emit("product_view", json!({ "product_id": pid }));
            viewed.push(pi);
            if self.rng.random_bool(REC_WIDGET_SHARE) {
                let c = self.category_of(pi);
                let cands = self.sample(&w.by_category[c], 6, Some(pi));
                forced = self.recs(cands);
                if forced.is_some() {
                    views += 1;
                }
            }
            // Sessions that will buy are in "buying mode": 2× add-to-cart.
            let mode = if converting { 2.0 } else { 1.0 };
            if self
                .rng
                .random_bool((self.atc_probability(pi) * mode).min(1.0))
            {
                self.wait(20.0);
                self.add_to_cart(pi, &mut cart);
            }
            v += 1;
        }
        if converting && cart.is_empty() {
            viewed.sort_by(|a, b| self.affinity(*b).total_cmp(&self.affinity(*a)));
            for &pi in &viewed {
                if self.add_to_cart(pi, &mut cart) {
                    break;
                }
            }
        }
        let checkout = converting && !cart.is_empty();
        if !cart.is_empty() && (checkout || self.rng.random_bool(0.35)) {
            self.wait(PAGE_DWELL_S);
            let path = if self.lang == "it" {
                "carrello"
            } else {
                "cart"
            };
            self.page(format!("/{}/{}", self.lang, path));
            let mut i = 0;
            while i < cart.len() {
                if (cart.len() > 1 || !checkout) && self.rng.random_bool(0.15) {
                    self.wait(10.0);
                    let line = cart.remove(i);
                    let props = self.cart_props(&line);
                    self.emit("remove_from_cart", props);
                } else {
                    i += 1;
                }
            }
        }
        if checkout {
            self.purchase(cart, order_seq);
        }
    }

    fn category_of(&self, pi: u32) -> usize {
        let id = &self.w.catalog.products()[pi as usize].category_id;
        let cats = self.w.catalog.categories();
        cats.iter().position(|c| &c.id == id).unwrap_or(0)
    }

    /// Up to `n` distinct random products from `from`, excluding `skip`.
    fn sample(&mut self, from: &[u32], n: usize, skip: Option<u32>) -> Vec<u32> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n * 3 {
            if out.len() == n || from.is_empty() {
                break;
            }
            let p = from[self.rng.random_range(0..from.len())];
            if Some(p) != skip && !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// Emits a recs impression for `cands`; returns the clicked product.
    /// Baseline recommender = random same-category items, so CTR is modest:
    /// 2–7 % per impression depending on how well the best item fits
    /// (typical widget CTRs are a few percent).
    fn recs(&mut self, cands: Vec<u32>) -> Option<u32> {
        if cands.is_empty() {
            return None;
        }
        self.tick();
        let request_id = uuid(self.rng).to_string();
        let ids: Vec<&str> = cands
            .iter()
            .map(|&p| self.w.catalog.products()[p as usize].id.as_str())
            .collect();
        let props = json!({ "request_id": request_id, "product_ids": ids });
        self.emit("rec_impression", props);
        let best = self.choose(&cands);
        let p_click = 0.02 + 0.05 * sigmoid(2.0 * (self.affinity(best) - 1.0));
        if !self.rng.random_bool(p_click) {
            return None;
        }
        self.wait(8.0);
        let pid = self.w.catalog.products()[best as usize].id.clone();
        self.emit(
            "rec_click",
            json!({ "request_id": request_id, "product_id": pid }),
        );
        Some(best)
    }

    /// Uniform-random logging policy over the five arms (so off-policy
    /// estimates are unbiased); click with the true segment CTR.
    fn banner(&mut self) -> Option<usize> {
        self.tick();
        let arm = self.rng.random_range(0..ARM_IDS.len());
        let decision_id = uuid(self.rng).to_string();
        let props =
            json!({"decision_id": decision_id, "slot": HOME_HERO_SLOT, "arm_id": ARM_IDS[arm]});
        self.emit("banner_impression", props);
        let ctr = TRUE_BANNER_CTR[self.s.segment.index()][arm];
        if !self.rng.random_bool(ctr) {
            return None;
        }
        self.wait(6.0);
        self.emit(
            "banner_click",
            json!({ "decision_id": decision_id, "arm_id": ARM_IDS[arm] }),
        );
        self.tick();
        let landing = &super::params::home_hero_arms()[arm].landing_path;
        self.page(format!("/{}/{}", self.lang, landing));
        Some(arm)
    }

    /// Search for a liked category, optionally with a favourite colour.
    fn search(&mut self) -> usize {
        let c = self.pick_category();
        let cat = &self.w.catalog.categories()[c];
        let colour = self.rng.random_bool(0.4).then(|| {
            let k = self.s.fav_colours[self.rng.random_range(0..self.s.fav_colours.len())];
            &self.w.catalog.colours()[k]
        });
        let query = match (self.lang == "it", colour) {
            (true, Some(k)) => format!("{} {}", cat.query_it, k.name_it),
            (true, None) => cat.query_it.clone(),
            (false, Some(k)) => format!("{} {}", k.name_en, cat.query_en),
            (false, None) => cat.query_en.clone(),
        };
        self.wait(PAGE_DWELL_S);
        self.page(format!("/{}/search?q={}", self.lang, encode_query(&query)));
        self.tick();
        self.emit("search", json!({ "query": query }));
        c
    }

    /// Add-to-cart probability: base × affinity fit (0.6–1.4) × price fit
    /// (×0.35 above the shopper's price band, ×0.8 below it).
    fn atc_probability(&self, pi: u32) -> f64 {
        let p = &self.w.catalog.products()[pi as usize];
        let fit = 0.6 + 0.8 * sigmoid(2.0 * (self.affinity(pi) - 1.0));
        let price = p.effective_price();
        let price_fit = if price > self.s.price_band.1 {
            0.35
        } else if price < self.s.price_band.0 {
            0.8
        } else {
            1.0
        };
        (self.s.segment.params().add_to_cart_rate * fit * price_fit).min(1.0)
    }

    fn cart_props(&self, line: &CartLine) -> Value {
        let p = &self.w.catalog.products()[line.product as usize];
        let v = &p.variants[line.variant];
        json!({
            "product_id": p.id, "variant_id": v.id, "size": v.size,
            "quantity": line.quantity, "price": p.effective_price(),
        })
    }

    /// Adds the shopper's size (or a neighbour if out of stock); false if none.
    fn add_to_cart(&mut self, pi: u32, cart: &mut Vec<CartLine>) -> bool {
        let cat = self.category_of(pi);
        let system = self.w.catalog.categories()[cat].size_system;
        let p = &self.w.catalog.products()[pi as usize];
        let want = self.s.size_index(system, self.rng);
        let pick = [want, want + 1, want.wrapping_sub(1)]
            .into_iter()
            .find(|&i| p.variants.get(i).is_some_and(|v| v.total_stock() > 0));
        let Some(variant) = pick else { return false };
        let basic = p.category_id.starts_with("tshirts");
        let quantity = if self.rng.random_bool(if basic { 0.15 } else { 0.04 }) {
            2
        } else {
            1
        };
        let line = CartLine {
            product: pi,
            variant,
            quantity,
        };
        let props = self.cart_props(&line);
        self.emit("add_to_cart", props);
        cart.push(line);
        true
    }

    fn purchase(&mut self, cart: Vec<CartLine>, order_seq: &mut u64) {
        if self.user_id.is_none() && self.s.user_id.is_some() && self.rng.random_bool(0.6) {
            self.user_id = self.s.user_id.as_deref(); // logs in at checkout
        }
        self.wait(PAGE_DWELL_S);
        self.page(format!("/{}/checkout", self.lang));
        self.wait(120.0);
        *order_seq += 1;
        let order_id = format!("O{:09}", *order_seq);
        let catalog = Arc::clone(&self.w.catalog);
        let lines: Vec<OrderLine> = cart
            .iter()
            .map(|l| {
                let p = &catalog.products()[l.product as usize];
                OrderLine {
                    product_id: p.id.clone(),
                    variant_id: p.variants[l.variant].id.clone(),
                    quantity: l.quantity,
                    unit_price: p.effective_price(),
                }
            })
            .collect();
        let total: f64 = lines
            .iter()
            .map(|l| l.unit_price * f64::from(l.quantity))
            .sum();
        let props = json!({
            "order_id": order_id, "currency": "EUR", "total": total, "lines": lines_json(&lines),
        });
        self.emit("purchase", props);
        let seg_mult = self.s.segment.params().return_multiplier;
        let returned: Vec<OrderLine> = cart
            .iter()
            .zip(&lines)
            .filter(|(c, _)| {
                let p = &catalog.products()[c.product as usize];
                let extreme =
                    p.variants.len() > 1 && (c.variant == 0 || c.variant + 1 == p.variants.len());
                let mut rate = category_return_rate(&p.category_id) * seg_mult;
                rate *= if extreme { 1.25 } else { 1.0 };
                rate *= if p.sale_price.is_some() { 0.8 } else { 1.0 };
                self.rng.random_bool(rate.min(0.9))
            })
            .map(|(_, l)| l.clone())
            .collect();
        if returned.is_empty() {
            return;
        }
        let day_ms = 86_400_000;
        let ts =
            self.t + self.rng.random_range(RETURN_DAYS) * day_ms + self.rng.random_range(0..day_ms);
        let session_id = format!("backoffice-{}", uuid(self.rng));
        let env = Envelope {
            user_id: self.user_id,
            anonymous_id: &self.s.anonymous_id,
            session_id: &session_id,
            market: MARKETS[self.s.market].0,
            device: Device::Other,
        };
        let props = json!({ "order_id": order_id, "lines": lines_json(&returned) });
        let event = env.event(uuid(self.rng), "return", ts, props);
        self.returns.push((ts, event));
    }
}
