//! Command-line and environment configuration; every flag has an env var.

use std::net::SocketAddr;
use std::path::PathBuf;

use boxoffice_transport::{DatabaseTls, EtcdAccess};
use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "booking-shard",
    version,
    about = "The boxoffice booking shard for one show"
)]
pub struct Config {
    /// The Show manifest (YAML, as for kubectl apply) or the operator's normalized JSON.
    #[arg(long, env = "BOXOFFICE_SHOW")]
    pub show: PathBuf,

    /// etcd endpoints, comma-separated.
    #[arg(
        long,
        env = "BOXOFFICE_ETCD",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd: Vec<String>,

    /// TLS and user auth for etcd.
    #[command(flatten)]
    pub etcd_access: EtcdAccess,

    /// PostgreSQL URL (libpq's sslmode, sslrootcert, sslcert and sslkey parameters work).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// TLS for PostgreSQL.
    #[command(flatten)]
    pub database_tls: DatabaseTls,

    /// Address the HTTP API listens on.
    #[arg(long, env = "BOXOFFICE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// URL other replicas use to forward requests to this one when it leads
    /// (default: http://$POD_IP:<port>, or http://127.0.0.1:<port>).
    #[arg(long, env = "BOXOFFICE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// This replica's name (the pod name under Kubernetes).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// HS256 secret for verifying JWTs.
    #[arg(long, env = "BOXOFFICE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// File holding the HS256 secret.
    #[arg(long, env = "BOXOFFICE_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// File holding the payment provider's callback signing secret (`spec.payments`
    /// mode provider; the operator mounts it from `providerSecretRef`).
    #[arg(long, env = "BOXOFFICE_PAYMENT_SECRET_FILE")]
    pub payment_secret_file: Option<PathBuf>,

    /// PEM file with an RSA public key: verify RS256 JWTs instead.
    #[arg(long, env = "BOXOFFICE_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// JWKS file (`{"keys": [...]}`, as identity providers publish): verify RS256 and
    /// ES256 JWTs by `kid` instead.
    #[arg(long, env = "BOXOFFICE_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,

    /// Accepted token issuers (`iss`, comma-separated); when set, tokens must name one.
    #[arg(long, env = "BOXOFFICE_JWT_ISSUER", value_delimiter = ',')]
    pub jwt_issuer: Vec<String>,

    /// Accepted token audiences (`aud`, comma-separated); when set, tokens must name one.
    #[arg(long, env = "BOXOFFICE_JWT_AUDIENCE", value_delimiter = ',')]
    pub jwt_audience: Vec<String>,

    /// Issuers whose `staff`/`admin` roles count (comma-separated; default: every
    /// accepted issuer). Use it when customers and staff sign in at different issuers.
    #[arg(long, env = "BOXOFFICE_JWT_PRIVILEGED_ISSUERS", value_delimiter = ',')]
    pub jwt_privileged_issuers: Vec<String>,

    /// The longest a token may live, in seconds (`exp` at most this far ahead, and
    /// `exp - iat` at most this long).
    #[arg(long, env = "BOXOFFICE_JWT_MAX_LIFETIME", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(60..=2_592_000))]
    pub jwt_max_lifetime: u64,

    /// File with the secret the show's replicas share (at least 32 bytes): it signs
    /// the leader record, forwarded requests and ticket codes. Default: derived from
    /// the HS256 JWT secret (required with RS256 or a JWKS).
    #[arg(long, env = "BOXOFFICE_SHARD_SECRET_FILE")]
    pub shard_secret_file: Option<PathBuf>,

    /// Address `/metrics` is served on (keep it off the public network).
    #[arg(long, env = "BOXOFFICE_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    pub metrics_listen: SocketAddr,

    /// Connections served at once; one more is answered 503 and closed.
    #[arg(long, env = "BOXOFFICE_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub max_connections: u32,

    /// Seconds a client has to send a request's headers; also how long an idle
    /// keep-alive connection stays open. (A body must arrive within 10 s.)
    #[arg(long, env = "BOXOFFICE_REQUEST_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub request_read_timeout: u64,

    /// Server-Sent Event streams open at once (503 beyond).
    #[arg(long, env = "BOXOFFICE_MAX_EVENT_STREAMS", default_value_t = 2000)]
    pub max_event_streams: usize,

