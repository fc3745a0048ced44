//! A client generated from the checked-in OpenAPI document (booking-shard/openapi.json)
//! with a standard generator — openapi-python-client from PyPI, installed by
//! scripts/tools.sh — runs a hold → confirm → cancel flow against a real shard, through
//! a standby: typed requests, typed answers, typed errors with their stable codes
//! (tests/generated_client.py).

mod common;

use std::path::PathBuf;
use std::process::Command;

use boxoffice_e2e::token;
use common::{Cluster, show_yaml};

/// The generator, and the Python of its virtualenv (which has what the generated code
/// needs: httpx, attrs).
fn generator() -> (PathBuf, PathBuf) {
    let bin = std::env::var_os("BOXOFFICE_TOOLS_BIN")
        .map(PathBuf::from)
        .expect("BOXOFFICE_TOOLS_BIN is set by scripts/test.sh (run scripts/tools.sh)");
    let link = bin.join("openapi-python-client");
    let generator = std::fs::canonicalize(&link).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (scripts/tools.sh installs openapi-python-client)",
            link.display()
        )
    });
    let python = generator
        .parent()
        .expect("the virtualenv's bin")
        .join("python");
    (generator, python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_client_holds_confirms_and_cancels() {
    let (generator, python) = generator();
    let cluster = Cluster::start(&show_yaml("generated", 1, 2, None, 4, None), 2, 3, None).await;
    let standby = 1 - cluster.leader().await;
    let dir = cluster.dir.path().to_path_buf();
    let document = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated_client.py");
    let base = cluster.replicas[standby].url.clone();
    let show = cluster.show.clone();

    let out = tokio::task::spawn_blocking(move || {
        let generated = Command::new(&generator)
            .args(["generate", "--path", document, "--meta", "none"])
            .arg("--output-path")
            .arg(dir.join("boxoffice_client"))
            .current_dir(&dir)
            .output()
            .expect("openapi-python-client runs");
        assert!(
            generated.status.success(),
            "generating the client failed:\n{}\n{}",
            String::from_utf8_lossy(&generated.stdout),
            String::from_utf8_lossy(&generated.stderr)
        );
        Command::new(&python)
            .arg(script)
            .arg(&dir)
            .arg(&base)
            .arg(&show)
            .arg(token("ann", &[]))
            .arg(token("bob", &[]))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("python runs")
    })
    .await
    .expect("the client task");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the generated client's flow failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    assert!(
        stdout.contains("hold -> confirm -> cancel passed"),
        "{stdout}"
    );
    println!("{stdout}");
    cluster.check_counts(0).await.expect("counts");
}
