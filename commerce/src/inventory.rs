//! Stock per variant per location, and how an order's units are taken from the four locations.
//!
//! # Quantities
//! Each (SKU, location) row holds `on_hand` (units physically there) and `reserved` (units promised to orders
//! not yet paid). `available = on_hand − reserved` is what can be sold. A checkout *reserves*; a capture
//! *commits* (`on_hand` and `reserved` both drop, `available` is unchanged); a failed, cancelled or timed-out
//! payment *releases* (`reserved` drops). `seq` grows with every change of a row and orders the
//! `stock_level` messages of that row on the bus.
//!
//! # Allocation policy
//! For each cart line, in cart order, the locations are tried in the policy's order:
//! 1. **one location if possible**: the first location, in policy order, whose available quantity covers the
//!    whole line ships it all (fewer parcels, no split for one SKU);
//! 2. **otherwise split**: take what each location has, in policy order, until the line is covered;
//! 3. if the four together cannot cover it, the checkout fails with `409` naming the SKU, the quantity asked
//!    and the quantity available; nothing is reserved.
//!
//! The policy's order is: the online warehouse first (it ships every day and keeps the boutiques' floor
//! stock for walk-in clients), then the stores in the same city as the shipping address, then the other
//! stores in the catalogue's order. See [`AllocationPolicy::for_shipping`].
//!
//! # No oversell
//! Every backend runs allocate-then-reserve inside one transaction over the locked rows of the cart's SKUs
//! (PostgreSQL: `SELECT … FOR UPDATE` in `(sku, location)` order, so concurrent checkouts never deadlock;
//! memory: one mutex), so `reserved ≤ on_hand` holds for every row at every commit.

use chrono::{DateTime, Utc};
use pipelines::catalog::{Location, LocationKind};
use pipelines::commerce::CommerceEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{Address, Allocation};
use crate::{Error, Result};

/// Largest quantity one location may hold of one SKU (a bound on admin input).
pub const MAX_UNITS_PER_LOCATION: i64 = 1_000_000;

/// One SKU at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StockRow {
    pub sku: String,
    pub product_id: String,
    pub size: String,
    pub location: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// Changes of this row so far.
    pub seq: i64,
}

impl StockRow {
    /// Units that can still be sold here.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }

    /// The `stock_level` message announcing this row's current level.
    pub fn event(&self, ts: DateTime<Utc>) -> CommerceEvent {
        CommerceEvent::StockLevel {
            event_id: Uuid::new_v4(),
            ts,
            product_id: self.product_id.clone(),
            variant_id: self.sku.clone(),
            size: self.size.clone(),
            location: self.location.clone(),
            available: self.available(),
            seq: self.seq.max(0) as u64,
        }
    }
}

/// The locations an order's units are taken from, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationPolicy {
    pub order: Vec<String>,
}

impl AllocationPolicy {
    /// Online warehouse first, then stores in the shipping city, then the other stores (catalogue order).
    pub fn for_shipping(locations: &[Location], shipping: &Address) -> AllocationPolicy {
        let mut ranked: Vec<(u8, usize, &Location)> = locations
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let rank = match l.kind {
                    LocationKind::Online => 0,
                    LocationKind::Store
                        if l.country == shipping.country
                            && l.city.eq_ignore_ascii_case(shipping.city.trim()) =>
                    {
                        1
                    }
                    LocationKind::Store => 2,
                };
                (rank, i, l)
            })
            .collect();
        ranked.sort_by_key(|&(rank, i, _)| (rank, i));
        AllocationPolicy {
            order: ranked.into_iter().map(|(_, _, l)| l.id.clone()).collect(),
        }
    }
}

/// Decides where each wanted `(sku, quantity)` comes from (see the module doc). `rows` are the locked rows of
/// the wanted SKUs; a SKU without rows has nothing available.
pub fn allocate(
    rows: &[StockRow],
    wanted: &[(String, u32)],
    policy: &AllocationPolicy,
) -> Result<Vec<Allocation>> {
    let mut taken: Vec<Allocation> = Vec::new();
    let left = |taken: &[Allocation], row: &StockRow| -> i64 {
        let already: i64 = taken
            .iter()
            .filter(|a| a.sku == row.sku && a.location == row.location)
            .map(|a| i64::from(a.quantity))
            .sum();
        row.available() - already
    };
    for (sku, qty) in wanted {
        let want = i64::from(*qty);
        let mut candidates: Vec<&StockRow> = rows.iter().filter(|r| &r.sku == sku).collect();
        candidates.sort_by_key(|r| {
            policy
                .order
                .iter()
                .position(|l| *l == r.location)
                .unwrap_or(usize::MAX)
        });
        let total: i64 = candidates.iter().map(|r| left(&taken, r).max(0)).sum();
        if total < want {
            return Err(Error::Conflict(format!(
                "insufficient stock for `{sku}`: {want} asked, {total} available"
            )));
        }
        if let Some(one) = candidates.iter().find(|r| left(&taken, r) >= want) {
            taken.push(Allocation {
                sku: sku.clone(),
                location: one.location.clone(),
                quantity: *qty,
            });
            continue;
        }
        let mut need = want;
        for r in candidates {
            if need == 0 {
                break;
            }
            let take = left(&taken, r).max(0).min(need);
            if take > 0 {
                taken.push(Allocation {
                    sku: sku.clone(),
                    location: r.location.clone(),
                    quantity: take as u32,
                });
                need -= take;
            }
        }
    }
    Ok(taken)
}

