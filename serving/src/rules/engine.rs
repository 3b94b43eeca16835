//! Applying the matching rules to a candidate list; the order of the steps and how conflicts resolve is
//! in the [module documentation](super#conflict-resolution).
//!
//! Cost per call: O(rules) to match, O(candidates × attributes used) attribute reads (each product's
//! attribute values are read once per call), O(candidates × actions) comparisons, plus, per collection pin
//! its candidates cannot fill, one scan of the catalogue for the collection's members. Nothing is cached
//! between calls and nothing is allocated per catalogue product; what dominates is one [`Applied`] (three
//! short strings) per effect, i.e. per (action, matched item) pair.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pipelines::catalog::Catalog;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Action, Rule};
use crate::catalog::{attribute, ATTRIBUTES};

/// What the rules of one request are matched against.
#[derive(Debug, Clone, Copy)]
pub struct RuleContext<'a> {
    pub segment: &'a str,
    /// ISO 3166-1 alpha-2 (compared case-insensitively).
    pub market: &'a str,
    pub placement: &'a str,
    pub device: Option<&'a str>,
    /// The caller's experiment assignments (experiment key → variant key).
    pub variants: &'a BTreeMap<String, String>,
    pub rule_set: &'a str,
    pub now: DateTime<Utc>,
}

/// One item of a recommendation list.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
pub struct Candidate {
    pub product_id: String,
    /// The model's score (any real number, higher is better); rules never change it, only the order.
    /// Products a pin inserts have 0.
    pub score: f32,
    /// Why the item is here (`rule:<name>` for each rule that moved it).
    pub reasons: Vec<String>,
}

/// What the engine reads besides the rules and the candidates.
pub struct Inputs<'a> {
    pub catalog: &'a Catalog,
    /// The request's filters (already purchased, excluded, hidden, out of stock…): pins and collection
    /// fills must obey it, so a rule can never bring back a filtered product.
    pub eligible: &'a (dyn Fn(&str) -> bool + Sync),
    /// Ranking score for products outside the candidates (popularity), used to choose a collection's top
    /// items.
    pub popularity: &'a (dyn Fn(&str) -> f64 + Sync),
    /// A collection's catalogue members already ranked by that popularity ([`rank_collection`]), when the
    /// caller keeps them (serving caches them per model); `None` ranks from `popularity` on each use.
    pub ranking: Option<&'a Ranking<'a>>,
}

/// A collection id → its catalogue members ranked by popularity (see [`Inputs::ranking`]).
pub type Ranking<'a> = dyn Fn(&str) -> Arc<[u32]> + Sync + 'a;

/// The catalogue indices of `collection`'s products, best first by `popularity` (NaN last, ties by id).
pub fn rank_collection(
    catalog: &Catalog,
    collection: &str,
    popularity: &dyn Fn(&str) -> f64,
) -> Arc<[u32]> {
    let mut m: Vec<(f64, &str, u32)> = catalog
        .products()
        .iter()
        .enumerate()
        .filter(|(_, p)| p.collection_id == collection)
        .map(|(i, p)| {
            let s = popularity(&p.id);
            let s = if s.is_nan() { f64::NEG_INFINITY } else { s };
            (s, p.id.as_str(), i as u32)
        })
        .collect();
    m.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    m.into_iter().map(|(_, _, i)| i).collect()
}

/// One effect of one rule action on one product (the "why" of a list, for merchandisers).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
pub struct Applied {
    pub rule_id: Uuid,
    /// The rule's name.
    pub rule: String,
    /// Index of the action in the rule's `actions`.
    pub action: usize,
    pub product_id: String,
    /// `pinned`, `boosted`, `buried`, `filtered`, `quota` (dropped over a quota) or `pin_conflict` (a pin
    /// not applied: position or product taken by a higher-priority pin, product unknown, filtered or
    /// ineligible).
    pub effect: String,
    /// 1-based position among the input candidates; `None` when it was not one.
    pub from: Option<usize>,
    /// 1-based position in the returned list; `None` when it is not in it.
    pub to: Option<usize>,
}

fn listed(values: &[String], v: &str) -> bool {
    values.is_empty() || values.iter().any(|x| x == v)
}

