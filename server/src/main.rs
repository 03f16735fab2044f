use std::process::ExitCode;

use clap::Parser;

/// The binary's allocator: rendering pages allocates many small strings,
/// and glibc's malloc and free took a quarter of the server's CPU there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A local .env is a convenience for development; real environments set
    // variables directly, and those win.
    let _ = dotenvy::dotenv();
    let cli = server::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mercato: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, no backtrace: the message says what to fix.
            eprintln!("mercato: error: {e}");
            ExitCode::FAILURE
        }
    }
}