/// What a payment outcome does to an order's reserved stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockEffect {
    /// Nothing changes (still waiting, or already settled).
    Keep,
    /// Sold: `on_hand` and `reserved` drop by the allocation.
    Commit,
    /// Given back: `reserved` drops by the allocation.
    Release,
}

/// Applies `effect` for `allocations` to the locked `rows` (each changed row's `seq` grows); returns the
/// indices of the changed rows. A missing row or a negative result is an internal error (the invariant
/// `0 ≤ reserved ≤ on_hand` would break).
pub fn apply(
    rows: &mut [StockRow],
    allocations: &[Allocation],
    effect: Reservation,
) -> Result<Vec<usize>> {
    let mut changed = Vec::new();
    for a in allocations {
        let i = rows
            .iter()
            .position(|r| r.sku == a.sku && r.location == a.location)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "stock row {}@{} missing for an allocation",
                    a.sku, a.location
                ))
            })?;
        let q = i64::from(a.quantity);
        let r = &mut rows[i];
        match effect {
            Reservation::Reserve => r.reserved += q,
            Reservation::Commit => {
                r.on_hand -= q;
                r.reserved -= q;
            }
            Reservation::Release => r.reserved -= q,
        }
        if r.reserved < 0 || r.reserved > r.on_hand || r.on_hand < 0 {
            return Err(Error::Internal(format!(
                "stock invariant broken for {}@{}: on_hand {}, reserved {}",
                r.sku, r.location, r.on_hand, r.reserved
            )));
        }
        r.seq += 1;
        if !changed.contains(&i) {
            changed.push(i);
        }
    }
    Ok(changed)
}

/// A change to reserved stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    Reserve,
    Commit,
    Release,
}

impl StockEffect {
    /// The reservation change this effect makes, if any.
    pub fn reservation(self) -> Option<Reservation> {
        match self {
            StockEffect::Keep => None,
            StockEffect::Commit => Some(Reservation::Commit),
            StockEffect::Release => Some(Reservation::Release),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sku: &str, loc: &str, on_hand: i64, reserved: i64) -> StockRow {
        StockRow {
            sku: sku.into(),
            product_id: "P1".into(),
            size: "M".into(),
            location: loc.into(),
            on_hand,
            reserved,
            seq: 0,
        }
    }

    fn policy() -> AllocationPolicy {
        AllocationPolicy {
            order: vec!["WEB".into(), "MI".into(), "RM".into(), "FI".into()],
        }
    }

    #[test]
    fn one_location_when_it_covers_the_line_else_split_in_policy_order() {
        let rows = vec![
            row("A", "WEB", 1, 0),
            row("A", "MI", 5, 4),
            row("A", "RM", 3, 0),
            row("B", "FI", 2, 0),
        ];
        let got = allocate(&rows, &[("A".into(), 3)], &policy()).unwrap();
        assert_eq!(
            got,
            vec![Allocation {
                sku: "A".into(),
                location: "RM".into(),
                quantity: 3
            }]
        );
        let got = allocate(&rows, &[("A".into(), 5)], &policy()).unwrap();
        let split: Vec<(String, u32)> = got
            .iter()
            .map(|a| (a.location.clone(), a.quantity))
            .collect();
        assert_eq!(
            split,
            vec![("WEB".into(), 1), ("MI".into(), 1), ("RM".into(), 3)]
        );
        let err = allocate(&rows, &[("A".into(), 6)], &policy()).unwrap_err();
        assert!(matches!(err, Error::Conflict(m) if m.contains("6 asked, 5 available")));
        assert!(allocate(&rows, &[("Z".into(), 1)], &policy()).is_err());
    }

    #[test]
    fn two_lines_of_one_sku_do_not_take_the_same_units_twice() {
        let rows = vec![row("A", "WEB", 2, 0), row("A", "MI", 1, 0)];
        let got = allocate(&rows, &[("A".into(), 2), ("A".into(), 1)], &policy()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].location, "MI");
        assert!(allocate(&rows, &[("A".into(), 2), ("A".into(), 2)], &policy()).is_err());
    }

    #[test]
    fn reserve_commit_release_keep_the_invariant() {
        let mut rows = vec![row("A", "WEB", 3, 0)];
        let a = vec![Allocation {
            sku: "A".into(),
            location: "WEB".into(),
            quantity: 2,
        }];
        apply(&mut rows, &a, Reservation::Reserve).unwrap();
        assert_eq!(
            (rows[0].on_hand, rows[0].reserved, rows[0].available()),
            (3, 2, 1)
        );
        apply(&mut rows, &a, Reservation::Commit).unwrap();
        assert_eq!((rows[0].on_hand, rows[0].reserved, rows[0].seq), (1, 0, 2));
        assert!(apply(&mut rows, &a, Reservation::Release).is_err());
    }

    #[test]
    fn policy_puts_online_first_then_the_shipping_city() {
        let loc = |id: &str, kind, city: &str| Location {
            id: id.into(),
            name: id.into(),
            kind,
            city: city.into(),
            country: "IT".into(),
        };
        let locations = vec![
            loc("MI01", LocationKind::Store, "Milano"),
            loc("RM01", LocationKind::Store, "Roma"),
            loc("FI01", LocationKind::Store, "Firenze"),
            loc("WEB", LocationKind::Online, "Piacenza"),
        ];
        let to = Address {
            name: "x".into(),
            street: "x".into(),
            city: "roma".into(),
            postal_code: "00187".into(),
            province: Some("RM".into()),
            country: "IT".into(),
        };
        let p = AllocationPolicy::for_shipping(&locations, &to);
        assert_eq!(p.order, vec!["WEB", "RM01", "MI01", "FI01"]);
    }
}
