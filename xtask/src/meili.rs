//! Meilisearch for the real-server tests and for `MERCATO_SEARCH=meilisearch`:
//! the server at MEILI_URL when one is given, else a private one started from
//! the binary this machine has (MERCATO_MEILISEARCH_BIN, or
//! `../shared/tools/meilisearch/meilisearch` beside the workspace), else none.
//! The project never requires Meilisearch: without one, `run` serves on the
//! embedded index and `test` leaves the Meilisearch tests out and says so.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{root, services, Result};

/// The substring every test that needs a real Meilisearch has in its name,
/// so one `--skip` leaves them all out when there is none.
pub const TEST_MARKER: &str = "real_meilisearch";

/// A Meilisearch to talk to: the configured one, or one this process started
/// (stopped, and its throwaway data removed, on drop).
pub struct Meili {
    pub url: String,
    pub key: Option<String>,
    pub origin: String,
    child: Option<Child>,
    throwaway: Option<PathBuf>,
}

impl Meili {
    pub fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("MEILI_URL", &self.url);
        match &self.key {
            Some(key) => cmd.env("MEILI_KEY", key),
            None => cmd.env_remove("MEILI_KEY"),
        }
    }
}

impl Drop for Meili {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
        if let Some(dir) = self.throwaway.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// SIGTERM first (Meilisearch finishes what it is writing), SIGKILL if it
/// has not exited after a few seconds.
fn stop(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).stderr(Stdio::null()).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// MEILI_URL (and MEILI_KEY, or MEILI_MASTER_KEY as the server also reads it)
/// when set and not empty.
fn configured() -> Option<Meili> {
    let url = std::env::var("MEILI_URL").ok().filter(|u| !u.is_empty())?;
    let key = ["MEILI_KEY", "MEILI_MASTER_KEY"].iter().find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    Some(Meili { origin: format!("{url} (MEILI_URL)"), url, key, child: None, throwaway: None })
}

/// The Meilisearch binary: MERCATO_MEILISEARCH_BIN when set (an error if it
/// names nothing), else the shared tools' copy beside the workspace.
pub fn binary() -> Result<Option<PathBuf>> {
    if let Some(named) = std::env::var_os("MERCATO_MEILISEARCH_BIN").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(named);
        return if path.is_file() {
            Ok(Some(path))
        } else {
            Err(format!("MERCATO_MEILISEARCH_BIN names {}, which is not a file", path.display()))
        };
    }
    let shared = root().join("../shared/tools/meilisearch/meilisearch");
    Ok(shared.is_file().then(|| shared.canonicalize().unwrap_or(shared)))
}

/// Why there is no Meilisearch, for the summary.
pub const ABSENT: &str = "no MEILI_URL, no MERCATO_MEILISEARCH_BIN and no ../shared/tools/meilisearch/meilisearch";

/// For `cargo xtask test`: the configured server, else a fresh private one
/// (its data under target/, removed afterwards), else None.
pub fn for_tests() -> Result<Option<Meili>> {
    if let Some(meili) = configured() {
        println!("    Meilisearch: using {}", meili.origin);
        return Ok(Some(meili));
    }
    let Some(bin) = binary()? else {
        println!("    Meilisearch: none ({ABSENT}); its tests will be skipped");
        return Ok(None);
    };
    let services = root().join("target/services");
    remove_stale_test_dirs(&services);
    // Per process, so two runs side by side never share a database.
    let dir = services.join(format!("meili-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut meili = start(&bin, &dir)?;
    meili.throwaway = Some(dir);
    println!("    Meilisearch: started {} for this run at {}", bin.display(), meili.url);
    Ok(Some(meili))
}

/// For `cargo xtask run` with MERCATO_SEARCH=meilisearch: the configured
/// server, else a private one whose data persists in target/services/meili.
pub fn for_run() -> Result<Meili> {
    if let Some(meili) = configured() {
        println!("    Meilisearch: using {}", meili.origin);
        return Ok(meili);
    }
    let bin = binary()?.ok_or_else(|| {
        format!("MERCATO_SEARCH=meilisearch needs a Meilisearch, and there is {ABSENT}: set MEILI_URL (and MEILI_KEY) to a running one, or MERCATO_MEILISEARCH_BIN to its binary")
    })?;
    let meili = start(&bin, &root().join("target/services/meili"))?;
    println!("    Meilisearch: started {} at {} (data in target/services/meili)", bin.display(), meili.url);
    Ok(meili)
}

/// Test data directories left by runs that were killed before cleaning up.
fn remove_stale_test_dirs(services: &Path) {
    let Ok(entries) = std::fs::read_dir(services) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("meili-test-").and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Starts `bin` on a free loopback port with a fresh master key, everything
/// it writes under `dir`, and waits until /health says it is available.
fn start(bin: &Path, dir: &Path) -> Result<Meili> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let port = services::free_port()?;
    let key = master_key();
    let log_path = dir.join("meilisearch.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut child = Command::new(bin)
        .arg("--db-path")
        .arg(dir.join("data.ms"))
        .arg("--dump-dir")
        .arg(dir.join("dumps"))
        .arg("--snapshot-dir")
        .arg(dir.join("snapshots"))
        .args(["--http-addr", &format!("127.0.0.1:{port}"), "--master-key", &key, "--no-analytics", "--env", "development"])
        // Its working directory is its own: Meilisearch reads ./config.toml
        // when there is one, and must not pick up anything from the workspace.
        .current_dir(dir)
        .env_remove("MEILI_CONFIG_FILE_PATH")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if healthy(port) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("Meilisearch exited ({status}) before answering; see {}", log_path.display()));
        }
        if Instant::now() > deadline {
            stop(&mut child);
            return Err(format!("Meilisearch did not answer /health within 30 s; see {}", log_path.display()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Meili {
        url: format!("http://127.0.0.1:{port}"),
        key: Some(key),
        origin: bin.display().to_string(),
        child: Some(child),
        throwaway: None,
    })
}

/// `GET /health` answers 200 `{"status":"available"}` once it serves.
fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.") && response.get(9..12) == Some("200") && response.contains("available")
}

/// A master key of 32 hex characters (Meilisearch wants at least 16 bytes),
/// new for every start: nothing else needs to know it.
fn master_key() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom: the clock and pid still make it unguessable enough
        // for a loopback-only server that lives as long as this command.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        bytes = (nanos ^ ((std::process::id() as u128) << 64)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_keys_are_long_enough_and_fresh() {
        let (a, b) = (master_key(), master_key());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
