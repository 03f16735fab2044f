//! Graceful shutdown: a request already in flight when the signal arrives
//! still gets its answer; new connections are refused.

use std::time::Duration;

use leptos::server_fn::ServerFn;
use server::config::Config;
use server::startup::Application;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::redis_url;

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn in_flight_requests_finish_after_the_shutdown_signal(db: PgPool) {
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let config = Config::from_lookup(|key| match key {
        "MERCATO_ADDR" => Some("127.0.0.1:0".into()),
        "MERCATO_REDIS_PREFIX" => Some(prefix.clone()),
        "REDIS_URL" => Some(redis_url()),
        _ => std::env::var(key).ok(),
    })
    .unwrap();
    let kv = shop::kv::Kv::connect(&redis_url(), prefix.clone()).await.unwrap();
    let app = Application::with_shop(config, shop::Shop::new(db, kv)).await.unwrap();
    let addr = app.local_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stop_rx.await;
    }));

    // A server-function call whose body is still on its way: the handler is
    // waiting to read it when shutdown begins.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
        app::server::GetHome::PATH
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Wait until the server is handling it: two requests in flight, that
    // one and the scrape asking.
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = client.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
        let in_flight = metrics.lines().find_map(|l| l.strip_prefix("mercato_http_requests_in_flight ")).and_then(|v| v.trim().parse::<i64>().ok());
        if in_flight >= Some(2) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the request never reached a handler: {in_flight:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client);

    stop_tx.send(()).unwrap();
    // The listener closes once shutdown has begun.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "new connections are still accepted after shutdown began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!server.is_finished(), "the server waits for the request in flight");

    stream.write_all(b"x=1").await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .expect("the in-flight request is answered")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("Electronics") || response.contains("categories"), "{response}");

    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops once idle")
        .unwrap()
        .unwrap();
}
