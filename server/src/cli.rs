//! The command line: `server [serve]`, `server migrate`, `server seed`.

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
    /// Load the demo catalog.
    Seed {
        /// Do nothing when the catalog already has products.
        #[arg(long)]
        if_empty: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("seeding failed: {0}")]
    Seed(shop::Error),
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
        Command::Seed { if_empty } => {
            let shop = startup::connect_shop(&config).await?;
            startup::migrate(&shop, &config).await?;
            let catalog = shop.catalog();
            if if_empty && !catalog.is_empty().await.map_err(CliError::Seed)? {
                println!("catalog already has products: nothing seeded");
                return Ok(());
            }
            let report = catalog.seed_demo().await.map_err(CliError::Seed)?;
            println!(
                "seeded {} categories, {} products, {} SKUs",
                report.categories, report.products, report.skus
            );
        }
    }
    Ok(())
}
