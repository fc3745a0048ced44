//! The shard NetworkPolicy.

use std::collections::BTreeMap;

use boxoffice_crds::Show;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{HTTP_PORT, METRICS_PORT, meta, selector, shard_name};
use crate::config::Config;

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn namespaces_labelled(labels: BTreeMap<String, String>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(labels),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Ingress to the shard pods: the API port from the show's own pods (standbys forward
/// to the leader), the operator's namespace (it polls the leader) and the namespaces
/// labelled for API access (the gateway); the metrics port from the namespaces labelled
/// for scraping. Nothing else, and nothing at all from an empty label set (an empty
/// namespace selector would mean every namespace). Egress is not restricted.
pub fn network_policy(show: &Show, config: &Config) -> NetworkPolicy {
    let same_show = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(selector(show)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let operator = namespaces_labelled(BTreeMap::from([(
        "kubernetes.io/metadata.name".to_string(),
        config.lease_namespace.clone(),
    )]));
    let mut api_from = vec![same_show, operator];
    let gateway = config.api_from_labels();
    if !gateway.is_empty() {
        api_from.push(namespaces_labelled(gateway));
    }
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: Some(api_from),
        ports: Some(vec![tcp(HTTP_PORT)]),
    }];
    let monitoring = config.metrics_from_labels();
    if !monitoring.is_empty() {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(vec![namespaces_labelled(monitoring)]),
            ports: Some(vec![tcp(METRICS_PORT)]),
        });
    }
    NetworkPolicy {
        metadata: meta(show, shard_name(show)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector(show)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            egress: None,
        }),
    }
}