    /// Event streams one client (user, or address for the public stream) may hold
    /// open (429 beyond).
    #[arg(
        long,
        env = "BOXOFFICE_MAX_EVENT_STREAMS_PER_CLIENT",
        default_value_t = 8
    )]
    pub max_event_streams_per_client: usize,

    /// Proxies (CIDRs, comma-separated; e.g. the gateway's pods) whose
    /// `X-Forwarded-For` names the client for per-client limits.
    #[arg(long, env = "BOXOFFICE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// What this shard does to keep etcd below its space quota: `auto` (compact and
    /// defragment when a member's file passes half the quota, and recover from the
    /// NOSPACE alarm), `alarm` (only recover from the alarm), or `off` (only export
    /// etcd's size as metrics). The show's leader acts; see docs/reliability.md.
    #[arg(
        long,
        env = "BOXOFFICE_ETCD_MAINTENANCE",
        value_enum,
        default_value = "auto"
    )]
    pub etcd_maintenance: crate::maintenance::Mode,

    /// Seconds between looks at etcd's size and alarms (also how much history a
    /// compaction by this shard keeps).
    #[arg(long, env = "BOXOFFICE_ETCD_MAINTENANCE_INTERVAL", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub etcd_maintenance_interval: u64,

    /// etcd's --quota-backend-bytes, for etcd before 3.6 (which does not report it;
    /// etcd's default, 2 GiB, is assumed when unset).
    #[arg(long, env = "BOXOFFICE_ETCD_QUOTA_BYTES", value_parser = clap::value_parser!(i64).range(1..))]
    pub etcd_quota_bytes: Option<i64>,

    /// Leader lease TTL in seconds: how long a dead leader blocks a takeover.
    #[arg(long, env = "BOXOFFICE_LEASE_TTL", default_value_t = 3, value_parser = clap::value_parser!(i64).range(2..=60))]
    pub lease_ttl: i64,

    /// Override the show's hold TTL (seconds), e.g. for tests and demos; the Show's
    /// `holds.ttl` (1m..2h) applies when unset.
    #[arg(long, env = "BOXOFFICE_HOLD_TTL_SECONDS", value_parser = clap::value_parser!(u64).range(1..=7200))]
    pub hold_ttl_seconds: Option<u64>,

    /// Override the show's payment window (seconds), e.g. for tests and demos; the
    /// Show's `payments.window` (1m..1h) applies when unset.
    #[arg(long, env = "BOXOFFICE_PAYMENT_WINDOW_SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub payment_window_seconds: Option<u64>,

    /// Hold attempts each user may make per second (0 disables the limit).
    #[arg(long, env = "BOXOFFICE_HOLD_RATE", default_value_t = 5.0)]
    pub hold_rate: f64,

    /// Burst of hold attempts a user may make at once.
    #[arg(long, env = "BOXOFFICE_HOLD_BURST", default_value_t = 10.0)]
    pub hold_burst: f64,

    /// PostgreSQL connection pool size.
    #[arg(long, env = "BOXOFFICE_DB_POOL", default_value_t = 16)]
    pub db_pool: u32,

    /// OTLP (gRPC) endpoint for trace export, e.g. http://otel-collector:4317.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Webhook endpoints the leader relays the show's booking events to
    /// (comma-separated http/https URLs; each keeps its own cursor).
    #[arg(long, env = "BOXOFFICE_EVENTS_WEBHOOK_URLS", value_delimiter = ',')]
    pub events_webhook_urls: Vec<String>,

    /// Files holding the webhooks' signing secrets (`whsec_<base64>`, Standard
    /// Webhooks), comma-separated: one file signs for every URL, or one file per URL in
    /// the order of --events-webhook-urls.
    #[arg(
        long,
        env = "BOXOFFICE_EVENTS_WEBHOOK_SECRET_FILE",
        value_delimiter = ','
    )]
    pub events_webhook_secret_file: Vec<PathBuf>,

    /// Seconds a webhook has to answer one delivery.
    #[arg(long, env = "BOXOFFICE_EVENTS_WEBHOOK_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub events_webhook_timeout: u64,

    /// Kafka brokers (comma-separated host:port) the leader relays the show's booking
    /// events to; unset: no Kafka sink.
    #[arg(long, env = "BOXOFFICE_EVENTS_KAFKA_BROKERS")]
    pub events_kafka_brokers: Option<String>,

    /// The Kafka topic of booking events (records keyed by the show).
    #[arg(
        long,
        env = "BOXOFFICE_EVENTS_KAFKA_TOPIC",
        default_value = "boxoffice.bookings"
    )]
    pub events_kafka_topic: String,

    /// Seconds Kafka has to acknowledge one event (the producer's own retries
    /// included) before the relay backs off and tries again.
    #[arg(long, env = "BOXOFFICE_EVENTS_KAFKA_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub events_kafka_timeout: u64,

    /// Seconds a sink keeps retrying one event (exponential backoff with jitter)
    /// before it becomes a dead letter.
    #[arg(long, env = "BOXOFFICE_EVENTS_RETRY_WINDOW", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub events_retry_window: u64,

    /// The longest pause between two retries, in milliseconds.
    #[arg(long, env = "BOXOFFICE_EVENTS_MAX_RETRY_DELAY_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub events_max_retry_delay_ms: u64,

    /// Seconds outbox rows are kept once every sink acknowledged them; the feed
    /// answers `cursor_expired` for a cursor older than that.
    #[arg(long, env = "BOXOFFICE_EVENTS_RETENTION", default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(1..))]
    pub events_retention: u64,

    /// Log format: text or json.
    #[arg(long, env = "BOXOFFICE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl Config {
    /// The URL peers forward to.
    pub fn advertise(&self) -> String {
        if let Some(url) = &self.advertise_url {
            return url.clone();
        }
        let port = self.listen.port();
        match std::env::var("POD_IP") {
            Ok(ip) if !ip.is_empty() => format!("http://{ip}:{port}"),
            _ if !self.listen.ip().is_unspecified() => format!("http://{}", self.listen),
            _ => format!("http://127.0.0.1:{port}"),
        }
    }

    /// The replica name.
    pub fn pod(&self) -> String {
        self.pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("shard-{}", std::process::id()))
    }
}
