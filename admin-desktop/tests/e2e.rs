//! The app itself, driven like a seller would: tauri-driver starts the
//! built binary under WebKitWebDriver, against a real `server serve` on the
//! database `cargo xtask test` seeded. Each test has its own server and app;
//! they run one at a time (`--test-threads=1`: one virtual screen).
//!
//! Needs what `cargo xtask test` provides; run alone, it fails saying so
//! rather than passing without having run.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const SELLER: (&str, &str) = ("seller@mercato.test", "sell-demo-2026");
const CUSTOMER: (&str, &str) = ("ada@mercato.test", "shop-demo-2026");
const ENTER: &str = "\u{E007}";
/// How long a screen may take to show what the test waits for. Generous:
/// two shared cores, a debug build and a software-rendered WebKit.
const PATIENCE: Duration = Duration::from_secs(30);

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run the desktop suite with `cargo xtask test`"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, then wait: tauri-driver stops WebKitWebDriver (and the app) on
/// it, where SIGKILL would leave them behind.
fn stop(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
}

struct Harness {
    name: &'static str,
    server: Child,
    driver: Child,
    app: Client,
    base: String,
    http: reqwest::Client,
}

impl Drop for Harness {
    fn drop(&mut self) {
        stop(&mut self.driver);
        stop(&mut self.server);
    }
}

