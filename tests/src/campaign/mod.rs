//! The fault campaign: a booking workload against a 3-replica shard with real etcd and
//! PostgreSQL while a nemesis injects faults, chosen at random but repeatably from a
//! seed; then a checker verifies the history and the final state.
//!
//! Faults: kill -9 of the leader or a standby (restarted a second later, as a
//! Deployment would), SIGSTOP/SIGCONT of the leader for longer than its lease, etcd
//! restart (kill -9, same data), PostgreSQL restart (kill -9 of the postmaster, crash
//! recovery), and partitions that cut the leader from etcd but not from PostgreSQL or
//! the reverse. Every replica reaches etcd and PostgreSQL through its own [`Proxy`], so
//! a partition cuts exactly one link. All waits use monotonic time.

pub mod checker;
pub mod history;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::proxy::Proxy;
use crate::shard::{ShardOptions, ShardProcess, shard_binary, token};
use crate::webhook::{Receiver, confirmed_references, new_key, whsec};
use crate::{EtcdOptions, EtcdServer, PostgresServer};
use checker::{AreaState, DbBooking, FinalState};
use history::{Fault, History, Outcome};
use workload::Workload;

/// What the nemesis can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    KillLeader,
    KillStandby,
    PauseLeader,
    RestartEtcd,
    RestartPostgres,
    PartitionLeaderFromEtcd,
    PartitionLeaderFromPostgres,
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        FaultKind::KillLeader,
        FaultKind::KillStandby,
        FaultKind::PauseLeader,
        FaultKind::RestartEtcd,
        FaultKind::RestartPostgres,
        FaultKind::PartitionLeaderFromEtcd,
        FaultKind::PartitionLeaderFromPostgres,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillLeader => "kill-9-leader",
            FaultKind::KillStandby => "kill-9-standby",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::RestartEtcd => "restart-etcd",
            FaultKind::RestartPostgres => "restart-postgres",
            FaultKind::PartitionLeaderFromEtcd => "partition-leader-etcd",
            FaultKind::PartitionLeaderFromPostgres => "partition-leader-postgres",
        }
    }
}

/// One campaign round.
#[derive(Debug, Clone)]
pub struct CampaignOptions {
    pub seed: u64,
    pub duration: Duration,
    pub faults: Vec<FaultKind>,
    pub clients: u32,
    pub lease_ttl: u64,
    pub hold_ttl: u64,
    /// Pause between a decision and its durable write (widens the windows in which a
    /// leader can be deposed with work in flight).
    pub write_delay_ms: u64,
    /// The deliberately broken build: fencing off (test-only switch) and PostgreSQL's
    /// last line of defence (the one-confirmed-booking-per-seat index) dropped.
    pub broken: bool,
    /// Pause between faults, ms (random in the range).
    pub gap_ms: (u64, u64),
    /// Clients that wait 8 s for answers (the rest wait 2 s).
    pub patient: u32,
    /// Clients' think time between operations, ms.
    pub think_ms: (u64, u64),
    /// The show: rows A.. of `seats_per_row` seats, and a GA area of `pit` places.
    pub rows: u32,
    pub seats_per_row: u32,
    pub pit: u32,
    /// A paid show (`spec.payments.mode: provider`): clients pay through checkout and
    /// the provider's signed callback instead of confirming.
    pub payments: bool,
}

impl CampaignOptions {
    pub fn new(seed: u64, duration: Duration) -> Self {
        Self {
            seed,
            duration,
            faults: FaultKind::ALL.to_vec(),
            clients: 8,
            lease_ttl: 2,
            hold_ttl: 3,
            write_delay_ms: 20,
            broken: false,
            gap_ms: (1000, 2500),
            think_ms: (50, 250),
            patient: 4,
            rows: 26,
            seats_per_row: 60,
            pit: 300,
            payments: false,
        }
    }
}

