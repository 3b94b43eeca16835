//! Idempotency replay for providers whose server may not honour `Idempotency-Key` (localstripe ignores it):
//! the answer to a POST is kept per key for 24 h (Stripe's own retention), a retry with the same key and
//! the same parameters gets it back without a request, and the same key with other parameters is a
//! [`Error::Conflict`] (Stripe's `idempotency_error`). In memory, per process, at most 10 000 keys (the
//! oldest go first); the provider's own idempotency still covers retries across processes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::http::Reply;
use crate::{Error, Result};

const REPLAY_TTL: Duration = Duration::from_secs(24 * 3600);
const REPLAY_MAX: usize = 10_000;

/// What the provider answered per idempotency key, for [`REPLAY_TTL`] (bounded to [`REPLAY_MAX`] keys).
#[derive(Default)]
pub(crate) struct Replay {
    entries: Mutex<HashMap<String, Replayed>>,
}

struct Replayed {
    fingerprint: String,
    at: Instant,
    reply: Reply,
}

impl Replay {
    pub(crate) fn lookup(&self, key: &str, fingerprint: &str) -> Result<Option<Reply>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some(e) if e.at.elapsed() < REPLAY_TTL => {
                if e.fingerprint == fingerprint {
                    Ok(Some(e.reply.clone()))
                } else {
                    Err(Error::Conflict(format!(
                        "idempotency key `{key}` was already used with other parameters"
                    )))
                }
            }
            _ => Ok(None),
        }
    }

    pub(crate) fn store(&self, key: &str, fingerprint: String, reply: &Reply) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= REPLAY_MAX {
            entries.retain(|_, e| e.at.elapsed() < REPLAY_TTL);
            if entries.len() >= REPLAY_MAX {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.at)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(
            key.to_string(),
            Replayed {
                fingerprint,
                at: Instant::now(),
                reply: reply.clone(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replay_returns_the_first_answer_and_refuses_other_parameters() {
        let replay = Replay::default();
        let reply = Reply {
            status: 200,
            headers: reqwest::header::HeaderMap::new(),
            body: json!({"id": "pi_1"}),
        };
        assert!(replay.lookup("k", "a").unwrap().is_none());
        replay.store("k", "a".into(), &reply);
        assert_eq!(
            replay.lookup("k", "a").unwrap().unwrap().body,
            json!({"id": "pi_1"})
        );
        assert!(matches!(replay.lookup("k", "b"), Err(Error::Conflict(_))));
        assert!(replay.lookup("other", "b").unwrap().is_none());
    }
}
