//! booking-shard: the per-show booking service. The elected leader owns the show's seat
//! inventory in memory, keeps each hold as one leased record in etcd, and persists confirmed
//! bookings to PostgreSQL.

pub mod api;
pub mod batch;
pub mod config;
pub mod coord;
pub mod engine;
pub mod events;
pub mod fencing;
pub mod inventory;
pub mod keys;
pub mod maintenance;
pub mod mirror;
pub mod payments;
pub mod relay;
pub mod shard;
pub mod store;

use std::sync::Arc;

use anyhow::Context;
use boxoffice_crds::ShowConfig;
use tokio_util::sync::CancellationToken;
use tracing::info;

use std::time::Duration;

use crate::api::AppState;
use crate::api::auth::{Auth, TokenRules};
use crate::api::observe::Metrics;
use crate::api::serve::{self, ServeLimits};
use crate::api::streams::{StreamGate, StreamLimits};
use crate::config::Config;
use crate::coord::{Coordinator, Keys, LeaderInfo};
use crate::keys::ShardKeys;
use crate::shard::{RateLimiter, Shard, ShowInfo};
use crate::store::Store;

/// The token rules from the configuration.
fn token_rules(config: &Config) -> TokenRules {
    TokenRules {
        issuers: config.jwt_issuer.clone(),
        audiences: config.jwt_audience.clone(),
        max_lifetime: Duration::from_secs(config.jwt_max_lifetime),
        privileged_issuers: config.jwt_privileged_issuers.clone(),
        ..TokenRules::default()
    }
}

fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Builds the verifier and the shared keys from the configuration.
fn auth(config: &Config, show: &str) -> anyhow::Result<(Auth, ShardKeys)> {
    let rules = token_rules(config);
    let hs_secret = match (&config.jwt_secret, &config.jwt_secret_file) {
        (Some(s), _) => Some(s.trim().as_bytes().to_vec()),
        (None, Some(path)) => Some(
            String::from_utf8_lossy(&read(path)?)
                .trim()
                .as_bytes()
                .to_vec(),
        ),
        (None, None) => None,
    };
    let auth = if let Some(path) = &config.jwt_jwks_file {
        Auth::jwks(&read(path)?, rules).context("parsing the JWKS")?
    } else if let Some(path) = &config.jwt_public_key_file {
        Auth::rs256(&read(path)?, rules).context("parsing the JWT public key")?
    } else if let Some(secret) = &hs_secret {
        Auth::hs256(secret, rules).context("the JWT secret")?
    } else {
        anyhow::bail!(
            "no JWT key: set --jwt-secret-file (or BOXOFFICE_JWT_SECRET), --jwt-public-key-file, or --jwt-jwks-file"
        )
    };
    let shard_secret = match (&config.shard_secret_file, &hs_secret) {
        (Some(path), _) => read(path)?,
        (None, Some(secret)) => secret.clone(),
        _ => anyhow::bail!(
            "with RS256 or a JWKS the replicas need a shared secret: set --shard-secret-file"
        ),
    };
    let keys = ShardKeys::derive(&shard_secret, show).context("the shard secret")?;
    Ok((auth, keys))
}

/// The payment provider's signing secret: required when the show's payments come
/// from a provider (the shard refuses to start without it rather than accept every
/// callback or none).
fn payment_secret(config: &Config, show: &ShowInfo) -> anyhow::Result<Option<Vec<u8>>> {
    let secret = match &config.payment_secret_file {
        Some(path) => Some(
            String::from_utf8_lossy(&read(path)?)
                .trim()
                .as_bytes()
                .to_vec(),
        ),
        None => None,
    };
    if show.rules.payments.mode == engine::PaymentMode::Provider {
        match &secret {
            Some(s) if s.len() >= 16 => {}
            Some(_) => anyhow::bail!("the payment secret is shorter than 16 bytes"),
            None => anyhow::bail!(
                "spec.payments.mode is provider: set --payment-secret-file (BOXOFFICE_PAYMENT_SECRET_FILE)"
            ),
        }
    }
    Ok(secret)
}

#[cfg(feature = "kafka")]
fn kafka_sink(
    config: &Config,
    brokers: &str,
    show_key: &str,
) -> anyhow::Result<Arc<dyn relay::Sink>> {
    let kafka = relay::kafka::KafkaSink::new(
        brokers,
        &config.events_kafka_topic,
        show_key,
        &format!("boxoffice-{}", config.pod()),
        Duration::from_secs(config.events_kafka_timeout),
    )
    .context("the Kafka event sink")?;
    Ok(Arc::new(kafka))
}

#[cfg(not(feature = "kafka"))]
fn kafka_sink(_: &Config, _: &str, _: &str) -> anyhow::Result<Arc<dyn relay::Sink>> {
    anyhow::bail!(
        "BOXOFFICE_EVENTS_KAFKA_BROKERS is set but this booking-shard was built without the `kafka` feature (cargo build --features kafka)"
    )
}