fn matches(rule: &Rule, ctx: &RuleContext) -> bool {
    let r = &rule.input;
    let c = &r.conditions;
    r.enabled
        && r.rule_set == ctx.rule_set
        && listed(&c.segment, ctx.segment)
        && (c.market.is_empty() || c.market.iter().any(|m| m.eq_ignore_ascii_case(ctx.market)))
        && listed(&c.placement, ctx.placement)
        && (c.device.is_empty() || ctx.device.is_some_and(|d| c.device.iter().any(|x| x == d)))
        && c.starts_at.is_none_or(|s| s <= ctx.now)
        && c.ends_at.is_none_or(|e| ctx.now < e)
        && c.experiment.as_ref().is_none_or(|x| {
            ctx.variants
                .get(&x.key)
                .is_some_and(|v| x.variants.contains(v))
        })
}

/// The rules that apply to `ctx` (enabled, in its rule set, every condition met, within their dates),
/// highest priority first, ties by id.
pub fn matching<'r>(rules: &'r [Rule], ctx: &RuleContext) -> Vec<&'r Rule> {
    let mut m: Vec<&Rule> = rules.iter().filter(|r| matches(r, ctx)).collect();
    m.sort_by(|a, b| {
        b.input
            .priority
            .cmp(&a.input.priority)
            .then(a.id.cmp(&b.id))
    });
    m
}

/// A candidate on its way through the steps.
struct Item<'c> {
    c: Candidate,
    /// 1-based input position.
    from: usize,
    /// Base score in (0, 1] times boosts, divided by buries.
    adj: f64,
    /// Values of the attributes the matching rules use, indexed like [`ATTRIBUTES`], borrowed from the
    /// catalogue (`product_id` is read from the candidate).
    attrs: Vec<Option<&'c str>>,
    /// 1 + the index of the last rule that gave the item a reason (0: none), so that a rule with several
    /// matching boosts adds its reason once without searching the reasons.
    reason_of: usize,
}

impl Item<'_> {
    fn attr(&self, at: usize) -> Option<&str> {
        if ATTRIBUTES[at] == "product_id" {
            Some(&self.c.product_id)
        } else {
            self.attrs[at]
        }
    }

    fn has(&self, attr: usize, value: &str) -> bool {
        self.attr(attr) == Some(value)
    }
}

fn attr_index(name: &str) -> Option<usize> {
    ATTRIBUTES.iter().position(|a| *a == name)
}

fn add_reason(c: &mut Candidate, rule: &str) {
    let r = format!("rule:{rule}");
    if !c.reasons.contains(&r) {
        c.reasons.push(r);
    }
}

/// Records one effect; `to` is filled in once the list is final.
fn record(
    out: &mut Vec<Applied>,
    rule: &Rule,
    action: usize,
    product_id: &str,
    effect: &str,
    from: Option<usize>,
) {
    out.push(Applied {
        rule_id: rule.id,
        rule: rule.input.name.clone(),
        action,
        product_id: product_id.to_string(),
        effect: effect.to_string(),
        from,
        to: None,
    });
}

