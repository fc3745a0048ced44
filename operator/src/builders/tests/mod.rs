//! Unit tests of the builders.

use super::*;
use std::collections::BTreeMap;

use boxoffice_crds::{SecretKeyRef, Show, ShowConfig};
use k8s_openapi::api::core::v1::{Container, EnvVar, Volume, VolumeMount};
use k8s_openapi::api::networking::v1::NetworkPolicyIngressRule;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::config::Config;
use clap::Parser;

mod deployment;
mod events;
mod netpol;
mod route;
mod transport;

fn theatre() -> Show {
    let text = include_str!("../../../../examples/shows/theatre.yaml");
    let mut show: Show = serde_yaml_from(text);
    show.metadata.namespace = Some("arts".into());
    show.metadata.uid = Some("1234".into());
    show
}

fn serde_yaml_from(text: &str) -> Show {
    let config = boxoffice_crds::ShowConfig::parse(text).expect("theatre parses");
    Show::new(&config.name, config.spec)
}

/// A container's env vars by name.
fn env_of(c: &Container) -> BTreeMap<String, EnvVar> {
    c.env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.clone()))
        .collect()
}

fn config() -> Config {
    Config::parse_from([
        "boxoffice-operator",
        "--etcd",
        "http://etcd-a:2379,http://etcd-b:2379",
    ])
}

#[test]
fn objects_are_owned_and_labelled() {
    let show = theatre();
    let d = deployment(&show, &config());
    let owner = &d.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(owner.kind, "Show");
    assert_eq!(owner.name, "hamlet-opening");
    assert_eq!(owner.controller, Some(true));
    assert_eq!(d.metadata.name.as_deref(), Some("hamlet-opening-shard"));
    for labels in [
        &d.metadata.labels,
        &service(&show).metadata.labels,
        &pdb(&show).metadata.labels,
        &config_map(&show).metadata.labels,
    ] {
        assert_eq!(
            labels.as_ref().expect("labels")["boxoffice.dev/show"],
            "hamlet-opening"
        );
    }
    assert_eq!(
        service(&show).spec.expect("spec").selector,
        Some(selector(&show))
    );
}

#[test]
fn per_show_overrides_win() {
    let mut show = theatre();
    show.spec.shard.etcd_endpoints = vec!["http://other:2379".into()];
    show.spec.shard.database_secret_ref = Some(SecretKeyRef {
        name: "arts-db".into(),
        key: "dsn".into(),
    });
    show.spec.shard.image = Some("registry.example/shard:dev".into());
    let d = deployment(&show, &config());
    let pod = d.spec.expect("spec").template.spec.expect("pod");
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("registry.example/shard:dev"));
    let env = env_of(c);
    assert_eq!(
        env["BOXOFFICE_ETCD"].value.as_deref(),
        Some("http://other:2379")
    );
    let db = env["DATABASE_URL"]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("db");
    assert_eq!(db.name, "arts-db");
}

#[test]
fn config_hash_follows_seating_not_title() {
    let show = theatre();
    let mut retitled = show.clone();
    retitled.spec.title = "Hamlet — Second Night".into();
    assert_eq!(config_hash(&show), config_hash(&retitled));
    let mut rescaled = show.clone();
    rescaled.spec.shard.replicas = 3;
    assert_eq!(config_hash(&show), config_hash(&rescaled));
    let mut reseated = show.clone();
    reseated.spec.seating.sections[0].rows[0].seats = 30;
    assert_ne!(config_hash(&show), config_hash(&reseated));
    let mut repriced = show;
    repriced.spec.categories[0].price = "99.00".into();
    assert_ne!(config_hash(&retitled), config_hash(&repriced));
}

/// A peer as (namespace labels, pod labels).
type Peer = (
    Option<BTreeMap<String, String>>,
    Option<BTreeMap<String, String>>,
);

#[test]
fn config_map_holds_the_normalized_show() {
    let show = theatre();
    let cm = config_map(&show);
    let json = &cm.data.expect("data")["show.json"];
    let parsed = ShowConfig::parse(json).expect("the shard can read it");
    assert_eq!(parsed.name, "hamlet-opening");
    assert_eq!(parsed.namespace, "arts");
    assert_eq!(parsed.spec, show.spec);
}
