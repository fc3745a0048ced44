//! Pure functions from a Show (and the operator's defaults) to the objects it owns:
//! a ConfigMap with the normalized show, the shard Deployment, a Service, a
//! PodDisruptionBudget and a NetworkPolicy. No cluster needed to test them.

mod configmap;
mod deployment;
mod netpol;
mod pdb;
mod route;
mod service;
#[cfg(test)]
mod tests;
mod transport;

pub use configmap::{config_hash, config_map, show_config};
pub(crate) use deployment::env;
#[cfg(test)]
pub use deployment::mounted_secret;
pub use deployment::{
    deployment, etcd_endpoints, mount_secret_key, secret_refs, shard_volumes_and_container,
};
pub use netpol::network_policy;
pub use pdb::pdb;
pub use route::{
    HttpRoute, HttpRouteSpec, HttpRouteStatus, ParentRefStatus, RouteParentStatus, http_route,
    ingress, path_prefix, same_parent,
};
pub use service::{endpoint, service};
pub use transport::{
    CA_KEY, CERT_KEY, DATABASE_TLS_DIR, ETCD_AUTH_DIR, ETCD_TLS_DIR, PASSWORD_KEY, PRIVATE_KEY_KEY,
    USERNAME_KEY, transport_secret_refs,
};

use std::collections::BTreeMap;

use boxoffice_crds::Show;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

/// The field manager for every server-side apply.
pub const MANAGER: &str = "boxoffice-operator";
/// Pod-template annotation whose change rolls the shard.
pub const CONFIG_HASH: &str = "boxoffice.dev/config-hash";
/// Where the ConfigMap is mounted in shard pods.
pub const CONFIG_DIR: &str = "/etc/boxoffice";
/// Where the JWT Secret's one key is mounted in shard pods (a file, not an env var:
/// env vars leak into crash dumps, `/proc/<pid>/environ` and child processes).
pub const SECRETS_DIR: &str = "/var/run/secrets/boxoffice";
/// The file, under [`SECRETS_DIR`], holding the JWT secret.
pub const JWT_FILE: &str = "jwt";
/// The shard's HTTP API port (container port `http`).
pub const HTTP_PORT: i32 = 8080;
/// The Service's port (to the pods' `http` port).
pub const SERVICE_PORT: i32 = 80;
/// The shard's metrics port (container port `metrics`), apart from the API so a
/// NetworkPolicy can admit scrapers without admitting API callers.
pub const METRICS_PORT: i32 = 9090;
/// The shard pods' user and group; the group reads the mounted Secret.
pub(crate) const SHARD_UID: i64 = 65532;

/// Names of a Show's objects.
pub fn shard_name(show: &Show) -> String {
    format!("{}-shard", show.name_any())
}

pub fn config_name(show: &Show) -> String {
    format!("{}-shard-config", show.name_any())
}

/// The Service is named after the Show: clients reach `http://<show>.<ns>.svc/v1/shows/<show>`.
pub fn service_name(show: &Show) -> String {
    show.name_any()
}

/// Labels every owned object carries; the first three select the shard pods.
pub fn labels(show: &Show) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "booking-shard".into()),
        ("app.kubernetes.io/instance".into(), show.name_any()),
        ("boxoffice.dev/show".into(), show.name_any()),
        ("app.kubernetes.io/managed-by".into(), MANAGER.into()),
        ("app.kubernetes.io/part-of".into(), "boxoffice".into()),
    ])
}

pub fn selector(show: &Show) -> BTreeMap<String, String> {
    labels(show)
        .into_iter()
        .filter(|(k, _)| k != "app.kubernetes.io/managed-by" && k != "app.kubernetes.io/part-of")
        .collect()
}

pub(crate) fn owner(show: &Show) -> Vec<OwnerReference> {
    show.controller_owner_ref(&()).into_iter().collect()
}

pub(crate) fn meta(show: &Show, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: show.namespace(),
        labels: Some(labels(show)),
        owner_references: Some(owner(show)),
        ..Default::default()
    }
}