/// Applies the rules matching `ctx` to `candidates` (best first) and returns at most `n` items with the
/// effects; see the [module documentation](super#conflict-resolution) for the steps and conflicts.
pub fn apply(
    rules: &[Rule],
    ctx: &RuleContext,
    inputs: &Inputs,
    candidates: Vec<Candidate>,
    n: usize,
) -> (Vec<Candidate>, Vec<Applied>) {
    let rules = matching(rules, ctx);
    // Duplicates cannot be placed twice: the first occurrence stays.
    let mut seen = HashSet::with_capacity(candidates.len());
    let mut dedup: Vec<(usize, Candidate)> = Vec::with_capacity(candidates.len());
    for (i, c) in candidates.into_iter().enumerate() {
        if seen.insert(c.product_id.clone()) {
            dedup.push((i + 1, c));
        }
    }
    if rules.is_empty() {
        return (
            dedup.into_iter().take(n).map(|(_, c)| c).collect(),
            Vec::new(),
        );
    }
    let mut used = vec![false; ATTRIBUTES.len()];
    for r in &rules {
        for a in &r.input.actions {
            if let Action::Boost { attribute, .. }
            | Action::Bury { attribute, .. }
            | Action::Filter { attribute, .. }
            | Action::Quota { attribute, .. } = a
            {
                if let Some(i) = attr_index(attribute) {
                    used[i] = true;
                }
            }
        }
    }

    // 1. Positive base scores.
    let finite = dedup
        .iter()
        .map(|(_, c)| c.score as f64)
        .filter(|s| s.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
        (lo.min(s), hi.max(s))
    });
    let base = |s: f32| {
        let s = s as f64;
        if !s.is_finite() {
            0.01
        } else if hi > lo {
            0.01 + 0.99 * (s - lo) / (hi - lo)
        } else {
            1.0
        }
    };
    let mut items: Vec<Item> = dedup
        .into_iter()
        .map(|(from, c)| {
            let product = inputs.catalog.product(&c.product_id);
            let attrs = ATTRIBUTES
                .iter()
                .zip(&used)
                .map(|(name, u)| match (u, product) {
                    (true, Some(p)) => attribute(p, name),
                    _ => None,
                })
                .collect();
            Item {
                adj: base(c.score),
                c,
                from,
                attrs,
                reason_of: 0,
            }
        })
        .collect();
    let mut applied = Vec::new();

    // 2. Filters; the (attribute, value) pairs also bind the pins.
    let mut filters: Vec<(usize, &str)> = Vec::new();
    // Rule-filtered candidates → input position.
    let mut filtered: HashMap<String, usize> = HashMap::new();
    for r in &rules {
        for (ai, a) in r.input.actions.iter().enumerate() {
            let Action::Filter { attribute, value } = a else {
                continue;
            };
            let Some(at) = attr_index(attribute) else {
                continue;
            };
            filters.push((at, value));
            items.retain(|it| {
                let hit = it.has(at, value);
                if hit {
                    record(
                        &mut applied,
                        r,
                        ai,
                        &it.c.product_id,
                        "filtered",
                        Some(it.from),
                    );
                    filtered.insert(it.c.product_id.clone(), it.from);
                }
                !hit
            });
        }
    }

    // 3. Boosts and buries.
    let mut rescored = false;
    for (ri, r) in rules.iter().enumerate() {
        for (ai, a) in r.input.actions.iter().enumerate() {
            let (attribute, value, mul, effect) = match a {
                Action::Boost {
                    attribute,
                    value,
                    factor,
                } => (attribute, value, *factor, "boosted"),
                Action::Bury {
                    attribute,
                    value,
                    factor,
                } => (attribute, value, 1.0 / *factor, "buried"),
                _ => continue,
            };
            let Some(at) = attr_index(attribute) else {
                continue;
            };
            for it in items.iter_mut().filter(|it| it.has(at, value)) {
                it.adj *= mul;
                if it.reason_of != ri + 1 {
                    it.reason_of = ri + 1;
                    it.c.reasons.push(format!("rule:{}", r.input.name));
                }
                record(&mut applied, r, ai, &it.c.product_id, effect, Some(it.from));
                rescored = true;
            }
        }
    }
    if rescored {
        // Stable: equal scores keep the caller's order.
        items.sort_by(|a, b| b.adj.total_cmp(&a.adj));
    }

    // 4. Quotas.
    let dropped = quotas(&rules, &mut items, &mut applied);

    // 5. Pins, then the final list.
    let any_pin = rules.iter().any(|r| {
        r.input
            .actions
            .iter()
            .any(|a| matches!(a, Action::Pin { .. } | Action::PinCollection { .. }))
    });
    let slots = if any_pin {
        PinState::new(inputs, &items, &dropped, &filtered, &filters).pin(&rules, n, &mut applied)
    } else {
        Vec::new()
    };
    let out = assemble(items, dropped, slots, n);
    let at: HashMap<&str, usize> = out
        .iter()
        .enumerate()
        .map(|(i, c)| (c.product_id.as_str(), i + 1))
        .collect();
    for a in &mut applied {
        a.to = at.get(a.product_id.as_str()).copied();
    }
    (out, applied)
}

/// Drops the items over a quota (per attribute the smallest `max`, from the first, highest-priority, rule
/// giving it) and returns them.
fn quotas<'c>(
    rules: &[&Rule],
    items: &mut Vec<Item<'c>>,
    applied: &mut Vec<Applied>,
) -> Vec<Item<'c>> {
    let mut limits: Vec<(usize, u32, &Rule, usize)> = Vec::new();
    for r in rules {
        for (ai, a) in r.input.actions.iter().enumerate() {
            let Action::Quota { attribute, max } = a else {
                continue;
            };
            let Some(at) = attr_index(attribute) else {
                continue;
            };
            match limits.iter_mut().find(|q| q.0 == at) {
                Some(q) if *max < q.1 => *q = (at, *max, r, ai),
                Some(_) => {}
                None => limits.push((at, *max, r, ai)),
            }
        }
    }
    if limits.is_empty() {
        return Vec::new();
    }
    // Decide on borrowed items first, then move them.
    let mut counts: HashMap<(usize, &str), u32> = HashMap::new();
    let mut over_by: Vec<Option<usize>> = Vec::with_capacity(items.len());
    for it in items.iter() {
        let over = limits.iter().position(|(at, max, ..)| {
            it.attr(*at)
                .is_some_and(|v| counts.get(&(*at, v)).copied().unwrap_or(0) >= *max)
        });
        if over.is_none() {
            for (at, ..) in &limits {
                if let Some(v) = it.attr(*at) {
                    *counts.entry((*at, v)).or_insert(0) += 1;
                }
            }
        }
        over_by.push(over);
    }
    let mut dropped = Vec::new();
    let mut kept = Vec::with_capacity(items.len());
    for (it, over) in std::mem::take(items).into_iter().zip(over_by) {
        match over {
            Some(q) => {
                let (_, _, r, ai) = limits[q];
                record(applied, r, ai, &it.c.product_id, "quota", Some(it.from));
                dropped.push(it);
            }
            None => kept.push(it),
        }
    }
    *items = kept;
    dropped
}

