use sqlx::PgPool;

use crate::helpers::TestApp;

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn metrics_count_requests_and_time_them_per_route(db: PgPool) {
    let app = TestApp::spawn(db).await;
    for _ in 0..3 {
        assert_eq!(app.get("/healthz").await.status(), 200);
    }
    app.get("/api/v1/does-not-exist").await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().contains("text"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"mercato_http_requests_total{method="GET",route="/healthz",status="200"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"mercato_http_requests_total{method="GET",route="/api/{*rest}",status="404"} 1"#),
        "unknown paths are grouped under their route template, not the raw path:\n{text}"
    );
    assert!(text.contains(r#"mercato_http_request_duration_seconds_bucket{le="0.05",method="GET",route="/healthz"}"#)
        || text.contains(r#"mercato_http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.05"}"#),
        "{text}");
    assert!(!text.contains("does-not-exist"), "raw paths never become labels");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn every_response_carries_a_request_id(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.get("/healthz").await;
    let id = response.headers().get("x-request-id").expect("x-request-id set").to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "generated ids are UUIDs: {id}");

    // A caller's id is kept, so one id follows a request across services.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc-123");
}
