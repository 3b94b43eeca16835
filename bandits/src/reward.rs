//! Decisions, their outcomes, and how a reward signal changes what is learned.
//!
//! A decision's **outcome** collects its signals: a click (counted when its event time is within the click
//! window of the decision), purchases attributed to it (the shopper's latest clicked decision whose
//! attribution window covers the purchase time), returns of those purchases, and an explicit reward
//! (`POST /v1/rewards`, which overrides the objective). The **reward** is a function of the outcome and the
//! slot's objective ([`reward_of`]).
//!
//! When the ledger learns ([`transition`]):
//! - a decision not yet learned is learned as soon as its reward is better than the default (a click, a
//!   purchase) or explicit, else when its window closes ([`expire`]), with the default or what the outcome
//!   then says;
//! - a decision already learned whose reward changes (a return, a late click within its window that came
//!   after the window closed, a purchase after the click) gets a **revision** with the difference.
//!
//! Signals are idempotent by `signal_id` (the event id, or `explicit`); the stores keep the ids applied.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::context::Context;
use crate::slot::{Objective, RewardSpec};

/// Clock skew tolerated between the decision (server time) and a click's event time.
pub const CLICK_SKEW_SECS: i64 = 60;

/// A logged decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub decision_id: Uuid,
    pub slot: String,
    pub slot_version: u64,
    pub arm_id: String,
    pub ts: DateTime<Utc>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub segment: String,
    pub propensity: f64,
    /// `kind@vVERSION.SEQ`.
    pub policy: String,
    pub context: Context,
    pub features: Vec<f32>,
    /// The reward definition in force when the decision was made.
    pub reward: RewardSpec,
    /// Served again to a sticky session (not a fresh draw).
    pub sticky: bool,
    /// Served because a merchandiser forced the winner of the segment.
    pub forced: bool,
}

impl Decision {
    /// When the reward is final unless revised.
    pub fn window_end(&self) -> DateTime<Utc> {
        self.ts + Duration::seconds(self.reward.window_secs() as i64)
    }

    /// Last instant a purchase can be attributed to it.
    pub fn attribution_end(&self) -> DateTime<Utc> {
        self.ts + Duration::seconds(self.reward.attribution_window_secs as i64)
    }
}

/// One purchased line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub product_id: String,
    pub variant_id: Option<String>,
    pub quantity: f64,
    /// In EUR.
    pub unit_price: f64,
}

/// An attributed purchase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    pub order_id: String,
    /// In EUR.
    pub revenue: f64,
    pub lines: Vec<Line>,
}

/// What happened after a decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub clicked_at: Option<DateTime<Utc>>,
    pub purchases: Vec<Purchase>,
    /// Returned value in EUR, per order id.
    pub returned: BTreeMap<String, f64>,
    pub explicit: Option<f64>,
    /// The reward the ledger has learned (`None` until learned).
    pub learned: Option<f64>,
}

impl Outcome {
    /// Purchases minus returns, EUR.
    pub fn net_revenue(&self) -> f64 {
        let bought: f64 = self.purchases.iter().map(|p| p.revenue).sum();
        let returned: f64 = self.returned.values().sum();
        (bought - returned).max(0.0)
    }

    /// True when an attributed purchase is not fully returned.
    pub fn converted(&self) -> bool {
        self.net_revenue() > 1e-9
    }
}

/// What a signal says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignalKind {
    Click,
    Purchase(Purchase),
    /// Returned lines of an attributed order (quantity and the product/variant; prices come from the purchase).
    Return {
        order_id: String,
        lines: Vec<Line>,
    },
    Explicit {
        value: f64,
    },
}

/// A reward signal for one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Idempotency key: the event id, or `explicit`.
    pub signal_id: String,
    pub decision_id: Uuid,
    /// Event time.
    pub ts: DateTime<Utc>,
    pub kind: SignalKind,
}

/// What applying a signal did.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Applied {
    /// Recorded; `ledger_seq` is set when the ledger learned from it.
    Recorded { ledger_seq: Option<u64> },
    /// This signal id was applied before: nothing changed.
    Duplicate,
    /// Not counted, with the reason (e.g. a click after the click window).
    Ignored { reason: String },
    /// A second explicit reward with a different value.
    Conflict { reason: String },
}

/// What a signal whose id was already applied gets: a duplicate, unless it is an explicit reward with
/// another value than the one recorded.
pub fn on_duplicate(outcome: &Outcome, signal: &Signal) -> Applied {
    match (&signal.kind, outcome.explicit) {
        (SignalKind::Explicit { value }, Some(v)) if (v - value).abs() > 1e-12 => {
            Applied::Conflict {
                reason: format!(
                    "decision {} already has the explicit reward {v}",
                    signal.decision_id
                ),
            }
        }
        _ => Applied::Duplicate,
    }
}

