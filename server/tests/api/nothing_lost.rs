//! Nothing lost, nothing doubled (issue 11): 300 orders placed through a
//! real server process while the processes running the outbox relay and
//! each consumer group with an effect we can read back (warehouse,
//! notifications, analytics) are SIGKILLed at random moments, several times
//! each, and started again. Afterwards every order is DELIVERED with exactly
//! one capture at the provider, every customer has one email per event that
//! emails (a repeat only as the very same message), and the sellers'
//! analytics equal SQL over the orders. The search indexer is left alone:
//! with the embedded index its group is per process and its effect is in
//! that process's memory.
//!
//! Each job runs in a process of its own (`MERCATO_WORKERS`), so a kill takes
//! out exactly one of them, mid-whatever it was doing: a consumer between its
//! effect and its ack, the warehouse between a capture and SHIPPED, an email
//! between SMTP and the commit of its claim. Two windows are a few
//! milliseconds wide and random kills rarely land in them, so one relay
//! incarnation aborts between publishing a round and marking it, and two
//! notifier incarnations abort just before and just after handing an email
//! to SMTP (`MERCATO_FAULT_POINT`); the test then checks that those paths
//! were taken (events published twice, an email sent twice). The API process
//! is not killed: the checkout crash tests (`crash.rs`) cover that.
//!
//! Random but replayable in its choices: the seed is printed, and
//! `NOTHING_LOST_SEED=<seed>` draws the same orders and kill schedule again
//! (the machine's timing still varies). `TEST_LOG=1` shows every process's
//! log, each line prefixed with its role and port.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use shop::cart::Owner;
use shop::events::redis_streams::RedisStreams;
use shop::events::{EventBus, Topic};
use shop::notifications::{message_id, Kind};
use sqlx::PgPool;
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::helpers::{all_mail, header, maildev_url, recipients, redis_url, unassigned_port, LocalStripe};

const SERVER: &str = env!("CARGO_BIN_EXE_server");

const CUSTOMERS: usize = 25;
/// Each round every customer checks out once, all at the same time.
const ROUNDS: usize = 12;
const ORDERS: usize = CUSTOMERS * ROUNDS;
/// Rounds start at least this far apart: on a fast machine the orders still
/// arrive throughout the kills, not all in their first seconds.
const ROUND_EVERY: Duration = Duration::from_millis(1_500);
/// Every killed role is SIGKILLed at least this often, and goes on being
/// killed for as long as orders are being placed.
const MIN_KILLS: usize = 5;
/// The server's default `MERCATO_EVENT_PARTITIONS`.
const PARTITIONS: u32 = 8;
const CAPTURE: &str = "/v1/payment_intents/{id}/capture";

/// A small seeded generator (SplitMix64): the run's choices come from one
/// printed number, without a dependency for it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }

    /// An independent stream for one task, so tasks running side by side
    /// draw the same numbers whatever order they interleave in.
    fn fork(&mut self) -> Rng {
        Rng(self.next())
    }
}

/// What a process is for: the background workers it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Api,
    Relay,
    Warehouse,
    Notifications,
    Analytics,
}

impl Role {
    const KILLED: [Role; 4] = [Role::Relay, Role::Warehouse, Role::Notifications, Role::Analytics];

    fn workers(self) -> &'static str {
        match self {
            // Serves checkout; nothing here publishes or consumes events.
            Role::Api => "sweeper,checkout-recovery",
            Role::Relay => "relay",
            Role::Warehouse => "warehouse",
            Role::Notifications => "notifications",
            Role::Analytics => "analytics",
        }
    }
}

/// Everything the server processes share: one database, one Redis prefix,
/// one payment provider, one mail server.
#[derive(Clone)]
struct Cluster {
    database_url: String,
    prefix: String,
    stripe_url: String,
}

struct Process {
    role: Role,
    child: Child,
    base: String,
    /// The fault point this process was started with, if any.
    fault: Option<&'static str>,
}

/// Where a process can be made to abort itself (`MERCATO_FAULT_POINT`), in
/// windows too narrow for random kills: the relay between publishing a
/// round and marking it; the notifier just before it hands an email to
/// SMTP, and just after SMTP took it (before its claim commits). One
/// incarnation carries each point.
const RELAY_AFTER_PUBLISH: &str = "relay_after_publish";
const BEFORE_SEND: &str = "notifications_before_send";
const AFTER_SEND: &str = "notifications_after_send";

