//! The SDI transmission state machine.
//!
//! ```text
//! not_sent ──sent──▶ sent ──delivered (RC)──────▶ delivered        (final)
//!                      ├──rejected (NS, reason)──▶ rejected ──sent──▶ sent   (corrected, new file name)
//!                      └──not_deliverable (MC)───▶ not_deliverable  (final: the invoice is in the
//!                                                                    buyer's cassetto fiscale)
//! ```
//!
//! SDI's receipts: *ricevuta di consegna* (RC), *notifica di scarto* (NS, with error codes and text),
//! *notifica di mancata consegna* (MC). Any other transition is a [`Error::Conflict`]. The receipt's time is
//! the caller's `now` (when we processed it).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::model::SdiState;
use crate::{Error, Result};

/// Longest rejection / non-delivery reason kept (characters).
const MAX_REASON: usize = 4000;

/// A receipt about an invoice's transmission: our own `sent`, or one of SDI's notifications.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SdiReceipt {
    pub kind: SdiReceiptKind,
    /// Required for `rejected`: SDI's error codes and text (e.g. `00404: fattura duplicata`); optional for
    /// `not_deliverable`.
    #[serde(default)]
    pub reason: Option<String>,
    /// SDI's numeric id of the file (`IdentificativoSdI`), when the receipt carries it. Checked, not stored
    /// (the model has no field for it).
    #[serde(default)]
    pub identificativo_sdi: Option<String>,
}

/// What a receipt says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SdiReceiptKind {
    /// We transmitted the file to SDI.
    Sent,
    /// Ricevuta di consegna (RC): delivered to the buyer.
    Delivered,
    /// Notifica di scarto (NS): SDI refused the file.
    Rejected,
    /// Notifica di mancata consegna (MC): accepted but not deliverable; in the buyer's tax drawer.
    NotDeliverable,
}

impl SdiReceiptKind {
    /// The snake_case name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            SdiReceiptKind::Sent => "sent",
            SdiReceiptKind::Delivered => "delivered",
            SdiReceiptKind::Rejected => "rejected",
            SdiReceiptKind::NotDeliverable => "not_deliverable",
        }
    }

    /// The kind of an SDI notification by its file-name code: `RC`, `NS`, `MC`.
    pub fn from_notification(code: &str) -> Option<SdiReceiptKind> {
        match code {
            "RC" => Some(SdiReceiptKind::Delivered),
            "NS" => Some(SdiReceiptKind::Rejected),
            "MC" => Some(SdiReceiptKind::NotDeliverable),
            _ => None,
        }
    }
}

fn state_name(s: &SdiState) -> &'static str {
    match s {
        SdiState::NotSent => "not_sent",
        SdiState::Sent { .. } => "sent",
        SdiState::Delivered { .. } => "delivered",
        SdiState::Rejected { .. } => "rejected",
        SdiState::NotDeliverable { .. } => "not_deliverable",
    }
}