impl Harness {
    async fn start(name: &'static str) -> Harness {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}/");
        let mut server = Command::new(required("MERCATO_E2E_SERVER"))
            .arg("serve")
            .env("MERCATO_ADDR", format!("127.0.0.1:{port}"))
            .env("MERCATO_REDIS_PREFIX", required("MERCATO_REDIS_PREFIX"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the server");
        wait_for_port(port, "the server", &mut server);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        while !http.get(format!("{base}readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "the server never became ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let (driver_port, native_port) = (free_port(), free_port());
        let mut driver = Command::new(required("TAURI_DRIVER"))
            .args(["--port", &driver_port.to_string(), "--native-port", &native_port.to_string()])
            .env("MERCATO_DESKTOP_SERVER_URL", &base)
            // Xvfb has no Secret Service to keep a token in.
            .env("MERCATO_DESKTOP_KEYRING", "off")
            .stdout(Stdio::null())
            .spawn()
            .expect("start tauri-driver");
        wait_for_port(driver_port, "tauri-driver", &mut driver);

        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("wry"));
        caps.insert("tauri:options".into(), json!({ "application": env!("CARGO_BIN_EXE_admin-desktop") }));
        let app = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .expect("a WebDriver session with the app");
        let harness = Harness { name, server, driver, app, base, http };
        harness.wait_css("body[data-app-ready]").await;
        harness
    }

    async fn wait_css(&self, css: &str) -> Element {
        match self.app.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => {
                self.screenshot("timed-out").await;
                let page = self.app.source().await.unwrap_or_default();
                panic!("{css} never showed: {e}\nthe page: {page}");
            }
        }
    }

    /// Polls until `check` holds, failing with what was last seen.
    async fn until<T, F: std::future::Future<Output = Option<T>>>(&self, what: &str, mut check: impl FnMut() -> F) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if Instant::now() > deadline {
                self.screenshot("timed-out").await;
                panic!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, step: &str) {
        let Ok(dir) = std::env::var("MERCATO_E2E_SCREENSHOTS") else { return };
        if let Ok(png) = self.app.screenshot().await {
            let _ = std::fs::write(PathBuf::from(dir).join(format!("{}-{step}.png", self.name)), png);
        }
    }

    async fn sign_in_as_seller(&self) {
        self.wait_css("[data-testid=sign-in-email]").await.send_keys(SELLER.0).await.unwrap();
        self.wait_css("[data-testid=sign-in-password]").await.send_keys(SELLER.1).await.unwrap();
        self.screenshot("sign-in").await;
        self.wait_css("[data-testid=sign-in-submit]").await.click().await.unwrap();
        let name = self.wait_css("[data-testid=user-name]").await;
        self.until("the seller's name", || async { name.text().await.ok().filter(|t| !t.is_empty()) }).await;
    }

    /// The stock table's rows, once loaded.
    async fn stock_rows(&self) -> Vec<Element> {
        self.wait_css("[data-testid=stock-row]").await;
        self.app.find_all(Locator::Css("[data-testid=stock-row]")).await.unwrap()
    }

    async fn row(&self, sku_id: &str) -> Element {
        self.wait_css(&format!("[data-testid=stock-row][data-sku-id='{sku_id}']")).await
    }

    /// A cell's text, read afresh (the row may have been re-rendered).
    async fn cell_of(&self, sku_id: &str, testid: &str) -> Option<String> {
        let row = self.row(sku_id).await;
        row.find(Locator::Css(&format!("[data-testid={testid}]"))).await.ok()?.text().await.ok()
    }

    async fn type_stock(&self, sku_id: &str, value: i64) {
        let input = self.row(sku_id).await.find(Locator::Css("[data-testid=stock-input]")).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(&format!("{value}{ENTER}")).await.unwrap();
    }

    /// The public, uncached figure shoppers see for one SKU.
    async fn public_available(&self, product_id: &str, sku_id: &str) -> i64 {
        let stock: Value = self.http.get(format!("{}api/v1/products/{product_id}/stock", self.base)).send().await.unwrap().json().await.unwrap();
        stock["skus"].as_array().unwrap().iter().find(|s| s["sku_id"] == sku_id).expect("the SKU in its product's stock")["available"]
            .as_i64()
            .unwrap()
    }

    async fn api(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("Idempotency-Key", uuid_v4())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

/// A random-enough key without another dependency: the clock and a counter.
fn uuid_v4() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", nanos as u32, (nanos >> 32) as u16, n & 0xfff, std::process::id() & 0xfff, nanos ^ n)
}

#[tokio::test]
async fn desktop_e2e_sign_in_as_the_demo_seller() {
    let h = Harness::start("sign-in").await;
    h.sign_in_as_seller().await;
    assert_eq!(h.wait_css("[data-testid=user-name]").await.text().await.unwrap(), "Northwind Traders");
    assert!(!h.stock_rows().await.is_empty(), "the demo seller's SKUs are listed");
    h.screenshot("stock").await;
}

#[tokio::test]
async fn desktop_e2e_a_stock_change_reaches_the_public_api() {
    let h = Harness::start("stock-change").await;
    h.sign_in_as_seller().await;
    let first = h.stock_rows().await.remove(0);
    let sku = first.attr("data-sku-id").await.unwrap().unwrap();
    let product = first.attr("data-product-id").await.unwrap().unwrap();
    let input = first.find(Locator::Css("[data-testid=stock-input]")).await.unwrap();
    let stock: i64 = input.prop("value").await.unwrap().unwrap().parse().unwrap();
    let reserved: i64 = h.cell_of(&sku, "stock-reserved").await.unwrap().parse().unwrap();
    let before = h.public_available(&product, &sku).await;

    let wanted = stock + 7;
    h.type_stock(&sku, wanted).await;
    h.until("the saved row", || h.cell_of(&sku, "row-saved")).await;
    assert_eq!(h.cell_of(&sku, "stock-available").await.as_deref(), Some((wanted - reserved).to_string().as_str()));
    h.screenshot("saved").await;

    let after = h.public_available(&product, &sku).await;
    assert_eq!(after, before + 7, "shoppers see the seven new units");
}

#[tokio::test]
async fn desktop_e2e_a_refused_change_shows_the_shops_words() {
    let h = Harness::start("refused").await;
    h.sign_in_as_seller().await;
    // The second row: the other test changes the first.
    let row = h.stock_rows().await.remove(1);
    let sku = row.attr("data-sku-id").await.unwrap().unwrap();
    let product = row.attr("data-product-id").await.unwrap().unwrap();

    // A customer orders one unit: it is reserved until it ships.
    let login = h.http.post(format!("{}api/v1/auth/login", h.base)).json(&json!({ "email": CUSTOMER.0, "password": CUSTOMER.1 }));
    let token = login.send().await.unwrap().json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    h.api(reqwest::Method::POST, "api/v1/cart/items", &token, json!({ "sku_id": sku, "quantity": 1 })).await;
    let address = json!({ "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" });
    let order = h.api(reqwest::Method::POST, "api/v1/checkout", &token, json!({ "shipping_address": address, "payment_method": "pm_card_visa" })).await;
    assert!(order["order_id"].is_string(), "{order}");
    let available = h.public_available(&product, &sku).await;

    h.app.find(Locator::XPath("//button[normalize-space()='Refresh']")).await.unwrap().click().await.unwrap();
    let reserved = h
        .until("the order's unit to show as reserved", || async {
            h.cell_of(&sku, "stock-reserved").await?.parse::<i64>().ok().filter(|r| *r >= 1)
        })
        .await;
    assert!(reserved >= 1);

    h.type_stock(&sku, 0).await;
    let words = h.until("the refusal on the row", || h.cell_of(&sku, "row-error")).await;
    assert!(words.contains("reserved"), "the shop's words: {words}");
    h.screenshot("refused").await;
    assert_eq!(h.public_available(&product, &sku).await, available, "the refused change changed nothing");
}
