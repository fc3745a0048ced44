//! Unit tests of the Routed condition.

use super::status_for;
use super::tests::{club, cond, deployment};
use super::with_route;
use crate::builders::{
    HttpRoute, HttpRouteSpec, HttpRouteStatus, ParentRefStatus, RouteParentStatus,
};
use crate::reconcile::route::{RouteState, routed};
use crate::routing::ParentRef;
use k8s_openapi::api::networking::v1::{
    Ingress, IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

fn parent() -> ParentRef {
    ParentRef {
        name: "public".into(),
        namespace: Some("gateway".into()),
        section_name: None,
        port: None,
    }
}

fn c(type_: &str, status: &str, generation: i64) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: if status == "True" {
            type_.into()
        } else {
            "NotAllowedByListeners".into()
        },
        message: String::new(),
        observed_generation: Some(generation),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ),
    }
}

fn route(generation: i64, parents: Vec<(&str, Vec<Condition>)>) -> HttpRoute {
    let mut r = HttpRoute::new("club-night", HttpRouteSpec::default());
    r.metadata.generation = Some(generation);
    r.status = Some(HttpRouteStatus {
        parents: parents
            .into_iter()
            .map(|(ns, conditions)| RouteParentStatus {
                parent_ref: ParentRefStatus {
                    name: "public".into(),
                    namespace: Some(ns.into()),
                    ..Default::default()
                },
                controller_name: "traefik.io/gateway-controller".into(),
                conditions,
            })
            .collect(),
    });
    r
}

fn gw(route: Option<HttpRoute>) -> RouteState {
    RouteState::Gateway {
        parents: vec![parent()],
        route,
    }
}

#[test]
fn accepted_with_refs_resolved_is_routed() {
    let ok = route(
        2,
        vec![(
            "gateway",
            vec![c("Accepted", "True", 2), c("ResolvedRefs", "True", 2)],
        )],
    );
    assert_eq!(routed(&gw(Some(ok)), "shows").1, "Accepted");
    assert!(
        routed(
            &gw(Some(route(
                2,
                vec![(
                    "gateway",
                    vec![c("Accepted", "True", 2), c("ResolvedRefs", "True", 2)]
                )]
            ))),
            "shows"
        )
        .0
    );
}

#[test]
fn anything_short_of_acceptance_is_not_routed() {
    let cases = [
        (gw(None), "Pending"),
        (gw(Some(route(2, vec![]))), "Pending"),
        // Another Gateway's acceptance is not ours.
        (
            gw(Some(route(
                2,
                vec![(
                    "elsewhere",
                    vec![c("Accepted", "True", 2), c("ResolvedRefs", "True", 2)],
                )],
            ))),
            "Pending",
        ),
        (
            gw(Some(route(
                2,
                vec![(
                    "gateway",
                    vec![c("Accepted", "False", 2), c("ResolvedRefs", "True", 2)],
                )],
            ))),
            "NotAccepted",
        ),
        (
            gw(Some(route(
                2,
                vec![(
                    "gateway",
                    vec![c("Accepted", "True", 2), c("ResolvedRefs", "False", 2)],
                )],
            ))),
            "RefsNotResolved",
        ),
        // An answer about the previous generation.
        (
            gw(Some(route(
                3,
                vec![(
                    "gateway",
                    vec![c("Accepted", "True", 2), c("ResolvedRefs", "True", 2)],
                )],
            ))),
            "Pending",
        ),
        (RouteState::GatewayApiMissing, "GatewayAPIMissing"),
        (RouteState::Disabled, "RoutingDisabled"),
        (RouteState::NotConfigured("no host".into()), "NotConfigured"),
        (
            RouteState::Gateway {
                parents: vec![],
                route: None,
            },
            "NotConfigured",
        ),
        (RouteState::Ingress(None), "IngressPending"),
        (
            RouteState::Ingress(Some(Ingress::default())),
            "IngressPending",
        ),
    ];
    for (state, reason) in cases {
        let (ok, got, message) = routed(&state, "shows");
        assert!(!ok, "{state:?} routed");
        assert_eq!(got, reason, "{state:?}: {message}");
        assert!(!message.is_empty());
    }
}

#[test]
fn every_reason_belongs_to_the_mode_that_reports_it() {
    use crate::reconcile::route::mode_reports;
    use boxoffice_crds::RouteMode;
    let states = [
        (RouteMode::Gateway, gw(None)),
        (RouteMode::Gateway, RouteState::GatewayApiMissing),
        (
            RouteMode::Gateway,
            gw(Some(route(
                2,
                vec![("gateway", vec![c("Accepted", "False", 2)])],
            ))),
        ),
        (RouteMode::Ingress, RouteState::Ingress(None)),
        (RouteMode::None, RouteState::Disabled),
    ];
    for (mode, state) in states {
        let reason = routed(&state, "shows").1;
        assert!(mode_reports(mode, reason), "{mode:?} {reason}");
        for other in [RouteMode::Gateway, RouteMode::Ingress, RouteMode::None] {
            if other != mode {
                assert!(!mode_reports(other, reason), "{other:?} claims {reason}");
            }
        }
    }
    // NotConfigured says nothing about which routes exist: always look.
    for mode in [RouteMode::Gateway, RouteMode::Ingress, RouteMode::None] {
        assert!(!mode_reports(mode, "NotConfigured"));
    }
}

#[test]
fn an_ingress_with_a_published_address_is_routed() {
    let ing = Ingress {
        status: Some(IngressStatus {
            load_balancer: Some(IngressLoadBalancerStatus {
                ingress: Some(vec![IngressLoadBalancerIngress {
                    ip: Some("203.0.113.7".into()),
                    ..Default::default()
                }]),
            }),
        }),
        ..Default::default()
    };
    let (ok, reason, message) = routed(&RouteState::Ingress(Some(ing)), "shows");
    assert!(ok);
    assert_eq!(reason, "IngressAdmitted");
    assert!(message.contains("203.0.113.7"));
}

#[test]
fn the_routed_condition_and_url_land_in_the_status() {
    let show = club();
    let s = status_for(&show, Some(&deployment(2, 2)), None, None, None, None);
    let s = with_route(
        s,
        &show,
        Some("https://default.tickets.example.com/v1/shows/club-night".into()),
        routed(&RouteState::GatewayApiMissing, "default"),
    );
    let r = cond(&s, "Routed");
    assert_eq!(r.status, "False");
    assert_eq!(r.reason, "GatewayAPIMissing");
    assert_eq!(r.observed_generation, Some(3));
    assert_eq!(
        s.url.as_deref(),
        Some("https://default.tickets.example.com/v1/shows/club-night")
    );
    // The Show is still served in-cluster.
    assert!(
        s.endpoint
            .as_deref()
            .unwrap()
            .starts_with("http://club-night.default.svc")
    );
}
