//! A shard cluster for tests: real etcd, a fresh PostgreSQL database, N replicas.
#![allow(dead_code)]

pub mod sse;

use std::time::Duration;

use boxoffice_e2e::{
    EtcdOptions, EtcdServer, PostgresServer, ShardOptions, ShardProcess, token, wait_for,
};
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

/// A show manifest: one section `main` of `rows` rows (A, B, ...) × `seats` seats, and
/// optionally a GA area `pit`.
pub fn show_yaml(
    name: &str,
    rows: u32,
    seats: u32,
    ga: Option<u32>,
    per_hold: u32,
    per_user: Option<u32>,
) -> String {
    let mut seating = String::new();
    if rows > 0 {
        let last = (b'A' + (rows - 1) as u8) as char;
        seating.push_str(&format!(
            "    sections:\n      - name: main\n        category: std\n        rows:\n          - names: \"A-{last}\"\n            seats: {seats}\n"
        ));
    }
    if let Some(capacity) = ga {
        seating.push_str(&format!(
            "    generalAdmission:\n      - name: pit\n        capacity: {capacity}\n        category: std\n"
        ));
    }
    let per_user = per_user
        .map(|n| format!("\n    maxSeatsPerUser: {n}"))
        .unwrap_or_default();
    format!(
        "apiVersion: boxoffice.dev/v1alpha1
kind: Show
metadata:
  name: {name}
  namespace: tests
spec:
  title: Test show
  startsAt: \"2027-01-01T20:00:00Z\"
  categories:
    - name: std
      price: \"10.50\"
      currency: EUR
  seating:
{seating}  holds:
    ttl: 10m
    maxSeatsPerHold: {per_hold}{per_user}
"
    )
}

pub struct Cluster {
    pub etcd: EtcdServer,
    pub db_url: String,
    pub options: ShardOptions,
    pub replicas: Vec<ShardProcess>,
    pub http: reqwest::Client,
    pub show: String,
    pub dir: TempDir,
}

impl Cluster {
    /// Starts `replicas` replicas and waits until they all serve: one as the leader,
    /// the others as standbys that know it (as a Service would route only to them).
    pub async fn start(
        show_yaml: &str,
        replicas: usize,
        lease_ttl: u64,
        hold_ttl: Option<u64>,
    ) -> Cluster {
        let mut cluster = Cluster::new(show_yaml, lease_ttl, hold_ttl).await;
        for i in 0..replicas {
            cluster.add_replica(&format!("shard-{i}")).await;
        }
        cluster.all_serving().await;
        cluster
    }

    /// Waits until every replica is ready — one says `leader`, the rest `standby` —
    /// and returns the leader's index. A standby that has not yet seen the election
    /// answers `no_leader`; a client behind a Service never reaches it then.
    pub async fn all_serving(&self) -> usize {
        self.wait_readiness("every replica to serve", |ready| {
            // A replica in its failover grace is ready but does not serve.
            if ready
                .iter()
                .any(|r| !matches!(r.as_deref(), Some("leader" | "standby")))
            {
                return None;
            }
            ready.iter().position(|r| r.as_deref() == Some("leader"))
        })
        .await
    }

