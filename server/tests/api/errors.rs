use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::TestApp;

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn unknown_api_routes_get_a_json_404(db: PgPool) {
    let app = TestApp::spawn(db).await;
    for path in ["/api/v1/nope", "/api/v1/products/123/nope", "/api"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}");
        assert!(body["message"].as_str().unwrap().contains(path), "{body}");
    }
    let response = app.client.delete(app.url("/api/v1/anything")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn unknown_pages_get_a_real_html_404(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), 404);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains("Page not found"), "{html}");
    assert!(html.contains("<title>Page not found · Mercato</title>"), "{html}");
    assert!(html.contains(r#"href="/""#), "offers a way back");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn oversized_bodies_are_refused_with_413(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app
        .client
        .post(app.url("/api/v1/anything"))
        .header("content-type", "application/json")
        .header("content-length", (2 * 1024 * 1024).to_string())
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}
