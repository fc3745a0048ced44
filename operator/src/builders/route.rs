//! The Show's public route: a Gateway API HTTPRoute or an Ingress that sends every
//! request under `/v1/shows/{show}` on the namespace's hostname to the show's Service.
//!
//! The HTTPRoute type is the subset of `gateway.networking.k8s.io/v1` the operator
//! writes and reads (the gateway-api crate pins another kube and k8s-openapi release).

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, ResourceExt};
use serde::{Deserialize, Serialize};

use boxoffice_crds::Show;

use super::{meta, service_name};
use crate::routing::{ParentRef, Routing};

/// `gateway.networking.k8s.io/v1` HTTPRoute (the fields the operator uses).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    root = "HttpRoute",
    plural = "httproutes",
    namespaced,
    status = "HttpRouteStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct PathMatch {
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct BackendRef {
    pub name: String,
    pub port: i32,
}

/// What gateways report about the route.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct HttpRouteStatus {
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    pub parent_ref: ParentRefStatus,
    #[serde(default)]
    pub controller_name: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A parent ref as a gateway echoes it (it may add group and kind).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ParentRefStatus {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub section_name: Option<String>,
    #[serde(default)]
    pub port: Option<i32>,
}

/// The path prefix of every route of a show; Gateway API and Ingress prefixes match
/// whole path segments, so `/v1/shows/club` never catches `/v1/shows/clubhouse`.
pub fn path_prefix(show: &Show) -> String {
    format!("/v1/shows/{}", show.name_any())
}

/// The Show's HTTPRoute: `host` + `/v1/shows/{show}` to its Service's `http` port.
pub fn http_route(show: &Show, routing: &Routing, host: &str) -> HttpRoute {
    let mut route = HttpRoute::new(
        &service_name(show),
        HttpRouteSpec {
            parent_refs: routing.parent_refs.0.clone(),
            hostnames: vec![host.to_string()],
            rules: vec![HttpRouteRule {
                matches: vec![HttpRouteMatch {
                    path: Some(PathMatch {
                        type_: "PathPrefix".into(),
                        value: path_prefix(show),
                    }),
                }],
                backend_refs: vec![BackendRef {
                    name: service_name(show),
                    port: super::SERVICE_PORT,
                }],
            }],
        },
    );
    route.metadata = meta(show, service_name(show));
    route
}

/// The Show's Ingress: the same host and prefix to the same Service port.
pub fn ingress(show: &Show, routing: &Routing, host: &str) -> Ingress {
    let class = routing.ingress_class.trim();
    Ingress {
        metadata: meta(show, service_name(show)),
        spec: Some(IngressSpec {
            ingress_class_name: (!class.is_empty()).then(|| class.to_string()),
            rules: Some(vec![IngressRule {
                host: Some(host.to_string()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(path_prefix(show)),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: service_name(show),
                                port: Some(ServiceBackendPort {
                                    name: Some("http".into()),
                                    number: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// Whether a status entry is about `wanted` (a route in `route_ns`): names, namespaces
/// (defaulting to the route's), section and port agree.
pub fn same_parent(wanted: &ParentRef, seen: &ParentRefStatus, route_ns: &str) -> bool {
    wanted.name == seen.name
        && wanted.namespace.as_deref().unwrap_or(route_ns)
            == seen.namespace.as_deref().unwrap_or(route_ns)
        && wanted.section_name == seen.section_name
        && wanted.port == seen.port
}
