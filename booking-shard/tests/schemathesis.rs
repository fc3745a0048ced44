//! The served OpenAPI document is the truth: schemathesis (from PyPI, installed by
//! scripts/tools.sh) generates requests for every operation from it — valid and
//! invalid — and checks every answer against it (status documented, content type,
//! schema, headers, no 5xx, invalid input refused), through the leader and through a
//! standby, on real etcd and PostgreSQL.
//!
//! The Server-Sent Event operations are left out: schemathesis reads a whole body and
//! a stream never ends. `edge.rs` and `api.rs` test them.

mod common;

use std::path::PathBuf;
use std::process::Command;

use boxoffice_e2e::token;
use common::{Cluster, show_yaml};

/// The schemathesis CLI: `BOXOFFICE_SCHEMATHESIS`, or `st` in the test toolchain.
fn schemathesis() -> PathBuf {
    if let Some(p) = std::env::var_os("BOXOFFICE_SCHEMATHESIS") {
        return p.into();
    }
    let bin = std::env::var_os("BOXOFFICE_TOOLS_BIN")
        .map(PathBuf::from)
        .expect("BOXOFFICE_TOOLS_BIN is set by scripts/test.sh (run scripts/tools.sh)");
    let st = bin.join("st");
    assert!(
        st.exists(),
        "{} missing: scripts/tools.sh installs schemathesis",
        st.display()
    );
    st
}

fn run(cluster: &Cluster, replica: usize, what: &str) {
    let url = &cluster.replicas[replica].url;
    let report = cluster.dir.path().join(format!("schemathesis-{what}"));
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let out = Command::new(schemathesis())
        .args(["--config-file", config])
        .arg("run")
        .arg(format!("{url}/v1/openapi.json"))
        .args(["--checks", "all"])
        .args(["--exclude-path-regex", "/events(/stream)?$"])
        .args(["--max-examples", "25"])
        .args(["--seed", "20261123"])
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .arg("--header")
        .arg(format!(
            "Authorization: Bearer {}",
            token("fuzzer", &["staff"])
        ))
        .arg("--report-dir")
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "")
        // Its cache lands in the working directory: keep it in the test's temp dir.
        .current_dir(cluster.dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures through the {what}:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    let summary = stdout.find("SUMMARY").map_or("", |i| &stdout[i..]);
    println!("through the {what}:\n{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_conforms_through_leader_and_standby() {
    let cluster =
        Cluster::start(&show_yaml("contract", 3, 10, Some(50), 4, None), 2, 3, None).await;
    let leader = cluster.leader().await;
    let standby = 1 - leader;
    let cluster = tokio::task::spawn_blocking(move || {
        run(&cluster, leader, "leader");
        run(&cluster, standby, "standby");
        cluster
    })
    .await
    .expect("schemathesis task");
    // The fuzzing left the book consistent.
    cluster.check_counts(0).await.expect("counts");
}