/// A decided pin: the product and the rule that placed it.
struct Pinned<'r> {
    id: String,
    rule: &'r Rule,
}

/// What the pin step reads.
struct PinState<'x> {
    inputs: &'x Inputs<'x>,
    /// Candidates still in the list, in order.
    items: &'x [Item<'x>],
    /// Every candidate not removed by a rule filter (in the list or dropped by a quota) → (input
    /// position, still in the list).
    index: HashMap<&'x str, (usize, bool)>,
    filtered: &'x HashMap<String, usize>,
    filters: &'x [(usize, &'x str)],
}

impl<'x> PinState<'x> {
    fn new(
        inputs: &'x Inputs<'x>,
        items: &'x [Item<'x>],
        dropped: &'x [Item<'x>],
        filtered: &'x HashMap<String, usize>,
        filters: &'x [(usize, &'x str)],
    ) -> PinState<'x> {
        let index = items
            .iter()
            .map(|it| (it.c.product_id.as_str(), (it.from, true)))
            .chain(
                dropped
                    .iter()
                    .map(|it| (it.c.product_id.as_str(), (it.from, false))),
            )
            .collect();
        PinState {
            inputs,
            items,
            index,
            filtered,
            filters,
        }
    }

    /// 1-based input position of a product, when it was a candidate.
    fn from(&self, id: &str) -> Option<usize> {
        self.index
            .get(id)
            .map(|(from, _)| *from)
            .or_else(|| self.filtered.get(id).copied())
    }

    /// Whether a pin may show `id`: never a rule-filtered product nor one the request's filters refuse;
    /// a product outside the candidates must be in the catalogue.
    fn allowed(&self, id: &str) -> bool {
        if self.filtered.contains_key(id) {
            return false;
        }
        let known = self.index.contains_key(id)
            || self.inputs.catalog.product(id).is_some_and(|p| {
                !self.filters.iter().any(|(at, v)| {
                    let name = ATTRIBUTES[*at];
                    if name == "product_id" {
                        id == *v
                    } else {
                        attribute(p, name) == Some(*v)
                    }
                })
            });
        known && (self.inputs.eligible)(id)
    }

    /// `collection`'s catalogue members, best first by popularity (those in the list are skipped as they are
    /// reached: see [`Fill::peek`]).
    fn catalogue_members(&self, collection: &str) -> Arc<[u32]> {
        match self.inputs.ranking {
            Some(rank) => rank(collection),
            None => rank_collection(self.inputs.catalog, collection, self.inputs.popularity),
        }
    }

    /// Whether `id` is still in the list.
    fn in_list(&self, id: &str) -> bool {
        self.index.get(id).is_some_and(|(_, in_list)| *in_list)
    }

    /// Decides the pins, highest-priority rule first: slot `i` holds the product pinned at position `i + 1`.
    fn pin<'r>(
        &self,
        rules: &[&'r Rule],
        n: usize,
        applied: &mut Vec<Applied>,
    ) -> Vec<Option<Pinned<'r>>> {
        let len = n.min(super::MAX_POSITION as usize);
        let mut slots: Vec<Option<Pinned<'r>>> = (0..len).map(|_| None).collect();
        let mut pinned: HashSet<String> = HashSet::new();
        for r in rules {
            for (ai, a) in r.input.actions.iter().enumerate() {
                match a {
                    Action::Pin {
                        product_id,
                        position,
                    } => {
                        let pos = *position as usize;
                        if pos == 0 || pos > len {
                            continue;
                        }
                        let from = self.from(product_id);
                        if slots[pos - 1].is_some()
                            || pinned.contains(product_id)
                            || !self.allowed(product_id)
                        {
                            record(applied, r, ai, product_id, "pin_conflict", from);
                            continue;
                        }
                        pinned.insert(product_id.clone());
                        slots[pos - 1] = Some(Pinned {
                            id: product_id.clone(),
                            rule: r,
                        });
                        record(applied, r, ai, product_id, "pinned", from);
                    }
                    Action::PinCollection { collection, .. } => {
                        let mut fill = Fill {
                            list: self
                                .items
                                .iter()
                                .filter(|it| {
                                    self.inputs
                                        .catalog
                                        .product(&it.c.product_id)
                                        .is_some_and(|p| &p.collection_id == collection)
                                })
                                .map(|it| it.c.product_id.as_str())
                                .collect(),
                            more: None,
                            i: 0,
                        };
                        for p in a.pin_positions() {
                            let pos = p as usize;
                            if pos == 0 || pos > len {
                                continue;
                            }
                            let Some(id) = fill.peek(self, collection, &pinned) else {
                                break;
                            };
                            if slots[pos - 1].is_some() {
                                // The item is kept for the next free position of this action.
                                record(applied, r, ai, id, "pin_conflict", self.from(id));
                                continue;
                            }
                            fill.i += 1;
                            pinned.insert(id.to_string());
                            slots[pos - 1] = Some(Pinned {
                                id: id.to_string(),
                                rule: r,
                            });
                            record(applied, r, ai, id, "pinned", self.from(id));
                        }
                    }
                    _ => {}
                }
            }
        }
        slots
    }
}

