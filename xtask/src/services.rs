//! PostgreSQL and Redis: use the ones at DATABASE_URL / REDIS_URL when they
//! answer; otherwise start private ones (data under target/services,
//! loopback only) and use those.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{cmd, root, step, tools, Result};

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/mercato";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Ports of the private instances, chosen away from the defaults so they
/// never collide with a system PostgreSQL or Redis.
const OWN_PG_PORT: u16 = 54329;
const OWN_REDIS_PORT: u16 = 63790;

/// localstripe's port: its own default.
const LOCALSTRIPE_PORT: u16 = 8420;
/// maildev's own defaults (SMTP, web UI and REST API); MAILDEV_SMTP_PORT and
/// MAILDEV_WEB_PORT move them.
const MAILDEV_SMTP_PORT: u16 = 1025;
const MAILDEV_WEB_PORT: u16 = 1080;

/// The connection settings handed to every child process.
#[derive(Clone)]
pub struct Env {
    pub database_url: String,
    pub redis_url: String,
    pub stripe_api_base: String,
    pub smtp_url: String,
    /// maildev's REST base, when the mail goes to a maildev (tests read it).
    pub maildev_url: Option<String>,
}

impl Env {
    pub fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("DATABASE_URL", &self.database_url)
            .env("REDIS_URL", &self.redis_url)
            .env("STRIPE_API_BASE", &self.stripe_api_base)
            // Tests that stop the payment provider start their own copy.
            .env("LOCALSTRIPE_BIN", tools::localstripe_bin())
            .env("SMTP_URL", &self.smtp_url);
        if let Some(maildev) = &self.maildev_url {
            cmd.env("MAILDEV_URL", maildev);
        }
        cmd
    }
}

/// Makes the services answer and `database` exist; returns the URLs to use.
pub fn ensure(database: &str) -> Result<Env> {
    step("Checking PostgreSQL, Redis, the payment provider and the mail sink");
    let server_url = ensure_postgres()?;
    let redis_url = ensure_redis()?;
    let stripe_api_base = ensure_localstripe()?;
    let (smtp_url, maildev_url) = ensure_maildev()?;
    let database_url = with_database(&server_url, database);
    create_database_if_missing(&server_url, database)?;
    println!("    DATABASE_URL={database_url}");
    println!("    REDIS_URL={redis_url}");
    println!("    STRIPE_API_BASE={stripe_api_base}");
    println!("    SMTP_URL={}", redact(&smtp_url));
    if let Some(maildev) = &maildev_url {
        println!("    MAILDEV_URL={maildev}  (open it to read the shop's mail)");
    }
    Ok(Env { database_url, redis_url, stripe_api_base, smtp_url, maildev_url })
}

/// SMTP_URL when set (a real mail server; MAILDEV_URL passed on if set),
/// else maildev on loopback, started when its web port does not answer.
fn ensure_maildev() -> Result<(String, Option<String>)> {
    if let Ok(configured) = std::env::var("SMTP_URL") {
        println!("    mail: using {} (SMTP_URL)", redact(&configured));
        return Ok((configured, std::env::var("MAILDEV_URL").ok()));
    }
    let port = |var: &str, default: u16| -> Result<u16> {
        match std::env::var(var) {
            Ok(raw) => raw.trim().parse().map_err(|e| format!("{var}={raw:?} is not a port: {e}")),
            Err(_) => Ok(default),
        }
    };
    let (smtp, web) = (port("MAILDEV_SMTP_PORT", MAILDEV_SMTP_PORT)?, port("MAILDEV_WEB_PORT", MAILDEV_WEB_PORT)?);
    let urls = (format!("smtp://127.0.0.1:{smtp}"), Some(format!("http://127.0.0.1:{web}")));
    if maildev_answers(web) {
        println!("    mail: maildev on ports {smtp} (SMTP) and {web} (web)");
        return Ok(urls);
    }
    println!("    mail: starting maildev on ports {smtp} (SMTP) and {web} (web)");
    let dir = root().join("target/services");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.join("maildev.log")).map_err(|e| e.to_string())?;
    // setsid, as for localstripe: it outlives this command, and a later run
    // finds it answering. Loopback only: maildev binds every interface
    // unless told otherwise.
    Command::new("setsid")
        .arg(tools::maildev_bin())
        .args(["--ip", "127.0.0.1", "--smtp", &smtp.to_string(), "--web", &web.to_string(), "--silent"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start maildev: {e}"))?;
    wait_until("maildev", || maildev_answers(web) && std::net::TcpStream::connect(("127.0.0.1", smtp)).is_ok())?;
    Ok(urls)
}

/// maildev's REST API lists its mail as a JSON array.
fn maildev_answers(web_port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], web_port).into(), Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.starts_with("HTTP/1.") && answer.get(9..12) == Some("200") && answer.trim_end().ends_with("true")
}