impl Cluster {
    async fn start(&self, role: Role, fault: Option<&'static str>) -> Process {
        let port = unassigned_port();
        let logs = std::env::var_os("TEST_LOG").is_some();
        let mut command = Command::new(SERVER);
        command
            .arg("serve")
            .env("DATABASE_URL", &self.database_url)
            .env("REDIS_URL", redis_url())
            .env("MERCATO_REDIS_PREFIX", &self.prefix)
            .env("STRIPE_API_BASE", &self.stripe_url)
            .env("SMTP_URL", std::env::var("SMTP_URL").unwrap_or_else(|_| shop::notifications::DEFAULT_SMTP_URL.to_owned()))
            .env("MERCATO_ADDR", format!("127.0.0.1:{port}"))
            .env("MERCATO_WORKERS", role.workers())
            // Five processes on one PostgreSQL beside the rest of the suite.
            .env("MERCATO_DB_MAX_CONNECTIONS", if role == Role::Api { "12" } else { "4" })
            // A killed consumer's events go to its successor half a second
            // after they were last touched, not the default 30 s.
            .env("MERCATO_CONSUMER_CLAIM_IDLE_MS", "500")
            .env("MERCATO_RELAY_INTERVAL_MS", "50")
            .env("MERCATO_WAREHOUSE_PICK_MS", "100")
            .env("MERCATO_WAREHOUSE_SHIP_MS", "100")
            .env("MERCATO_WAREHOUSE_DELIVER_MS", "100")
            .env("MERCATO_WAREHOUSE_POLL_MS", "50")
            .env("MERCATO_RECONCILE_SECS", "0")
            .env("MERCATO_FAULT_POINT", fault.unwrap_or(""))
            .stdout(if logs { Stdio::piped() } else { Stdio::null() })
            .stderr(if logs { Stdio::piped() } else { Stdio::null() })
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the server binary runs");
        // Five processes log to one terminal: each line says whose it is.
        if let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) {
            tokio::spawn(prefixed(format!("{role:?}:{port}"), stdout));
            tokio::spawn(prefixed(format!("{role:?}:{port}"), stderr));
        }
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // An armed process may reach its fault point before it answers.
                assert!(fault.is_some(), "the {role:?} process exited while starting: {status}");
                return Process { role, child, base, fault };
            }
            if client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
                return Process { role, child, base, fault };
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the {role:?} process did not come up within 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn prefixed(name: String, output: impl tokio::io::AsyncRead + Unpin) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{name}] {line}");
    }
}

impl Process {
    /// SIGKILL: no shutdown, no unwinding, transactions cut mid-way.
    async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL is sent");
        let status = self.child.wait().await.expect("the killed process is reaped");
        assert!(!status.success(), "the {:?} process was killed, not stopped: {status}", self.role);
    }
}

