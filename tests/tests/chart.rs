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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_chart_is_accepted_by_the_api_server() {
    let plane = ControlPlane::start().await.expect("control plane");
    let (ok, _, err) = plane
        .kubectl_run(&["create", "namespace", "boxoffice-system"])
        .expect("kubectl");
    assert!(ok, "{err}");
    for extra in ["dev.enabled=false", "dev.enabled=true"] {
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
