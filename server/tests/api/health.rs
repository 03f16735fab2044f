use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{LocalRedis, TestApp};

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn healthz_answers_ok(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn readyz_is_ready_when_postgres_and_redis_answer(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    let names: Vec<&str> = body["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["postgres", "redis"]);
    assert!(body["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true));
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn readyz_names_redis_when_it_stops_and_recovers_when_it_returns(db: PgPool) {
    let mut redis = LocalRedis::start().await;
    let app = TestApp::spawn_with_redis(db, &redis.url()).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    redis.stop().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some(), "503 carries Retry-After");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "not_ready");
    assert_eq!(body["failing"], serde_json::json!(["redis"]));
    assert!(body["message"].as_str().unwrap().contains("redis"), "{body}");

    // The process keeps serving while Redis is away.
    assert_eq!(app.get("/healthz").await.status(), 200);

    redis.restart().await;
    let mut status = 0;
    for _ in 0..50 {
        status = app.get("/readyz").await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "ready again once Redis is back");
}
