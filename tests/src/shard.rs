//! Booking shard replicas as real processes (so tests can kill -9, SIGSTOP or SIGTERM
//! them), plus JWTs for test users.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

use crate::process::{Process, free_port, wait_while_running};

/// The HS256 secret test shards verify with.
pub const TEST_JWT_SECRET: &str = "boxoffice-test-secret-0123456789";

/// A JWT for `user` with `roles`, valid for an hour.
pub fn token(user: &str, roles: &[&str]) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 3600;
    encode(
        &Header::default(),
        &json!({"sub": user, "roles": roles, "exp": exp}),
        &EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
    )
    .unwrap_or_default()
}

/// How to start a replica.
#[derive(Debug, Clone)]
pub struct ShardOptions {
    pub binary: PathBuf,
    pub show_file: PathBuf,
    pub etcd: String,
    pub database_url: String,
    pub lease_ttl: u64,
    pub hold_ttl_seconds: Option<u64>,
    pub extra_env: Vec<(String, String)>,
}

/// One running replica.
pub struct ShardProcess {
    pub name: String,
    pub url: String,
    /// Where `/metrics` is served (its own port).
    pub metrics_url: String,
    process: Process,
}

impl ShardProcess {
    /// Starts replica `name` on a free loopback port and waits until it answers
    /// `/healthz`.
    pub async fn start(name: &str, options: &ShardOptions, log_dir: &Path) -> Result<Self> {
        let port = free_port()?;
        let metrics_port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let metrics_url = format!("http://127.0.0.1:{metrics_port}");
        let mut cmd = Command::new(&options.binary);
        cmd.arg("--show")
            .arg(&options.show_file)
            .arg("--etcd")
            .arg(&options.etcd)
            .arg("--database-url")
            .arg(&options.database_url)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .arg("--pod-name")
            .arg(name)
            .arg("--lease-ttl")
            .arg(options.lease_ttl.to_string())
            .env("BOXOFFICE_JWT_SECRET", TEST_JWT_SECRET)
            .env("RUST_LOG", "info,sqlx=warn");
        if let Some(ttl) = options.hold_ttl_seconds {
            cmd.arg("--hold-ttl-seconds").arg(ttl.to_string());
        }
        for (k, v) in &options.extra_env {
            cmd.env(k, v);
        }
        let mut process = Process::spawn(name, cmd, log_dir)?;
        let http = reqwest::Client::new();
        let health = format!("{url}/healthz");
        wait_while_running(
            &mut process,
            "the shard to answer /healthz",
            Duration::from_secs(30),
            || {
                let http = http.clone();
                let health = health.clone();
                async move {
                    Ok(http
                        .get(&health)
                        .send()
                        .await?
                        .status()
                        .is_success()
                        .then_some(()))
                }
            },
        )
        .await
        .with_context(|| format!("starting shard {name}"))?;
        Ok(Self {
            name: name.to_string(),
            url,
            metrics_url,
            process,
        })
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    /// What `/readyz` says: "leader", "standby", or None when not ready/reachable.
    pub async fn role(&self, http: &reqwest::Client) -> Option<String> {
        let resp = http
            .get(format!("{}/readyz", self.url))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.text().await.ok()
    }

    /// A counter or gauge from `/metrics`.
    pub async fn metric(&self, http: &reqwest::Client, name: &str) -> Option<f64> {
        scrape_metric(http, &format!("{}/metrics", self.metrics_url), name).await
    }
}

/// The `booking-shard` binary built by `cargo test --workspace` (or `cargo build`), or
/// the one `BOXOFFICE_SHARD_BIN` names (a long fault campaign runs a copy, so rebuilding
/// meanwhile does not swap the binary under it).
pub fn shard_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("BOXOFFICE_SHARD_BIN") {
        return Ok(PathBuf::from(path));
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate::tools::repo_root().join("target"));
    let path = target.join("debug").join("booking-shard");
    anyhow::ensure!(
        path.exists(),
        "{} not found: run `cargo build -p booking-shard` first",
        path.display()
    );
    Ok(path)
}

/// One unlabelled counter or gauge from a Prometheus text endpoint.
pub async fn scrape_metric(http: &reqwest::Client, url: &str, name: &str) -> Option<f64> {
    let text = http
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The strings of a JSON array (e.g. a hold's or booking's `seats`); empty when absent.
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

/// Confirms hold `id` at `base` (`…/v1/shows/<show>`) until it is answered: retried
/// after 5xx answers and transport errors (confirming a hold twice yields one booking),
/// given up on a 4xx. Returns the booking, or None when refused or never answered
/// within `attempts`.
pub async fn confirm_until_answered(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    attempts: u32,
    pause: Duration,
) -> Option<serde_json::Value> {
    for _ in 0..attempts {
        let answer = http
            .post(format!("{base}/holds/{id}/confirm"))
            .bearer_auth(token)
            .json(&json!({"paymentReference": format!("pay-{id}")}))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => return Some(r.json().await.unwrap_or_default()),
            Ok(r) if r.status().is_client_error() => return None,
            _ => tokio::time::sleep(pause).await,
        }
    }
    None
}
