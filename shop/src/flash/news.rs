//! News of a customer's state in a sale, pushed to the requests waiting on
//! it (`GET …/me?wait=` and the storefront's flash page), so a shopper in
//! line costs one parked request instead of a read a second.
//!
//! Whichever process changes a customer's state (promotes them from the
//! line, ends their hold) publishes `"<sale> <user>"` on the prefix's
//! `flash:news` channel, and `"<sale> *"` when the news is for everybody
//! in the sale (nothing left to wait for, the sale closed). Every process
//! keeps one subscriber connection, started with its first waiter, and
//! wakes the waiters the message names. Those read their state again from
//! the scripts: a message is a hint, never the state itself.
//!
//! Pub/sub delivers at most once: a message published while a subscriber
//! reconnects is lost. So the subscriber wakes every waiter of the process
//! each time it has (re)subscribed, and every wait is bounded by its own
//! timeout and the customer's deadline in line. A lost message costs a
//! shopper latency, never a unit or a wrong answer.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::kv::Kv;
use crate::parking::Gauge;

/// Pause before subscribing again after the connection dropped or failed.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// This process's waiters, by sale and customer.
#[derive(Default)]
pub(super) struct News {
    sales: Mutex<HashMap<Uuid, Arc<SaleWaiters>>>,
    listening: std::sync::OnceLock<()>,
    parked: Arc<Gauge>,
    stopping: AtomicBool,
}

#[derive(Default)]
struct SaleWaiters {
    everyone: Notify,
    // Weak: an entry lives as long as somebody waits on it.
    users: Mutex<HashMap<Uuid, Weak<Notify>>>,
}

/// A request's registration as a waiter on one customer's state in one
/// sale: wakes on news for the customer or for the whole sale.
pub(super) struct Waiter {
    sale: Arc<SaleWaiters>,
    user: Uuid,
    mine: Arc<Notify>,
    parked: Arc<Gauge>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl News {
    /// Registers a waiter; the first one starts this process's subscriber.
    pub(super) fn wait_on(self: &Arc<Self>, kv: &Kv, sale: Uuid, user: Uuid) -> Waiter {
        self.listening.get_or_init(|| {
            let (news, kv) = (Arc::downgrade(self), kv.clone());
            tokio::spawn(listen(news, kv));
        });
        let waiters = lock(&self.sales).entry(sale).or_default().clone();
        let mine = {
            let mut users = lock(&waiters.users);
            match users.get(&user).and_then(Weak::upgrade) {
                Some(existing) => existing,
                None => {
                    let fresh = Arc::new(Notify::new());
                    users.insert(user, Arc::downgrade(&fresh));
                    fresh
                }
            }
        };
        Waiter { sale: waiters, user, mine, parked: self.parked.clone() }
    }

    /// Requests of this process waiting for news now (past their read of
    /// the state, in [`Armed::fired`]).
    pub(super) fn parked(&self) -> usize {
        self.parked.get()
    }

    fn wake(&self, sale: Uuid, user: Option<Uuid>) {
        let Some(waiters) = lock(&self.sales).get(&sale).cloned() else { return };
        match user {
            None => waiters.everyone.notify_waiters(),
            Some(user) => {
                if let Some(mine) = lock(&waiters.users).get(&user).and_then(Weak::upgrade) {
                    mine.notify_waiters();
                }
            }
        }
    }

    /// The process is stopping: every wait ends now with the state as it
    /// is, so parked requests do not hold the shutdown for their wait.
    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.wake_all();
    }

    pub(super) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    fn wake_all(&self) {
        for waiters in lock(&self.sales).values() {
            waiters.everyone.notify_waiters();
        }
    }
}

impl Waiter {
    /// Starts listening for the next news for this customer or sale. Arm
    /// before reading the state, then wait on what this returns: news that
    /// comes between the read and the wait is not missed.
    pub(super) fn arm(&self) -> Armed<'_> {
        let mut mine = Box::pin(self.mine.notified());
        let mut everyone = Box::pin(self.sale.everyone.notified());
        mine.as_mut().enable();
        everyone.as_mut().enable();
        Armed { mine, everyone, parked: &self.parked }
    }
}

pub(super) struct Armed<'a> {
    mine: Pin<Box<Notified<'a>>>,
    everyone: Pin<Box<Notified<'a>>>,
    parked: &'a Gauge,
}

impl Armed<'_> {
    /// Resolves on the first news since [`Waiter::arm`].
    pub(super) async fn fired(self) {
        let Armed { mine, everyone, parked } = self;
        let _parked = parked.enter();
        tokio::select! {
            _ = mine => {}
            _ = everyone => {}
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut users = lock(&self.sale.users);
        // Ours is the last strong reference: nobody else waits on this customer.
        if Arc::strong_count(&self.mine) == 1 {
            users.remove(&self.user);
        }
    }
}

fn channel(kv: &Kv) -> String {
    kv.key("flash:news")
}

/// Publishes news for these customers of `sale` (`None`: everybody in it).
/// A failure is only logged: the waiters' timeouts cover it.
pub(super) async fn tell(kv: &Kv, sale: Uuid, users: Option<&[Uuid]>) {
    let channel = channel(kv);
    let mut pipe = redis::pipe();
    match users {
        None => {
            pipe.publish(&channel, format!("{sale} *")).ignore();
        }
        Some([]) => return,
        Some(users) => {
            for user in users {
                pipe.publish(&channel, format!("{sale} {user}")).ignore();
            }
        }
    }
    if let Err(err) = pipe.query_async::<()>(&mut kv.conn()).await {
        tracing::debug!(%sale, error = %err, "flash news not published; waiters find out at their timeout");
    }
}

/// The subscriber: one connection per process, for as long as the process
/// (its `News`) lives.
async fn listen(news: Weak<News>, kv: Kv) {
    let channel = channel(&kv);
    loop {
        match kv.pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    let Some(alive) = news.upgrade() else { return };
                    // Whatever was published before this subscription is lost to it.
                    alive.wake_all();
                    drop(alive);
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        let Some(alive) = news.upgrade() else { return };
                        let Ok(payload) = message.get_payload::<String>() else { continue };
                        if let Some((sale, who)) = parse(&payload) {
                            alive.wake(sale, who);
                        }
                    }
                    tracing::info!("flash news subscription dropped; subscribing again");
                }
                Err(err) => tracing::warn!(error = %err, "flash news: could not subscribe"),
            },
            Err(err) => tracing::debug!(error = %err, "flash news: no subscriber connection"),
        }
        if news.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(RESUBSCRIBE_AFTER).await;
    }
}

/// `"<sale> <user>"` or `"<sale> *"`.
fn parse(payload: &str) -> Option<(Uuid, Option<Uuid>)> {
    let (sale, who) = payload.split_once(' ')?;
    let sale = Uuid::try_parse(sale).ok()?;
    match who {
        "*" => Some((sale, None)),
        user => Some((sale, Some(Uuid::try_parse(user).ok()?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_a_customer_or_everybody() {
        let (sale, user) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(parse(&format!("{sale} {user}")), Some((sale, Some(user))));
        assert_eq!(parse(&format!("{sale} *")), Some((sale, None)));
        assert_eq!(parse("nonsense"), None);
        assert_eq!(parse(&format!("{sale} not-a-user")), None);
    }
}
