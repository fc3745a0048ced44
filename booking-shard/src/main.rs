//! booking-shard: serve one show's bookings. See `booking-shard --help`.

use std::process::ExitCode;

use booking_shard::config::Config;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    booking_shard::telemetry::init(&config.log_format);
    match booking_shard::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("booking-shard: {e:#}");
            ExitCode::FAILURE
        }
    }
}
