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
        let mut checkouts = lock(&self.running.checkouts);
        // A resend may have claimed the freed key and registered already:
        // its entry is not ours to remove.
        if checkouts.get(&self.key).is_some_and(|watch| watch.same_channel(&self._ended.subscribe())) {
            checkouts.remove(&self.key);
        }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn the_first_run_ending_leaves_a_later_claim_of_its_key_registered() {
        let running = Running::default();
        let user = Uuid::new_v4();
        let first = running.start(user, "key-1");
        // The first freed its key and a resend claimed it before the first's
        // run was dropped.
        let second = running.start(user, "key-1");
        drop(first);
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(running.wait_for(user, "key-1", soon).await, Waited::StillRunning);
        drop(second);
        assert_eq!(running.wait_for(user, "key-1", Instant::now() + Duration::from_secs(5)).await, Waited::NotHere);
    }

    #[tokio::test]
    async fn a_wait_ends_when_its_checkout_does() {
        let running = std::sync::Arc::new(Running::default());
        let user = Uuid::new_v4();
        let run = running.start(user, "key-2");
        let waiter = {
            let running = running.clone();
            tokio::spawn(async move { running.wait_for(user, "key-2", Instant::now() + Duration::from_secs(30)).await })
        };
        while running.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        drop(run);
        assert_eq!(waiter.await.unwrap(), Waited::Ended);
    }
}