/// How one incarnation ended, and when.
enum Death {
    Killed(Duration),
    /// Aborted itself at its fault point.
    Fault(Duration, &'static str),
}

fn killed(deaths: &[Death]) -> usize {
    deaths.iter().filter(|d| matches!(d, Death::Killed(_))).count()
}

/// Kills `process` at random moments and starts its successor, until orders
/// are no longer being placed and it has been SIGKILLed `MIN_KILLS` times.
/// The successor started after death number `n` carries the fault point
/// `armed[n]`, and lives until it reaches it. Returns the process left
/// running and its predecessors' deaths.
async fn chaos(
    cluster: Cluster,
    mut process: Process,
    mut rng: Rng,
    mut placing: tokio::sync::watch::Receiver<bool>,
    t0: Instant,
    armed: BTreeMap<usize, &'static str>,
) -> (Process, Vec<Death>) {
    let mut deaths = Vec::new();
    loop {
        // The random moment: how long this incarnation works before it dies.
        // Never before it has handled what its predecessor died holding: an
        // event in flight at three deaths is taken for a poison pill and
        // dead-lettered (by design), and killing each successor while it
        // retries that event would manufacture one. An armed incarnation is
        // left to die at its point, which events flowing reach soon.
        let life = if process.fault.is_some() { Duration::from_secs(60) } else { rng.millis(800, 3_000) };
        let ended = tokio::select! {
            _ = tokio::time::sleep(life) => None,
            status = process.child.wait() => Some(status.unwrap()),
            // Placing is over and this role has died often enough: it
            // lives on from here.
            _ = async { let _ = placing.wait_for(|busy| !*busy).await; }, if killed(&deaths) >= MIN_KILLS && armed.keys().all(|n| *n < deaths.len()) => {
                return (process, deaths)
            }
        };
        match (ended, process.fault) {
            (None, None) => {
                process.kill().await;
                deaths.push(Death::Killed(t0.elapsed()));
            }
            (None, Some(point)) => panic!("the {:?} process never reached its fault point {point} in 60 s", process.role),
            (Some(status), Some(point)) => {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(status.signal(), Some(6), "the {:?} process armed with {point} died otherwise: {status}", process.role);
                deaths.push(Death::Fault(t0.elapsed(), point));
            }
            (Some(status), None) => panic!("the {:?} process died by itself: {status}", process.role),
        }
        // Down for a random while: its work piles up for the successor.
        tokio::time::sleep(rng.millis(0, 800)).await;
        process = cluster.start(process.role, armed.get(&deaths.len()).copied()).await;
    }
}

struct Customer {
    id: Uuid,
    token: String,
    email: String,
}

/// One customer's order: the lines go into their cart (Redis, shared with
/// the servers), then checkout through the API process. A 503 is retried
/// after its Retry-After with the same key, as a client does: the provider
/// or PostgreSQL may be slow on a busy machine, and the key makes a retry
/// safe. Returns the order and how many 503s it took.
async fn place(shop: &shop::Shop, api: &str, customer: &Customer, lines: &[(Uuid, i64)]) -> (Uuid, usize) {
    let owner = Owner::User(customer.id);
    for (sku, quantity) in lines {
        shop.cart().add(&owner, *sku, *quantity).await.expect("the cart takes the line");
    }
    let key = Uuid::new_v4().to_string();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut unavailable = 0;
    loop {
        let response = client
            .post(format!("{api}/api/v1/checkout"))
            .bearer_auth(&customer.token)
            .header("Idempotency-Key", &key)
            .json(&json!({
                "shipping_address": { "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" },
                "payment_method": "pm_card_visa",
            }))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("the API process answers (it is never killed)");
        let status = response.status();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 503 && started.elapsed() < Duration::from_secs(60) {
            unavailable += 1;
            tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 5))).await;
            continue;
        }
        assert_eq!(status, 201, "checkout: {body}");
        return (body["order_id"].as_str().unwrap().parse().unwrap(), unavailable);
    }
}

