//! Operator configuration: defaults for every shard, which Shows may override.

use std::net::SocketAddr;

use boxoffice_crds::SecretKeyRef;
use boxoffice_transport::{DatabaseTls, EtcdAccess};
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

    /// TLS and user auth for the operator's own etcd client (it reads shard leaders).
    #[command(flatten)]
    pub etcd_access: EtcdAccess,

    /// TLS for the operator's own PostgreSQL connections (it closes sales of deleted
    /// Shows, with the URL from the Show's database Secret).
    #[command(flatten)]
    pub database_tls: DatabaseTls,

    /// Shards' TLS to etcd and PostgreSQL, and their etcd credentials: Secrets in each
    /// Show's namespace, mounted read-only in the shard pods.
    #[command(flatten)]
    pub shard_transport: ShardTransport,

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

/// Secrets (in each Show's namespace) that give shard pods TLS material and etcd
/// credentials as files. Unset means plain TCP / no etcd auth.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ShardTransport {
    /// Secret with `ca.crt` (etcd's CA) and, with --shard-etcd-client-cert, `tls.crt` and
    /// `tls.key` (the shards' client certificate); a cert-manager Secret fits.
    #[arg(long, env = "BOXOFFICE_SHARD_ETCD_TLS_SECRET")]
    pub shard_etcd_tls_secret: Option<String>,

    /// Whether shards present the etcd TLS Secret's tls.crt/tls.key.
    #[arg(long, env = "BOXOFFICE_SHARD_ETCD_CLIENT_CERT", default_value_t = true, action = clap::ArgAction::Set)]
    pub shard_etcd_client_cert: bool,

    /// Secret with `username` and `password` of the shards' etcd user (type
    /// kubernetes.io/basic-auth).
    #[arg(long, env = "BOXOFFICE_SHARD_ETCD_AUTH_SECRET")]
    pub shard_etcd_auth_secret: Option<String>,

    /// Secret with `ca.crt` (PostgreSQL's CA; shards then use sslmode=verify-full) and,
    /// with --shard-database-client-cert, `tls.crt` and `tls.key`.
    #[arg(long, env = "BOXOFFICE_SHARD_DATABASE_TLS_SECRET")]
    pub shard_database_tls_secret: Option<String>,

    /// Whether shards present the database TLS Secret's tls.crt/tls.key.
    #[arg(long, env = "BOXOFFICE_SHARD_DATABASE_CLIENT_CERT", default_value_t = true, action = clap::ArgAction::Set)]
    pub shard_database_client_cert: bool,
}
