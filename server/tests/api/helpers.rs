use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::sync::Once;
use std::time::Duration;

use server::config::Config;
use server::startup::Application;
use sqlx::PgPool;
use tokio::process::{Child, Command};

use crate::stripe_fake::StrictStripe;

static TRACING: Once = Once::new();

/// Server logs stay quiet unless TEST_LOG is set.
fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            server::telemetry::init(server::config::LogFormat::Pretty);
        }
    });
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| server::config::DEFAULT_REDIS_URL.to_owned())
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub shop: shop::Shop,
}

impl TestApp {
    /// Boots the app on a free port around `db` (a fresh database from
    /// `#[sqlx::test]`) and a Redis key prefix of its own.
    pub async fn spawn(db: PgPool) -> TestApp {
        Self::spawn_with_redis(db, &redis_url()).await
    }

    /// Boots the app around `db` after generating `products` demo products,
    /// so the search index starts with them.
    pub async fn spawn_seeded(db: PgPool, products: usize) -> TestApp {
        Self::boot(db, &redis_url(), Some(products)).await
    }

    pub async fn spawn_with_redis(db: PgPool, redis_url: &str) -> TestApp {
        Self::boot(db, redis_url, None).await
    }

    /// Like [`TestApp::spawn_seeded`], with the shop adjusted first (e.g.
    /// pointed at the test's own payment provider).
    pub async fn spawn_seeded_with(db: PgPool, products: usize, adjust: impl FnOnce(shop::Shop) -> shop::Shop) -> TestApp {
        Self::boot_adjusted(db, &redis_url(), Some(products), adjust).await
    }

    pub async fn boot(db: PgPool, redis_url: &str, seed: Option<usize>) -> TestApp {
        Self::boot_adjusted(db, redis_url, seed, |shop| shop).await
    }

    /// Like [`TestApp::spawn_seeded`], with the server's configuration changed first.
    pub async fn spawn_seeded_configured(db: PgPool, products: usize, configure: impl FnOnce(&mut Config)) -> TestApp {
        Self::boot_with(db, &redis_url(), Some(products), |shop| shop, configure).await
    }

    async fn boot_adjusted(db: PgPool, redis_url: &str, seed: Option<usize>, adjust: impl FnOnce(shop::Shop) -> shop::Shop) -> TestApp {
        Self::boot_with(db, redis_url, seed, adjust, |_| {}).await
    }