/// Polls `check` (every `every`) until its first value holds; fails after
/// `limit` with the second, which says how far it got.
async fn settle<F, Fut>(what: &str, limit: Duration, every: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (bool, String)>,
{
    if let Err(progress) = poll(what, limit, every, check).await {
        panic!("timed out after {limit:?} waiting for {what}: {progress}");
    }
}

/// [`settle`] that hands the failure back, for a caller whose own checks
/// then say precisely what is missing.
async fn poll<F, Fut>(what: &str, limit: Duration, every: Duration, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (bool, String)>,
{
    let started = Instant::now();
    loop {
        let (done, progress) = check().await;
        if done {
            println!("nothing_lost: {what} after {:.1} s more", started.elapsed().as_secs_f64());
            return Ok(());
        }
        if started.elapsed() >= limit {
            println!("nothing_lost: still waiting for {what} after {limit:?}: {progress}");
            return Err(progress);
        }
        tokio::time::sleep(every).await;
    }
}

/// Every message maildev holds for one of `addresses`.
async fn mail_to(addresses: &HashMap<String, Uuid>) -> Vec<Value> {
    all_mail().await.into_iter().filter(|m| recipient(m).is_some_and(|to| addresses.contains_key(to))).collect()
}

fn recipient(mail: &Value) -> Option<&str> {
    recipients(mail).next()
}

type Figures = BTreeMap<(Uuid, DateTime<Utc>), (i64, i64, i64)>;

/// (orders, units, revenue) per SKU and minute, as the analytics consumer counted them.
async fn counted_figures(db: &PgPool) -> Figures {
    let rows: Vec<(Uuid, DateTime<Utc>, i64, i64, i64)> =
        sqlx::query_as("SELECT sku_id, minute, orders, units, revenue_cents FROM sku_minute_stats WHERE orders > 0 OR units > 0 OR revenue_cents > 0")
            .fetch_all(db)
            .await
            .unwrap();
    rows.into_iter().map(|(sku, minute, o, u, r)| ((sku, minute), (o, u, r))).collect()
}

/// The same figures straight from the orders, per minute of placement.
async fn figures_in_sql(db: &PgPool) -> Figures {
    let rows: Vec<(Uuid, DateTime<Utc>, i64, i64, i64)> = sqlx::query_as(
        "SELECT i.sku_id, date_trunc('minute', o.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(DISTINCT o.id), \
                sum(i.quantity)::int8, sum(i.quantity * i.unit_cents)::int8 \
         FROM order_items i JOIN orders o ON o.id = i.order_id GROUP BY 1, 2",
    )
    .fetch_all(db)
    .await
    .unwrap();
    rows.into_iter().map(|(sku, minute, o, u, r)| ((sku, minute), (o, u, r))).collect()
}

/// Every group on order-events has nothing pending or undelivered.
async fn groups_caught_up(bus: &RedisStreams, groups: &[&str]) -> (bool, String) {
    let lag = bus.lag(Topic::Orders).await.unwrap();
    let behind: Vec<String> = groups
        .iter()
        .map(|group| match lag.iter().find(|l| l.group == *group) {
            Some(l) if l.pending + l.undelivered == 0 => String::new(),
            Some(l) => format!("{group}: {} pending, {} undelivered", l.pending, l.undelivered),
            None => format!("{group}: no group yet"),
        })
        .filter(|s| !s.is_empty())
        .collect();
    (behind.is_empty(), behind.join("; "))
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn orders_placed_while_the_relay_and_consumers_are_killed_are_all_delivered_once(db: PgPool) {
    let t0 = Instant::now();
    let seed: u64 = match std::env::var("NOTHING_LOST_SEED") {
        Ok(raw) => raw.parse().expect("NOTHING_LOST_SEED is a number"),
        Err(_) => u64::from(std::process::id()) << 32 ^ Utc::now().timestamp_subsec_nanos() as u64 ^ Utc::now().timestamp() as u64,
    };
    println!("nothing_lost: seed {seed} (NOTHING_LOST_SEED={seed} draws the same orders and kills)");
    let mut rng = Rng(seed);

    // The shop: a small catalog, four SKUs of one currency with stock to spare.
    let stripe = LocalStripe::start().await;
    let prefix = format!("test:{}:", Uuid::new_v4().simple());
    let kv = shop::kv::Kv::connect(&redis_url(), prefix.clone()).await.expect("Redis is reachable at REDIS_URL");
    let shop = shop::Shop::new(db.clone(), kv);
    shop.catalog().seed(shop::catalog::SeedOptions { products: 10 }).await.unwrap();
    let skus: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM skus WHERE currency = (SELECT min(currency) FROM skus) ORDER BY id LIMIT 4")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(skus.len(), 4);
    sqlx::query("UPDATE inventory SET stock_count = 100000 WHERE sku_id = ANY($1)").bind(&skus).execute(&db).await.unwrap();
    let tokens = shop.accounts().create_load_test_users(CUSTOMERS, "load-test-password").await.unwrap();
    let mut customers = Vec::new();
    for token in tokens {
        let user = shop.accounts().authenticate(&token).await.unwrap().expect("a signed-in customer");
        customers.push(Customer { id: user.id, token, email: user.email });
    }
    let customers = Arc::new(customers);

    let o = db.connect_options();
    let cluster = Cluster {
        database_url: format!("postgres://{}@{}:{}/{}", o.get_username(), o.get_host(), o.get_port(), o.get_database().unwrap_or("postgres")),
        prefix: prefix.clone(),
        stripe_url: stripe.url(),
    };
    let api = cluster.start(Role::Api, None).await;
    let (placing_tx, placing_rx) = tokio::sync::watch::channel(true);
    let mut chaos_tasks = Vec::new();
    for role in Role::KILLED {
        let process = cluster.start(role, None).await;
        // Early in the run, while orders (and so events) flow.
        let first = 1 + rng.below(3) as usize;
        let armed: BTreeMap<usize, &'static str> = match role {
            Role::Relay => [(first, RELAY_AFTER_PUBLISH)].into(),
            // Apart, with a SIGKILLed incarnation between them: the first
            // email each armed one handles may be the one its predecessor
            // died on (see `chaos`).
            Role::Notifications => [(first, BEFORE_SEND), (first + 2 + rng.below(2) as usize, AFTER_SEND)].into(),
            _ => BTreeMap::new(),
        };
        chaos_tasks.push(tokio::spawn(chaos(cluster.clone(), process, rng.fork(), placing_rx.clone(), t0, armed)));
    }
    println!("nothing_lost: {} processes up after {:.1} s", Role::KILLED.len() + 1, t0.elapsed().as_secs_f64());

    // Rounds of concurrent checkouts (one per customer: a customer's cart
    // holds one order at a time), 1 or 2 lines of 1 to 3 units each.
    let placing_started = Instant::now();
    let shop = Arc::new(shop);
    let (mut placed, mut unavailable) = (0, 0);
    for r in 0..ROUNDS {
        tokio::time::sleep_until((placing_started + ROUND_EVERY * r as u32).into()).await;
        let mut round = tokio::task::JoinSet::new();
        for c in 0..CUSTOMERS {
            let first = skus[rng.below(4) as usize];
            let mut lines = vec![(first, 1 + rng.below(3) as i64)];
            if rng.below(2) == 1 {
                let second = skus[rng.below(4) as usize];
                if second != first {
                    lines.push((second, 1 + rng.below(3) as i64));
                }
            }
            let (shop, customers, api) = (shop.clone(), customers.clone(), api.base.clone());
            round.spawn(async move { place(&shop, &api, &customers[c], &lines).await });
        }
        while let Some(order) = round.join_next().await {
            unavailable += order.expect("a checkout task").1;
            placed += 1;
        }
    }
    assert_eq!(placed, ORDERS);
    let placing_took = placing_started.elapsed();
    placing_tx.send(false).unwrap();
    let mut survivors = Vec::new();
    for task in chaos_tasks {
        let (process, deaths) = task.await.expect("a chaos task");
        let at: Vec<String> = deaths
            .iter()
            .map(|d| match d {
                Death::Killed(at) => format!("{:.1}", at.as_secs_f64()),
                Death::Fault(at, point) => format!("{:.1} (at {point})", at.as_secs_f64()),
            })
            .collect();
        println!("nothing_lost: {:?} SIGKILLed {} times; died at {} s", process.role, killed(&deaths), at.join(", "));
        survivors.push(process);
    }
    println!(
        "nothing_lost: {ORDERS} orders placed in {:.1} s ({unavailable} checkouts retried after a 503); kills stopped at {:.1} s",
        placing_took.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );

    // The survivors finish the work: generous limits, polled conditions.
    // Every check below adds what it finds to `problems`, so a red run names
    // each broken invariant at once (a stuck order and its second capture).
    let mut problems: Vec<String> = Vec::new();
    let delivered = poll("every order DELIVERED", Duration::from_secs(120), Duration::from_millis(100), || async {
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM orders GROUP BY 1 ORDER BY 1").fetch_all(&db).await.unwrap();
        let delivered = counts.iter().find(|(s, _)| s == "DELIVERED").map_or(0, |(_, n)| *n);
        (delivered == ORDERS as i64, format!("{counts:?}"))
    })
    .await;
    let bus = RedisStreams::new(shop.kv.clone(), PARTITIONS);
    let groups = [shop::fulfilment::CONSUMER, shop::notifications::CONSUMER, shop::analytics::CONSUMER];
    let all_delivered = delivered.is_ok();
    match delivered {
        Ok(()) => {
            settle("the outbox published", Duration::from_secs(30), Duration::from_millis(100), || async {
                let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetch_one(&db).await.unwrap();
                (left == 0, format!("{left} rows unpublished"))
            })
            .await;
            if let Err(behind) = poll("every consumer group caught up", Duration::from_secs(60), Duration::from_millis(100), || groups_caught_up(&bus, &groups)).await {
                problems.push(format!("consumer groups still behind: {behind}"));
            }
        }
        Err(counts) => problems.push(format!("not every order DELIVERED: {counts}")),
    }
    let settled = t0.elapsed();

    // Nothing gave up on an event: a dead letter is an event some consumer
    // will never have handled.
    for d in bus.dead_letters(Topic::Orders, 100).await.unwrap() {
        problems.push(format!("dead-lettered by {}: {} {} after {} tries ({})", d.group, d.event.event_type, d.event.id, d.attempts, d.error));
    }

    // Every order along the one path, and no order without its checkout.
    let orders: Vec<(Uuid, Uuid, String, i64)> =
        sqlx::query_as("SELECT id, user_id, payment_id, total_cents FROM orders ORDER BY id").fetch_all(&db).await.unwrap();
    assert_eq!(orders.len(), ORDERS, "one order per checkout");
    let wrong_paths: Vec<(Uuid, Vec<String>)> = sqlx::query_as(
        "SELECT order_id, array_agg(to_status ORDER BY id) FROM order_status_history GROUP BY 1 \
         HAVING array_agg(to_status ORDER BY id) <> ARRAY['PLACED', 'PAYMENT_PENDING', 'CONFIRMED', 'SHIPPED', 'DELIVERED']",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    for (order_id, path) in wrong_paths {
        problems.push(format!("order {order_id} went {}", path.join(" → ")));
    }

    // Exactly one capture per order's payment reached localstripe (a
    // repeated capture after a kill must be the provider replaying its key),
    // and localstripe holds each payment captured, for the order's total.
    let mut captures: HashMap<String, usize> = HashMap::new();
    for call in stripe.fake().upstream_calls().iter().filter(|c| c.method == "POST" && c.pattern == CAPTURE) {
        *captures.entry(call.path.split('/').nth(3).unwrap().to_owned()).or_default() += 1;
    }
    let intents = stripe.intents_by_id().await;
    for (order_id, _, payment_id, total) in &orders {
        let count = captures.remove(payment_id).unwrap_or(0);
        let (status, amount) = match intents.get(payment_id) {
            Some(intent) => (intent["status"].as_str().unwrap_or_default(), intent["amount"].as_i64().unwrap_or_default()),
            None => ("missing", 0),
        };
        if count != 1 || status != "succeeded" || amount != *total {
            problems.push(format!("order {order_id}: {count} captures of {payment_id} reached localstripe, now {status} for {amount} (order total {total})"));
        }
    }
    for (payment_id, count) in captures {
        problems.push(format!("{count} captures of {payment_id}, which no order has"));
    }
    // A checkout answered 503 may have voided an intent of its own; none is
    // left authorized or captured without its order.
    let paid: BTreeSet<&str> = orders.iter().map(|o| o.2.as_str()).collect();
    for (id, intent) in &intents {
        if !paid.contains(id.as_str()) && !matches!(intent["status"].as_str(), Some("canceled" | "requires_confirmation")) {
            problems.push(format!("payment {id} is {} without an order", intent["status"]));
        }
    }

    // Emails: the events that email a customer are the outbox's, per order
    // PLACED, SHIPPED and DELIVERED. Each customer's mail, grouped by
    // Message-ID, is exactly those events; copies of one are the same message.
    let emailing: Vec<(Uuid, Uuid, String, Uuid)> = sqlx::query_as(
        "SELECT o.user_id, x.id, x.event_type, x.aggregate_id FROM outbox x JOIN orders o ON o.id = x.aggregate_id WHERE x.aggregate_type = 'order'",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let mut expected: HashMap<Uuid, BTreeMap<String, (Kind, Uuid)>> = HashMap::new();
    for (user_id, event_id, event_type, order_id) in &emailing {
        if let Some(kind) = Kind::of(event_type) {
            expected.entry(*user_id).or_default().insert(message_id(*event_id), (kind, *order_id));
        }
    }
    let expected_emails: usize = expected.values().map(BTreeMap::len).sum();
    if all_delivered {
        assert_eq!(expected_emails, 3 * ORDERS, "placed, shipped and delivered per order");
    }
    let addresses: HashMap<String, Uuid> = customers.iter().map(|c| (c.email.clone(), c.id)).collect();
    // A miss is reported below, email by email.
    let _ = poll("every expected email in maildev", Duration::from_secs(30), Duration::from_millis(500), || async {
        let got: BTreeSet<String> = mail_to(&addresses).await.iter().map(|m| header(m, "message-id").to_owned()).collect();
        let missing = expected.values().flat_map(|e| e.keys()).filter(|id| !got.contains(*id)).count();
        (missing == 0, format!("{missing} of {expected_emails} missing"))
    })
    .await;
    let mail = mail_to(&addresses).await;
    let mut repeats = 0;
    for customer in customers.iter() {
        let mut by_id: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        for m in mail.iter().filter(|m| recipient(m) == Some(customer.email.as_str())) {
            by_id.entry(header(m, "message-id")).or_default().push(m);
        }
        let wanted = expected.get(&customer.id).cloned().unwrap_or_default();
        for (id, (kind, order)) in &wanted {
            let Some(copies) = by_id.get(id.as_str()) else {
                problems.push(format!("{}: no email for {kind:?} of order {order} ({id})", customer.email));
                continue;
            };
            let first = copies[0];
            if first["subject"].as_str() != Some(kind.subject(*order).as_str()) {
                problems.push(format!("{}: {id} is {:?}, not {kind:?} of order {order}", customer.email, first["subject"]));
            }
            for copy in &copies[1..] {
                repeats += 1;
                let same = ["subject", "text", "html"].iter().all(|f| copy[f] == first[f]) && header(copy, "date") == header(first, "date");
                if !same {
                    problems.push(format!("{}: two different messages under {id}", customer.email));
                }
            }
        }
        for id in by_id.keys().filter(|id| !wanted.contains_key(**id)) {
            problems.push(format!("{}: an email no event calls for ({id})", customer.email));
        }
    }

    // Analytics: per SKU and minute, what the consumer counted is what the
    // orders say.
    let counted = counted_figures(&db).await;
    let in_sql = figures_in_sql(&db).await;
    let keys: BTreeSet<_> = counted.keys().chain(in_sql.keys()).collect();
    for k in keys.into_iter().filter(|k| counted.get(k) != in_sql.get(k)) {
        problems.push(format!(
            "analytics of SKU {} at {}: counted (orders, units, revenue) {:?}, the orders say {:?}",
            k.0,
            k.1,
            counted.get(k),
            in_sql.get(k)
        ));
    }
    let mut per_sku: BTreeMap<Uuid, (i64, i64, i64)> = BTreeMap::new();
    for ((sku, _), (o, u, r)) in &in_sql {
        let t = per_sku.entry(*sku).or_default();
        (t.0, t.1, t.2) = (t.0 + o, t.1 + u, t.2 + r);
    }

    // What the deaths did, so a run that hit nothing shows it.
    let mut entries = 0u64;
    let mut conn = shop.kv.conn();
    for partition in 0..PARTITIONS {
        let n: u64 = redis::cmd("XLEN").arg(bus.stream_key(Topic::Orders, partition)).query_async(&mut conn).await.unwrap();
        entries += n;
    }
    let order_events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type LIKE 'order.%'").fetch_one(&db).await.unwrap();
    println!(
        "nothing_lost: settled at {:.1} s; checked {} orders, their captures, {} emails ({} repeated copies), analytics of {} SKUs (orders, units, revenue): {:?}",
        settled.as_secs_f64(),
        orders.len(),
        expected_emails,
        repeats,
        per_sku.len(),
        per_sku.values().collect::<Vec<_>>(),
    );
    println!(
        "nothing_lost: the relay published {} order events {} times ({} again after a death mid-round); the provider replayed {} keys",
        order_events,
        entries,
        entries as i64 - order_events,
        stripe.fake().counters().replays,
    );
    assert!(problems.is_empty(), "{} problems (seed {seed}):\n{}", problems.len(), problems.join("\n"));
    // The fault points make these certain; without them the run proved less.
    assert!(entries as i64 > order_events, "no event was published twice: the relay's re-publish went unexercised");
    assert!(repeats > 0, "no email went twice: a notifier dying between SMTP and its commit went unexercised");

    // Passed: take this run's mail out of the shared maildev.
    let client = reqwest::Client::new();
    for m in &mail {
        if let Some(id) = m["id"].as_str() {
            let _ = client.delete(format!("{}/email/{id}", maildev_url())).send().await;
        }
    }
    drop(survivors);
    drop(api);
    println!("nothing_lost: done in {:.1} s", t0.elapsed().as_secs_f64());
}
