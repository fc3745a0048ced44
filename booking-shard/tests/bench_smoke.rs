//! The benchmark's workloads, CI-sized: every scenario of `boxoffice-load` that
//! `scripts/bench.sh` runs, for two seconds each against a real shard (etcd and
//! PostgreSQL), and the PostgreSQL baseline design. It fails when a workload errors
//! (5xx, transport errors, a scenario that cannot run at all) or grants a seat twice, or
//! when PostgreSQL's bookings differ from the acknowledged confirms; never on timings
//! (the figures are `scripts/bench.sh`'s, docs/benchmarks.md).
//!
//! The Redis baseline is left to `scripts/bench.sh` (it installs redis-server).

mod common;

use std::path::PathBuf;
use std::process::Command;

use boxoffice_e2e::PostgresServer;
use boxoffice_e2e::shard::TEST_JWT_SECRET;
use common::{Cluster, show_yaml};
use serde_json::Value;

/// The load generator `cargo build --workspace --bins` put beside the shard.
fn load_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_booking-shard")).with_file_name("boxoffice-load");
    assert!(
        path.exists(),
        "{} not found: build it first (`cargo build --workspace --bins`, as scripts/test.sh does)",
        path.display()
    );
    path
}

/// Runs `boxoffice-load` with `args`; every JSON line it printed, after checking it
/// exited successfully (it exits non-zero on a double grant or a booking mismatch).
fn run_load(args: &[&str]) -> Vec<Value> {
    let out = Command::new(load_binary())
        .args(args)
        .env("BOXOFFICE_JWT_SECRET", TEST_JWT_SECRET)
        .output()
        .expect("boxoffice-load runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "boxoffice-load {args:?} failed: {stderr}"
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON report line"))
        .collect();
    assert!(!lines.is_empty(), "no report from {args:?}: {stderr}");
    lines
}

/// What every workload must satisfy, whatever its speed.
fn check(report: &Value, what: &str) {
    let n = |k: &str| report[k].as_u64().unwrap_or(u64::MAX);
    assert!(n("attempts") > 0, "{what}: no attempt: {report}");
    assert!(n("ok") > 0, "{what}: nothing succeeded: {report}");
    for k in ["server_errors", "transport_errors", "seats_held_twice"] {
        assert_eq!(n(k), 0, "{what}: {k}: {report}");
    }
    if let Some(db) = report["bookings_in_db"].as_u64() {
        assert_eq!(db, n("ok"), "{what}: bookings in PostgreSQL: {report}");
    }
}

/// A fresh show of 20 rows of 50 seats and a standing area, limits lifted (the load
/// generator's users are few and fast).
async fn cluster(name: &str) -> Cluster {
    Cluster::start(
        &show_yaml(name, 20, 50, Some(500), 4, Some(10_000)),
        1,
        3,
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_of_the_benchmark_runs_clean() {
    let common = ["--duration", "2", "--concurrency", "8", "--users", "200"];
    for (scenario, extra) in [
        ("holds", &["--stop-at-fill", "0.25"][..]),
        ("hot", &[][..]),
        ("war", &["--then-confirm"][..]),
        ("seatmap", &[][..]),
        ("confirms", &["--prepare", "300"][..]),
        (
            "churn",
            &["--release-fraction", "0.5", "--confirm-fraction", "0.1"][..],
        ),
    ] {
        let c = cluster(&format!("smoke-{scenario}")).await;
        let url = c.replicas[0].url.clone();
        let mut args = vec![
            "--url",
            &url,
            "--show",
            &c.show,
            "--scenario",
            scenario,
            "--database-url",
            &c.db_url,
            "--label",
            "smoke",
        ];
        args.extend(common);
        args.extend(extra);
        let reports = run_load(&args);
        for r in &reports {
            check(r, scenario);
        }
        if scenario == "war" {
            // Sold out, then every won hold confirmed: the second line.
            assert_eq!(reports.len(), 2, "war --then-confirm: {reports:?}");
        }
        println!("{scenario}: {}", reports[reports.len() - 1]);
    }
}

/// The negative control of the check above: a report that granted a seat twice, or
/// answered 5xx, fails it.
#[test]
fn the_check_catches_a_double_grant_and_server_errors() {
    let good = serde_json::json!({
        "attempts": 10, "ok": 5, "server_errors": 0, "transport_errors": 0,
        "seats_held_twice": 0, "bookings_in_db": 5,
    });
    check(&good, "control");
    for (k, v) in [
        ("seats_held_twice", 1),
        ("server_errors", 3),
        ("transport_errors", 1),
        ("bookings_in_db", 4),
        ("ok", 0),
    ] {
        let mut bad = good.clone();
        bad[k] = v.into();
        let caught = std::panic::catch_unwind(|| check(&bad, "control")).is_err();
        assert!(caught, "a report with {k} = {v} passed the check");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_baseline_runs_clean() {
    let db = PostgresServer::shared()
        .await
        .expect("postgres")
        .create_database()
        .await
        .expect("database");
    let dir = tempfile::tempdir().expect("tempdir");
    for (scenario, extra) in [
        ("holds", &["--stop-at-fill", "0.25"][..]),
        ("hot", &[][..]),
        ("seatmap", &[][..]),
        ("confirms", &["--prepare", "300"][..]),
        ("war", &["--then-confirm"][..]),
    ] {
        // Each scenario on its own show (their tables are per show).
        let show = format!("bl-smoke-{scenario}");
        let file = dir.path().join(format!("{show}.yaml"));
        std::fs::write(&file, show_yaml(&show, 20, 50, None, 4, Some(10_000))).expect("show file");
        let file = file.display().to_string();
        let mut args = vec![
            "--target",
            "postgres",
            "--show",
            &show,
            "--show-file",
            &file,
            "--pg-url",
            &db,
            "--scenario",
            scenario,
            "--duration",
            "2",
            "--concurrency",
            "8",
            "--users",
            "200",
        ];
        args.extend(extra);
        let reports = run_load(&args);
        for r in &reports {
            check(r, &format!("postgres {scenario}"));
        }
    }
}
