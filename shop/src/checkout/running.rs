//! Checkouts this process is running, by customer and Idempotency-Key. A
//! retry of one (a client resending after a 504, a second tab) waits here
//! for the first to end, parked: it neither holds a gateway permit nor a
//! pool connection. Asking PostgreSQL would hold one: the claim's row is
//! locked by the first's order transaction, so the claim's INSERT waits on
//! it, and the answer's read would repeat every 50 ms. In a flash sale's rush thousands of resent
//! checkouts did both while their first requests queued for the sale's
//! rows, emptied the pool, and the failures voided and authorized again.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;
use uuid::Uuid;

use crate::parking::Gauge;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waited {
    /// No checkout with the key runs in this process (none, or another has it).
    NotHere,
    Ended,
    StillRunning,
}

#[derive(Default)]
pub struct Running {
    checkouts: Mutex<HashMap<(Uuid, String), watch::Receiver<()>>>,
    waiting: Gauge,
}

/// One running checkout; dropped when it has written its outcome (or
/// freed its key), which ends every wait on it.
pub(super) struct Run<'a> {
    running: &'a Running,
    key: (Uuid, String),
    _ended: watch::Sender<()>,
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        lock(&self.running.checkouts).remove(&self.key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Running {
    /// Registers a checkout that holds the claim on `key`.
    pub(super) fn start(&self, user: Uuid, key: &str) -> Run<'_> {
        let (ended, watch) = watch::channel(());
        lock(&self.checkouts).insert((user, key.to_owned()), watch);
        Run { running: self, key: (user, key.to_owned()), _ended: ended }
    }

    /// Waits until this process's checkout with `key` ends, or until
    /// `deadline`.
    pub(super) async fn wait_for(&self, user: Uuid, key: &str, deadline: std::time::Instant) -> Waited {
        let Some(mut ended) = lock(&self.checkouts).get(&(user, key.to_owned())).cloned() else { return Waited::NotHere };
        // Waiting, not working: the request's place at the gateway goes to
        // someone who works.
        crate::parking::park();
        let _waiting = self.waiting.enter();
        // `changed` fails once the sender is gone: the checkout ended.
        match tokio::time::timeout_at(deadline.into(), ended.changed()).await {
            Ok(_) => Waited::Ended,
            Err(_) => Waited::StillRunning,
        }
    }

    /// Retries of this process waiting for their first request now.
    pub fn waiting(&self) -> usize {
        self.waiting.get()
    }
}
