//! The storefront's pages, server-rendered: what a crawler or a shopper
//! without JavaScript receives.

use sqlx::PgPool;

use crate::helpers::TestApp;

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn home_page_is_server_rendered_with_the_catalog(db: PgPool) {
    let app = TestApp::spawn_seeded(db, 300).await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    // The shell: stylesheet, hydration scripts, labelled search and cart.
    assert!(html.contains(r#"href="/pkg/mercato.css""#), "stylesheet linked");
    assert!(html.contains("/pkg/mercato.js"), "hydration script referenced");
    assert!(html.contains(r#"<label for="site-search""#), "search box is labelled");
    assert!(html.contains(r#"data-testid="cart-badge""#));
    // Data from PostgreSQL, rendered on the server (not fetched later).
    assert!(html.contains("Shop by category"));
    assert!(html.contains("Home &amp; Kitchen") || html.contains("Home & Kitchen"), "departments rendered");
    assert_eq!(html.matches(r#"data-testid="product-card""#).count(), 12, "eight new arrivals and four top rated");
    assert!(html.contains("/images/products/"), "cards show product images");
    assert!(html.contains("€"), "prices formatted");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn product_page_has_meta_tags_variants_and_live_stock(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 300).await;
    // A product with several SKUs, one of them sold out.
    let (product, sold_out_sku): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        r#"SELECT k.product_id, k.id FROM skus k JOIN inventory i ON i.sku_id = k.id
           WHERE i.stock_count = 0 AND (SELECT count(*) FROM skus WHERE product_id = k.product_id) > 1
           ORDER BY k.id LIMIT 1"#,
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let title: String = sqlx::query_scalar("SELECT title FROM products WHERE id = $1").bind(product).fetch_one(&db).await.unwrap();

    let response = app.get(&format!("/products/{product}")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["cache-control"].to_str().unwrap().contains("max-age=30"));
    let html = response.text().await.unwrap();
    let escaped = title.replace('&', "&amp;").replace('\'', "&#x27;");
    assert!(html.contains(&format!("<title>{escaped} · Mercato</title>")), "title tag for {title}");
    assert!(html.contains(r#"<meta property="og:title""#) && html.contains(r#"<meta property="og:image""#));
    assert!(html.contains(r#"<meta name="description""#));
    assert!(html.contains(r#"data-testid="variant""#), "variant selector");
    assert!(html.contains(r#"data-testid="main-image""#), "gallery");

    // Choosing the sold-out variant by URL works without JavaScript.
    let html = app.get(&format!("/products/{product}?sku={sold_out_sku}")).await.text().await.unwrap();
    assert!(html.contains("Out of stock"), "the chosen SKU's stock is shown");

    // The figure is live: stock set in PostgreSQL shows once the counter reloads.
    sqlx::query("UPDATE inventory SET stock_count = 3 WHERE sku_id = $1").bind(sold_out_sku).execute(&db).await.unwrap();
    app.shop.inventory().forget_counters().await.unwrap();
    let html = app.get(&format!("/products/{product}?sku={sold_out_sku}")).await.text().await.unwrap();
    assert!(html.contains("Only 3 left"), "low stock wording");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn unknown_products_and_categories_are_real_404s(db: PgPool) {
    let app = TestApp::spawn_seeded(db, 50).await;
    for path in [
        "/products/01930000-0000-7000-8000-000000000000",
        "/products/not-a-uuid",
        "/c/no-such-category",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.text().await.unwrap().contains(r#"data-testid="not-found""#), "{path}");
    }
    let response = app.get("/search?price_min=abc").await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("price_min"));
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn category_page_filters_sorts_and_pages_by_cursor(db: PgPool) {
    let app = TestApp::spawn_seeded(db, 2_000).await;
    let html = app.get("/c/electronics?sort=price_asc").await.text().await.unwrap();
    assert!(html.contains(r#"data-testid="category-page""#));
    assert_eq!(html.matches(r#"data-testid="product-card""#).count(), 24);
    assert!(html.contains(r#"data-testid="brand-facet""#), "brand filter with counts");
    let next = html.split(r#"href=""#).find(|s| s.contains("cursor=")).expect("a next-page link").split('"').next().unwrap().replace("&amp;", "&");
    let page2 = app.get(&next).await;
    assert_eq!(page2.status(), 200, "{next}");
    assert_eq!(page2.text().await.unwrap().matches(r#"data-testid="product-card""#).count(), 24);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn seeding_is_deterministic_and_guarded(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let catalog = app.shop.catalog();
    assert!(catalog.is_empty().await.unwrap());
    let report = catalog.seed(shop::catalog::SeedOptions { products: 500 }).await.unwrap();
    assert_eq!(report.products, 500);
    assert_eq!(report.brands, 200);
    assert_eq!(report.sellers, 50);
    assert!((20..=25).contains(&(report.categories - 7)), "about twenty categories under seven departments");
    assert!(report.skus >= 500 && report.skus <= 2_500);
    let first: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, title FROM products ORDER BY id").fetch_all(&db).await.unwrap();
    // Seeding a catalog that has data is refused, not duplicated.
    assert!(matches!(catalog.seed(Default::default()).await, Err(shop::Error::Invalid(_))));
    assert!(first.iter().all(|(id, _)| id.get_version_num() == 7), "UUIDv7 keys");

    // Realistic spread: sold-out, low and plentiful stock; rated and unrated.
    let (sold_out, low, plenty): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE stock_count = 0), count(*) FILTER (WHERE stock_count BETWEEN 1 AND 5), count(*) FILTER (WHERE stock_count > 5) FROM inventory",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(sold_out > 0 && low > 0 && plenty > sold_out + low, "{sold_out} {low} {plenty}");
    let (unrated, rated): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE rating_count = 0), count(*) FILTER (WHERE rating_count > 0) FROM products",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(unrated > 0 && rated > unrated);
    let min_price_consistent: bool = sqlx::query_scalar(
        "SELECT bool_and(p.min_price_cents = (SELECT min(price_cents) FROM skus WHERE product_id = p.id)) FROM products p",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(min_price_consistent, "list prices follow the cheapest SKU");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_page_whose_data_cannot_load_is_a_503_with_retry_after(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 50).await;
    // PostgreSQL goes away (the pool is closed), and nothing is cached yet.
    app.shop.db.close().await;
    let response = app.get("/c/electronics").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(response.text().await.unwrap().contains("could not be loaded"));
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn add_to_cart_works_as_a_plain_form_without_javascript(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 100).await;
    let (product, sku): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "SELECT k.product_id, k.id FROM skus k JOIN inventory i ON i.sku_id = k.id WHERE i.stock_count > 10 ORDER BY k.id LIMIT 1",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let page_url = app.url(&format!("/products/{product}?sku={sku}"));
    let html = app.client.get(&page_url).send().await.unwrap().text().await.unwrap();
    // The form the browser would submit: its action and the hidden SKU.
    let form = html.split(r#"data-testid="add-to-cart-form""#).next().unwrap();
    let action = form.rsplit("action=\"").next().unwrap().split('"').next().unwrap().to_owned();
    assert!(action.starts_with("/api/"), "server function URL: {action}");
    assert!(html.contains(&format!(r#"name="sku_id" value="{sku}""#)));

    let response = app.client.post(app.url(&action))
        .header(reqwest::header::ORIGIN, format!("http://{}", app.addr))
        .header(reqwest::header::REFERER, &page_url)
        .header(reqwest::header::ACCEPT, "text/html")
        .form(&[("sku_id", sku.to_string()), ("quantity", "2".to_owned())])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "back to the page: {}", response.status());
    let cookie = response.headers().get_all(reqwest::header::SET_COOKIE).iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("mercato_guest="))
        .expect("a guest cart cookie");
    let guest = cookie.split(';').next().unwrap().to_owned();
    let cart: serde_json::Value = app.client.get(app.url("/api/v1/cart")).header(reqwest::header::COOKIE, guest).send().await.unwrap().json().await.unwrap();
    assert_eq!(cart["lines"][0]["sku_id"], sku.to_string());
    assert_eq!(cart["lines"][0]["quantity"], 2);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn the_cart_page_shows_an_empty_state_and_price_changes(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 100).await;
    let html = app.get("/cart").await.text().await.unwrap();
    assert!(html.contains(r#"data-testid="empty-cart""#), "empty state");

    let (product, sku, price): (uuid::Uuid, uuid::Uuid, i64) = sqlx::query_as(
        "SELECT k.product_id, k.id, k.price_cents FROM skus k JOIN inventory i ON i.sku_id = k.id WHERE i.stock_count > 10 ORDER BY k.id LIMIT 1",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let response = app.client.post(app.url("/api/v1/cart/items"))
        .json(&serde_json::json!({ "sku_id": sku, "quantity": 1 })).send().await.unwrap();
    let guest = response.headers()[reqwest::header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    app.shop.catalog().set_prices(product, &[shop::catalog::SkuPrice { sku_id: sku, price_cents: price + 1000 }]).await.unwrap();
    let html = app.client.get(app.url("/cart")).header(reqwest::header::COOKIE, guest).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"data-testid="price-notice""#), "the price change is announced");
    assert!(html.contains("(was "), "the old price is shown beside the new one");
    assert!(html.contains(r#"data-testid="subtotal""#));
}

/// Invariant 10: nothing personal in a response a shared cache may keep.
/// The storefront pages render the visitor (name, cart count, the user for
/// hydration), so they are public only without our cookies, and always
/// say `Vary: Cookie`; with a session or guest cookie they are private, with
/// no ETag, and a validator from someone else's copy never earns a 304.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn pages_are_shared_only_with_visitors_who_carry_no_cookie(db: PgPool) {
    use reqwest::header;
    let app = TestApp::spawn_seeded(db.clone(), 100).await;
    let product: uuid::Uuid = sqlx::query_scalar("SELECT id FROM products ORDER BY id LIMIT 1").fetch_one(&db).await.unwrap();
    app.shop.accounts().create_user("ada@example.com", "correct horse battery", "Ada Lovelace", model::Role::Customer, None).await.unwrap();
    let login: serde_json::Value = app.client.post(app.url("/api/v1/auth/login"))
        .json(&serde_json::json!({ "email": "ada@example.com", "password": "correct horse battery" }))
        .send().await.unwrap().json().await.unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let ada = format!("mercato_session={token}");
    let guest = format!("mercato_guest={}", shop::accounts::session::new_token());
    let vary_cookie = |r: &reqwest::Response| {
        r.headers().get_all(header::VARY).iter().any(|v| v.to_str().unwrap().split(',').any(|s| s.trim().eq_ignore_ascii_case("cookie")))
    };

    for path in ["/".to_owned(), "/c/electronics".to_owned(), format!("/products/{product}"), "/search?q=lamp".to_owned()] {
        // Signed out: public, cacheable, revalidates with a 304.
        let anon = app.get(&path).await;
        assert_eq!(anon.status(), 200, "{path}");
        assert!(anon.headers()[header::CACHE_CONTROL].to_str().unwrap().starts_with("public"), "{path}");
        assert!(vary_cookie(&anon), "{path}: a cache must key the page by cookie");
        let etag = anon.headers()[header::ETAG].clone();
        assert!(!anon.text().await.unwrap().contains("Ada Lovelace"));
        let again = app.client.get(app.url(&path)).header(header::IF_NONE_MATCH, etag.clone()).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert!(vary_cookie(&again), "{path}: the 304 keeps Vary");

        // Signed in, sending the public copy's validator: her own page, private.
        let mine = app.client.get(app.url(&path)).header(header::COOKIE, &ada).header(header::IF_NONE_MATCH, etag).send().await.unwrap();
        assert_eq!(mine.status(), 200, "{path}: never a 304 from another visitor's copy");
        let cc = mine.headers()[header::CACHE_CONTROL].to_str().unwrap().to_owned();
        assert!(cc.contains("private") && cc.contains("no-store") && !cc.contains("public"), "{path}: {cc}");
        assert!(mine.headers().get(header::ETAG).is_none(), "{path}: no validator to share");
        assert!(vary_cookie(&mine), "{path}");
        assert!(mine.text().await.unwrap().contains("Ada Lovelace"), "{path}: the page really is personal");

        // A guest's page shows their cart count: private too.
        let theirs = app.client.get(app.url(&path)).header(header::COOKIE, &guest).send().await.unwrap();
        assert!(theirs.headers()[header::CACHE_CONTROL].to_str().unwrap().starts_with("private"), "{path}");
        assert!(theirs.headers().get(header::ETAG).is_none(), "{path}");
    }

    // JSON that depends on the caller is private; catalog JSON is the same for all.
    let me = app.client.get(app.url("/api/v1/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers()[header::CACHE_CONTROL], "private, no-store");
    let me = app.client.get(app.url("/api/v1/me")).header(header::COOKIE, &ada).send().await.unwrap();
    assert_eq!(me.headers()[header::CACHE_CONTROL], "private, no-store");
    let orders = app.client.get(app.url("/api/v1/orders")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(orders.status(), 200);
    assert_eq!(orders.headers()[header::CACHE_CONTROL], "private, no-store");
    let item = app.client.get(app.url(&format!("/api/v1/products/{product}"))).bearer_auth(&token).send().await.unwrap();
    assert!(item.headers()[header::CACHE_CONTROL].to_str().unwrap().starts_with("public"));
}
