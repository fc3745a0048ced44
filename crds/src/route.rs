//! `spec.route`: how a Show is reached from outside the cluster (docs/architecture.md,
//! "Routing"). Unset, the operator's default (`--route-mode`) applies.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// What publishes a Show's `/v1/shows/{show}` routes on the public hostname.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "camelCase")]
pub enum RouteMode {
    /// A Gateway API HTTPRoute attached to the operator's configured Gateway(s).
    #[default]
    Gateway,
    /// A networking.k8s.io/v1 Ingress of the operator's configured class.
    Ingress,
    /// No public route: the Show is served in-cluster only.
    None,
}

impl RouteMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteMode::Gateway => "gateway",
            RouteMode::Ingress => "ingress",
            RouteMode::None => "none",
        }
    }
}

/// A Show's routing override.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// gateway, ingress or none; unset: the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RouteMode>,
}
