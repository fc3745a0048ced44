//! Bad configuration: a clear error naming the problem and a non-zero exit, before any
//! server is contacted.

use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_booking-shard"));
    cmd.args(args)
        .env_remove("BOXOFFICE_JWT_SECRET")
        .env_remove("DATABASE_URL")
        .env_remove("BOXOFFICE_SHOW");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run booking-shard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn club_with(from: &str, to: &str) -> tempfile::NamedTempFile {
    let club = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/shows/club.yaml"
    ))
    .expect("club.yaml");
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), club.replace(from, to)).expect("write");
    file
}

const DB: &str = "postgres://nobody@127.0.0.1:1/none";

#[test]
fn missing_show_file() {
    let (ok, err) = run(
        &["--show", "/nonexistent/show.yaml", "--database-url", DB],
        &[("BOXOFFICE_JWT_SECRET", "0123456789abcdef0123456789abcdef")],
    );
    assert!(!ok);
    assert!(
        err.contains("reading the show from /nonexistent/show.yaml"),
        "{err}"
    );
}

#[test]
fn invalid_show_names_the_fields() {
    let file = club_with("replicas: 2", "replicas: 0");
    let path = file.path().to_str().expect("path");
    let (ok, err) = run(
        &["--show", path, "--database-url", DB],
        &[("BOXOFFICE_JWT_SECRET", "0123456789abcdef0123456789abcdef")],
    );
    assert!(!ok);
    assert!(err.contains("spec.shard.replicas"), "{err}");
}

#[test]
fn not_a_show_at_all() {
    let file = club_with("kind: Show", "kind: ConfigMap");
    let path = file.path().to_str().expect("path");
    let (ok, err) = run(
        &["--show", path, "--database-url", DB],
        &[("BOXOFFICE_JWT_SECRET", "0123456789abcdef0123456789abcdef")],
    );
    assert!(!ok);
    assert!(err.contains("not a Show manifest or show config"), "{err}");
}

#[test]
fn missing_or_weak_jwt_key() {
    let file = club_with("", "");
    let path = file.path().to_str().expect("path");
    let (ok, err) = run(&["--show", path, "--database-url", DB], &[]);
    assert!(!ok);
    assert!(err.contains("no JWT key"), "{err}");
    let (ok, err) = run(
        &["--show", path, "--database-url", DB],
        &[("BOXOFFICE_JWT_SECRET", "short")],
    );
    assert!(!ok);
    assert!(err.contains("at least 32 bytes"), "{err}");
    // The secret itself is never echoed.
    assert!(!err.contains("short\""), "{err}");
}

#[test]
fn missing_database_url_and_bad_flags() {
    let (ok, err) = run(&["--show", "x.yaml"], &[]);
    assert!(!ok);
    assert!(err.contains("--database-url"), "{err}");
    let (ok, err) = run(
        &["--show", "x.yaml", "--database-url", DB, "--lease-ttl", "0"],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("--lease-ttl"), "{err}");
}

#[test]
fn unreachable_database_is_reported() {
    let file = club_with("", "");
    let path = file.path().to_str().expect("path");
    let (ok, err) = run(
        &["--show", path, "--database-url", DB],
        &[("BOXOFFICE_JWT_SECRET", "0123456789abcdef0123456789abcdef")],
    );
    assert!(!ok);
    assert!(err.contains("connecting to PostgreSQL"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
