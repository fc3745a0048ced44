//! booking-shard: serve one show's bookings. See `booking-shard --help`.

use std::process::ExitCode;

use booking_shard::config::Config;
use clap::Parser;

// glibc malloc showed up as a sixth of the shard's CPU under load (many small,
// short-lived allocations across worker threads); mimalloc handles that pattern better.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let _telemetry = match boxoffice_telemetry::init(
        "booking-shard",
        &config.log_format,
        config.otlp_endpoint.as_deref(),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("booking-shard: telemetry: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match booking_shard::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("booking-shard: {e:#}");
            ExitCode::FAILURE
        }
    }
}