/// A collection's items in pin order: its members in the list, then (read only when needed, and only as far as
/// needed) its other catalogue members by popularity.
struct Fill<'x> {
    list: Vec<&'x str>,
    more: Option<Arc<[u32]>>,
    /// Position in `list` and then in `more`.
    i: usize,
}

impl<'x> Fill<'x> {
    /// The next item a pin may use (not pinned yet, allowed), without consuming it.
    fn peek(
        &mut self,
        state: &PinState<'x>,
        collection: &str,
        pinned: &HashSet<String>,
    ) -> Option<&'x str> {
        loop {
            let id = match self.list.get(self.i) {
                Some(id) => *id,
                None => {
                    let more = self
                        .more
                        .get_or_insert_with(|| state.catalogue_members(collection));
                    let at = *more.get(self.i - self.list.len())?;
                    let id = state
                        .inputs
                        .catalog
                        .products()
                        .get(at as usize)?
                        .id
                        .as_str();
                    if state.in_list(id) {
                        self.i += 1;
                        continue;
                    }
                    id
                }
            };
            if !pinned.contains(id) && state.allowed(id) {
                return Some(id);
            }
            self.i += 1;
        }
    }
}

/// The final list: pinned products at their positions, the other kept items in order in the free ones,
/// at most `n`.
fn assemble(
    items: Vec<Item<'_>>,
    dropped: Vec<Item<'_>>,
    mut slots: Vec<Option<Pinned>>,
    n: usize,
) -> Vec<Candidate> {
    let is_pinned: HashSet<String> = slots.iter().flatten().map(|p| p.id.clone()).collect();
    let mut by_id: HashMap<String, Candidate> = HashMap::new();
    let mut rest = Vec::with_capacity(items.len());
    for it in items {
        if is_pinned.contains(&it.c.product_id) {
            by_id.insert(it.c.product_id.clone(), it.c);
        } else {
            rest.push(it.c);
        }
    }
    for it in dropped {
        if is_pinned.contains(&it.c.product_id) {
            by_id.insert(it.c.product_id.clone(), it.c);
        }
    }
    let mut rest = rest.into_iter();
    let mut out = Vec::with_capacity(n.min(rest.len() + is_pinned.len()));
    let mut i = 0;
    while out.len() < n {
        if let Some(slot) = slots.get_mut(i) {
            i += 1;
            match slot.take() {
                Some(p) => {
                    let mut c = by_id.remove(&p.id).unwrap_or_else(|| Candidate {
                        product_id: p.id,
                        score: 0.0,
                        reasons: Vec::new(),
                    });
                    add_reason(&mut c, &p.rule.input.name);
                    out.push(c);
                }
                // When the list runs out, later pinned items close up behind the last one.
                None => out.extend(rest.next()),
            }
        } else {
            match rest.next() {
                Some(c) => out.push(c),
                None => break,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