/// The event relay's sinks and settings from the configuration.
fn relay(config: &Config, show_key: &str) -> anyhow::Result<relay::Relay> {
    let mut sinks: Vec<Arc<dyn relay::Sink>> = Vec::new();
    let webhooks = relay::webhook::pair_secrets(
        &config.events_webhook_urls,
        &config.events_webhook_secret_file,
    )?;
    for (url, path) in webhooks {
        let text = String::from_utf8_lossy(&read(path)?).into_owned();
        let secret = relay::webhook::WebhookSecret::parse(&text)
            .with_context(|| format!("the webhook secret in {}", path.display()))?;
        let hook = relay::webhook::Webhook::new(
            url,
            secret,
            Duration::from_secs(config.events_webhook_timeout),
        )
        .with_context(|| "a webhook URL".to_string())?;
        // A sink's cursor is kept under its name: two endpoints may not share one.
        anyhow::ensure!(
            sinks.iter().all(|s| s.name() != relay::Sink::name(&hook)),
            "two webhook URLs name the same endpoint ({}); each needs its own host, port or path",
            relay::Sink::name(&hook)
        );
        sinks.push(Arc::new(hook));
    }
    if let Some(brokers) = config.events_kafka_brokers.as_deref() {
        sinks.push(kafka_sink(config, brokers, show_key)?);
    }
    let max_delay = Duration::from_millis(config.events_max_retry_delay_ms);
    let settings = relay::Settings {
        retry_window: Duration::from_secs(config.events_retry_window),
        max_delay,
        min_delay: relay::Settings::default().min_delay.min(max_delay),
        retention: Duration::from_secs(config.events_retention),
        ..relay::Settings::default()
    };
    Ok(relay::Relay::new(show_key, sinks, settings))
}

/// Runs the shard until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&config.show)
        .with_context(|| format!("reading the show from {}", config.show.display()))?;
    let show_config = ShowConfig::parse(&text)?;
    let mut show = ShowInfo::new(show_config)?;
    if let Some(secs) = config.hold_ttl_seconds {
        show.rules.hold_ttl = std::time::Duration::from_secs(secs);
    }
    if let Some(secs) = config.payment_window_seconds {
        show.rules.payments.window = std::time::Duration::from_secs(secs);
    }
    let (auth, keys) = auth(&config, &show.key())?;
    let payment_secret = payment_secret(&config, &show)?;
    let relay = Arc::new(relay(&config, &show.key())?);
    let payment_provider = show
        .config
        .spec
        .payments
        .as_ref()
        .and_then(|p| p.provider.clone());
    let tolerance_s = show.rules.payments.tolerance.as_secs();
    let (pod, address) = (config.pod(), config.advertise());
    let me = LeaderInfo {
        sig: keys.sign_leader(&pod, &address),
        pod,
        address,
    };
    let shard_keys = Keys::new(&show.config.namespace, &show.config.name);
    let database = config.database_tls.connect_options(&config.database_url)?;
    let store = Store::connect_with(database, &show.key(), config.db_pool)
        .await
        .context("connecting to PostgreSQL")?;
    let coord = Coordinator::connect_with(&config.etcd, &config.etcd_access, shard_keys).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("listening on {} (metrics)", config.metrics_listen))?;
    info!(show = %show.key(), pod = %me.pod, address = %me.address, "starting");
    if !fencing::enabled() {
        tracing::error!(
            "{} is set: fencing is OFF and this replica can sell a seat twice (test-only)",
            fencing::DISABLE_FENCING_ENV
        );
    }
    let limiter = RateLimiter::new(config.hold_rate, config.hold_burst);
    let shard = Shard::new(show, me, config.lease_ttl, coord, store, limiter);
    let _ = shard.relay.set(relay);

    let shutdown = CancellationToken::new();
    let election = tokio::spawn(shard.clone().run(shutdown.clone()));
    tokio::spawn(maintenance::run(
        shard.clone(),
        config.etcd.clone(),
        config.etcd_access.clone(),
        maintenance::Settings {
            mode: config.etcd_maintenance,
            interval: Duration::from_secs(config.etcd_maintenance_interval),
            quota_bytes: config.etcd_quota_bytes,
        },
        shutdown.clone(),
    ));
    let metrics = Metrics::new(&shard);
    let state = AppState {
        shard: shard.clone(),
        auth: Arc::new(auth),
        keys: Arc::new(keys),
        http: api::peer_client(),
        streams: StreamGate::new(
            StreamLimits {
                total: config.max_event_streams,
                per_client: config.max_event_streams_per_client,
            },
            Some(metrics.clone()),
        ),
        metrics: metrics.clone(),
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        payments: Arc::new(api::PaymentKeys {
            provider: payment_provider,
            secret: payment_secret,
            tolerance_s: tolerance_s as i64,
        }),
        readiness: Arc::new(api::Readiness::default()),
    };
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down: resigning leadership");
        signal.cancel();
    });
    let limits = ServeLimits {
        max_connections: config.max_connections as usize,
        header_timeout: Duration::from_secs(config.request_read_timeout),
        ..ServeLimits::default()
    };
    let metrics_server = tokio::spawn(serve::serve(
        metrics_listener,
        api::metrics_app(state.clone()),
        ServeLimits {
            max_connections: 64,
            ..limits.clone()
        },
        None,
        shutdown.clone(),
    ));
    serve::serve(
        listener,
        api::app(state),
        limits,
        Some(metrics),
        shutdown.clone(),
    )
    .await;
    let _ = metrics_server.await;
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
