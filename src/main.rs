//! The `tidelog` binary: parse the configuration, set up logging, run the broker.

use std::process::ExitCode;

use clap::Parser;
use tidelog::config::{BrokerConfig, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse(); // exits with code 2 and a message naming the bad flag
    let config = match BrokerConfig::from_cli(cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match tidelog::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}
