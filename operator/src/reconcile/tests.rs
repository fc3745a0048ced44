//! Unit tests of the status.

use super::*;
use boxoffice_crds::ShowConfig;
use boxoffice_crds::{InventoryCounts, ShowStatus};
use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

fn club() -> Show {
    let config =
        ShowConfig::parse(include_str!("../../../examples/shows/club.yaml")).expect("club");
    let mut show = Show::new(&config.name, config.spec);
    show.metadata.namespace = Some("default".into());
    show.metadata.generation = Some(3);
    show
}

fn deployment(ready: i32, updated: i32) -> Deployment {
    Deployment {
        metadata: kube::api::ObjectMeta {
            generation: Some(1),
            ..Default::default()
        },
        status: Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(2),
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cond<'a>(s: &'a ShowStatus, t: &str) -> &'a Condition {
    s.conditions
        .iter()
        .find(|c| c.type_ == t)
        .expect("condition")
}

#[test]
fn provisioning_then_ready_then_sold_out() {
    let mut show = club();
    let s = status_for(&show, Some(&deployment(0, 0)), None, None, None, None);
    assert_eq!(s.phase.as_deref(), Some("Provisioning"));
    assert_eq!(cond(&s, "Ready").status, "False");
    assert_eq!(cond(&s, "Progressing").status, "True");
    assert_eq!(cond(&s, "Degraded").status, "False");
    assert_eq!(s.observed_generation, Some(3));

    let counts = InventoryCounts {
        total: 40,
        available: 38,
        held: 0,
        sold: 2,
    };
    let s = status_for(
        &show,
        Some(&deployment(2, 2)),
        None,
        None,
        Some("shard-a".into()),
        Some(counts),
    );
    assert_eq!(s.phase.as_deref(), Some("OnSale"));
    assert_eq!(cond(&s, "Ready").reason, "LeaderElected");
    assert_eq!(cond(&s, "Progressing").status, "False");
    assert_eq!(s.inventory, Some(counts));

    show.status = Some(s.clone());
    let sold_out = InventoryCounts {
        total: 40,
        available: 0,
        held: 0,
        sold: 40,
    };
    let s2 = status_for(
        &show,
        Some(&deployment(2, 2)),
        None,
        None,
        Some("shard-a".into()),
        Some(sold_out),
    );
    assert_eq!(s2.phase.as_deref(), Some("SoldOut"));
    // Unchanged condition keeps its transition time.
    assert_eq!(
        cond(&s2, "Ready").last_transition_time,
        cond(&s, "Ready").last_transition_time
    );
    // Counts and the sales phase survive a moment without a leader answer, but
    // Ready says the leader did not answer.
    show.status = Some(s.clone());
    let s3 = status_for(
        &show,
        Some(&deployment(2, 2)),
        None,
        None,
        Some("shard-a".into()),
        None,
    );
    assert_eq!(s3.inventory, Some(counts));
    assert_eq!(s3.phase.as_deref(), Some("OnSale"));
    assert_eq!(
        (
            cond(&s3, "Ready").status.as_str(),
            cond(&s3, "Ready").reason.as_str()
        ),
        ("False", "LeaderNotServing")
    );
}

#[test]
fn an_elected_leader_that_has_not_answered_is_not_ready() {
    let s = status_for(
        &club(),
        Some(&deployment(2, 2)),
        None,
        None,
        Some("shard-a".into()),
        None,
    );
    assert_eq!(cond(&s, "Ready").status, "False");
    assert_eq!(cond(&s, "Ready").reason, "LeaderNotServing");
    assert_eq!(s.phase.as_deref(), Some("Provisioning"));
    assert_eq!(s.leader.as_deref(), Some("shard-a"));
    assert_eq!(s.inventory, None);
}

#[test]
fn missing_secret_degrades() {
    let s = status_for(
        &club(),
        None,
        None,
        Some("Secret default/x not found"),
        Some("shard-a".into()),
        None,
    );
    assert_eq!(s.phase.as_deref(), Some("Degraded"));
    let d = cond(&s, "Degraded");
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "SecretMissing")
    );
    assert_eq!(cond(&s, "Ready").status, "False");
}

#[test]
fn a_refused_spec_is_degraded_and_not_ready_even_with_a_leader() {
    let mut show = club();
    show.spec.shard.image = Some("evil.example/miner:1".into());
    let config = <Config as clap::Parser>::parse_from(["boxoffice-operator"]);
    let refusal = policy::check(&show, &config).expect_err("refused");
    let s = status_for(
        &show,
        Some(&deployment(2, 2)),
        Some(&refusal),
        Some("Secret default/x not found"),
        Some("shard-a".into()),
        Some(InventoryCounts {
            total: 40,
            available: 40,
            held: 0,
            sold: 0,
        }),
    );
    assert_eq!(s.phase.as_deref(), Some("Degraded"));
    for type_ in ["Ready", "Degraded"] {
        let c = cond(&s, type_);
        assert_eq!(c.reason, "ImageNotAllowed", "{type_}");
        assert!(
            c.message.contains("spec.shard.image") && c.message.contains("evil.example/miner:1"),
            "{}",
            c.message
        );
    }
    assert_eq!(cond(&s, "Ready").status, "False");
    assert_eq!(cond(&s, "Degraded").status, "True");
    assert!(has_condition(&s, "Degraded", "True", "ImageNotAllowed"));
}

mod routed {
    use super::*;
    use crate::builders::{
        HttpRoute, HttpRouteSpec, HttpRouteStatus, ParentRefStatus, RouteParentStatus,
    };
    use crate::reconcile::route::{RouteState, routed};
    use crate::routing::ParentRef;
    use k8s_openapi::api::networking::v1::{
        Ingress, IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
    };

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
            (RouteMode::Gateway, gw(Some(route(2, vec![("gateway", vec![c("Accepted", "False", 2)])])))),
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
}
