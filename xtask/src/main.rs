//! `cargo xtask run` and `cargo xtask test`: the README's two commands.
//!
//! Each one first makes the machine able to do the job (installs what is
//! missing, starts PostgreSQL and Redis when none answer), then does it.
//! Nothing here downloads from GitHub: every tool comes from apt, npm or
//! crates.io.

mod cmd;
mod desktop;
mod meili;
mod services;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <run|test|desktop>
  run    install what is missing, start PostgreSQL and Redis if needed, migrate,
         seed the demo catalog when empty, build and serve http://127.0.0.1:3000
         (MERCATO_SEARCH=meilisearch: search on Meilisearch, started when needed)
  test   the same setup, then every Rust test (the Meilisearch ones against a
         Meilisearch started for the run when this machine has one) and the
         Playwright browser suite and the desktop app's end-to-end suite under
         Xvfb (--no-e2e leaves both out)
  desktop  build the seller desktop app and open it against the shop at
         MERCATO_SERVER_URL (default http://127.0.0.1:3000, which `run` serves);
         --release for an optimised build, --build-only to build and stop";

fn main() -> ExitCode {
    // The first argument is the program's own path.
    let args: Vec<String> = std::env::args().collect::<Vec<_>>().split_off(1);
    let result = match args.first().map(String::as_str) {
        Some("run") => run(),
        Some("test") => test(&args[1..]),
        Some("desktop") => desktop::run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown command\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Empty: already reported above the test counts, which stay last.
            if !message.is_empty() {
                eprintln!("\nxtask: error: {message}");
            }
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
    // Started before the long build so a missing binary fails fast; held
    // until the shop stops (Ctrl-C reaches both).
    let meili = match std::env::var("MERCATO_SEARCH").unwrap_or_default().as_str() {
        "" | "tantivy" => None,
        "meilisearch" => Some(meili::for_run()?),
        other => return Err(format!("MERCATO_SEARCH={other}: use tantivy (the default, embedded) or meilisearch")),
    };

    step("Building the shop (release: optimised wasm and server)");
    // --precompress writes .gz and .br beside the wasm, JS and CSS, which
    // the file handler serves to browsers that accept them: the 2.4 MB wasm
    // goes out as about 0.6 MB. --split cuts each page into a chunk of its
    // own (app/src/routes.rs), so a page's first load skips the others' code.
    cmd::run(cmd::cargo().args(["leptos", "build", "--release", "--precompress", "--split"]).current_dir(&root))?;

    let server = root.join("target/release/server");
    step("Migrating and seeding the demo catalog when empty");
    cmd::run(env.apply(&mut cmd::command(&server)).arg("migrate"))?;
    cmd::run(env.apply(&mut cmd::command(&server)).args(["seed", "--if-empty"]))?;

    let addr = std::env::var("MERCATO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let engine = meili.as_ref().map_or("the embedded index".to_owned(), |m| format!("Meilisearch at {}", m.url));
    step(&format!("Serving the shop at http://{addr}, search on {engine}  (Ctrl-C to stop)"));
    println!("\n    Mercato: http://{addr}\n");
    let mut serve = cmd::command(&server);
    env.apply(&mut serve)
        .arg("serve")
        .env("MERCATO_ADDR", &addr)
        .env("LEPTOS_SITE_ROOT", root.join("target/site"))
        .current_dir(&root);
    // Demo warehouse delays: a placed order is picked, shipped and
    // DELIVERED within two minutes (production waits hours); the caller's
    // own MERCATO_WAREHOUSE_* win.
    for (var, ms) in [("MERCATO_WAREHOUSE_PICK_MS", "15000"), ("MERCATO_WAREHOUSE_SHIP_MS", "20000"), ("MERCATO_WAREHOUSE_DELIVER_MS", "30000")] {
        if std::env::var_os(var).is_none() {
            serve.env(var, ms);
        }
    }
    // The embedded index is kept between runs, so a restart reopens it
    // instead of rebuilding; the caller's own MERCATO_SEARCH_DIR wins.
    if std::env::var_os("MERCATO_SEARCH_DIR").is_none() {
        serve.env("MERCATO_SEARCH_DIR", root.join("target/search-index"));
    }
    match &meili {
        Some(meili) => meili.apply(&mut serve),
        // Asked for the embedded index: a MEILI_URL in the environment must not override it.
        None => serve.env_remove("MEILI_URL"),
    };
    let served = cmd::run(&mut serve);
    drop(meili);
    served
}

fn test(extra: &[String]) -> Result {
    let root = root();
    let skip_e2e = extra.iter().any(|a| a == "--no-e2e");
    tools::ensure(if skip_e2e { tools::Purpose::TestRust } else { tools::Purpose::Test })?;
    let env = services::ensure("mercato_test")?;
    let meili = meili::for_tests()?;
    let mut tally = cmd::Tally::default();
    let mut notes = Vec::new();
    let mut failures = Vec::new();

    step("Rust tests (unit and integration, against real PostgreSQL, Redis and Meilisearch)");
    let mut cargo_test = cmd::cargo();
    // --no-fail-fast: one failing test binary must not keep the others from
    // running, or the counts would leave them out without a word.
    // The desktop app has a step of its own below (its end-to-end tests
    // need the UI built and a virtual screen).
    cargo_test
        .args(["test", "--workspace", "--exclude", "admin-desktop", "--exclude", "admin-desktop-ui", "--no-fail-fast", "--color", "always"])
        .current_dir(&root);
    env.apply(&mut cargo_test);
    match &meili {
        Some(meili) => {
            meili.apply(&mut cargo_test);
        }
        None => {
            // Left out by name, so cargo counts them as filtered out (our
            // "skipped"), never as passed.
            cargo_test.env_remove("MEILI_URL").args(["--", "--skip", meili::TEST_MARKER]);
            notes.push(format!(
                "Meilisearch tests (every `{}` test) skipped: {}",
                meili::TEST_MARKER,
                meili::ABSENT
            ));
        }
    }
    let rust = cmd::run_counting(&mut cargo_test, &mut tally);
    // Stopped before the browser suite, which does not use it.
    drop(meili);
    if let Err(failed) = rust {
        failures.push(failed);
        return finish(&tally, &notes, &failures);
    }

    if skip_e2e {
        if let Err(failed) = desktop::test(&env, false, &mut tally) {
            failures.push(failed);
        }
        notes.push("browser and desktop end-to-end suites skipped: --no-e2e".to_owned());
        return finish(&tally, &notes, &failures);
    }

    step("Building the storefront for the browser suite (wasm + server)");
    // Split as `run` builds it, so the suite loads pages the way shoppers do.
    cmd::run(cmd::cargo().args(["leptos", "build", "--split"]).current_dir(&root))?;

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
    if let Err(failed) = cmd::run_counting(&mut playwright, &mut tally) {
        failures.push(failed);
    }

    if let Err(failed) = desktop::test(&env, true, &mut tally) {
        failures.push(failed);
    }
    finish(&tally, &notes, &failures)
}

/// The closing lines: what was left out and why, what failed, then the
/// counts alone on the last line. An error when a runner failed, carrying no
/// message of its own: it is printed here, above the counts.
fn finish(tally: &cmd::Tally, notes: &[String], failures: &[String]) -> Result {
    println!();
    for note in notes {
        println!("xtask test: {note}");
    }
    for failure in failures {
        println!("xtask test: error: {failure}");
    }
    println!("{}", tally.summary());
    if failures.is_empty() { Ok(()) } else { Err(String::new()) }
}
