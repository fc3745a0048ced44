//! The Helm chart: lints, renders into objects the real API server accepts, and its
//! values schema rejects typos and wrong types. RBAC is per namespace when watching
//! some; the dev etcd and PostgreSQL get NetworkPolicies.

use std::process::Command;

use serde::Deserialize;

use boxoffice_e2e::ControlPlane;
use boxoffice_e2e::tools::{repo_root, tool};

fn helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(tool("helm").expect("helm"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("helm runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const KUBE: &str = "--kube-version=1.33.13";

#[test]
fn chart_lints() {
    let (ok, out, err) = helm(&["lint", "charts/boxoffice", KUBE, "--strict"]);
    assert!(ok, "{out}{err}");
}

#[test]
fn values_schema_rejects_typos_and_wrong_types() {
    for (set, needle) in [
        ("replicaz=2", "replicaz"),
        ("replicas=two", "/replicas"),
        ("logFormat=xml", "/logFormat"),
        ("shard.etcdEndpoints={etcd:2379}", "/shard/etcdEndpoints"),
        ("crds.enable=false", "enable"),
        ("shard.etcdTls.secret=x", "secret"),
        (
            "shard.databaseTls.secretName=Bad_Name",
            "/shard/databaseTls/secretName",
        ),
        (
            "operatorTransport.etcdAuth.secretName=a b",
            "/operatorTransport/etcdAuth",
        ),
        ("shard.allowedImages={evil image}", "/shard/allowedImages/0"),
        (
            "shard.allowedEtcdEndpoints={etcd:2379}",
            "/shard/allowedEtcdEndpoints/0",
        ),
        ("networkPolicy.enable=false", "enable"),
        (
            "networkPolicy.apiFromNamespaceLabels.team=a b",
            "/networkPolicy/apiFromNamespaceLabels",
        ),
        ("routing.mode=istio", "/routing/mode"),
        ("routing.host=Tickets.Example", "/routing/host"),
        ("routing.scheme=ftp", "/routing/scheme"),
        ("routing.gateway.parentRefs[0].nmae=public", "nmae"),
        ("routing.ingress.class=nginx", "class"),
        (
            "events.webhooks[0].url=ftp://a.example/h,events.webhooks[0].secretName=s,events.webhooks[0].secretKey=k",
            "/events/webhooks/0/url",
        ),
        (
            "events.webhooks[0].url=https://user:pw@a.example/h,events.webhooks[0].secretName=s,events.webhooks[0].secretKey=k",
            "/events/webhooks/0/url",
        ),
        ("events.webhooks[0].url=https://a.example/h", "secretName"),
        ("events.webhooks[0].secret=x", "secret"),
        ("events.kafka.brokers={kafka}", "/events/kafka/brokers/0"),
        ("events.kafka.topic=..", "/events/kafka/topic"),
        (
            "events.kafka.timeoutSeconds=301",
            "/events/kafka/timeoutSeconds",
        ),
        ("events.retryWindowSeconds=-1", "/events/retryWindowSeconds"),
        ("events.retryWindow=60", "retryWindow"),
    ] {
        let (ok, _, err) = helm(&["template", "bo", "charts/boxoffice", KUBE, "--set", set]);
        assert!(!ok, "--set {set} was accepted");
        assert!(err.contains(needle), "--set {set}: {err}");
    }
}

#[test]
fn crds_are_gated_and_kept() {
    let (ok, out, err) = helm(&["template", "bo", "charts/boxoffice", KUBE]);
    assert!(ok, "{err}");
    assert!(out.contains("kind: CustomResourceDefinition"));
    assert!(out.contains("helm.sh/resource-policy: keep"));
    let (ok, out, err) = helm(&[
        "template",
        "bo",
        "charts/boxoffice",
        KUBE,
        "--set",
        "crds.enabled=false",
    ]);
    assert!(ok, "{err}");
    assert!(!out.contains("kind: CustomResourceDefinition"));
    let (ok, out, _) = helm(&[
        "template",
        "bo",
        "charts/boxoffice",
        KUBE,
        "--set",
        "crds.keep=false",
    ]);
    assert!(ok);
    assert!(!out.contains("resource-policy"));
    // Two replicas turn leader election on.
    let (_, out, _) = helm(&[
        "template",
        "bo",
        "charts/boxoffice",
        KUBE,
        "--set",
        "replicas=2",
    ]);
    assert!(
        out.contains("name: BOXOFFICE_LEADER_ELECTION\n              value: \"true\""),
        "{out}"
    );
}

/// Every transport Secret set, the database ones without a client certificate.
const TRANSPORT_VALUES: &str = "shard.etcdTls.secretName=etcd-client,\
    shard.etcdAuth.secretName=etcd-user,\
    shard.databaseTls.secretName=pg-client,\
    shard.databaseTls.clientCertificate=false,\
    operatorTransport.etcdTls.secretName=op-etcd,\
    operatorTransport.etcdAuth.secretName=op-etcd-user,\
    operatorTransport.databaseTls.secretName=op-pg,\
    operatorTransport.databaseTls.clientCertificate=false";

#[test]
fn transport_secrets_reach_the_operator_and_its_own_are_mounted() {
    let (ok, out, err) = helm(&[
        "template",
        "bo",
        "charts/boxoffice",
        KUBE,
        "-s",
        "templates/deployment.yaml",
        "--set",
        TRANSPORT_VALUES,
    ]);
    assert!(ok, "{err}");
    let env = |name: &str, value: &str| format!("- name: {name}\n              value: {value}");
    for (name, value) in [
        ("BOXOFFICE_SHARD_ETCD_TLS_SECRET", "\"etcd-client\""),
        ("BOXOFFICE_SHARD_ETCD_CLIENT_CERT", "\"true\""),
        ("BOXOFFICE_SHARD_ETCD_AUTH_SECRET", "\"etcd-user\""),
        ("BOXOFFICE_SHARD_DATABASE_TLS_SECRET", "\"pg-client\""),
        ("BOXOFFICE_SHARD_DATABASE_CLIENT_CERT", "\"false\""),
        (
            "BOXOFFICE_ETCD_CA_FILE",
            "/var/run/secrets/boxoffice/etcd-tls/ca.crt",
        ),
        (
            "BOXOFFICE_ETCD_KEY_FILE",
            "/var/run/secrets/boxoffice/etcd-tls/tls.key",
        ),
        (
            "BOXOFFICE_ETCD_PASSWORD_FILE",
            "/var/run/secrets/boxoffice/etcd-auth/password",
        ),
        (
            "BOXOFFICE_DATABASE_CA_FILE",
            "/var/run/secrets/boxoffice/database-tls/ca.crt",
        ),
    ] {
        assert!(out.contains(&env(name, value)), "{name}={value}:\n{out}");
    }
    assert!(!out.contains("BOXOFFICE_DATABASE_CERT_FILE"), "{out}");
    assert!(out.contains("secretName: \"op-etcd-user\"\n            items:\n              - {key: password, path: password}"), "{out}");
    assert!(
        out.contains(
            "mountPath: /var/run/secrets/boxoffice/etcd-tls\n              readOnly: true"
        ),
        "{out}"
    );
    // Nothing of it without the values.
    let (ok, out, err) = helm(&[
        "template",
        "bo",
        "charts/boxoffice",
        KUBE,
        "-s",
        "templates/deployment.yaml",
    ]);
    assert!(ok, "{err}");
    assert!(
        !out.contains("BOXOFFICE_SHARD_ETCD") && !out.contains("volumes:"),
        "{out}"
    );
}

/// The rendered objects, as YAML values.
fn render(sets: &[&str]) -> Vec<serde_yaml::Value> {
    let mut args = vec![
        "template",
        "bo",
        "charts/boxoffice",
        KUBE,
        "--namespace",
        "ops",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let (ok, out, err) = helm(&args);
    assert!(ok, "{err}");
    serde_yaml::Deserializer::from_str(&out)
        .filter_map(|d| serde_yaml::Value::deserialize(d).ok())
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(objects: &'a [serde_yaml::Value], kind: &str) -> Vec<&'a serde_yaml::Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn operator_env(objects: &[serde_yaml::Value], name: &str) -> String {
    operator_env_opt(objects, name).unwrap_or_else(|| panic!("no {name}"))
}

fn operator_env_opt(objects: &[serde_yaml::Value], name: &str) -> Option<String> {
    let d = of_kind(objects, "Deployment")
        .into_iter()
        .find(|d| d["metadata"]["name"] == "bo-boxoffice")
        .expect("operator deployment");
    let env = d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .expect("env");
    env.iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(String::from)
}

#[test]
fn event_sinks_reach_the_operator_which_parses_them() {
    use boxoffice_operator::events::{DefaultWebhook, parse_brokers, parse_webhooks};
    let defaults = render(&[]);
    assert_eq!(operator_env(&defaults, "BOXOFFICE_EVENTS_WEBHOOKS"), "[]");
    assert_eq!(
        operator_env(&defaults, "BOXOFFICE_EVENTS_KAFKA_BROKERS"),
        ""
    );
    assert_eq!(
        operator_env(&defaults, "BOXOFFICE_EVENTS_KAFKA_TOPIC"),
        "boxoffice.bookings"
    );
    for unset in [
        "BOXOFFICE_EVENTS_KAFKA_TIMEOUT",
        "BOXOFFICE_EVENTS_RETRY_WINDOW",
    ] {
        assert_eq!(operator_env_opt(&defaults, unset), None, "{unset}");
    }
    let set = render(&[
        "events.webhooks[0].url=https://audit.example/hooks/boxoffice",
        "events.webhooks[0].secretName=audit-webhook",
        "events.webhooks[0].secretKey=whsec",
        "events.webhooks[1].url=http://crm.crm.svc:8080/in",
        "events.webhooks[1].secretName=crm-webhook",
        "events.webhooks[1].secretKey=signing",
        "events.kafka.brokers={kafka-0.kafka:9092,kafka-1.kafka:9092}",
        "events.kafka.topic=tickets.bookings",
        "events.kafka.timeoutSeconds=15",
        "events.retryWindowSeconds=600",
    ]);
    let hooks = parse_webhooks(&operator_env(&set, "BOXOFFICE_EVENTS_WEBHOOKS")).expect("parses");
    let webhook = |url: &str, secret_name: &str, secret_key: &str| DefaultWebhook {
        url: url.into(),
        secret_name: secret_name.into(),
        secret_key: secret_key.into(),
    };
    assert_eq!(
        hooks.0,
        [
            webhook(
                "https://audit.example/hooks/boxoffice",
                "audit-webhook",
                "whsec"
            ),
            webhook("http://crm.crm.svc:8080/in", "crm-webhook", "signing"),
        ]
    );
    let brokers =
        parse_brokers(&operator_env(&set, "BOXOFFICE_EVENTS_KAFKA_BROKERS")).expect("parses");
    assert_eq!(brokers.0, ["kafka-0.kafka:9092", "kafka-1.kafka:9092"]);
    for (name, value) in [
        ("BOXOFFICE_EVENTS_KAFKA_TOPIC", "tickets.bookings"),
        ("BOXOFFICE_EVENTS_KAFKA_TIMEOUT", "15"),
        ("BOXOFFICE_EVENTS_RETRY_WINDOW", "600"),
    ] {
        assert_eq!(operator_env(&set, name), value, "{name}");
    }
}

#[test]
fn routing_values_reach_the_operator_and_routes_get_least_rights() {
    let all = render(&[
        "routing.mode=ingress",
        "routing.scheme=http",
        "routing.gateway.parentRefs[0].name=public",
        "routing.gateway.parentRefs[0].namespace=gateway",
        "routing.ingress.className=traefik",
    ]);
    assert_eq!(operator_env(&all, "BOXOFFICE_ROUTE_MODE"), "ingress");
    assert_eq!(operator_env(&all, "BOXOFFICE_ROUTE_SCHEME"), "http");
    assert_eq!(operator_env(&all, "BOXOFFICE_INGRESS_CLASS"), "traefik");
    let refs: serde_json::Value =
        serde_json::from_str(&operator_env(&all, "BOXOFFICE_GATEWAY_PARENT_REFS")).expect("JSON");
    assert_eq!(
        refs,
        serde_json::json!([{"name": "public", "namespace": "gateway"}])
    );
    // The operator parses what the chart renders.
    boxoffice_operator::routing::parse_parent_refs(&refs.to_string()).expect("parent refs");
    let defaults = render(&[]);
    assert_eq!(
        operator_env(&defaults, "BOXOFFICE_GATEWAY_PARENT_REFS"),
        "[]"
    );
    assert_eq!(operator_env(&defaults, "BOXOFFICE_ROUTE_HOST"), "");
    let rules = of_kind(&defaults, "ClusterRole")[0]["rules"]
        .as_sequence()
        .expect("rules")
        .clone();
    for (group, resource) in [
        ("gateway.networking.k8s.io", "httproutes"),
        ("networking.k8s.io", "ingresses"),
    ] {
        let rule = rules
            .iter()
            .find(|r| r["apiGroups"][0] == group && r["resources"][0] == resource)
            .unwrap_or_else(|| panic!("no rule for {resource}"));
        let verbs: Vec<&str> = rule["verbs"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(
            verbs,
            ["get", "create", "patch", "delete"],
            "{resource}: never list or watch"
        );
    }
}

#[test]
fn watched_namespaces_get_roles_and_no_cluster_role() {
    // All namespaces: one ClusterRole (and only the leader-election Role).
    let all = render(&[]);
    assert_eq!(of_kind(&all, "ClusterRole").len(), 1);
    assert_eq!(of_kind(&all, "ClusterRoleBinding").len(), 1);
    let roles = of_kind(&all, "Role");
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["metadata"]["name"], "bo-boxoffice-leader-election");

    let some = render(&["watchNamespaces={arts,sport}"]);
    assert!(of_kind(&some, "ClusterRole").is_empty());
    assert!(of_kind(&some, "ClusterRoleBinding").is_empty());
    let cluster_rules = &of_kind(&all, "ClusterRole")[0]["rules"];
    for ns in ["arts", "sport"] {
        let role = of_kind(&some, "Role")
            .into_iter()
            .find(|r| r["metadata"]["namespace"] == ns && r["metadata"]["name"] == "bo-boxoffice")
            .unwrap_or_else(|| panic!("no Role in {ns}"));
        // The same rights as the ClusterRole would give, in this namespace only.
        assert_eq!(&role["rules"], cluster_rules);
        let binding = of_kind(&some, "RoleBinding")
            .into_iter()
            .find(|r| r["metadata"]["namespace"] == ns && r["metadata"]["name"] == "bo-boxoffice")
            .unwrap_or_else(|| panic!("no RoleBinding in {ns}"));
        assert_eq!(binding["roleRef"]["kind"], "Role");
        assert_eq!(binding["subjects"][0]["name"], "bo-boxoffice");
        assert_eq!(binding["subjects"][0]["namespace"], "ops");
    }
    assert_eq!(
        operator_env(&some, "BOXOFFICE_WATCH_NAMESPACES"),
        "arts,sport"
    );
    // NetworkPolicy rights only when the operator owns NetworkPolicies.
    let rules = serde_yaml::to_string(cluster_rules).expect("yaml");
    assert!(rules.contains("networkpolicies"), "{rules}");
    let off = render(&["networkPolicy.enabled=false"]);
    let rules = serde_yaml::to_string(&of_kind(&off, "ClusterRole")[0]["rules"]).expect("yaml");
    assert!(!rules.contains("networkpolicies"), "{rules}");
    assert_eq!(operator_env(&off, "BOXOFFICE_NETWORK_POLICY"), "false");
}

#[test]
fn allowlists_and_network_policy_selectors_reach_the_operator() {
    let defaults = render(&[]);
    assert_eq!(
        operator_env(&defaults, "BOXOFFICE_ALLOWED_SHARD_IMAGES"),
        ""
    );
    assert_eq!(
        operator_env(&defaults, "BOXOFFICE_ALLOWED_ETCD_ENDPOINTS"),
        ""
    );
    assert_eq!(operator_env(&defaults, "BOXOFFICE_NETWORK_POLICY"), "true");
    assert_eq!(
        operator_env(&defaults, "BOXOFFICE_NETWORK_POLICY_API_FROM"),
        "boxoffice.dev/api-access=true"
    );
    assert_eq!(
        operator_env(&defaults, "BOXOFFICE_NETWORK_POLICY_METRICS_FROM"),
        "boxoffice.dev/metrics-access=true"
    );
    let set = render(&[
        "shard.allowedImages={registry.example/boxoffice/,ghcr.io/x/shard:}",
        "shard.allowedEtcdEndpoints={https://etcd-a:2379}",
        // Null drops a default label; the other is added.
        r"networkPolicy.apiFromNamespaceLabels.boxoffice\.dev/api-access=null",
        r"networkPolicy.apiFromNamespaceLabels.kubernetes\.io/metadata\.name=gateway",
    ]);
    assert_eq!(
        operator_env(&set, "BOXOFFICE_ALLOWED_SHARD_IMAGES"),
        "registry.example/boxoffice/,ghcr.io/x/shard:"
    );
    assert_eq!(
        operator_env(&set, "BOXOFFICE_ALLOWED_ETCD_ENDPOINTS"),
        "https://etcd-a:2379"
    );
    assert_eq!(
        operator_env(&set, "BOXOFFICE_NETWORK_POLICY_API_FROM"),
        "kubernetes.io/metadata.name=gateway"
    );
}

#[test]
fn dev_databases_admit_only_shards_and_the_operator() {
    assert!(
        of_kind(
            &render(&["dev.enabled=true", "networkPolicy.enabled=false"]),
            "NetworkPolicy"
        )
        .is_empty()
    );
    assert!(of_kind(&render(&[]), "NetworkPolicy").is_empty());
    for (sets, namespaces) in [
        (vec!["dev.enabled=true"], None),
        (
            vec!["dev.enabled=true", "watchNamespaces={arts,sport}"],
            Some(vec!["arts", "sport"]),
        ),
    ] {
        let objects = render(&sets);
        let policies = of_kind(&objects, "NetworkPolicy");
        assert_eq!(policies.len(), 2);
        for (name, port) in [("dev-etcd", 2379), ("dev-postgres", 5432)] {
            let p = policies
                .iter()
                .find(|p| p["metadata"]["name"] == format!("bo-boxoffice-{name}").as_str())
                .unwrap_or_else(|| panic!("no policy for {name}"));
            let spec = &p["spec"];
            // It selects the database's pods, as its Deployment labels them.
            let d = of_kind(&objects, "Deployment")
                .into_iter()
                .find(|d| d["metadata"]["name"] == format!("bo-boxoffice-{name}").as_str())
                .expect("deployment");
            assert_eq!(
                spec["podSelector"]["matchLabels"],
                d["spec"]["selector"]["matchLabels"]
            );
            assert_eq!(spec["policyTypes"][0], "Ingress");
            let rules = spec["ingress"].as_sequence().expect("ingress");
            assert_eq!(rules.len(), 1);
            assert_eq!(rules[0]["ports"][0]["port"], port);
            let from = rules[0]["from"].as_sequence().expect("from");
            assert_eq!(from.len(), 2);
            // Shard pods...
            assert_eq!(
                from[0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
                "booking-shard"
            );
            match &namespaces {
                None => assert_eq!(
                    from[0]["namespaceSelector"],
                    serde_yaml::Value::Mapping(Default::default())
                ),
                Some(ns) => {
                    let expr = &from[0]["namespaceSelector"]["matchExpressions"][0];
                    assert_eq!(expr["key"], "kubernetes.io/metadata.name");
                    assert_eq!(expr["operator"], "In");
                    let values: Vec<&str> = expr["values"]
                        .as_sequence()
                        .expect("values")
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect();
                    assert_eq!(&values, ns);
                }
            }
            // ...and the operator's pods, in the release namespace.
            assert_eq!(
                from[1]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
                "boxoffice-operator"
            );
            assert!(from[1]["namespaceSelector"].is_null());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_chart_is_accepted_by_the_api_server() {
    let plane = ControlPlane::start().await.expect("control plane");
    for ns in ["boxoffice-system", "arts", "sport"] {
        let (ok, _, err) = plane
            .kubectl_run(&["create", "namespace", ns])
            .expect("kubectl");
        assert!(ok, "{err}");
    }
    for extra in [
        "dev.enabled=false",
        "dev.enabled=true",
        "watchNamespaces={arts,sport}",
        TRANSPORT_VALUES,
    ] {
        let (ok, rendered, err) = helm(&[
            "template",
            "boxoffice",
            "charts/boxoffice",
            KUBE,
            "--namespace",
            "boxoffice-system",
            "--set",
            extra,
        ]);
        assert!(ok, "{err}");
        let (ok, out, err) = plane
            .kubectl_stdin(
                // Every namespaced object names its namespace (the Roles name theirs).
                &["apply", "--dry-run=server", "-f", "-"],
                &rendered,
            )
            .expect("kubectl");
        assert!(ok, "server-side dry run with {extra} failed: {err}");
        if extra.starts_with("watchNamespaces") {
            assert!(!out.contains("clusterrole"), "{out}");
            assert!(
                out.contains("role.rbac.authorization.k8s.io/boxoffice created (server dry run)"),
                "{out}"
            );
        } else {
            assert!(
                out.contains(
                    "clusterrole.rbac.authorization.k8s.io/boxoffice created (server dry run)"
                ),
                "{out}"
            );
        }
        if extra == "dev.enabled=true" {
            assert!(
                out.contains(
                    "networkpolicy.networking.k8s.io/boxoffice-dev-postgres created (server dry run)"
                ),
                "{out}"
            );
        }
    }
}
