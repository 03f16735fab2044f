//! `cargo xtask run` and `cargo xtask test`: the README's two commands.
//!
//! Each one first makes the machine able to do the job (installs what is
//! missing, starts PostgreSQL and Redis when none answer), then does it.
//! Nothing here downloads from GitHub: every tool comes from apt, npm or
//! crates.io.

mod cmd;
mod services;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <run|test>
  run    install what is missing, start PostgreSQL and Redis if needed, migrate,
         seed the demo catalog when empty, build and serve http://127.0.0.1:3000
  test   the same setup, then every Rust test and the Playwright browser suite";

fn main() -> ExitCode {
    // The first argument is the program's own path.
    let args: Vec<String> = std::env::args().collect::<Vec<_>>().split_off(1);
    let result = match args.first().map(String::as_str) {
        Some("run") => run(),
        Some("test") => test(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown command\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nxtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

pub type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_path_buf()
}

pub fn step(message: &str) {
    println!("\n==> {message}");
}

fn run() -> Result {
    let root = root();
    tools::ensure(tools::Purpose::Run)?;
    let env = services::ensure("mercato")?;

    step("Building the shop (release: optimised wasm and server)");
    cmd::run(cmd::cargo().args(["leptos", "build", "--release"]).current_dir(&root))?;

    let server = root.join("target/release/server");
    step("Migrating and seeding the demo catalog when empty");
    cmd::run(env.apply(&mut cmd::command(&server)).arg("migrate"))?;
    cmd::run(env.apply(&mut cmd::command(&server)).args(["seed", "--if-empty"]))?;

    let addr = std::env::var("MERCATO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    step(&format!("Serving the shop at http://{addr}  (Ctrl-C to stop)"));
    println!("\n    Mercato: http://{addr}\n");
    let mut serve = cmd::command(&server);
    env.apply(&mut serve)
        .arg("serve")
        .env("MERCATO_ADDR", &addr)
        .env("LEPTOS_SITE_ROOT", root.join("target/site"))
        .current_dir(&root);
    cmd::run(&mut serve)
}

/// The Meilisearch adapter is tested against an HTTP fake always, and against
/// a real server only when MEILI_URL names one: say which happened.
fn meili_note() {
    if std::env::var_os("MEILI_URL").is_none() {
        println!("note: shop::search::meili ran against its HTTP fake only; the real-server test was skipped (MEILI_URL not set)");
    }
}

fn test(extra: &[String]) -> Result {
    let root = root();
    let skip_e2e = extra.iter().any(|a| a == "--no-e2e");
    tools::ensure(if skip_e2e { tools::Purpose::Run } else { tools::Purpose::Test })?;
    let env = services::ensure("mercato_test")?;
    let mut tally = cmd::Tally::default();

    step("Rust tests (unit and integration, against real PostgreSQL and Redis)");
    let mut cargo_test = cmd::cargo();
    cargo_test.args(["test", "--workspace", "--color", "always"]).current_dir(&root);
    env.apply(&mut cargo_test);
    cmd::run_counting(&mut cargo_test, &mut tally)?;

    if skip_e2e {
        println!("\nxtask test: {} passed, {} failed (browser suite skipped: --no-e2e)", tally.passed, tally.failed);
        meili_note();
        return Ok(());
    }

    step("Building the storefront for the browser suite (wasm + server)");
    cmd::run(cmd::cargo().args(["leptos", "build"]).current_dir(&root))?;

    step("Fresh database for the browser suite");
    let e2e = services::fresh_database(&env, "mercato_e2e")?;
    let server = root.join("target/debug/server");
    // The browser suite's own Redis prefix, also for the seed: seeding clears
    // caches and stock counters under its prefix, never anyone else's.
    let prefix = format!("e2e:{}:", std::process::id());
    cmd::run(e2e.apply(&mut cmd::command(&server)).env("MERCATO_REDIS_PREFIX", &prefix).arg("seed"))?;

    step("Playwright suite (Debian Chromium)");
    let port = services::free_port()?;
    let mut playwright = cmd::command(root.join("node_modules/.bin/playwright"));
    playwright
        .args(["test"])
        .current_dir(root.join("end2end"))
        .env("MERCATO_E2E_PORT", port.to_string())
        .env("MERCATO_E2E_SERVER", &server)
        .env("LEPTOS_SITE_ROOT", root.join("target/site"))
        .env("MERCATO_REDIS_PREFIX", &prefix);
    e2e.apply(&mut playwright);
    cmd::run_counting(&mut playwright, &mut tally)?;

    println!("\nxtask test: {} passed, {} failed", tally.passed, tally.failed);
    meili_note();
    Ok(())
}