    /// Polls every replica's `/readyz` (its answer when 200, else `None`) until
    /// `decide` picks a replica; panics with the logs after 30 s.
    async fn wait_readiness(
        &self,
        what: &str,
        decide: impl Fn(&[Option<String>]) -> Option<usize>,
    ) -> usize {
        let http = self.http.clone();
        let urls: Vec<String> = self.replicas.iter().map(|r| r.url.clone()).collect();
        let decide = &decide;
        wait_for(what, Duration::from_secs(30), || {
            let http = http.clone();
            let urls = urls.clone();
            async move {
                let mut ready = Vec::with_capacity(urls.len());
                for url in &urls {
                    let resp = http
                        .get(format!("{url}/readyz"))
                        .timeout(Duration::from_secs(1))
                        .send()
                        .await;
                    ready.push(match resp {
                        Ok(r) if r.status().is_success() => {
                            Some(r.text().await.unwrap_or_default())
                        }
                        _ => None,
                    });
                }
                Ok(decide(&ready))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", self.logs()))
    }

    /// etcd, a database and the show file, with no replica yet.
    pub async fn new(show_yaml: &str, lease_ttl: u64, hold_ttl: Option<u64>) -> Cluster {
        let etcd = EtcdServer::start(EtcdOptions {
            name: "shard-etcd".into(),
            unsafe_no_fsync: true,
            ..Default::default()
        })
        .await
        .expect("etcd");
        let pg = PostgresServer::shared().await.expect("postgres");
        let db_url = pg.create_database().await.expect("database");
        Cluster::with_servers(show_yaml, etcd, db_url, lease_ttl, hold_ttl, vec![])
    }

    /// As [`Cluster::new`] with a given etcd and database, and env for every replica
    /// (e.g. TLS flags).
    pub fn with_servers(
        show_yaml: &str,
        etcd: EtcdServer,
        db_url: String,
        lease_ttl: u64,
        hold_ttl: Option<u64>,
        extra_env: Vec<(String, String)>,
    ) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("boxoffice-shard-test-")
            .tempdir()
            .expect("tempdir");
        let show_file = dir.path().join("show.yaml");
        std::fs::write(&show_file, show_yaml).expect("write show");
        let show = show_yaml
            .lines()
            .find_map(|l| l.strip_prefix("  name: "))
            .expect("metadata.name")
            .to_string();
        let options = ShardOptions {
            binary: env!("CARGO_BIN_EXE_booking-shard").into(),
            show_file,
            etcd: etcd.endpoint(),
            database_url: db_url.clone(),
            lease_ttl,
            hold_ttl_seconds: hold_ttl,
            extra_env,
        };
        Cluster {
            etcd,
            db_url,
            options,
            replicas: Vec::new(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(512)
                .build()
                .expect("http"),
            show,
            dir,
        }
    }

    pub async fn add_replica(&mut self, name: &str) {
        let replica = ShardProcess::start(name, &self.options, self.dir.path())
            .await
            .expect("replica starts");
        self.replicas.push(replica);
    }

    /// The index of the replica that leads (waits for one).
    pub async fn leader(&self) -> usize {
        self.wait_readiness("a leader", |ready| {
            ready.iter().position(|r| r.as_deref() == Some("leader"))
        })
        .await
    }

    /// Waits until replica `i` says it leads.
    pub async fn wait_leader(&self, i: usize) {
        let (http, url) = (self.http.clone(), self.replicas[i].url.clone());
        wait_for("the replica to lead", Duration::from_secs(30), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http
                    .get(format!("{url}/readyz"))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await?;
                Ok((r.text().await? == "leader").then_some(()))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", self.logs()))
    }

    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .map(|r| format!("--- {} ---\n{}\n", r.name, r.process().log_tail(3000)))
            .collect()
    }

    pub fn base(&self, replica: usize) -> String {
        format!("{}/v1/shows/{}", self.replicas[replica].url, self.show)
    }

    pub async fn post(
        &self,
        replica: usize,
        path: &str,
        user: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base(replica)))
            .bearer_auth(token(user, &[]))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, replica: usize, path: &str, user: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base(replica)))
            .bearer_auth(token(user, &[]))
            .send()
            .await
            .expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `available + held + sold == total` for the show and every section and area.
    pub async fn check_counts(&self, replica: usize) -> Result<Value, String> {
        let (status, body) = self.get(replica, "/availability", "checker").await;
        if status != StatusCode::OK {
            return Err(format!("availability: {status} {body}"));
        }
        let check = |c: &Value, what: &str| -> Result<(), String> {
            let n = |k: &str| c[k].as_i64().unwrap_or(-1);
            if n("available") + n("held") + n("sold") != n("total") || n("available") < 0 {
                return Err(format!("{what}: {c}"));
            }
            Ok(())
        };
        check(&body["inventory"], "show")?;
        for s in body["sections"].as_array().into_iter().flatten() {
            check(&s["inventory"], "section")?;
        }
        for a in body["generalAdmission"].as_array().into_iter().flatten() {
            check(&a["inventory"], "area")?;
        }
        Ok(body)
    }
}