/// What a round found.
pub struct Report {
    pub seed: u64,
    pub violations: Vec<String>,
    pub faults: BTreeMap<&'static str, usize>,
    pub ops: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    pub acknowledged_bookings: usize,
    pub bookings_in_db: usize,
    /// Bookings whose `confirmed` event reached the webhook endpoint.
    pub events_delivered: usize,
    pub failovers: usize,
    pub longest_unavailable_ms: i64,
    pub history: String,
    pub history_file: PathBuf,
}

impl Report {
    pub fn summary(&self) -> String {
        let faults: usize = self.faults.values().sum();
        let mut s = format!(
            "campaign seed {}: {} faults {:?}; {} operations ({} ok, {} failed, {} unknown); \
             {} acknowledged bookings, {} in PostgreSQL, {} confirmed events delivered; \
             {} failovers; longest time without \
             an acknowledged operation {} ms; {} violations",
            self.seed,
            faults,
            self.faults,
            self.ops,
            self.ok,
            self.failed,
            self.unknown,
            self.acknowledged_bookings,
            self.bookings_in_db,
            self.events_delivered,
            self.failovers,
            self.longest_unavailable_ms,
            self.violations.len()
        );
        for v in self.violations.iter().take(20) {
            let _ = write!(s, "\n  VIOLATION: {v}");
        }
        s
    }
}

const NAMESPACE: &str = "tests";
const SHOW: &str = "campaign";
fn show_yaml(opts: &CampaignOptions) -> String {
    let last = (b'A' + (opts.rows - 1) as u8) as char;
    let (seats, pit) = (opts.seats_per_row, opts.pit);
    let payments = if opts.payments {
        "  payments:\n    mode: provider\n    provider: sim\n    providerSecretRef: {name: pay, key: secret}\n    window: 1m\n"
    } else {
        ""
    };
    format!(
        "apiVersion: boxoffice.dev/v1alpha1
kind: Show
metadata:
  name: {SHOW}
  namespace: {NAMESPACE}
spec:
  title: Fault campaign
  startsAt: \"2027-01-01T20:00:00Z\"
  categories:
    - name: std
      price: \"10.00\"
      currency: EUR
  seating:
    sections:
      - name: main
        category: std
        rows:
          - names: \"A-{last}\"
            seats: {seats}
    generalAdmission:
      - name: pit
        capacity: {pit}
        category: std
  holds:
    ttl: 1m
    maxSeatsPerHold: 4
    maxSeatsPerUser: 10000
{payments}"
    )
}

/// The provider secret of a paid campaign show.
const PAYMENT_SECRET: &str = "whsec_campaign_0123456789";

/// One replica slot: its proxies to etcd and PostgreSQL and its process, if running.
struct Slot {
    name: String,
    options: ShardOptions,
    etcd_link: Proxy,
    pg_link: Proxy,
    process: Option<ShardProcess>,
    paused: bool,
}

struct Rig {
    dir: tempfile::TempDir,
    etcd: EtcdServer,
    pg: PostgresServer,
    db_url: String,
    slots: Vec<Slot>,
    urls: Arc<RwLock<Vec<String>>>,
    http: reqwest::Client,
    history: Arc<History>,
    epochs: BTreeSet<i64>,
    /// The booking events' webhook endpoint (verifies every delivery's signature).
    receiver: Receiver,
}

fn with_port(url: &str, port: u16) -> String {
    // postgres://postgres@127.0.0.1:PORT/db
    let (head, rest) = url.rsplit_once(':').unwrap_or((url, ""));
    let db = rest.split_once('/').map(|(_, db)| db).unwrap_or("");
    format!("{head}:{port}/{db}")
}