/// The reward an outcome is worth under `spec`.
pub fn reward_of(outcome: &Outcome, spec: &RewardSpec) -> f64 {
    if let Some(v) = outcome.explicit {
        return v;
    }
    match spec.objective {
        Objective::Click if outcome.clicked_at.is_some() => 1.0,
        Objective::Conversion if outcome.converted() => 1.0,
        Objective::Revenue if outcome.converted() => {
            (outcome.net_revenue() / spec.revenue_cap_eur).clamp(0.0, 1.0)
        }
        _ => spec.default_value,
    }
}

/// A ledger step to append: `(delta, first)`.
pub type Step = (f64, bool);

/// Applies `signal` to a decision's outcome; returns the new outcome and the ledger step, or why the
/// signal does not count. Duplicates are the store's job (by `signal_id`).
pub fn transition(
    d: &Decision,
    outcome: &Outcome,
    signal: &Signal,
) -> Result<(Outcome, Option<Step>), Applied> {
    let mut next = outcome.clone();
    match &signal.kind {
        SignalKind::Click => {
            let lag = (signal.ts - d.ts).num_seconds();
            if lag < -CLICK_SKEW_SECS || lag > d.reward.click_window_secs as i64 {
                return Err(Applied::Ignored {
                    reason: format!(
                        "click at {} is outside the click window of {} s after the decision at {}",
                        signal.ts, d.reward.click_window_secs, d.ts
                    ),
                });
            }
            if next.clicked_at.is_some() {
                return Err(Applied::Ignored {
                    reason: "the decision was already clicked".into(),
                });
            }
            next.clicked_at = Some(signal.ts);
        }
        SignalKind::Purchase(p) => {
            if signal.ts > d.attribution_end() {
                return Err(Applied::Ignored {
                    reason: format!(
                        "purchase at {} is after the attribution window ending {}",
                        signal.ts,
                        d.attribution_end()
                    ),
                });
            }
            if next.purchases.iter().any(|q| q.order_id == p.order_id) {
                return Err(Applied::Ignored {
                    reason: format!("order {} is already attributed", p.order_id),
                });
            }
            next.purchases.push(p.clone());
        }
        SignalKind::Return { order_id, lines } => {
            let Some(p) = next.purchases.iter().find(|p| &p.order_id == order_id) else {
                return Err(Applied::Ignored {
                    reason: format!("order {order_id} is not attributed to this decision"),
                });
            };
            let value: f64 = lines
                .iter()
                .map(|l| {
                    let bought = p.lines.iter().find(|b| {
                        b.product_id == l.product_id
                            && (l.variant_id.is_none() || b.variant_id == l.variant_id)
                    });
                    bought.map_or(0.0, |b| b.unit_price * l.quantity.min(b.quantity))
                })
                .sum();
            let total = next.returned.entry(order_id.clone()).or_insert(0.0);
            *total = (*total + value).min(p.revenue);
        }
        SignalKind::Explicit { value } => {
            if let Some(v) = next.explicit {
                return Err(if (v - value).abs() < 1e-12 {
                    Applied::Duplicate
                } else {
                    Applied::Conflict {
                        reason: format!(
                            "decision {} already has the explicit reward {v}",
                            d.decision_id
                        ),
                    }
                });
            }
            next.explicit = Some(*value);
        }
    }
    let r = reward_of(&next, &d.reward);
    let step = match next.learned {
        None if next.explicit.is_some() || r > d.reward.default_value => Some((r, true)),
        None => None,
        Some(old) if (r - old).abs() > 1e-12 => Some((r - old, false)),
        Some(_) => None,
    };
    if let Some((delta, first)) = step {
        next.learned = Some(if first {
            delta
        } else {
            next.learned.unwrap_or(0.0) + delta
        });
    }
    Ok((next, step))
}

/// A decision whose window has closed without being learned: learn what its outcome says now.
pub fn expire(d: &Decision, outcome: &Outcome) -> (Outcome, Step) {
    let r = reward_of(outcome, &d.reward);
    let mut next = outcome.clone();
    next.learned = Some(r);
    (next, (r, true))
}

