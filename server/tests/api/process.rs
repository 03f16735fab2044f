//! The real binary: how it starts, fails and stops.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const SERVER: &str = env!("CARGO_BIN_EXE_server");

async fn run_to_exit(envs: &[(&str, &str)]) -> (i32, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(SERVER)
            .arg("serve")
            .env("MERCATO_ADDR", "127.0.0.1:0")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output(),
    )
    .await
    .expect("the server gives up quickly")
    .expect("server binary runs");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn closed_database_port_gives_one_clear_line_and_a_failing_exit() {
    let (code, stderr) = run_to_exit(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/mercato")]).await;
    assert_ne!(code, 0);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line, no backtrace:\n{stderr}");
    let line = lines[0];
    assert!(line.contains("PostgreSQL") && line.contains("DATABASE_URL") && line.contains("127.0.0.1:1"), "{line}");
    assert!(!line.contains("panicked"), "{line}");
}

#[tokio::test]
async fn malformed_urls_are_refused_before_connecting() {
    let (code, stderr) = run_to_exit(&[("DATABASE_URL", "not a url")]).await;
    assert_ne!(code, 0);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");

    let (code, stderr) = run_to_exit(&[("REDIS_URL", "http://127.0.0.1:6379")]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("REDIS_URL"), "{stderr}");
}

#[tokio::test]
async fn unreachable_redis_gives_one_clear_line() {
    let port = crate::helpers::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let (code, stderr) = run_to_exit(&[("REDIS_URL", &url)]).await;
    assert_ne!(code, 0);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Redis") && stderr.contains("REDIS_URL"), "{stderr}");
}

/// SIGTERM stops the server cleanly (exit 0) after it stops accepting work.
#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let mut child = Command::new(SERVER)
        .arg("serve")
        .env("MERCATO_ADDR", "127.0.0.1:0")
        .env("MERCATO_REDIS_PREFIX", format!("test:{}:", uuid::Uuid::new_v4().simple()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("Mercato is serving at ") {
                return url.to_owned();
            }
        }
        panic!("server exited before serving");
    })
    .await
    .expect("server starts");

    let health = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);

    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("stops within the grace period")
        .unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(reqwest::get(format!("{url}/healthz")).await.is_err(), "no longer listening");
}