    /// Boots the app with the shop adjusted and the server's configuration changed first.
    pub async fn boot_with(
        db: PgPool,
        redis_url: &str,
        seed: Option<usize>,
        adjust: impl FnOnce(shop::Shop) -> shop::Shop,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        init_tracing();
        let redis_prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        let mut config = Config::from_lookup(|key| match key {
            "REDIS_URL" => Some(redis_url.to_owned()),
            "MERCATO_ADDR" => Some("127.0.0.1:0".to_owned()),
            "MERCATO_REDIS_PREFIX" => Some(redis_prefix.clone()),
            _ => std::env::var(key).ok(),
        })
        .expect("test configuration is valid");
        config.shutdown_grace = Duration::from_secs(1);
        config.search_sync_interval = Duration::from_secs(1);
        configure(&mut config);

        let kv = shop::kv::Kv::connect(redis_url, redis_prefix.clone())
            .await
            .expect("Redis is reachable at REDIS_URL");
        let shop = adjust(shop::Shop::new(db, kv));
        if let Some(products) = seed {
            shop.catalog()
                .seed(shop::catalog::SeedOptions { products })
                .await
                .expect("demo catalog seeds");
        }
        let app = Application::with_shop(config, shop.clone()).await.expect("app binds");
        let addr = app.local_addr();
        tokio::spawn(app.run_until(std::future::pending()));

        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        TestApp { addr, client, shop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request reaches the server")
    }

    /// The customer behind `token` puts `quantity` of `sku` in the cart and
    /// checks out through the API with the test card that authorizes; the
    /// order id of the CONFIRMED order.
    pub async fn buy(&self, token: &str, sku: uuid::Uuid, quantity: i64) -> uuid::Uuid {
        let user = self.shop.accounts().authenticate(token).await.unwrap().expect("a signed-in customer");
        self.shop.cart().add(&shop::cart::Owner::User(user.id), sku, quantity).await.unwrap();
        let response = self
            .client
            .post(self.url("/api/v1/checkout"))
            .bearer_auth(token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&serde_json::json!({
                "shipping_address": { "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" },
                "payment_method": "pm_card_visa",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
        let placed: serde_json::Value = response.json().await.unwrap();
        assert_eq!(placed["status"], "CONFIRMED");
        placed["order_id"].as_str().unwrap().parse().unwrap()
    }
}

/// A free port outside the kernel's ephemeral range (32768-60999), for a
/// child process that binds it a second later: a port from the ephemeral
/// range can be handed to another test's `bind(0)` in that second.
/// localstripe binds `[::]`, so both stacks are checked.
pub fn unassigned_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 10_000;
        // One at a time: a dual-stack [::] bind conflicts with a held v4 one.
        let v4_free = TcpListener::bind(("127.0.0.1", port)).is_ok();
        if v4_free && TcpListener::bind(("::", port)).is_ok() {
            return port;
        }
    }
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A throwaway redis-server of the test's own, so a test can stop and restart
/// Redis without disturbing any other test.
pub struct LocalRedis {
    pub port: u16,
    child: Option<Child>,
}

impl LocalRedis {
    pub async fn start() -> LocalRedis {
        let port = free_port();
        let mut redis = LocalRedis { port, child: None };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (the README's test command installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("redis-server stops");
        }
    }
}

/// A localstripe of the test's own (the fake Stripe API), so a test can stop
/// the payment provider without disturbing any other test, behind the strict
/// fake (`stripe_fake`) that enforces Stripe's idempotency rules localstripe
/// ignores. Clients (`url()`, `settings()`) talk to the fake; `direct_url()`
/// is plain localstripe, for tests whose point is localstripe itself and for
/// reading what it holds.
pub struct LocalStripe {
    direct_port: u16,
    child: Option<Child>,
    fake: StrictStripe,
}

impl LocalStripe {
    pub async fn start() -> LocalStripe {
        let direct_port = unassigned_port();
        let child = Self::spawn(direct_port).await;
        let fake = StrictStripe::start(&format!("http://127.0.0.1:{direct_port}")).await;
        LocalStripe { direct_port, child: Some(child), fake }
    }

    pub fn url(&self) -> String {
        self.fake.url()
    }

    /// Plain localstripe, bypassing the fake.
    pub fn direct_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.direct_port)
    }

    /// The strict fake: its counters, clock and fault injection.
    pub fn fake(&self) -> &StrictStripe {
        &self.fake
    }

    pub fn settings(&self) -> shop::payments::Settings {
        shop::payments::Settings {
            api_base: self.url(),
            breaker_cooldown: Duration::from_millis(200),
            ..shop::payments::Settings::default()
        }
    }

    fn bin() -> std::path::PathBuf {
        std::env::var_os("LOCALSTRIPE_BIN").map(Into::into).unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/localstripe/bin/localstripe")
        })
    }

    async fn spawn(port: u16) -> Child {
        let child = Command::new(Self::bin())
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("localstripe is installed (the README's test command installs it under target/tools)");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            let probe = client.get(format!("http://127.0.0.1:{port}/v1/payment_intents")).bearer_auth("sk_test_mercato").send().await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                return child;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("localstripe did not start on port {port}");
    }

    /// Starts localstripe and the fake again. The fake keeps its keys (as
    /// Stripe does); localstripe starts empty (`--from-scratch`: its store
    /// file is shared by every instance on the machine).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.child = Some(Self::spawn(self.direct_port).await);
        self.fake.restart().await;
    }

    /// Stops the fake (connections refused, open ones cut) and localstripe.
    pub async fn stop(&mut self) {
        self.fake.stop().await;
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("localstripe stops");
        }
    }

    /// Every PaymentIntent localstripe holds, as JSON, read directly and
    /// page by page (`starting_after`) until `has_more` is false.
    pub async fn intents(&self) -> Vec<serde_json::Value> {
        let client = reqwest::Client::new();
        let mut intents: Vec<serde_json::Value> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut total = None;
        loop {
            let mut url = format!("{}/v1/payment_intents?limit=100", self.direct_url());
            if let Some(last) = intents.last() {
                url.push_str(&format!("&starting_after={}", last["id"].as_str().expect("an intent id")));
            }
            let page: serde_json::Value =
                client.get(url).bearer_auth("sk_test_mercato").send().await.unwrap().error_for_status().unwrap().json().await.unwrap();
            total = total.or(page["total_count"].as_u64());
            for intent in page["data"].as_array().expect("a list") {
                // localstripe restarts from the top when `starting_after`
                // names no intent: a repeat means paging went wrong.
                assert!(seen.insert(intent["id"].to_string()), "PaymentIntent {} listed twice", intent["id"]);
                intents.push(intent.clone());
            }
            if page["has_more"] != true {
                break;
            }
        }
        if let Some(total) = total {
            assert_eq!(intents.len() as u64, total, "every page read");
        }
        intents
    }

    /// [`LocalStripe::intents`] by id, to match intents to orders.
    pub async fn intents_by_id(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        self.intents().await.into_iter().map(|pi| (pi["id"].as_str().expect("an intent id").to_owned(), pi)).collect()
    }
}

