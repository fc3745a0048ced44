//! Operator configuration: defaults for every shard, which Shows may override.

use std::collections::BTreeMap;
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

    /// Images a Show may choose in `spec.shard.image` besides --shard-image
    /// (comma-separated): exact images, or prefixes ending in `/` or `:`. Empty: none.
    #[arg(long, env = "BOXOFFICE_ALLOWED_SHARD_IMAGES", value_delimiter = ',')]
    pub allowed_shard_images: Vec<String>,

    /// etcd endpoints a Show may name in `spec.shard.etcdEndpoints` besides --etcd
    /// (comma-separated, exact URLs). Empty: only the operator's own.
    #[arg(long, env = "BOXOFFICE_ALLOWED_ETCD_ENDPOINTS", value_delimiter = ',')]
    pub allowed_etcd_endpoints: Vec<String>,

    /// Give every shard a NetworkPolicy that admits only the traffic it needs.
    #[arg(
        long,
        env = "BOXOFFICE_NETWORK_POLICY",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub network_policy: bool,

    /// Labels (`key=value`, comma-separated) of the namespaces whose pods may call the
    /// shards' API, e.g. the gateway's or ingress controller's. Empty: none of them
    /// (only the show's own shard pods and the operator's namespace).
    #[arg(
        long,
        env = "BOXOFFICE_NETWORK_POLICY_API_FROM",
        value_delimiter = ',',
        value_parser = parse_label
    )]
    pub network_policy_api_from: Vec<(String, String)>,

    /// Labels (`key=value`, comma-separated) of the namespaces whose pods may scrape the
    /// shards' metrics port (Prometheus). Empty: nobody.
    #[arg(
        long,
        env = "BOXOFFICE_NETWORK_POLICY_METRICS_FROM",
        value_delimiter = ',',
        value_parser = parse_label
    )]
    pub network_policy_metrics_from: Vec<(String, String)>,

    /// Where every Show's booking events go (webhooks, Kafka) unless the Show says
    /// otherwise.
    #[command(flatten)]
    pub events: crate::events::Events,

    /// How Shows are routed from outside the cluster (HTTPRoute or Ingress).
    #[command(flatten)]
    pub routing: crate::routing::Routing,

    /// Namespaces to watch (comma-separated); all when empty.
    #[arg(long, env = "BOXOFFICE_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,

    /// Admin HTTP server (/metrics, /healthz, /readyz).
    #[arg(long, env = "BOXOFFICE_ADMIN_LISTEN", default_value = "0.0.0.0:8081")]
    pub admin_listen: SocketAddr,

    /// Elect a leader among operator replicas with a coordination.k8s.io Lease.
    #[arg(long, env = "BOXOFFICE_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,

    /// The operator's own namespace: its leader-election Lease lives there, and shards
    /// admit API calls from it (the operator polls each leader).
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

/// One `key=value` label (an empty item, as an empty env var gives, is skipped later).
fn parse_label(s: &str) -> Result<(String, String), String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok((String::new(), String::new()));
    }
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().into(), v.trim().into())),
        _ => Err(format!("{s:?} is not a key=value label")),
    }
}

impl Config {
    pub fn database_ref(&self) -> SecretKeyRef {
        SecretKeyRef {
            name: self.database_secret.clone(),
            key: self.database_secret_key.clone(),
        }
    }

    /// The namespace labels that admit API callers (empty items dropped).
    pub fn api_from_labels(&self) -> BTreeMap<String, String> {
        labels(&self.network_policy_api_from)
    }

    /// The namespace labels that admit metrics scrapers (empty items dropped).
    pub fn metrics_from_labels(&self) -> BTreeMap<String, String> {
        labels(&self.network_policy_metrics_from)
    }

    /// The namespaces to watch; empty means all. Empty items (an empty env var) are
    /// dropped rather than taken for a namespace named "".
    pub fn namespaces(&self) -> Vec<String> {
        self.watch_namespaces
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect()
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

fn labels(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter(|(k, _)| !k.is_empty())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_lists_parse_and_skip_empty_items() {
        let c = Config::parse_from([
            "boxoffice-operator",
            "--network-policy-api-from",
            "kubernetes.io/metadata.name=gateway, boxoffice.dev/api-access=true,",
            "--network-policy-metrics-from",
            "",
            "--network-policy=false",
        ]);
        assert_eq!(
            c.api_from_labels(),
            BTreeMap::from([
                ("boxoffice.dev/api-access".into(), "true".into()),
                ("kubernetes.io/metadata.name".into(), "gateway".into()),
            ])
        );
        assert!(c.metrics_from_labels().is_empty());
        assert!(!c.network_policy);
        assert!(
            Config::try_parse_from(["boxoffice-operator", "--network-policy-api-from", "gateway"])
                .is_err()
        );
    }

    #[test]
    fn defaults_are_the_safe_ones() {
        let c = Config::parse_from(["boxoffice-operator", "--watch-namespaces", ""]);
        assert!(c.network_policy);
        assert!(c.allowed_shard_images.iter().all(|i| i.is_empty()));
        assert!(c.allowed_etcd_endpoints.iter().all(|i| i.is_empty()));
        assert!(c.api_from_labels().is_empty());
        assert!(c.namespaces().is_empty());
    }
}
