//! The Show's public route: apply the HTTPRoute or Ingress of its mode, remove the
//! other kinds, and read back whether the gateway accepted it (the Routed condition).

use std::time::{Duration, Instant};

use boxoffice_crds::{RouteMode, Show};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::DeleteParams;

use super::{Context, Result, apply_object};
use crate::builders::{self, HttpRoute};
use crate::routing::ParentRef;

/// The API group and version whose presence means Gateway API is installed.
pub const GATEWAY_API: &str = "gateway.networking.k8s.io/v1";

/// How long a discovery answer is trusted: installing the CRDs routes Shows within
/// this (plus one status interval), without a restart.
const DISCOVERY_TTL: Duration = Duration::from_secs(10);

/// What was observed of the Show's route.
#[derive(Debug, Clone)]
pub enum RouteState {
    /// spec.route.mode (or the operator's default) is none.
    Disabled,
    /// The operator's routing configuration cannot route this Show.
    NotConfigured(String),
    /// Gateway mode, but the cluster has no Gateway API CRDs.
    GatewayApiMissing,
    /// The HTTPRoute as read back (None: not there yet).
    Gateway {
        parents: Vec<ParentRef>,
        route: Option<HttpRoute>,
    },
    /// The Ingress as read back.
    Ingress(Option<Ingress>),
}

/// Routed: status, reason, message. Pure, so it is unit-tested.
pub fn routed(state: &RouteState, namespace: &str) -> (bool, &'static str, String) {
    match state {
        RouteState::Disabled => (
            false,
            "RoutingDisabled",
            "route mode none: served in-cluster only".into(),
        ),
        RouteState::NotConfigured(m) => (false, "NotConfigured", m.clone()),
        RouteState::GatewayApiMissing => (
            false,
            "GatewayAPIMissing",
            format!(
                "the cluster serves no {GATEWAY_API} (Gateway API CRDs not installed); the show is served in-cluster and is routed once they are"
            ),
        ),
        RouteState::Gateway { parents, route } => {
            gateway_routed(parents, route.as_ref(), namespace)
        }
        RouteState::Ingress(ingress) => {
            let addresses: Vec<String> = ingress
                .as_ref()
                .and_then(|i| i.status.as_ref()?.load_balancer.as_ref()?.ingress.clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|a| a.ip.or(a.hostname))
                .collect();
            if addresses.is_empty() {
                (
                    false,
                    "IngressPending",
                    "no ingress controller has published an address for the Ingress yet".into(),
                )
            } else {
                (
                    true,
                    "IngressAdmitted",
                    format!(
                        "the ingress controller serves it at {}",
                        addresses.join(", ")
                    ),
                )
            }
        }
    }
}

fn gateway_routed(
    parents: &[ParentRef],
    route: Option<&HttpRoute>,
    namespace: &str,
) -> (bool, &'static str, String) {
    if parents.is_empty() {
        return (
            false,
            "NotConfigured",
            "no Gateway to attach to (operator --gateway-parent-refs, chart routing.gateway.parentRefs)".into(),
        );
    }
    let Some(route) = route else {
        return (false, "Pending", "the HTTPRoute is not created yet".into());
    };
    let generation = route.metadata.generation;
    let statuses = route
        .status
        .as_ref()
        .map(|s| s.parents.as_slice())
        .unwrap_or_default();
    for parent in parents {
        let gateway = format!(
            "Gateway {}/{}{}",
            parent.namespace.as_deref().unwrap_or(namespace),
            parent.name,
            parent
                .section_name
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        );
        let Some(seen) = statuses
            .iter()
            .find(|s| builders::same_parent(parent, &s.parent_ref, namespace))
        else {
            return (
                false,
                "Pending",
                format!("{gateway} has not reported on the HTTPRoute yet"),
            );
        };
        // A gateway's answer about an older spec says nothing about this one.
        let current = |c: &&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition| {
            c.observed_generation.is_none()
                || generation.is_none()
                || c.observed_generation >= generation
        };
        let find = |t: &str| {
            seen.conditions
                .iter()
                .filter(current)
                .find(|c| c.type_ == t)
        };
        match (find("Accepted"), find("ResolvedRefs")) {
            (Some(a), _) if a.status != "True" => {
                return (
                    false,
                    "NotAccepted",
                    format!(
                        "{gateway} did not accept the HTTPRoute: {} {}",
                        a.reason, a.message
                    ),
                );
            }
            (_, Some(r)) if r.status != "True" => {
                return (
                    false,
                    "RefsNotResolved",
                    format!(
                        "{gateway} cannot resolve the show's Service: {} {}",
                        r.reason, r.message
                    ),
                );
            }
            (Some(_), Some(_)) => {}
            _ => {
                return (
                    false,
                    "Pending",
                    format!("{gateway} has not reported on this generation yet"),
                );
            }
        }
    }
    (
        true,
        "Accepted",
        format!(
            "accepted by {} Gateway(s) with its Service resolved",
            parents.len()
        ),
    )
}

