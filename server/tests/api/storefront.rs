use sqlx::PgPool;

use crate::helpers::TestApp;

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn home_page_is_server_rendered_with_the_catalog(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let report = app.shop.catalog().seed_demo().await.unwrap();
    assert_eq!(report.categories, 8);
    assert_eq!(report.products, 32);

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
    assert!(html.contains("Home &amp; Kitchen") || html.contains("Home & Kitchen"), "categories rendered");
    assert_eq!(html.matches(r#"data-testid="product-card""#).count(), 8, "eight new arrivals");
    assert!(html.contains("€"), "prices formatted");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn seeding_is_deterministic_and_guarded(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let catalog = app.shop.catalog();
    assert!(catalog.is_empty().await.unwrap());
    catalog.seed_demo().await.unwrap();
    assert!(!catalog.is_empty().await.unwrap());
    let first: Vec<(uuid::Uuid, String)> = sqlx::query_as("SELECT id, title FROM products ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap();
    // Seeding again in the same database conflicts on the fixed ids instead of duplicating.
    assert!(catalog.seed_demo().await.is_err());
    let ids_are_v7 = first.iter().all(|(id, _)| id.get_version_num() == 7);
    assert!(ids_are_v7, "UUIDv7 keys");
    let prices_ok: bool = sqlx::query_scalar("SELECT bool_and(price_cents > 0) FROM skus").fetch_one(&db).await.unwrap();
    assert!(prices_ok);
}
