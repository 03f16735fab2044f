//! What the gateway holds for a request while it works (an admission
//! permit), given back when the request stops working to wait its turn.
//!
//! The gateway bounds the requests worked on at once. A checkout waiting for
//! its turn in a sale's confirm queue (most of a minute in a flash sale's
//! rush) is not working, yet it kept its permit: a thousand of them filled
//! the gateway and the shop refused everybody else, buyers included. Shop
//! code that waits calls [`park`]; the gateway lends its hold with
//! [`Lent::run`]. The slot travels with the request's work as a
//! task-local, also into the task a checkout runs as ([`carry`]), the way a
//! tracing span does, so no service signature has to pass it along.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

tokio::task_local! {
    static SLOT: Slot;
}

/// The gateway's hold for one request, shared with the work it starts.
#[derive(Clone)]
pub struct Slot(Arc<Mutex<Option<Box<dyn Send>>>>);

/// A hold lent to one request's work. Dropping it gives the hold back, also
/// when the request is dropped unanswered (the gateway's deadline, a client
/// that hung up) while work it started, sharing the slot, goes on.
pub struct Lent(Slot);

impl Lent {
    pub fn new(held: impl Send + 'static) -> Self {
        Lent(Slot(Arc::new(Mutex::new(Some(Box::new(held))))))
    }

    /// Runs `work` as the request the hold belongs to.
    pub async fn run<F: Future>(&self, work: F) -> F::Output {
        SLOT.scope(self.0.clone(), work).await
    }

    pub fn slot(&self) -> &Slot {
        &self.0
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Slot {
    /// Gives back what the slot holds; later calls do nothing.
    pub fn release(&self) {
        let held = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        drop(held);
    }

    pub fn holds(&self) -> bool {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_some()
    }
}

/// The current request stops working to wait: its gateway hold goes back.
/// Outside a request (a worker, a test calling the service) it does nothing.
pub fn park() {
    let _ = SLOT.try_with(Slot::release);
}

/// `work`, still counted as the current request's, for a task it spawns.
pub fn carry<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let slot = SLOT.try_with(Slot::clone).ok();
    async move {
        match slot {
            Some(slot) => SLOT.scope(slot, work).await,
            None => work.await,
        }
    }
}

/// How many are waiting somewhere now (a figure for tests and operators).
#[derive(Debug, Default)]
pub struct Gauge(AtomicUsize);

impl Gauge {
    /// Counts one more until the guard is dropped.
    pub fn enter(&self) -> Entered<'_> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Entered(&self.0)
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct Entered<'a>(&'a AtomicUsize);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Held(Arc<AtomicUsize>);

    impl Drop for Held {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn a_spawned_task_of_the_request_parks_the_requests_hold_once() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let lent = Lent::new(Held(dropped.clone()));
        lent.run(async {
            let task = tokio::spawn(carry(async {
                park();
                park();
            }));
            task.await.unwrap();
        })
        .await;
        assert!(!lent.slot().holds());
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        drop(lent);
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        // Outside any request, parking is nothing.
        park();
    }

    #[tokio::test]
    async fn a_task_spawned_without_carry_parks_nothing() {
        let lent = Lent::new(());
        lent.run(async { tokio::spawn(async { park() }).await.unwrap() }).await;
        assert!(lent.slot().holds());
    }

    #[tokio::test]
    async fn a_request_dropped_unanswered_gives_its_hold_back_though_its_work_goes_on() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let lent = Lent::new(Held(dropped.clone()));
        let (started, work_started) = tokio::sync::oneshot::channel();
        let request = async {
            // Work that outlives the request, sharing its slot.
            tokio::spawn(carry(std::future::pending::<()>()));
            started.send(()).unwrap();
            std::future::pending::<()>().await
        };
        let unanswered = tokio::time::timeout(std::time::Duration::from_millis(20), async {
            let lent = lent;
            lent.run(request).await
        });
        assert!(unanswered.await.is_err());
        work_started.await.unwrap();
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
    }
}
