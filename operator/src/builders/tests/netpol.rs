use super::*;

fn peers_of(rule: &NetworkPolicyIngressRule) -> Vec<Peer> {
    rule.from
        .iter()
        .flatten()
        .map(|p| {
            (
                p.namespace_selector.clone().map(|s| {
                    assert!(s.match_expressions.is_none());
                    s.match_labels.expect("namespace labels")
                }),
                p.pod_selector
                    .clone()
                    .map(|s| s.match_labels.expect("pod labels")),
            )
        })
        .collect()
}

fn ports_of(rule: &NetworkPolicyIngressRule) -> Vec<IntOrString> {
    rule.ports
        .iter()
        .flatten()
        .map(|p| {
            assert_eq!(p.protocol.as_deref(), Some("TCP"));
            p.port.clone().expect("port")
        })
        .collect()
}

fn labels_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn network_policy_admits_peers_gateway_operator_and_scrapers_only() {
    let show = theatre();
    let c = Config::parse_from([
        "boxoffice-operator",
        "--lease-namespace",
        "boxoffice-system",
        "--network-policy-api-from",
        "boxoffice.dev/api-access=true",
        "--network-policy-metrics-from",
        "kubernetes.io/metadata.name=monitoring",
    ]);
    let np = network_policy(&show, &c);
    assert_eq!(np.metadata.name.as_deref(), Some("hamlet-opening-shard"));
    assert_eq!(np.metadata.namespace.as_deref(), Some("arts"));
    assert_eq!(
        np.metadata.owner_references.as_ref().expect("owner")[0].kind,
        "Show"
    );
    let spec = np.spec.expect("spec");
    // It selects exactly the show's shard pods, as the Deployment does.
    let d = deployment(&show, &c).spec.expect("deployment spec");
    assert_eq!(spec.pod_selector, Some(d.selector.clone()));
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
    assert!(spec.egress.is_none());
    let rules = spec.ingress.expect("ingress");
    assert_eq!(rules.len(), 2);

    assert_eq!(ports_of(&rules[0]), [IntOrString::Int(8080)]);
    assert_eq!(
        peers_of(&rules[0]),
        [
            (None, Some(selector(&show))),
            (
                Some(labels_of(&[(
                    "kubernetes.io/metadata.name",
                    "boxoffice-system"
                )])),
                None
            ),
            (
                Some(labels_of(&[("boxoffice.dev/api-access", "true")])),
                None
            ),
        ]
    );
    assert_eq!(ports_of(&rules[1]), [IntOrString::Int(9090)]);
    assert_eq!(
        peers_of(&rules[1]),
        [(
            Some(labels_of(&[("kubernetes.io/metadata.name", "monitoring")])),
            None
        )]
    );
    // The ports are the container's.
    let container_ports: Vec<i32> = d.template.spec.expect("pod").containers[0]
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(container_ports, [8080, 9090]);
}

#[test]
fn network_policy_without_selectors_never_opens_to_every_namespace() {
    let show = theatre();
    let np = network_policy(&show, &config());
    let rules = np.spec.expect("spec").ingress.expect("ingress");
    // Only the API rule: no scrapers configured, so no metrics rule at all.
    assert_eq!(rules.len(), 1);
    let peers = peers_of(&rules[0]);
    assert_eq!(peers.len(), 2, "{peers:?}");
    for (ns, pods) in peers {
        assert!(
            ns.is_none_or(|l| !l.is_empty()) && pods.is_none_or(|l| !l.is_empty()),
            "an empty selector would admit everything"
        );
    }
}
