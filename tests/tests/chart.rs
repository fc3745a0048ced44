//! The Helm chart: lints, renders into objects the real API server accepts, and its
//! values schema rejects typos and wrong types.

use std::process::Command;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_chart_is_accepted_by_the_api_server() {
    let plane = ControlPlane::start().await.expect("control plane");
    let (ok, _, err) = plane
        .kubectl_run(&["create", "namespace", "boxoffice-system"])
        .expect("kubectl");
    assert!(ok, "{err}");
    for extra in ["dev.enabled=false", "dev.enabled=true", TRANSPORT_VALUES] {
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
                &[
                    "apply",
                    "--dry-run=server",
                    "-n",
                    "boxoffice-system",
                    "-f",
                    "-",
                ],
                &rendered,
            )
            .expect("kubectl");
        assert!(ok, "server-side dry run with {extra} failed: {err}");
        assert!(
            out.contains(
                "clusterrole.rbac.authorization.k8s.io/boxoffice created (server dry run)"
            ),
            "{out}"
        );
    }
}
