//! Readiness: can the shop reach what it needs right now?

use std::time::Duration;

use crate::error::Dependency;
use crate::Shop;

/// One dependency's state, as reported by `/readyz`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub latency_ms: u64,
    /// The cause, for logs only: it may name hosts, so it is never serialized.
    #[serde(skip)]
    pub error: Option<String>,
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn check_all(shop: &Shop) -> Vec<Check> {
    let (pg, redis) = tokio::join!(check_postgres(shop), check_redis(shop));
    vec![pg, redis]
}

async fn check_postgres(shop: &Shop) -> Check {
    timed(Dependency::Postgres, async {
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&shop.db)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
}

async fn check_redis(shop: &Shop) -> Check {
    timed(Dependency::Redis, async {
        let mut conn = shop.kv.conn();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
}

async fn timed(
    dependency: Dependency,
    probe: impl std::future::Future<Output = Result<(), String>>,
) -> Check {
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
    };
    Check {
        name: dependency.name(),
        ok: result.is_ok(),
        latency_ms: started.elapsed().as_millis() as u64,
        error: result.err(),
    }
}
