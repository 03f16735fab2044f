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
const ADMIN: (&str, &str) = ("admin@mercato.test", "admin-demo-2026");
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

/// A child process stopped (SIGTERM) when dropped, so a test that fails
/// half-way through starting leaves nothing running behind it.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

/// `server serve` on `port`, once it answers /readyz.
async fn serve(port: u16, http: &reqwest::Client) -> Proc {
    let server = Command::new(required("MERCATO_E2E_SERVER"))
        .arg("serve")
        .env("MERCATO_ADDR", format!("127.0.0.1:{port}"))
        .env("MERCATO_REDIS_PREFIX", required("MERCATO_REDIS_PREFIX"))
        .env("RUST_LOG", "warn")
        // Orders wait for a hand to ship them (the production default, said
        // here so a caller's demo delays cannot ship them first).
        .env("MERCATO_WAREHOUSE_PICK_MS", "3600000")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the server");
    let mut server = Proc(server);
    wait_for_port(port, "the server", &mut server.0);
    let deadline = Instant::now() + PATIENCE;
    while !http.get(format!("http://127.0.0.1:{port}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "the server never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server
}

/// Fields drop in order: the app's driver first, then the server.
struct Harness {
    name: &'static str,
    app: Client,
    driver: Proc,
    server: Proc,
    base: String,
    http: reqwest::Client,
}

impl Harness {
    async fn start(name: &'static str) -> Harness {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}/");
        let http = reqwest::Client::new();
        let server = serve(port, &http).await;

        let driver_port = free_port();
        let native_port = std::iter::repeat_with(free_port).find(|p| *p != driver_port).unwrap();
        let driver = Command::new(required("TAURI_DRIVER"))
            .args(["--port", &driver_port.to_string(), "--native-port", &native_port.to_string()])
            .env("MERCATO_DESKTOP_SERVER_URL", &base)
            // Xvfb has no Secret Service to keep a token in.
            .env("MERCATO_DESKTOP_KEYRING", "off")
            .stdout(Stdio::null())
            .spawn()
            .expect("start tauri-driver");
        let mut driver = Proc(driver);
        wait_for_port(driver_port, "tauri-driver", &mut driver.0);

        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("wry"));
        caps.insert("tauri:options".into(), json!({ "application": env!("CARGO_BIN_EXE_admin-desktop") }));
        // tauri-driver listens before WebKitWebDriver behind it does; until
        // then a new session fails at the connection, so it is retried.
        let deadline = Instant::now() + PATIENCE;
        let app = loop {
            let attempt = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{driver_port}"))
                .await;
            match attempt {
                Ok(app) => break app,
                Err(fantoccini::error::NewSessionError::FailedC(e)) if Instant::now() < deadline => {
                    eprintln!("no WebDriver session yet ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("no WebDriver session with the app: {e:?}"),
            }
        };
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
        self.sign_in_as(SELLER).await
    }

    async fn sign_in_as(&self, (email, password): (&str, &str)) {
        self.wait_css("[data-testid=sign-in-email]").await.send_keys(email).await.unwrap();
        self.wait_css("[data-testid=sign-in-password]").await.send_keys(password).await.unwrap();
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

impl Harness {
    async fn login(&self, (email, password): (&str, &str)) -> String {
        let login = self.http.post(format!("{}api/v1/auth/login", self.base)).json(&json!({ "email": email, "password": password }));
        login.send().await.unwrap().json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let response = self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }

    /// A customer (a fresh bearer token) buys one unit of `sku` through the
    /// cart and checkout; answers the order's id.
    async fn order_one(&self, token: &str, sku: &str) -> String {
        self.api(reqwest::Method::POST, "api/v1/cart/items", token, json!({ "sku_id": sku, "quantity": 1 })).await;
        self.checkout(token).await
    }

    async fn checkout(&self, token: &str) -> String {
        let address = json!({ "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" });
        let order = self.api(reqwest::Method::POST, "api/v1/checkout", token, json!({ "shipping_address": address, "payment_method": "pm_card_visa" })).await;
        order["order_id"].as_str().unwrap_or_else(|| panic!("no order id: {order}")).to_owned()
    }

    async fn open(&self, tab: &str) {
        self.wait_css(&format!("[data-testid={tab}]")).await.click().await.unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_css(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn text_of(&self, css: &str) -> Option<String> {
        self.app.find(Locator::Css(css)).await.ok()?.text().await.ok()
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

    // A hot SKU's counter split into 4 shards: the seller API says 4 and
    // shoppers see the same number of units as before the split.
    let shards = h.row(&sku).await.find(Locator::Css("[data-testid=shards-input]")).await.unwrap();
    shards.clear().await.unwrap();
    shards.send_keys(&format!("4{ENTER}")).await.unwrap();
    let seller = h.login(SELLER).await;
    let row = h
        .until("the seller API to report 4 shards", || async {
            let page = h.get("api/v1/seller/skus?limit=100", &seller).await;
            page["items"].as_array()?.iter().find(|r| r["sku_id"] == sku.as_str() && r["shards"] == 4).cloned()
        })
        .await;
    assert_eq!(row["available"].as_i64(), Some(after), "{row}");
    assert_eq!(h.public_available(&product, &sku).await, after, "re-sharding moves no unit");
    h.until("the row to show 4 shards", || async { h.row(&sku).await.find(Locator::Css("[data-testid=shards-input]")).await.ok()?.prop("value").await.ok()?.filter(|v| v == "4") }).await;
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
    let token = h.login(CUSTOMER).await;
    h.order_one(&token, &sku).await;
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

#[tokio::test]
async fn desktop_e2e_a_new_product_is_found_by_storefront_search() {
    let h = Harness::start("product").await;
    h.sign_in_as_seller().await;
    h.open("tab-products").await;
    h.open("product-new").await;
    // A word no demo product has, so the search finds this one alone.
    let word = format!("Zephyrlamp{}", std::process::id());
    let title = format!("{word} Brass Desk Lamp");
    h.fill("[data-testid=product-title]", &title).await;
    h.fill("[data-testid=product-description]", "A heavy brass lamp with a linen shade.").await;
    h.fill("[data-testid=product-brand]", "Lumo").await;
    h.fill("[data-testid=product-attributes]", "Material: Brass").await;
    h.fill("[data-testid=sku-attributes]", "Finish: Polished").await;
    h.fill("[data-testid=sku-price]", "49.90").await;
    h.fill("[data-testid=sku-stock]", "12").await;
    h.screenshot("form").await;
    h.open("product-save").await;
    let saved = h.until("the saved product", || async { h.text_of("[data-testid=product-saved]").await.filter(|t| !t.is_empty()) }).await;
    assert!(saved.contains(&title), "{saved}");
    h.screenshot("list").await;

    let found = h
        .until("the product in storefront search", || async {
            let url = format!("{}api/v1/products?q={word}", h.base);
            let page: Value = h.http.get(url).send().await.ok()?.json().await.ok()?;
            let hits = page["hits"].as_array()?.clone();
            hits.into_iter().find(|hit| hit["title"] == title.as_str())
        })
        .await;
    let product: Value = h.http.get(format!("{}api/v1/products/{}", h.base, found["id"].as_str().unwrap())).send().await.unwrap().json().await.unwrap();
    assert_eq!(product["skus"][0]["price_cents"], 4990, "{product}");
    assert_eq!(product["skus"][0]["available"], 12, "{product}");
    let me = h.get("api/v1/me", &h.login(SELLER).await).await;
    assert_eq!(product["seller"]["id"], me["seller_id"], "the demo seller's own shop: {product}");
}

#[tokio::test]
async fn desktop_e2e_shipping_an_order_shows_it_shipped_to_the_customer() {
    let h = Harness::start("ship").await;
    h.sign_in_as_seller().await;
    // The third row: the stock tests use the first two.
    let sku = h.stock_rows().await.remove(2).attr("data-sku-id").await.unwrap().unwrap();
    h.open("tab-orders").await;
    h.wait_css("[data-testid=orders-filter]").await;
    let customer = h.login(CUSTOMER).await;
    let order_id = h.order_one(&customer, &sku).await;
    let row = format!("[data-testid=order-row][data-order-id='{order_id}']");
    // Placed while the screen is open: the list's own refresh brings it.
    h.wait_css(&format!("{row} [data-testid=ship-open]")).await.click().await.unwrap();
    h.fill(&format!("{row} [data-testid=ship-carrier]"), "DHL").await;
    h.fill(&format!("{row} [data-testid=ship-tracking]"), "JD0146000031").await;
    h.screenshot("ship-form").await;
    h.wait_css(&format!("{row} [data-testid=ship-submit]")).await.click().await.unwrap();
    let status = h.until("the row to say shipped", || async { h.text_of(&format!("{row} [data-testid=order-status]")).await.filter(|s| s.eq_ignore_ascii_case("shipped")) }).await;
    assert!(status.eq_ignore_ascii_case("shipped"));
    h.screenshot("shipped").await;

    let order = h.get(&format!("api/v1/orders/{order_id}"), &customer).await;
    assert_eq!(order["status"], "SHIPPED", "{order}");
}

#[tokio::test]
async fn desktop_e2e_the_flash_dashboard_follows_purchases_live() {
    let h = Harness::start("flash").await;
    h.sign_in_as_seller().await;
    // An SKU with room for the sale, from the end of the list (the other
    // tests use the first rows).
    let seller = h.login(SELLER).await;
    let skus = h.get("api/v1/seller/skus?limit=100", &seller).await;
    let sku = skus["items"].as_array().unwrap().iter().rev().find(|s| s["available"].as_i64().unwrap() >= 20).expect("an SKU with 20 units")["sku_id"]
        .as_str()
        .unwrap()
        .to_owned();

    h.open("tab-flash").await;
    h.open("flash-new").await;
    h.wait_css(&format!("[data-testid=flash-sku] option[value='{sku}']")).await.click().await.unwrap();
    h.fill("[data-testid=flash-quantity]", "10").await;
    h.fill("[data-testid=flash-price]", "5.00").await;
    h.fill("[data-testid=flash-minutes]", "10").await;
    h.screenshot("form").await;
    h.open("flash-create").await;
    let sale = h.wait_css("[data-testid=flash-row]").await.attr("data-sale-id").await.unwrap().unwrap();
    h.wait_css(&format!("[data-testid=flash-row][data-sale-id='{sale}'] [data-testid=flash-watch]")).await.click().await.unwrap();

    // The sale starts a few seconds after it was made: wait for its first live figures.
    h.until("the sale to go live", || async { h.text_of("[data-testid=flash-status]").await.filter(|t| t == "live") }).await;
    assert_eq!(h.text_of("[data-testid=flash-remaining]").await.as_deref(), Some("10"));
    assert_eq!(h.text_of("[data-testid=flash-orders-per-s]").await.as_deref(), Some("0.0"));

    // Three customers buy one unit each and pay.
    let tokens = std::env::temp_dir().join(format!("mercato-desktop-buyers-{}", std::process::id()));
    let made = Command::new(required("MERCATO_E2E_SERVER")).args(["loadtest-users", "--count", "3", "--out"]).arg(&tokens).status().unwrap();
    assert!(made.success());
    let buyers: Vec<String> = std::fs::read_to_string(&tokens).unwrap().lines().map(str::to_owned).collect();
    let _ = std::fs::remove_file(&tokens);
    for buyer in &buyers {
        let bought = h.api(reqwest::Method::POST, &format!("api/v1/flash-sales/{sale}/buy"), buyer, json!({ "quantity": 1 })).await;
        assert_eq!(bought["state"], "reserved", "{bought}");
        h.checkout(buyer).await;
    }
    let paid = Instant::now();

    // The dashboard shows it without a click: fewer units, orders per second.
    let (remaining, orders) = h
        .until("the dashboard to show the purchases", || async {
            let remaining = h.text_of("[data-testid=flash-remaining]").await?;
            let orders = h.text_of("[data-testid=flash-orders-per-s]").await?;
            (remaining == "7" && orders != "0.0").then_some((remaining, orders))
        })
        .await;
    let seen_after = paid.elapsed();
    h.screenshot("dashboard").await;
    eprintln!("dashboard showed remaining {remaining}, orders/s {orders} {seen_after:?} after the last payment");
    assert!(seen_after <= Duration::from_secs(2), "the dashboard took {seen_after:?} (the issue allows 2 s)");
    assert_eq!(h.text_of("[data-testid=flash-oversold]").await.as_deref(), Some("0"));
    assert!(h.text_of("[data-testid=flash-last-update]").await.unwrap().starts_with("last update"));
}

#[tokio::test]
async fn desktop_e2e_a_shop_that_stops_answering_shows_a_banner_that_clears_when_it_is_back() {
    let mut h = Harness::start("unreachable").await;
    h.sign_in_as_seller().await;
    h.stock_rows().await;
    stop(&mut h.server.0);
    h.app.find(Locator::XPath("//button[normalize-space()='Refresh']")).await.unwrap().click().await.unwrap();
    let banner = h.until("the banner", || async { h.text_of("[data-testid=unreachable]").await }).await;
    assert!(banner.contains("cannot be reached"), "{banner}");
    assert!(!h.stock_rows().await.is_empty(), "the rows stay on screen");
    h.screenshot("banner").await;

    // Back on the same address: the banner's own retry notices.
    let port: u16 = h.base.trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap();
    h.server = serve(port, &h.http).await;
    h.until("the banner to clear", || async { h.app.find(Locator::Css("[data-testid=unreachable]")).await.is_err().then_some(()) }).await;
}

#[tokio::test]
async fn desktop_e2e_a_session_that_ends_mid_edit_asks_to_sign_in_and_keeps_the_form() {
    let h = Harness::start("session-ends").await;
    h.sign_in_as_seller().await;
    h.open("tab-products").await;
    h.open("product-new").await;
    let title = format!("Kept Across Sign-in {}", std::process::id());
    h.fill("[data-testid=product-title]", &title).await;
    h.fill("[data-testid=product-brand]", "Lumo").await;
    h.fill("[data-testid=sku-price]", "12.00").await;

    // The shop forgets every session (as a Redis flush would).
    let prefix = required("MERCATO_REDIS_PREFIX");
    let redis = required("REDIS_URL");
    let keys = Command::new("redis-cli").args(["-u", &redis, "--scan", "--pattern", &format!("{prefix}session*")]).output().unwrap();
    for key in String::from_utf8_lossy(&keys.stdout).lines() {
        assert!(Command::new("redis-cli").args(["-u", &redis, "unlink", key]).status().unwrap().success());
    }

    h.open("product-save").await;
    h.wait_css("[role=dialog] [data-testid=sign-in-password]").await.send_keys(SELLER.1).await.unwrap();
    h.screenshot("asked").await;
    h.wait_css("[role=dialog] [data-testid=sign-in-submit]").await.click().await.unwrap();
    h.until("the dialog to close", || async { h.app.find(Locator::Css("[role=dialog]")).await.is_err().then_some(()) }).await;
    let kept = h.wait_css("[data-testid=product-title]").await.prop("value").await.unwrap().unwrap();
    assert_eq!(kept, title, "what was typed is still there");

    h.open("product-save").await;
    let saved = h.until("the saved product", || async { h.text_of("[data-testid=product-saved]").await.filter(|t| !t.is_empty()) }).await;
    assert!(saved.contains(&title), "{saved}");
}

#[tokio::test]
async fn desktop_e2e_a_csv_file_is_previewed_then_applied_row_by_row() {
    let h = Harness::start("csv").await;
    h.sign_in_as_seller().await;
    let rows = h.stock_rows().await;
    let (sku, product) = (rows[3].attr("data-sku-id").await.unwrap().unwrap(), rows[3].attr("data-product-id").await.unwrap().unwrap());
    let reserved: i64 = h.cell_of(&sku, "stock-reserved").await.unwrap().parse().unwrap();
    let before = h.public_available(&product, &sku).await;
    assert_ne!(before, 77 - reserved, "the file must change something");
    let file = std::env::temp_dir().join(format!("mercato-stock-{}.csv", std::process::id()));
    std::fs::write(&file, format!("sku_id,stock_count\n{sku},77\nnot-a-sku,3\n")).unwrap();

    h.wait_css("[data-testid=csv-file]").await.send_keys(file.to_str().unwrap()).await.unwrap();
    let preview = h.until("the preview", || h.text_of("[data-testid=csv-preview]")).await;
    assert!(preview.contains("1 of 2 rows can be applied"), "{preview}");
    assert!(preview.contains("is not a SKU id"), "{preview}");
    assert_eq!(h.public_available(&product, &sku).await, before, "a preview sends nothing");
    h.screenshot("preview").await;
    h.open("csv-apply").await;
    let results = h.until("the results", || h.text_of("[data-testid=csv-results]")).await;
    assert!(results.contains("1 applied, 0 refused"), "{results}");
    h.screenshot("results").await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(h.public_available(&product, &sku).await, 77 - reserved, "shoppers see the file's figure");
}

#[tokio::test]
async fn desktop_e2e_an_admin_runs_reconciliation_and_reads_the_report() {
    let h = Harness::start("admin").await;
    h.sign_in_as(ADMIN).await;
    h.open("tab-admin").await;
    h.open("reconcile").await;
    let report = h.until("the drift report", || h.text_of("[data-testid=reconcile-report]")).await;
    assert!(report.contains("SKUs checked"), "{report}");
    assert!(report.contains("No drift") || report.contains("corrected"), "{report}");
    h.screenshot("report").await;
}