/// Whether `reason` is one that a Show routed in `mode` reports.
pub fn mode_reports(mode: RouteMode, reason: &str) -> bool {
    let reasons: &[&str] = match mode {
        RouteMode::Gateway => &[
            "Accepted",
            "Pending",
            "NotAccepted",
            "RefsNotResolved",
            "GatewayAPIMissing",
        ],
        RouteMode::Ingress => &["IngressAdmitted", "IngressPending"],
        RouteMode::None => &["RoutingDisabled"],
    };
    reasons.contains(&reason)
}

/// Whether the API server serves Gateway API (discovery, cached for [`DISCOVERY_TTL`]).
async fn gateway_api_present(ctx: &Context) -> bool {
    let mut cache = ctx.gateway_api.lock().await;
    if let Some((at, present)) = *cache
        && at.elapsed() < DISCOVERY_TTL
    {
        return present;
    }
    let present = match ctx.client.list_api_group_resources(GATEWAY_API).await {
        Ok(list) => list.resources.iter().any(|r| r.name == "httproutes"),
        Err(_) => false,
    };
    *cache = Some((Instant::now(), present));
    present
}

async fn remove<K>(api: Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Applies the Show's route (unless `apply` is false: a refused Show changes nothing),
/// removes routes of other modes, and returns the public URL and what was observed.
pub(super) async fn reconcile_route(
    ctx: &Context,
    show: &Show,
    ns: &str,
    apply: bool,
) -> Result<(Option<String>, RouteState)> {
    let routing = &ctx.config.routing;
    let mode = routing.mode_of(show);
    let name = builders::service_name(show);
    let routes: Api<HttpRoute> = Api::namespaced(ctx.client.clone(), ns);
    let ingresses: Api<Ingress> = Api::namespaced(ctx.client.clone(), ns);
    let gateway_api = gateway_api_present(ctx).await;
    // Routes of another mode can only exist when the Show was last routed otherwise (or
    // its status says nothing yet): only then is it worth asking the API server.
    let last_reason = show
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Routed"))
        .map(|c| c.reason.as_str());
    let switched = last_reason.is_none_or(|r| !mode_reports(mode, r));
    if apply && switched {
        if mode != RouteMode::Gateway && gateway_api {
            remove(routes.clone(), &name).await?;
        }
        if mode != RouteMode::Ingress {
            remove(ingresses.clone(), &name).await?;
        }
    }
    if mode == RouteMode::None {
        return Ok((None, RouteState::Disabled));
    }
    let host = match routing.host_for(ns, &ctx.config.namespaces()) {
        Ok(h) => h,
        Err(e) => return Ok((None, RouteState::NotConfigured(e.0))),
    };
    let url = Some(routing.url(&host, show));
    match mode {
        RouteMode::Gateway if !gateway_api => Ok((url, RouteState::GatewayApiMissing)),
        RouteMode::Gateway => {
            if apply && !routing.parent_refs.0.is_empty() {
                apply_object(&ctx.client, ns, &builders::http_route(show, routing, &host)).await?;
            }
            let route = match routes.get_opt(&name).await {
                Ok(r) => r,
                // The CRDs went away since discovery looked.
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    *ctx.gateway_api.lock().await = None;
                    return Ok((url, RouteState::GatewayApiMissing));
                }
                Err(e) => return Err(e.into()),
            };
            let parents = routing.parent_refs.0.clone();
            Ok((url, RouteState::Gateway { parents, route }))
        }
        RouteMode::Ingress => {
            if apply {
                apply_object(&ctx.client, ns, &builders::ingress(show, routing, &host)).await?;
            }
            Ok((url, RouteState::Ingress(ingresses.get_opt(&name).await?)))
        }
        RouteMode::None => Ok((None, RouteState::Disabled)),
    }
}