/// The state after `receipt`, or [`Error::Conflict`] when the receipt is not allowed in `current`
/// (`invoice is delivered; a rejected receipt is not allowed`), or [`Error::BadInput`] on field `reason`
/// when a rejection has no reason.
pub fn next_sdi_state(
    current: &SdiState,
    receipt: &SdiReceipt,
    now: DateTime<Utc>,
) -> Result<SdiState> {
    use SdiReceiptKind as K;
    if let Some(id) = &receipt.identificativo_sdi {
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::bad(
                "identificativo_sdi",
                "SDI's file id is 1–20 digits",
            ));
        }
    }
    let reason = receipt
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON) {
        return Err(Error::bad(
            "reason",
            format!("at most {MAX_REASON} characters"),
        ));
    }
    match (current, receipt.kind) {
        (SdiState::NotSent | SdiState::Rejected { .. }, K::Sent) => Ok(SdiState::Sent { at: now }),
        (SdiState::Sent { .. }, K::Delivered) => Ok(SdiState::Delivered { at: now }),
        (SdiState::Sent { .. }, K::Rejected) => match reason {
            Some(r) => Ok(SdiState::Rejected {
                at: now,
                reason: r.to_string(),
            }),
            None => Err(Error::bad(
                "reason",
                "required for a rejection: SDI's error codes and text",
            )),
        },
        (SdiState::Sent { .. }, K::NotDeliverable) => Ok(SdiState::NotDeliverable {
            at: now,
            reason: reason
                .unwrap_or("SDI could not deliver the invoice (mancata consegna)")
                .to_string(),
        }),
        (state, kind) => Err(Error::Conflict(format!(
            "invoice is {}; a {} receipt is not allowed",
            state_name(state),
            kind.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn receipt(kind: SdiReceiptKind, reason: Option<&str>) -> SdiReceipt {
        SdiReceipt {
            kind,
            reason: reason.map(str::to_string),
            identificativo_sdi: None,
        }
    }

    #[test]
    fn happy_paths() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        let t1 = t0 + chrono::Duration::minutes(5);
        let sent =
            next_sdi_state(&SdiState::NotSent, &receipt(SdiReceiptKind::Sent, None), t0).unwrap();
        assert_eq!(sent, SdiState::Sent { at: t0 });
        let delivered =
            next_sdi_state(&sent, &receipt(SdiReceiptKind::Delivered, None), t1).unwrap();
        assert_eq!(delivered, SdiState::Delivered { at: t1 });
        let rejected = next_sdi_state(
            &sent,
            &receipt(SdiReceiptKind::Rejected, Some(" 00404: fattura duplicata ")),
            t1,
        )
        .unwrap();
        assert_eq!(
            rejected,
            SdiState::Rejected {
                at: t1,
                reason: "00404: fattura duplicata".into()
            }
        );
        // Corrected and re-submitted.
        let again = next_sdi_state(&rejected, &receipt(SdiReceiptKind::Sent, None), t1).unwrap();
        assert_eq!(again, SdiState::Sent { at: t1 });
        let md = next_sdi_state(&sent, &receipt(SdiReceiptKind::NotDeliverable, None), t1).unwrap();
        assert!(
            matches!(md, SdiState::NotDeliverable { at, ref reason } if at == t1 && !reason.is_empty())
        );
    }

    #[test]
    fn rejection_needs_a_reason() {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        let sent = SdiState::Sent { at: t };
        for reason in [None, Some(""), Some("   ")] {
            match next_sdi_state(&sent, &receipt(SdiReceiptKind::Rejected, reason), t) {
                Err(Error::BadInput { field, .. }) => assert_eq!(field, "reason"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn invalid_transitions_conflict() {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        let states = [
            SdiState::NotSent,
            SdiState::Sent { at: t },
            SdiState::Delivered { at: t },
            SdiState::Rejected {
                at: t,
                reason: "x".into(),
            },
            SdiState::NotDeliverable {
                at: t,
                reason: "x".into(),
            },
        ];
        let kinds = [
            SdiReceiptKind::Sent,
            SdiReceiptKind::Delivered,
            SdiReceiptKind::Rejected,
            SdiReceiptKind::NotDeliverable,
        ];
        let mut allowed = 0;
        for s in &states {
            for k in kinds {
                match next_sdi_state(s, &receipt(k, Some("r")), t) {
                    Ok(_) => allowed += 1,
                    Err(Error::Conflict(m)) => {
                        assert_eq!(
                            m,
                            format!(
                                "invoice is {}; a {} receipt is not allowed",
                                state_name(s),
                                k.as_str()
                            )
                        )
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        // not_sent→sent, sent→delivered|rejected|not_deliverable, rejected→sent.
        assert_eq!(allowed, 5);
        match next_sdi_state(
            &SdiState::Delivered { at: t },
            &receipt(SdiReceiptKind::Rejected, None),
            t,
        ) {
            Err(Error::Conflict(m)) => {
                assert_eq!(m, "invoice is delivered; a rejected receipt is not allowed")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn receipts_deserialize_strictly() {
        let r: SdiReceipt =
            serde_json::from_str(r#"{"kind":"not_deliverable","identificativo_sdi":"123456"}"#)
                .unwrap();
        assert_eq!(r.kind, SdiReceiptKind::NotDeliverable);
        assert!(serde_json::from_str::<SdiReceipt>(r#"{"kind":"sent","extra":1}"#).is_err());
        assert!(serde_json::from_str::<SdiReceipt>(r#"{"kind":"consegnata"}"#).is_err());
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        let mut bad_id = receipt(SdiReceiptKind::Sent, None);
        bad_id.identificativo_sdi = Some("12ab".into());
        assert!(matches!(
            next_sdi_state(&SdiState::NotSent, &bad_id, t),
            Err(Error::BadInput { .. })
        ));
        assert_eq!(
            SdiReceiptKind::from_notification("NS"),
            Some(SdiReceiptKind::Rejected)
        );
        assert_eq!(SdiReceiptKind::from_notification("XX"), None);
    }
}