impl Rig {
    async fn start(opts: &CampaignOptions) -> Result<Rig> {
        // Logs stay under target/campaign/ for a failed run's post-mortem.
        let root = crate::tools::repo_root().join("target").join("campaign");
        std::fs::create_dir_all(&root)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("run-{}-", opts.seed))
            .tempdir_in(&root)?;
        let etcd = EtcdServer::start(EtcdOptions {
            name: "campaign-etcd".into(),
            unsafe_no_fsync: true,
            ..Default::default()
        })
        .await?;
        let pg = PostgresServer::start().await?;
        let db_url = pg.create_database().await?;
        let show_file = dir.path().join("show.yaml");
        std::fs::write(&show_file, show_yaml(opts))?;
        let etcd_addr: SocketAddr = etcd
            .endpoint()
            .trim_start_matches("http://")
            .parse()
            .context("etcd address")?;
        let pg_addr: SocketAddr = format!("127.0.0.1:{}", pg.port()).parse()?;
        // Every replica relays the booking events to one webhook endpoint.
        let key = new_key();
        let receiver = Receiver::start(&key).await;
        let webhook_secret = dir.path().join("webhook-secret");
        std::fs::write(&webhook_secret, whsec(&key))?;
        let mut extra_env = vec![
            ("BOXOFFICE_HOLD_RATE".to_string(), "0".to_string()),
            ("RUST_LOG".to_string(), "info,sqlx=warn".to_string()),
            (
                "BOXOFFICE_EVENTS_WEBHOOK_URLS".to_string(),
                receiver.url.clone(),
            ),
            (
                "BOXOFFICE_EVENTS_WEBHOOK_SECRET_FILE".to_string(),
                webhook_secret.display().to_string(),
            ),
            (
                "BOXOFFICE_EVENTS_MAX_RETRY_DELAY_MS".to_string(),
                "1000".to_string(),
            ),
        ];
        if opts.payments {
            let secret = dir.path().join("payment-secret");
            std::fs::write(&secret, PAYMENT_SECRET)?;
            extra_env.push((
                "BOXOFFICE_PAYMENT_SECRET_FILE".into(),
                secret.display().to_string(),
            ));
        }
        if opts.write_delay_ms > 0 {
            extra_env.push((
                "BOXOFFICE_FAULT_DELAY_WRITES_MS".into(),
                opts.write_delay_ms.to_string(),
            ));
        }
        if opts.broken {
            extra_env.push(("BOXOFFICE_UNSAFE_DISABLE_FENCING".into(), "1".into()));
        }
        let mut slots = Vec::new();
        for i in 0..3 {
            let etcd_link = Proxy::start(etcd_addr).await?;
            let pg_link = Proxy::start(pg_addr).await?;
            let options = ShardOptions {
                binary: shard_binary()?,
                show_file: show_file.clone(),
                etcd: format!("http://127.0.0.1:{}", etcd_link.port()),
                database_url: with_port(&db_url, pg_link.port()),
                lease_ttl: opts.lease_ttl,
                hold_ttl_seconds: Some(opts.hold_ttl),
                extra_env: extra_env.clone(),
            };
            slots.push(Slot {
                name: format!("shard-{i}"),
                options,
                etcd_link,
                pg_link,
                process: None,
                paused: false,
            });
        }
        let mut rig = Rig {
            dir,
            etcd,
            pg,
            db_url,
            slots,
            urls: Arc::default(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()?,
            history: Arc::new(History::new()),
            epochs: BTreeSet::new(),
            receiver,
        };
        for i in 0..3 {
            rig.start_slot(i).await?;
        }
        rig.wait_leader(Duration::from_secs(30))
            .await
            .context("no leader at start")?;
        if opts.broken {
            // A binary built without `test-switches` ignores the switch and is not
            // broken at all: the control would then prove nothing, so say so.
            for slot in &rig.slots {
                if let Some(p) = &slot.process {
                    let log = std::fs::read_to_string(p.process().log_path())?;
                    anyhow::ensure!(
                        log.contains("fencing is OFF"),
                        "{} did not turn fencing off: its binary lacks the test-switches \
                         feature (build with `cargo build --workspace --bins --tests`)",
                        slot.name
                    );
                }
            }
            // The broken build also lacks the database's last line of defence.
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&rig.db_url).await?;
            sqlx::query("DROP INDEX booking_seats_confirmed_once")
                .execute(&mut conn)
                .await?;
        }
        Ok(rig)
    }

    async fn start_slot(&mut self, i: usize) -> Result<()> {
        let slot = &mut self.slots[i];
        let process = ShardProcess::start(&slot.name, &slot.options, self.dir.path()).await?;
        let mut urls = self.urls.write().unwrap_or_else(|e| e.into_inner());
        if urls.len() <= i {
            urls.resize(i + 1, process.url.clone());
        }
        urls[i] = process.url.clone();
        slot.process = Some(process);
        slot.paused = false;
        Ok(())
    }

    /// The slot that says it leads, if any (paused or dead replicas are skipped).
    async fn leader(&self) -> Option<usize> {
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.paused {
                continue;
            }
            if let Some(p) = &slot.process
                && p.role(&self.http).await.as_deref() == Some("leader")
            {
                return Some(i);
            }
        }
        None
    }

    async fn wait_leader(&mut self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(i) = self.leader().await {
                self.note_epoch().await;
                return Some(i);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    async fn note_epoch(&mut self) {
        if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&self.db_url).await
            && let Ok(Some(epoch)) = sqlx::query_scalar::<_, i64>("SELECT epoch FROM show_leaders")
                .fetch_optional(&mut conn)
                .await
        {
            self.epochs.insert(epoch);
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(p) = self.slots[i].process.as_mut() {
            p.process_mut().kill();
        }
        self.slots[i].process = None;
    }

    fn signal(&mut self, i: usize, signal: Signal) {
        if let Some(p) = &self.slots[i].process {
            let _ = p.process().signal(signal);
        }
        self.slots[i].paused = signal == Signal::SIGSTOP;
    }

    /// Heals everything: links, paused and dead replicas.
    async fn heal(&mut self) -> Result<()> {
        for i in 0..self.slots.len() {
            self.slots[i].etcd_link.heal();
            self.slots[i].pg_link.heal();
            if self.slots[i].paused {
                self.signal(i, Signal::SIGCONT);
            }
            if self.slots[i].process.is_none() {
                self.start_slot(i).await?;
            }
        }
        Ok(())
    }

    /// Injects one fault and heals it; returns the fault as recorded.
    async fn inject(&mut self, kind: FaultKind, rng: &mut StdRng, lease: u64) -> Result<Fault> {
        let leader = match self.leader().await {
            Some(i) => i,
            None => rng.random_range(0..self.slots.len()),
        };
        let start = self.history.now();
        let target;
        match kind {
            FaultKind::KillLeader | FaultKind::KillStandby => {
                let victim = if kind == FaultKind::KillLeader {
                    leader
                } else {
                    (leader + rng.random_range(1..self.slots.len())) % self.slots.len()
                };
                target = self.slots[victim].name.clone();
                self.kill(victim);
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..1500))).await;
                self.start_slot(victim).await?;
            }
            FaultKind::PauseLeader => {
                target = self.slots[leader].name.clone();
                self.signal(leader, Signal::SIGSTOP);
                let ms = lease * 1000 + rng.random_range(1000..3000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                self.signal(leader, Signal::SIGCONT);
            }
            FaultKind::RestartEtcd => {
                target = "etcd".into();
                self.etcd.kill();
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
                self.etcd.restart().await?;
            }
            FaultKind::RestartPostgres => {
                target = "postgres".into();
                self.pg.kill();
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..1000))).await;
                self.pg.restart().await?;
            }
            FaultKind::PartitionLeaderFromEtcd | FaultKind::PartitionLeaderFromPostgres => {
                target = self.slots[leader].name.clone();
                let link = if kind == FaultKind::PartitionLeaderFromEtcd {
                    &self.slots[leader].etcd_link
                } else {
                    &self.slots[leader].pg_link
                };
                link.cut();
                let ms = lease * 1000 + rng.random_range(1000..3000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                link.heal();
            }
        }
        Ok(Fault {
            kind: kind.name(),
            target,
            start,
            end: self.history.now(),
        })
    }

    /// The final state, read from the leader, PostgreSQL and etcd.
    async fn final_state(&mut self) -> Result<FinalState> {
        let leader = self
            .wait_leader(Duration::from_secs(30))
            .await
            .context("no leader after the campaign")?;
        let url = format!(
            "{}/v1/shows/{SHOW}/seats",
            self.slots[leader]
                .process
                .as_ref()
                .map(|p| p.url.clone())
                .unwrap_or_default()
        );
        let map: Value = self
            .http
            .get(url)
            .bearer_auth(token("checker", &[]))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut fin = FinalState::default();
        for section in map["sections"].as_array().into_iter().flatten() {
            let sname = section["name"].as_str().unwrap_or("");
            for row in section["rows"].as_array().into_iter().flatten() {
                let rname = row["name"].as_str().unwrap_or("");
                for (i, c) in row["seats"].as_str().unwrap_or("").chars().enumerate() {
                    let id = format!("{sname}:{rname}:{}", i + 1);
                    fin.map_seats += 1;
                    match c {
                        'S' => {
                            fin.map_sold.insert(id);
                        }
                        'H' => {
                            fin.map_held.insert(id);
                        }
                        _ => {}
                    }
                }
            }
        }
        let inv = &map["inventory"];
        let n = |k: &str| inv[k].as_i64().unwrap_or(-1);
        (fin.total, fin.available, fin.held, fin.sold) =
            (n("total"), n("available"), n("held"), n("sold"));
        for a in map["generalAdmission"].as_array().into_iter().flatten() {
            fin.areas.push(AreaState {
                name: a["name"].as_str().unwrap_or("").into(),
                capacity: a["inventory"]["total"].as_i64().unwrap_or(0),
                held: a["inventory"]["held"].as_i64().unwrap_or(0),
                sold: a["inventory"]["sold"].as_i64().unwrap_or(0),
            });
        }

        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.db_url).await?;
        let rows = sqlx::query("SELECT id, reference, hold_id, status FROM bookings")
            .fetch_all(&mut conn)
            .await?;
        let mut by_id: BTreeMap<String, DbBooking> = BTreeMap::new();
        for r in rows {
            by_id.insert(
                r.get(0),
                DbBooking {
                    reference: r.get(1),
                    hold_id: r.get(2),
                    status: r.get(3),
                    seats: vec![],
                    general: vec![],
                },
            );
        }
        for r in sqlx::query("SELECT booking_id, seat FROM booking_seats")
            .fetch_all(&mut conn)
            .await?
        {
            if let Some(b) = by_id.get_mut(&r.get::<String, _>(0)) {
                b.seats.push(r.get(1));
            }
        }
        for r in sqlx::query("SELECT booking_id, area, quantity FROM booking_general")
            .fetch_all(&mut conn)
            .await?
        {
            if let Some(b) = by_id.get_mut(&r.get::<String, _>(0)) {
                b.general.push((r.get(1), r.get::<i32, _>(2) as i64));
            }
        }
        fin.bookings = by_id.into_values().collect();

        // Events are delivered eventually: wait (bounded) for a confirmed event of
        // every booking PostgreSQL has, then hand the checker what arrived.
        let stored: BTreeSet<String> = fin.bookings.iter().map(|b| b.reference.clone()).collect();
        let _ = crate::wait_for(
            "every booking's confirmed event at the receiver",
            Duration::from_secs(60),
            || async {
                let have = confirmed_references(&self.receiver.accepted());
                Ok(stored.iter().all(|r| have.contains(r)).then_some(()))
            },
        )
        .await;
        fin.delivered_confirmed = Some(
            confirmed_references(&self.receiver.accepted())
                .into_iter()
                .collect(),
        );

        let mut etcd = etcd_client::Client::connect([self.etcd.endpoint()], None).await?;
        let count = |prefix: String| {
            let mut etcd = etcd.clone();
            async move {
                etcd.get(
                    prefix,
                    Some(
                        etcd_client::GetOptions::new()
                            .with_prefix()
                            .with_count_only(),
                    ),
                )
                .await
                .map(|r| r.count() as usize)
            }
        };
        let base = format!("/boxoffice/{NAMESPACE}/{SHOW}/");
        fin.etcd_holds = count(format!("{base}holds/")).await?;
        fin.etcd_seat_locks = count(format!("{base}seats/")).await?;
        let _ = &mut etcd;
        Ok(fin)
    }
}

