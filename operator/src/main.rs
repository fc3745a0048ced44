//! boxoffice-operator: see `boxoffice-operator --help`.

use std::process::ExitCode;

use boxoffice_operator::config::Config;
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let _telemetry = match boxoffice_telemetry::init(
        "boxoffice-operator",
        &config.log_format,
        config.otlp_endpoint.as_deref(),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("boxoffice-operator: telemetry: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("boxoffice-operator: no Kubernetes client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        signal.cancel();
    });
    #[cfg(unix)]
    {
        let signal = shutdown.clone();
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::spawn(async move {
                term.recv().await;
                signal.cancel();
            });
        }
    }
    match boxoffice_operator::run(client, config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("boxoffice-operator: {e:#}");
            ExitCode::FAILURE
        }
    }
}
