//! Single-flight for heavy endpoints (segment training, OPE, experiment results, quarantine replay).
//!
//! A [`SingleFlight`] runs at most one job at a time. A request identical to the running one (same key: the
//! endpoint's normalized parameters) waits for it and gets the same answer; any other request meanwhile gets
//! 409 naming what is running, so a burst of clicks or retries costs one computation and a heavy job cannot
//! be started N times in parallel. The job runs on its own task: a caller that disconnects or hits the
//! request deadline does not cancel it half-way, and the next identical request joins it.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use super::ApiError;

type Outcome<T> = Option<Result<T, ApiError>>;

/// One heavy job at a time; see the module docs.
#[derive(Clone)]
pub struct SingleFlight<T> {
    what: &'static str,
    running: Arc<Mutex<Option<Flight<T>>>>,
}

struct Flight<T> {
    key: String,
    started: Instant,
    done: watch::Receiver<Outcome<T>>,
}

/// Clears the running slot when the job's task ends, however it ends (a panicking job drops it too).
struct Clear<T> {
    running: Arc<Mutex<Option<Flight<T>>>>,
}

impl<T> Drop for Clear<T> {
    fn drop(&mut self) {
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    /// `what` names the job in the 409 (`"segment training"`).
    pub fn new(what: &'static str) -> SingleFlight<T> {
        SingleFlight {
            what,
            running: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs `job` under `key`, joins the running job when it has the same key, or refuses with 409.
    pub async fn run<F>(&self, key: String, job: F) -> Result<T, ApiError>
    where
        F: Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let mut done = self.join_or_start(key, job)?;
        let outcome = match done.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        };
        outcome.unwrap_or_else(|| {
            Err(ApiError::Internal(format!(
                "{}: the job ended without an answer (it panicked)",
                self.what
            )))
        })
    }

    fn join_or_start<F>(&self, key: String, job: F) -> Result<watch::Receiver<Outcome<T>>, ApiError>
    where
        F: Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = running.as_ref() {
            if f.key == key {
                return Ok(f.done.clone());
            }
            return Err(ApiError::Conflict {
                field: None,
                reason: format!(
                    "a {} ({}) has been running for {} s; retry when it finishes",
                    self.what,
                    f.key,
                    f.started.elapsed().as_secs()
                ),
            });
        }
        let (tx, rx) = watch::channel(None);
        *running = Some(Flight {
            key,
            started: Instant::now(),
            done: rx.clone(),
        });
        let clear = Clear {
            running: self.running.clone(),
        };
        tokio::spawn(async move {
            let outcome = job.await;
            drop(clear);
            let _ = tx.send(Some(outcome));
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;

    use super::*;

    #[tokio::test]
    async fn identical_requests_share_one_run_and_others_wait_their_turn() {
        let flight: SingleFlight<usize> = SingleFlight::new("report");
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Notify::new());
        let job = |runs: Arc<AtomicUsize>, gate: Arc<Notify>| async move {
            gate.notified().await;
            Ok(runs.fetch_add(1, Ordering::SeqCst) + 1)
        };
        let first = tokio::spawn({
            let f = flight.clone();
            let j = job(runs.clone(), gate.clone());
            async move { f.run("days=7".into(), j).await }
        });
        tokio::task::yield_now().await;
        let second = tokio::spawn({
            let f = flight.clone();
            let j = job(runs.clone(), gate.clone());
            async move { f.run("days=7".into(), j).await }
        });
        tokio::task::yield_now().await;
        let other = flight
            .run("days=30".into(), job(runs.clone(), gate.clone()))
            .await;
        match other {
            Err(ApiError::Conflict { reason, .. }) => {
                assert!(reason.contains("report (days=7)"), "{reason}")
            }
            o => panic!("a different request while one runs: {o:?}"),
        }
        gate.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 1);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "the identical request ran once"
        );
        // Once it is done the next request runs afresh.
        gate.notify_one();
        let again = flight.run("days=30".into(), job(runs.clone(), gate)).await;
        assert_eq!(again.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_failed_or_panicking_job_frees_the_slot() {
        let flight: SingleFlight<u8> = SingleFlight::new("training");
        let e = flight
            .run("a".into(), async { Err(ApiError::bad("k", "too big")) })
            .await;
        assert!(matches!(e, Err(ApiError::BadInput { .. })));
        let p = flight.run("b".into(), async { panic!("boom") }).await;
        assert!(matches!(p, Err(ApiError::Internal(_))), "{p:?}");
        assert_eq!(flight.run("c".into(), async { Ok(3) }).await.unwrap(), 3);
    }
}
