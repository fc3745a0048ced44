//! Unit tests of the status.

use super::*;
use boxoffice_crds::ShowConfig;
use boxoffice_crds::{InventoryCounts, ShowStatus};
use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

pub(super) fn club() -> Show {
    let config =
        ShowConfig::parse(include_str!("../../../examples/shows/club.yaml")).expect("club");
    let mut show = Show::new(&config.name, config.spec);
    show.metadata.namespace = Some("default".into());
    show.metadata.generation = Some(3);
    show
}

pub(super) fn deployment(ready: i32, updated: i32) -> Deployment {
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

pub(super) fn cond<'a>(s: &'a ShowStatus, t: &str) -> &'a Condition {
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
