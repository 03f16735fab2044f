//! The commit lane: flash sale orders' transactions run on a thread of
//! their own, with PostgreSQL connections of their own.
//!
//! In a flash sale the buys arrive by the thousand a second and fill the
//! main runtime's queue of ready tasks. A task that waits on PostgreSQL
//! goes to the back of that queue each time its answer comes, so every
//! round trip of an order transaction cost a whole turn of the queue: the
//! 50,000-shopper benchmark confirmed 26 orders a second while the buys
//! lasted, then 400 a second once they stopped (BENCHMARKS.md). The lane's
//! runtime has one thread and only order transactions on it; its
//! connections (PostgreSQL, and Redis for the holds' scripts) are
//! registered with that runtime, so an answer wakes the transaction at
//! once, whatever the shop's queue and whatever queues on the shop's one
//! shared Redis socket.
//! The operating system shares the cores between that thread and the
//! runtime's workers; the buys keep the rest.
//!
//! Only the transaction moves: the checkout takes its turn in the sale's
//! confirm queue in its own task first (parked, as `shop::parking` needs),
//! and waits here for the outcome.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::kv::Kv;

type Job = Box<dyn FnOnce(Conns) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The connections a job on the lane uses.
pub struct Conns {
    pub db: PgPool,
    /// The lane's own Redis connection; the shop's while that cannot be
    /// opened (Redis down: the shop's answers as it would).
    pub kv: Kv,
}

/// How long the lane waits before trying again to open its Redis connection.
const KV_RETRY: Duration = Duration::from_secs(5);

/// Started on first use, so a process that never sells in a flash sale
/// runs no thread and opens no connection for it. The thread ends when the
/// shop is dropped (its sender with it), once the work it has is done.
#[derive(Default)]
pub struct Lane {
    jobs: OnceLock<Option<mpsc::UnboundedSender<Job>>>,
}

/// The work could not run on the lane.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// It never started (the lane's thread could not start, or ended).
    NotRun,
    /// It started and its end was not seen (it panicked): it may have done
    /// anything.
    Lost,
}

impl Lane {
    /// Runs `work` on the lane, with the lane's connections (opened like
    /// `db`'s and `kv`'s; at most `connections` to PostgreSQL), and returns
    /// its output here.
    pub async fn run<T, F, Fut>(&self, db: &PgPool, kv: &Kv, connections: u32, work: F) -> Result<T, Refused>
    where
        F: FnOnce(Conns) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let Some(jobs) = self.jobs.get_or_init(|| start(db, kv.clone(), connections)) else {
            return Err(Refused::NotRun);
        };
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conns| {
            Box::pin(async move {
                let _ = answer.send(work(conns).await);
            })
        });
        jobs.send(job).map_err(|_| Refused::NotRun)?;
        answered.await.map_err(|_| Refused::Lost)
    }
}

fn start(db: &PgPool, shared_kv: Kv, connections: u32) -> Option<mpsc::UnboundedSender<Job>> {
    let options = (*db.connect_options()).clone();
    let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
    let thread = std::thread::Builder::new().name("mercato-commit".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::error!(error = %err, "the commit lane's runtime did not start; flash orders commit in the shared runtime");
                return;
            }
        };
        runtime.block_on(async move {
            // Connections open here, inside the lane's runtime, so their
            // answers wake the lane and not the main runtime. A commit
            // waits for a connection rather than fail: its card is
            // authorized already, and the confirm queues bound how many come.
            let pool = PgPoolOptions::new()
                .max_connections(connections.max(1))
                .acquire_timeout(Duration::from_secs(30))
                .connect_lazy_with(options);
            let running = tokio_util::task::TaskTracker::new();
            let own_kv: std::sync::Arc<std::sync::Mutex<Option<Kv>>> = Default::default();
            let mut kv_tried: Option<tokio::time::Instant> = None;
            while let Some(job) = queue.recv().await {
                let kv = own_kv.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let kv = match kv {
                    Some(kv) => kv,
                    None => {
                        // Opened in a task of its own: a Redis that is down
                        // must not hold up the jobs behind this one.
                        if kv_tried.is_none_or(|at| at.elapsed() >= KV_RETRY) {
                            kv_tried = Some(tokio::time::Instant::now());
                            let (slot, shared) = (own_kv.clone(), shared_kv.clone());
                            running.spawn(async move {
                                match shared.another().await {
                                    Ok(kv) => *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(kv),
                                    Err(err) => tracing::warn!(error = %err, "the commit lane's Redis connection did not open; it uses the shared one"),
                                }
                            });
                        }
                        shared_kv.clone()
                    }
                };
                running.spawn(job(Conns { db: pool.clone(), kv }));
            }
            running.close();
            running.wait().await;
            pool.close().await;
        });
    });
    match thread {
        Ok(_) => Some(jobs),
        Err(err) => {
            tracing::error!(error = %err, "the commit lane's thread did not start; flash orders commit in the shared runtime");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> PgPool {
        // Never connected: these tests use no connection.
        PgPoolOptions::new().connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap()
    }

    async fn kv() -> Kv {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        Kv::connect(&url, "test:lane:").await.expect("Redis at REDIS_URL")
    }

    #[tokio::test]
    async fn work_runs_on_the_lane_thread_and_its_answer_comes_back() {
        let (lane, kv) = (Lane::default(), kv().await);
        let here = std::thread::current().id();
        let (thread, name) = lane
            .run(&pool(), &kv, 2, |_| async { (std::thread::current().id(), std::thread::current().name().map(str::to_owned)) })
            .await
            .unwrap();
        assert_ne!(thread, here);
        assert_eq!(name.as_deref(), Some("mercato-commit"));
        // One thread serves every job.
        let again = lane.run(&pool(), &kv, 2, |_| async { std::thread::current().id() }).await.unwrap();
        assert_eq!(again, thread);
    }

    #[tokio::test]
    async fn the_lane_talks_to_redis_on_a_connection_of_its_own() {
        let (lane, kv) = (Lane::default(), kv().await);
        let client_id = |conns: Conns| async move {
            let id: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut conns.kv.conn()).await.unwrap();
            id
        };
        let shared: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut kv.conn()).await.unwrap();
        // The first jobs may run on the shared connection while the lane's
        // own opens; it is used once open.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut own = None;
        while own.is_none() && tokio::time::Instant::now() < deadline {
            let id = lane.run(&pool(), &kv, 2, client_id).await.unwrap();
            if id != shared {
                own = Some(id);
            } else {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let own = own.expect("the lane opened a Redis connection of its own");
        assert_eq!(lane.run(&pool(), &kv, 2, client_id).await.unwrap(), own, "and keeps it");
    }

    #[tokio::test]
    async fn work_that_panics_is_reported_lost_and_the_lane_goes_on() {
        let (lane, kv) = (Lane::default(), kv().await);
        let lost = lane.run(&pool(), &kv, 2, |_| async { panic!("in the lane") }).await;
        assert_eq!(lost.map(|_: ()| ()), Err(Refused::Lost));
        assert_eq!(lane.run(&pool(), &kv, 2, |_| async { 7 }).await, Ok(7));
    }
}
