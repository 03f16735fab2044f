//! Running child processes with clear failures, and counting test results.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::Result;

pub fn command(program: impl AsRef<OsStr>) -> Command {
    Command::new(program)
}

/// The cargo that runs us (so a rustup toolchain override is respected).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs to completion with inherited output; non-zero exit is an error.
pub fn run(cmd: &mut Command) -> Result {
    let status = cmd.status().map_err(|e| format!("cannot start `{}`: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", describe(cmd)))
    }
}

/// Runs quietly and returns trimmed stdout when it succeeds.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Passed/failed/skipped counts across the runners of one `xtask test`.
/// Skipped: tests that exist but did not run — left out by name (`--skip`,
/// which cargo reports as "filtered out"), ignored, or skipped by Playwright.
/// A test that returns early is invisible here, so none may.
#[derive(Default)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

impl Tally {
    /// The closing line: `N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed, {} skipped", self.passed, self.failed, self.skipped)
    }
}

/// Runs with stdout echoed line by line, adding up the summary lines of
/// `cargo test` ("test result: ok. 3 passed; 0 failed; 0 ignored; 0
/// measured; 2 filtered out") and Playwright ("  5 passed (3.1s)",
/// "  1 failed", "  2 skipped").
pub fn run_counting(cmd: &mut Command, tally: &mut Tally) -> Result {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", describe(cmd)))?;
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        println!("{line}");
        count_line(&strip_ansi(&line), tally);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", describe(cmd)))
    }
}

fn count_line(line: &str, tally: &mut Tally) {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("test result: ") {
        // "ok. 14 passed; 0 failed; 0 ignored; 0 measured; 2 filtered out; ..."
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let (n, kind) = match words.as_slice() {
                [.., n, "filtered", "out"] => (*n, "filtered out"),
                [.., n, kind] => (*n, *kind),
                _ => continue,
            };
            let n: u64 = n.parse().unwrap_or(0);
            match kind {
                "passed" => tally.passed += n,
                "failed" => tally.failed += n,
                "ignored" | "filtered out" => tally.skipped += n,
                _ => {}
            }
        }
    } else if let [n, kind, ..] = line.split_whitespace().collect::<Vec<_>>().as_slice() {
        // Playwright's closing lines: "12 passed (9.3s)", "1 failed", "2 skipped".
        if let Ok(n) = n.parse::<u64>() {
            let two_words = line.split_whitespace().count() == 2;
            match *kind {
                "passed" if line.contains('(') => tally.passed += n,
                "failed" if two_words => tally.failed += n,
                "skipped" if two_words => tally.skipped += n,
                _ => {}
            }
        }
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cargo_and_playwright_summaries() {
        let mut t = Tally::default();
        count_line("test result: ok. 14 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 10.28s", &mut t);
        count_line("test result: FAILED. 2 passed; 1 failed; 0 ignored", &mut t);
        count_line("test result: ok. 9 passed; 0 failed; 0 ignored; 0 measured; 8 filtered out; finished in 3.1s", &mut t);
        count_line("  5 passed (12.4s)", &mut t);
        count_line("  1 failed", &mut t);
        count_line("  2 skipped", &mut t);
        count_line("running 3 tests", &mut t);
        assert_eq!((t.passed, t.failed, t.skipped), (30, 2, 10));
        assert_eq!(t.summary(), "30 passed, 2 failed, 10 skipped");
        assert_eq!(strip_ansi("\u{1b}[32mok\u{1b}[0m"), "ok");
    }
}