/// STRIPE_API_BASE when set (e.g. Stripe's test mode), else localstripe on
/// its port, started when it is not running.
fn ensure_localstripe() -> Result<String> {
    if let Ok(configured) = std::env::var("STRIPE_API_BASE") {
        println!("    payments: using {configured} (STRIPE_API_BASE)");
        return Ok(configured);
    }
    let own = format!("http://127.0.0.1:{LOCALSTRIPE_PORT}");
    if localstripe_answers() {
        println!("    payments: localstripe on port {LOCALSTRIPE_PORT}");
        return Ok(own);
    }
    println!("    payments: starting localstripe on port {LOCALSTRIPE_PORT}");
    let dir = root().join("target/services");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.join("localstripe.log")).map_err(|e| e.to_string())?;
    // setsid: its own session, so it outlives this command like the
    // daemonised Redis does, and Ctrl-C on a test run does not kill it midway.
    Command::new("setsid")
        .arg(tools::localstripe_bin())
        // From scratch: localstripe otherwise reloads /tmp/localstripe.pickle,
        // which every instance on the machine overwrites.
        .args(["--port", &LOCALSTRIPE_PORT.to_string(), "--from-scratch"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start localstripe: {e}"))?;
    wait_until("localstripe", localstripe_answers)?;
    Ok(own)
}

/// A plain HTTP request: localstripe answers any `sk_test_` key.
fn localstripe_answers() -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], LOCALSTRIPE_PORT).into(), Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /v1/payment_intents HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sk_test_mercato\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// Drops and recreates `database` next to `env`'s, for a run that must start empty.
pub fn fresh_database(env: &Env, database: &str) -> Result<Env> {
    let admin = with_database(&env.database_url, "postgres");
    cmd::run(psql(&admin).args(["-c", &format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)")]))?;
    cmd::run(psql(&admin).args(["-c", &format!("CREATE DATABASE \"{database}\"")]))?;
    Ok(Env { database_url: with_database(&env.database_url, database), ..env.clone() })
}

/// The configured service when it answers, else the private instance on
/// `own_port` (started by `start` when it is not running yet).
fn use_or_start(
    name: &str,
    configured: String,
    own: String,
    own_port: u16,
    answers: fn(&str) -> bool,
    start: fn() -> Result,
) -> Result<String> {
    if answers(&configured) {
        println!("    {name}: using {}", redact(&configured));
        return Ok(configured);
    }
    let configured = redact(&configured);
    if answers(&own) {
        println!("    {name}: {configured} did not answer; using the private instance on port {own_port}");
        return Ok(own);
    }
    println!("    {name}: {configured} did not answer; starting a private instance on port {own_port}");
    start()?;
    wait_until(name, || answers(&own))?;
    Ok(own)
}

fn ensure_postgres() -> Result<String> {
    let configured = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    let own = format!("postgres://postgres@127.0.0.1:{OWN_PG_PORT}/postgres");
    use_or_start("PostgreSQL", with_database(&configured, "postgres"), own, OWN_PG_PORT, pg_answers, start_own_postgres)
}

fn start_own_postgres() -> Result {
    let bin = tools::postgres_bin_dir().ok_or("PostgreSQL server binaries not found under /usr/lib/postgresql")?;
    let dir = root().join("target/services");
    let data = dir.join("postgres");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let root_user = tools::is_root();
    // PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
    let as_pg = |program: &Path| {
        if root_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    if !data.join("PG_VERSION").exists() {
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        if root_user {
            cmd::run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data))?;
        }
        cmd::run(
            as_pg(&bin.join("initdb"))
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions", "-D"])
                .arg(&data)
                .stdout(std::process::Stdio::null()),
        )?;
    }
    let log = dir.join("postgres.log");
    if root_user && !log.exists() {
        std::fs::write(&log, "").map_err(|e| e.to_string())?;
        cmd::run(Command::new("chown").args(["postgres:postgres"]).arg(&log))?;
    }
    // No Unix socket (its path length and directory vary by machine): TCP on loopback only.
    let options = format!("-p {OWN_PG_PORT} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''");
    cmd::run(
        as_pg(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &options, "-w", "start"])
            .stdout(std::process::Stdio::null()),
    )
}

fn ensure_redis() -> Result<String> {
    let configured = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
    let own = format!("redis://127.0.0.1:{OWN_REDIS_PORT}");
    use_or_start("Redis", configured, own, OWN_REDIS_PORT, redis_answers, start_own_redis)
}

fn start_own_redis() -> Result {
    let dir = root().join("target/services/redis");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    cmd::run(
        Command::new("redis-server")
            .args(["--port", &OWN_REDIS_PORT.to_string(), "--bind", "127.0.0.1", "--daemonize", "yes"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .arg("--pidfile")
            .arg(dir.join("redis.pid")),
    )
}

fn create_database_if_missing(server_url: &str, database: &str) -> Result {
    let exists = cmd::output(psql(server_url).args([
        "-tAc",
        &format!("SELECT 1 FROM pg_database WHERE datname = '{database}'"),
    ]));
    if exists.as_deref() == Some("1") {
        return Ok(());
    }
    println!("    creating database {database}");
    cmd::run(psql(server_url).args(["-c", &format!("CREATE DATABASE \"{database}\"")]).stdout(std::process::Stdio::null()))
}

fn psql(url: &str) -> Command {
    let mut c = Command::new("psql");
    c.arg(url).args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]).env("PGCONNECT_TIMEOUT", "3");
    c
}

fn pg_answers(url: &str) -> bool {
    cmd::output(psql(url).args(["-tAc", "SELECT 1"])).as_deref() == Some("1")
}

fn redis_answers(url: &str) -> bool {
    cmd::output(Command::new("timeout").args(["5", "redis-cli", "-u", url, "ping"])).as_deref() == Some("PONG")
}

fn wait_until(what: &str, ready: impl Fn() -> bool) -> Result {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!("{what} did not start within 30 s (see target/services for its log)"))
}

/// Replaces the database name in a PostgreSQL URL, keeping any query string.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{database}?{q}"),
        None => format!("{host_part}/{database}"),
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

pub fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_the_database_name() {
        assert_eq!(with_database("postgres://u@h:5432/mercato", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://u:p@h/db?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u@h/db");
    }
}