/// Reporting exchange rates to EUR for purchase totals in other currencies (fixed, documented rates: the
/// reward is a learning signal, not accounting).
pub fn to_eur(amount: f64, currency: &str) -> f64 {
    let rate = match currency {
        "GBP" => 1.17,
        "CHF" => 1.06,
        "USD" => 0.92,
        "JPY" => 0.0061,
        _ => 1.0,
    };
    amount * rate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ContextInput;

    fn decision(objective: Objective) -> Decision {
        let ts: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        Decision {
            decision_id: Uuid::nil(),
            slot: "home_hero".into(),
            slot_version: 1,
            arm_id: "a".into(),
            ts,
            user_id: Some("u1".into()),
            anonymous_id: None,
            segment: "New".into(),
            propensity: 0.5,
            policy: "thompson@v1.0".into(),
            context: ContextInput::default().resolve(None, true, ts),
            features: vec![0.0; crate::context::DIM],
            reward: RewardSpec {
                objective,
                ..Default::default()
            },
            sticky: false,
            forced: false,
        }
    }

    fn sig(id: &str, at: &str, kind: SignalKind) -> Signal {
        Signal {
            signal_id: id.into(),
            decision_id: Uuid::nil(),
            ts: at.parse().unwrap(),
            kind,
        }
    }

    fn purchase(order: &str, price: f64) -> SignalKind {
        SignalKind::Purchase(Purchase {
            order_id: order.into(),
            revenue: 2.0 * price,
            lines: vec![
                Line {
                    product_id: "p1".into(),
                    variant_id: Some("p1-m".into()),
                    quantity: 1.0,
                    unit_price: price,
                },
                Line {
                    product_id: "p2".into(),
                    variant_id: None,
                    quantity: 1.0,
                    unit_price: price,
                },
            ],
        })
    }

    #[test]
    fn click_objective_learns_on_click_and_ignores_late_clicks() {
        let d = decision(Objective::Click);
        let o = Outcome::default();
        let late = sig("e1", "2026-12-01T10:31:00Z", SignalKind::Click);
        assert!(matches!(
            transition(&d, &o, &late),
            Err(Applied::Ignored { .. })
        ));
        let (o, step) = transition(
            &d,
            &o,
            &sig("e2", "2026-12-01T10:05:00Z", SignalKind::Click),
        )
        .unwrap();
        assert_eq!(step, Some((1.0, true)));
        assert_eq!(o.learned, Some(1.0));
    }

    #[test]
    fn a_click_after_the_default_was_learned_revises_it() {
        let d = decision(Objective::Click);
        let (o, step) = expire(&d, &Outcome::default());
        assert_eq!(step, (0.0, true));
        let (o, step) =
            transition(&d, &o, &sig("e", "2026-12-01T10:29:00Z", SignalKind::Click)).unwrap();
        assert_eq!(step, Some((1.0, false)));
        assert_eq!(o.learned, Some(1.0));
    }

    #[test]
    fn conversion_waits_for_the_purchase_and_returns_revise_it() {
        let d = decision(Objective::Conversion);
        let o = Outcome::default();
        let (o, step) =
            transition(&d, &o, &sig("c", "2026-12-01T10:01:00Z", SignalKind::Click)).unwrap();
        assert_eq!(step, None, "a click alone is not a conversion");
        let (o, step) = transition(
            &d,
            &o,
            &sig("p", "2026-12-02T10:00:00Z", purchase("o1", 100.0)),
        )
        .unwrap();
        assert_eq!(step, Some((1.0, true)));
        let ret = |id: &str, product: &str| {
            sig(
                id,
                "2026-12-10T10:00:00Z",
                SignalKind::Return {
                    order_id: "o1".into(),
                    lines: vec![Line {
                        product_id: product.into(),
                        variant_id: None,
                        quantity: 1.0,
                        unit_price: 0.0,
                    }],
                },
            )
        };
        let (o, step) = transition(&d, &o, &ret("r1", "p1")).unwrap();
        assert_eq!(step, None, "half returned: still a conversion");
        assert_eq!(o.net_revenue(), 100.0);
        let (o, step) = transition(&d, &o, &ret("r2", "p2")).unwrap();
        assert_eq!(
            step,
            Some((-1.0, false)),
            "fully returned: the reward is revised"
        );
        assert_eq!(o.learned, Some(0.0));
    }

    #[test]
    fn revenue_objective_scales_and_explicit_rewards_conflict() {
        let d = decision(Objective::Revenue);
        let (o, step) = transition(
            &d,
            &Outcome::default(),
            &sig("p", "2026-12-01T11:00:00Z", purchase("o1", 250.0)),
        )
        .unwrap();
        assert_eq!(step, Some((0.5, true)));
        let (o, step) = transition(
            &d,
            &o,
            &sig(
                "explicit",
                "2026-12-01T11:00:00Z",
                SignalKind::Explicit { value: 1.0 },
            ),
        )
        .unwrap();
        assert_eq!(step, Some((0.5, false)));
        let again = sig(
            "explicit",
            "2026-12-01T11:00:00Z",
            SignalKind::Explicit { value: 1.0 },
        );
        assert_eq!(transition(&d, &o, &again).unwrap_err(), Applied::Duplicate);
        let other = sig(
            "explicit",
            "2026-12-01T11:00:00Z",
            SignalKind::Explicit { value: 0.0 },
        );
        assert!(matches!(
            transition(&d, &o, &other),
            Err(Applied::Conflict { .. })
        ));
        let late = sig("p2", "2026-12-09T11:00:00Z", purchase("o2", 1.0));
        assert!(matches!(
            transition(&d, &o, &late),
            Err(Applied::Ignored { .. })
        ));
    }
}
