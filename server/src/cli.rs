//! The command line: `server [serve]`, `server migrate`, `server seed`,
//! `server search-index`, `server reconcile`.

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::startup::{self, Application, StartupError};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(name = "server", about = "Mercato: the marketplace server", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the storefront and the API (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Generate the demo catalog (deterministic) into an empty database.
    Seed {
        /// Do nothing when the catalog already has products.
        #[arg(long)]
        if_empty: bool,
        /// How many products to generate (1 to 5,000,000).
        #[arg(long, default_value_t = shop::catalog::seed::DEFAULT_PRODUCTS as u32,
              value_parser = clap::value_parser!(u32).range(1..=5_000_000))]
        products: u32,
    },
    /// Build the search index from PostgreSQL and report time and memory
    /// (the server does this itself at startup).
    SearchIndex,
    /// Create N customers fast (one shared password hash, sessions written in
    /// bulk) and write one bearer token per line to FILE, for load tests.
    LoadtestUsers {
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        count: u32,
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Load every product into the Redis cache and every SKU's stock counter,
    /// e.g. after a deploy or a Redis flush.
    CacheWarm,
    /// Compare every Redis stock counter with PostgreSQL minus live
    /// reservations, correct drift, and print the JSON report.
    Reconcile,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("seeding failed: {0}")]
    Seed(shop::Error),
    #[error("{0}")]
    Shop(shop::Error),
    #[error("cannot write {}: {source}", path.display())]
    Output { path: std::path::PathBuf, source: std::io::Error },
    #[error("server stopped with an error: {0}")]
    Serve(std::io::Error),
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let config = Config::from_env().map_err(StartupError::from)?;
    telemetry::init(config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            tracing::info!(url = %format!("http://{}", app.local_addr()), "Mercato is serving");
            println!("Mercato is serving at http://{}", app.local_addr());
            app.run_until(startup::shutdown_signal()).await.map_err(CliError::Serve)?;
            tracing::info!("stopped");
        }
        Command::Migrate => {
            let shop = startup::connect_shop(&config).await?;
            startup::migrate(&shop, &config).await?;
            println!("migrations applied to {}", config.database_target());
        }
        Command::Seed { if_empty, products } => {
            let shop = startup::connect_shop(&config).await?;
            startup::migrate(&shop, &config).await?;
            let catalog = shop.catalog();
            if if_empty && !catalog.is_empty().await.map_err(CliError::Seed)? {
                println!("catalog already has products: nothing seeded");
                return Ok(());
            }
            let report = catalog.seed(shop::catalog::SeedOptions { products: products as usize }).await.map_err(CliError::Seed)?;
            println!(
                "seeded {} categories, {} brands, {} sellers, {} products, {} SKUs, {} images: {} rows in {:.1} s ({:.0} rows/s)",
                report.categories,
                report.brands,
                report.sellers,
                report.products,
                report.skus,
                report.images,
                report.rows,
                report.seconds,
                report.rows_per_second()
            );
            let accounts = shop.accounts().seed_demo().await.map_err(CliError::Seed)?;
            for user in accounts {
                println!("demo account: {} {}", user.role.as_str(), user.email);
            }
        }
        Command::LoadtestUsers { count, out } => {
            let shop = startup::connect_shop(&config).await?;
            startup::migrate(&shop, &config).await?;
            let started = std::time::Instant::now();
            let tokens = shop
                .accounts()
                .create_load_test_users(count as usize, "load-test-password")
                .await
                .map_err(CliError::Shop)?;
            let mut text = tokens.join("\n");
            text.push('\n');
            std::fs::write(&out, text).map_err(|e| CliError::Output { path: out.clone(), source: e })?;
            println!(
                "created {count} customers with sessions in {:.1} s; tokens in {}",
                started.elapsed().as_secs_f64(),
                out.display()
            );
        }
        Command::CacheWarm => {
            let shop = startup::connect_shop(&config).await?;
            let started = std::time::Instant::now();
            let (products, skus) = shop.catalog().warm_cache().await.map_err(CliError::Shop)?;
            println!(
                "cached {products} products and {skus} stock counters in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Command::Reconcile => {
            let shop = startup::connect_shop(&config).await?;
            let report = shop.inventory().reconcile().await.map_err(CliError::Shop)?;
            println!("{}", serde_json::to_string_pretty(&report).expect("the report serialises"));
        }
        Command::SearchIndex => {
            let shop = startup::connect_shop(&config).await?;
            let before = peak_rss_kib();
            let report = shop.search().rebuild().await.map_err(CliError::Shop)?;
            let after = peak_rss_kib();
            println!(
                "indexed {} products with {} in {:.2} s; peak RSS {} MiB (before indexing {} MiB)",
                report.documents,
                shop.search.name(),
                report.seconds,
                after / 1024,
                before / 1024
            );
        }
    }
    Ok(())
}

/// The process's peak resident memory (VmHWM), in KiB; 0 where unknown.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}