/// Runs one campaign round: start, load, faults, heal, quiesce, check.
pub async fn run(opts: CampaignOptions) -> Result<Report> {
    let mut rig = Rig::start(&opts).await?;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let workload = Arc::new(Workload {
        http: rig.http.clone(),
        urls: rig.urls.clone(),
        show: SHOW.into(),
        history: rig.history.clone(),
        rows: opts.rows,
        seats_per_row: opts.seats_per_row,
        think_ms: opts.think_ms,
        patient: opts.patient,
        payment_secret: opts.payments.then(|| PAYMENT_SECRET.as_bytes().to_vec()),
    });
    let stop = CancellationToken::new();
    let clients: Vec<_> = (0..opts.clients)
        .map(|c| tokio::spawn(workload.clone().client(c, opts.seed, stop.clone())))
        .collect();

    let mut faults: BTreeMap<&'static str, usize> = BTreeMap::new();
    let started = Instant::now();
    while started.elapsed() < opts.duration {
        let gap = rng.random_range(opts.gap_ms.0..=opts.gap_ms.1);
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let kind = opts.faults[rng.random_range(0..opts.faults.len())];
        let fault = rig.inject(kind, &mut rng, opts.lease_ttl).await?;
        *faults.entry(fault.kind).or_default() += 1;
        rig.history.fault(fault);
        rig.heal().await?;
        rig.wait_leader(Duration::from_secs(20)).await;
    }
    rig.heal().await?;
    stop.cancel();
    for c in clients {
        let _ = c.await;
    }
    // Quiesce: every hold expires (TTL, plus the expiry loop's and leases' slack).
    rig.wait_leader(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(opts.hold_ttl + 4)).await;
    let fin = rig.final_state().await?;

    let ops = rig.history.ops();
    let mut violations = checker::check(&ops, &fin, 250);
    if opts.payments {
        // A paid show: every booking was confirmed by a verified provider callback.
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&rig.db_url).await?;
        let unpaid: Vec<String> = sqlx::query_scalar(
            "SELECT b.reference FROM bookings b WHERE NOT EXISTS (SELECT 1 FROM booking_audit a \
             WHERE a.hold_id = b.hold_id AND a.to_state = 'confirmed' AND a.role = 'provider')",
        )
        .fetch_all(&mut conn)
        .await?;
        for reference in unpaid {
            violations.push(format!(
                "booking {reference} confirmed without a verified payment"
            ));
        }
    }
    let count = |f: fn(&Outcome) -> bool| ops.iter().filter(|o| f(&o.outcome)).count();
    let mut ok_times: Vec<i64> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .map(|o| o.complete)
        .collect();
    ok_times.sort_unstable();
    let longest_unavailable_ms = ok_times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let history = history::render(&ops, &rig.history.faults());
    let history_file = crate::tools::repo_root()
        .join("target")
        .join("campaign")
        .join(format!(
            "history-{}{}.txt",
            opts.seed,
            if opts.broken { "-broken" } else { "" }
        ));
    if let Some(parent) = history_file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&history_file, &history)?;
    Ok(Report {
        seed: opts.seed,
        faults,
        ops: ops.len(),
        ok: count(|o| *o == Outcome::Ok),
        failed: count(|o| matches!(o, Outcome::Fail(_))),
        unknown: count(|o| matches!(o, Outcome::Unknown(_))),
        acknowledged_bookings: ops
            .iter()
            .filter(|o| {
                o.outcome == Outcome::Ok && matches!(o.kind, history::OpKind::Confirm { .. })
            })
            .count(),
        bookings_in_db: fin.bookings.len(),
        events_delivered: fin.delivered_confirmed.as_ref().map_or(0, |d| d.len()),
        failovers: rig.epochs.len().saturating_sub(1),
        longest_unavailable_ms,
        violations,
        history,
        history_file,
    })
}
