//! booking-shard: the per-show booking service. The elected leader owns the show's seat
//! inventory in memory, locks seats in etcd with leased keys, and persists confirmed
//! bookings to PostgreSQL.

pub mod api;
pub mod batch;
pub mod config;
pub mod coord;
pub mod fencing;
pub mod inventory;
pub mod mirror;
pub mod shard;
pub mod store;

use std::sync::Arc;

use anyhow::Context;
use boxoffice_crds::ShowConfig;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::api::AppState;
use crate::api::auth::Auth;
use crate::config::Config;
use crate::coord::{Coordinator, Keys, LeaderInfo};
use crate::shard::{RateLimiter, Shard, ShowInfo};
use crate::store::Store;

/// Builds the verifier from the configuration.
fn auth(config: &Config) -> anyhow::Result<Auth> {
    if let Some(path) = &config.jwt_public_key_file {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return Auth::rs256(&pem).context("parsing the JWT public key");
    }
    let secret = match (&config.jwt_secret, &config.jwt_secret_file) {
        (Some(s), _) => s.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_string(),
        (None, None) => anyhow::bail!(
            "no JWT key: set --jwt-secret / BOXOFFICE_JWT_SECRET, --jwt-secret-file, or --jwt-public-key-file"
        ),
    };
    anyhow::ensure!(
        secret.len() >= 16,
        "the JWT secret must be at least 16 bytes"
    );
    Ok(Auth::hs256(secret.as_bytes()))
}

/// Runs the shard until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&config.show)
        .with_context(|| format!("reading the show from {}", config.show.display()))?;
    let show_config = ShowConfig::parse(&text)?;
    let mut show = ShowInfo::new(show_config)?;
    if let Some(secs) = config.hold_ttl_seconds {
        show.hold_ttl = std::time::Duration::from_secs(secs);
    }
    let auth = auth(&config)?;
    let me = LeaderInfo {
        pod: config.pod(),
        address: config.advertise(),
    };
    let keys = Keys::new(&show.config.namespace, &show.config.name);
    let database = config.database_tls.connect_options(&config.database_url)?;
    let store = Store::connect_with(database, &show.key(), config.db_pool)
        .await
        .context("connecting to PostgreSQL")?;
    let coord = Coordinator::connect_with(&config.etcd, &config.etcd_access, keys).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    info!(show = %show.key(), pod = %me.pod, address = %me.address, "starting");
    if !fencing::enabled() {
        tracing::error!(
            "{} is set: fencing is OFF and this replica can sell a seat twice (test-only)",
            fencing::DISABLE_FENCING_ENV
        );
    }
    let limiter = RateLimiter::new(config.hold_rate, config.hold_burst);
    let shard = Shard::new(show, me, config.lease_ttl, coord, store, limiter);

    let shutdown = CancellationToken::new();
    let election = tokio::spawn(shard.clone().run(shutdown.clone()));
    let state = AppState {
        shard: shard.clone(),
        auth: Arc::new(auth),
        http: reqwest::Client::new(),
        requests: Arc::default(),
    };
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down: resigning leadership");
        signal.cancel();
    });
    let server_shutdown = shutdown.clone();
    axum::serve(listener, api::app(state))
        .with_graceful_shutdown(async move { server_shutdown.cancelled().await })
        .await?;
    let _ = election.await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
