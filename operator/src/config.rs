//! Operator configuration: defaults for every shard, which Shows may override.

use std::net::SocketAddr;

use boxoffice_crds::SecretKeyRef;
use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "boxoffice-operator",
    version,
    about = "Reconciles Shows into booking shards"
)]
pub struct Config {
    /// Shard container image.
    #[arg(
        long,
        env = "BOXOFFICE_SHARD_IMAGE",
        default_value = "ghcr.io/boxoffice-dev/booking-shard:0.1.0"
    )]
    pub shard_image: String,

    /// etcd endpoints for shards (comma-separated); Shows may override.
    #[arg(
        long,
        env = "BOXOFFICE_ETCD",
        value_delimiter = ',',
        default_value = "http://etcd:2379"
    )]
    pub etcd: Vec<String>,

    /// Secret (in the Show's namespace) and key holding the PostgreSQL URL.
    #[arg(
        long,
        env = "BOXOFFICE_DATABASE_SECRET",
        default_value = "boxoffice-database"
    )]
    pub database_secret: String,
    #[arg(long, env = "BOXOFFICE_DATABASE_SECRET_KEY", default_value = "url")]
    pub database_secret_key: String,

    /// Secret (in the Show's namespace) and key holding the JWT HS256 secret.
    #[arg(
        long,
        env = "BOXOFFICE_JWT_SECRET_NAME",
        default_value = "boxoffice-jwt"
    )]
    pub jwt_secret: String,
    #[arg(long, env = "BOXOFFICE_JWT_SECRET_KEY", default_value = "secret")]
    pub jwt_secret_key: String,

    /// OTLP endpoint for the operator's and the shards' traces.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Namespaces to watch (comma-separated); all when empty.
    #[arg(long, env = "BOXOFFICE_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,

    /// Admin HTTP server (/metrics, /healthz, /readyz).
    #[arg(long, env = "BOXOFFICE_ADMIN_LISTEN", default_value = "0.0.0.0:8081")]
    pub admin_listen: SocketAddr,

    /// Elect a leader among operator replicas with a coordination.k8s.io Lease.
    #[arg(long, env = "BOXOFFICE_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,

    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "boxoffice-system")]
    pub lease_namespace: String,

    /// This replica's identity (pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// How often live shows' status (leader, counts) is refreshed, in seconds.
    #[arg(long, env = "BOXOFFICE_STATUS_INTERVAL", default_value_t = 10)]
    pub status_interval: u64,

    /// Log format: text or json.
    #[arg(long, env = "BOXOFFICE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl Config {
    pub fn database_ref(&self) -> SecretKeyRef {
        SecretKeyRef {
            name: self.database_secret.clone(),
            key: self.database_secret_key.clone(),
        }
    }

    pub fn jwt_ref(&self) -> SecretKeyRef {
        SecretKeyRef {
            name: self.jwt_secret.clone(),
            key: self.jwt_secret_key.clone(),
        }
    }
}
