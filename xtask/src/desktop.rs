//! The seller desktop app (`admin-desktop/`): building its UI into
//! `admin-desktop/dist` (which the app embeds), `cargo xtask desktop`, and
//! its suites inside `cargo xtask test`.

use std::process::Command;

use crate::services::Env;
use crate::{cmd, root, step, tools, Result};

/// The virtual screen the end-to-end tests run on: the window's own size.
const XVFB_SCREEN: &str = "-screen 0 1280x800x24";

/// The Leptos UI to wasm, its JS glue, page and stylesheet into `dist/`.
pub fn build_ui(release: bool) -> Result {
    let root = root();
    step("Building the desktop app's UI (wasm)");
    let mut build = cmd::cargo();
    build.args(["build", "-p", "admin-desktop-ui", "--target", "wasm32-unknown-unknown"]).current_dir(&root);
    if release {
        build.args(["--profile", "wasm-release"]);
    }
    cmd::run(&mut build)?;
    let profile = if release { "wasm-release" } else { "debug" };
    let wasm = root.join(format!("target/wasm32-unknown-unknown/{profile}/admin-desktop-ui.wasm"));
    let dist = root.join("admin-desktop/dist");
    cmd::run(
        Command::new("wasm-bindgen")
            .args(["--target", "web", "--no-typescript", "--out-name", "ui", "--out-dir"])
            .arg(dist.join("pkg"))
            .arg(&wasm),
    )?;
    let ui = root.join("admin-desktop/ui");
    for (from, to) in [("index.html", "index.html"), ("boot.js", "boot.js"), ("style/app.css", "app.css")] {
        std::fs::copy(ui.join(from), dist.join(to)).map_err(|e| format!("cannot copy admin-desktop/ui/{from} into dist: {e}"))?;
    }
    Ok(())
}

/// `cargo xtask desktop [--release] [--build-only]`: build the app and open
/// it against the shop at `MERCATO_SERVER_URL` (default the local one that
/// `cargo xtask run` serves).
pub fn run(args: &[String]) -> Result {
    let release = args.iter().any(|a| a == "--release");
    let build_only = args.iter().any(|a| a == "--build-only");
    if let Some(other) = args.iter().find(|a| !matches!(a.as_str(), "--release" | "--build-only")) {
        return Err(format!("unknown option {other}: cargo xtask desktop [--release] [--build-only]"));
    }
    let root = root();
    tools::ensure(tools::Purpose::Desktop)?;
    build_ui(release)?;
    step("Building the desktop app");
    let mut build = cmd::cargo();
    build.args(["build", "-p", "admin-desktop"]).current_dir(&root);
    if release {
        // Tauri's switch from a dev server to the embedded files for release builds.
        build.args(["--release", "--features", "tauri/custom-protocol"]);
    }
    cmd::run(&mut build)?;
    let app = root.join(format!("target/{}/admin-desktop", if release { "release" } else { "debug" }));
    println!("    built {}", app.display());
    if build_only {
        return Ok(());
    }

    let url = std::env::var("MERCATO_SERVER_URL").unwrap_or_else(|_| "http://127.0.0.1:3000/".to_owned());
    if !answers(&url) {
        println!(
            "\n    The shop is not answering at {url}: start it with `cargo xtask run` in another terminal;\n    the app shows a banner and keeps retrying."
        );
    }
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        return Err(format!(
            "no display to open a window on: for a headless check use\n    xvfb-run -a -s '{XVFB_SCREEN}' cargo xtask desktop"
        ));
    }
    step(&format!("Opening Mercato Seller against {url}"));
    let mut open = if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        // GTK wants a session bus; one of its own leaves no daemons behind.
        let mut c = Command::new("dbus-run-session");
        c.arg("--").arg(&app);
        c
    } else {
        Command::new(&app)
    };
    cmd::run(open.env("MERCATO_DESKTOP_SERVER_URL", &url))
}

/// Does anything accept connections at the URL's host and port?
fn answers(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let with_port = if authority.contains(':') {
        authority.to_owned()
    } else if url.starts_with("https") {
        format!("{authority}:443")
    } else {
        format!("{authority}:80")
    };
    use std::net::ToSocketAddrs;
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok())
}

/// Inside `cargo xtask test`: the Rust side's unit tests always; with the
/// end-to-end suite, the app itself driven through tauri-driver against a
/// real server on a fresh seeded database, under a virtual screen.
pub fn test(env: &Env, with_e2e: bool, tally: &mut cmd::Tally) -> Result {
    let root = root();
    if !with_e2e {
        step("Desktop app: unit tests (no window)");
        let mut unit = cmd::cargo();
        unit.args(["test", "-p", "admin-desktop", "--lib", "--color", "always"]).current_dir(&root);
        return cmd::run_counting(&mut unit, tally);
    }
    build_ui(false)?;

    step("Fresh database for the desktop suite");
    let e2e = crate::services::fresh_database(env, "mercato_desktop_e2e")?;
    let server = root.join("target/debug/server");
    let prefix = format!("desktop:{}:", std::process::id());
    cmd::run(e2e.apply(&mut cmd::command(&server)).env("MERCATO_REDIS_PREFIX", &prefix).arg("seed"))?;

    step("Desktop app: unit tests and the end-to-end suite (tauri-driver, WebKitWebDriver, Xvfb)");
    let shots = root.join("target/desktop-e2e");
    std::fs::create_dir_all(&shots).map_err(|e| e.to_string())?;
    let mut suite = Command::new("xvfb-run");
    suite
        .args(["-a", "-s", XVFB_SCREEN, "dbus-run-session", "--"])
        .arg(cmd::cargo().get_program())
        .args(["test", "-p", "admin-desktop", "--no-fail-fast", "--color", "always", "--", "--test-threads=1"])
        .current_dir(&root)
        .env("MERCATO_E2E_SERVER", &server)
        .env("MERCATO_REDIS_PREFIX", &prefix)
        .env("TAURI_DRIVER", tools::tauri_driver_bin())
        .env("MERCATO_E2E_SCREENSHOTS", &shots)
        .env("LEPTOS_SITE_ROOT", root.join("target/site"));
    e2e.apply(&mut suite);
    cmd::run_counting(&mut suite, tally)
}