/// Polls `check` every 20 ms until it holds; fails the test after `limit`.
/// Tests wait on the condition itself, never on a guessed sleep.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// maildev's REST API, where the README's test command delivers SMTP_URL's mail.
pub fn maildev_url() -> String {
    std::env::var("MAILDEV_URL").unwrap_or_else(|_| "http://127.0.0.1:1080".to_owned()).trim_end_matches('/').to_owned()
}

/// Every message maildev holds, oldest first.
pub async fn all_mail() -> Vec<serde_json::Value> {
    reqwest::get(format!("{}/email", maildev_url()))
        .await
        .expect("maildev answers at MAILDEV_URL (the README's test command starts it)")
        .json()
        .await
        .expect("maildev lists its mail as JSON")
}

/// Every message maildev holds for `address`, oldest first.
pub async fn mail_to(address: &str) -> Vec<serde_json::Value> {
    all_mail().await.into_iter().filter(|m| recipients(m).any(|to| to == address)).collect()
}

pub fn recipients(mail: &serde_json::Value) -> impl Iterator<Item = &str> {
    mail["to"].as_array().into_iter().flatten().filter_map(|t| t["address"].as_str())
}

pub fn header<'a>(mail: &'a serde_json::Value, name: &str) -> &'a str {
    mail["headers"][name].as_str().unwrap_or_default()
}

/// Waits until `address` has received `count` messages and returns them.
pub async fn wait_for_mail(address: &str, count: usize) -> Vec<serde_json::Value> {
    wait_for(&format!("{count} message(s) to {address}"), Duration::from_secs(20), || async { mail_to(address).await.len() >= count }).await;
    mail_to(address).await
}

/// Signs in through the API; the bearer token.
pub async fn sign_in(app: &TestApp, email: &str, password: &str) -> String {
    let response = app.client.post(app.url("/api/v1/auth/login")).json(&serde_json::json!({ "email": email, "password": password })).send().await.unwrap();
    assert_eq!(response.status(), 200, "{email} signs in");
    response.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

/// A bearer token for the demo account of `role` (`seed_demo` first).
pub async fn demo_token(app: &TestApp, role: model::Role) -> String {
    let (_, email, password, _) = shop::accounts::DEMO_ACCOUNTS.into_iter().find(|(r, ..)| *r == role).unwrap();
    sign_in(app, email, password).await
}

/// Sends `body` (if any) as JSON with the bearer `token`; the status and the JSON answer (Null when none).
pub async fn call(app: &TestApp, method: reqwest::Method, token: &str, path: &str, body: Option<serde_json::Value>) -> (reqwest::StatusCode, serde_json::Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}
