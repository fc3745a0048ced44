//! boxoffice-load: closed-loop load against a booking shard.
//!
//! ```text
//! boxoffice-load --url http://127.0.0.1:8081 --show cup-final --secret S \
//!   --scenario holds --concurrency 64 --duration 10 --users 5000
//! ```
//!
//! Scenarios: `holds` (explicit random seats over the whole venue), `hot` (everyone
//! after the same 100 seats), `war` (best-available 2–4 seats until sold out),
//! `seatmap` (GET the seat map), `confirms` (confirm holds made beforehand), `churn`
//! (random holds of which `--release-fraction` are released at once and
//! `--confirm-fraction` confirmed, the rest left to expire: the soak). Reports
//! attempts/s, outcomes and latency percentiles (HDR histogram), checks that no seat
//! was held twice (and, given `--database-url`, that PostgreSQL has exactly the
//! acknowledged bookings), and prints one JSON line for scripts.
//!
//! Closed loop by default (`--concurrency` clients, one request in flight each); open
//! loop with `--rate` (requests start on schedule; latency counts from the scheduled
//! start, so a stalled server cannot hide its queueing). `--url` takes several
//! comma-separated replicas (round robin); `--timeline-ms` adds per-bucket successes
//! and failures (the failover benchmark). `--target postgres|redis` runs the same
//! workload against the baseline designs (`baseline.rs`) instead of a shard.

mod baseline;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use jsonwebtoken::{EncodingKey, Header, encode};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Scenario {
    Holds,
    Hot,
    War,
    Seatmap,
    Confirms,
    Churn,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Target {
    /// A booking shard over HTTP.
    Boxoffice,
    /// The seats-table design with `SELECT … FOR UPDATE` (driven directly).
    Postgres,
    /// `SET seat NX EX ttl` per seat, bookings in PostgreSQL (driven directly).
    Redis,
}

#[derive(Parser, Debug)]
#[command(
    about = "Load generator for a boxoffice booking shard and the baseline designs",
    args_override_self = true
)]
struct Args {
    /// Shard base URL(s), comma-separated (round robin).
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    url: String,
    /// Show name.
    #[arg(long)]
    show: String,
    /// The shard's HS256 JWT secret (to mint tokens for the simulated users).
    #[arg(
        long,
        env = "BOXOFFICE_JWT_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    secret: String,
    #[arg(long, value_enum, default_value = "holds")]
    scenario: Scenario,
    #[arg(long, value_enum, default_value = "boxoffice")]
    target: Target,
    /// Concurrent clients (closed loop), or the most requests in flight (open loop).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Open loop: start this many requests a second (0: closed loop).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to run (confirms: until the prepared holds are confirmed).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Distinct users.
    #[arg(long, default_value_t = 5000)]
    users: usize,
    /// Holds to prepare for the confirms scenario.
    #[arg(long, default_value_t = 5000)]
    prepare: usize,
    /// Per-bucket successes/failures over time, bucket in ms (0: off).
    #[arg(long, default_value_t = 0)]
    timeline_ms: u64,
    /// The shard's PostgreSQL: check that bookings there equal acknowledged confirms.
    #[arg(long)]
    database_url: Option<String>,
    /// Baselines: the show manifest (for the seat list).
    #[arg(long)]
    show_file: Option<std::path::PathBuf>,
    /// Baselines: PostgreSQL URL (tables are created there).
    #[arg(long)]
    pg_url: Option<String>,
    /// Baselines: Redis URL.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// A label for the JSON line (e.g. the run's purpose).
    #[arg(long, default_value = "")]
    label: String,
    /// `NAME=PID`: also report the CPU time of that process and its descendants over
    /// the measured window, per attempt (repeatable; e.g. `shard=123 etcd=456`).
    #[arg(long = "cpu-of", value_parser = parse_cpu_of)]
    cpu_of: Vec<(String, u32)>,
    /// Stop once this fraction of the venue's seats is held (0: run the full
    /// duration). Uncontended-hold runs stop at a quarter, so a fast design does not
    /// fill the venue and turn the rest of the run into conflicts.
    #[arg(long, default_value_t = 0.0)]
    stop_at_fill: f64,
    /// War: once sold out, confirm every hold won (a second report line).
    #[arg(long)]
    then_confirm: bool,
    /// Churn: the fraction of holds released right after they are granted.
    #[arg(long, default_value_t = 0.5)]
    release_fraction: f64,
    /// Churn: the fraction of holds confirmed right after they are granted.
    #[arg(long, default_value_t = 0.0)]
    confirm_fraction: f64,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    conflict: u64,
    other_4xx: u64,
    server_error: u64,
    transport: u64,
    seats: Vec<String>,
    latency: Option<Histogram<u64>>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            latency: Histogram::new_with_bounds(1, 120_000_000, 3).ok(),
            ..Default::default()
        }
    }

    fn merge(&mut self, o: Tally) -> Result<()> {
        self.ok += o.ok;
        self.conflict += o.conflict;
        self.other_4xx += o.other_4xx;
        self.server_error += o.server_error;
        self.transport += o.transport;
        self.seats.extend(o.seats);
        match (&mut self.latency, o.latency) {
            (Some(a), Some(b)) => a.add(b)?,
            (None, b) => self.latency = b,
            _ => {}
        }
        Ok(())
    }

    fn count(&mut self, status: u16, held: Vec<String>, micros: u64) {
        if let Some(h) = self.latency.as_mut() {
            let _ = h.record(micros.max(1));
        }
        match status {
            200..=299 => self.ok += 1,
            409 | 410 => self.conflict += 1,
            400..=499 => self.other_4xx += 1,
            0 => self.transport += 1,
            _ => self.server_error += 1,
        }
        self.seats.extend(held);
    }
}

fn tokens(secret: &str, users: usize) -> Result<Vec<String>> {
    let key = EncodingKey::from_secret(secret.as_bytes());
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 7200;
    (0..users)
        .map(|i| {
            Ok(encode(
                &Header::default(),
                &json!({"sub": format!("load-{i}"), "exp": exp}),
                &key,
            )?)
        })
        .collect()
}

/// Every seat id of the show, from its seat map.
async fn seat_ids(http: &reqwest::Client, base: &str) -> Result<Vec<String>> {
    let map: Value = http
        .get(format!("{base}/seats"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut ids = Vec::new();
    for s in map["sections"].as_array().context("sections")? {
        let section = s["name"].as_str().context("section name")?;
        for r in s["rows"].as_array().context("rows")? {
            let row = r["name"].as_str().context("row name")?;
            let n = r["seats"].as_str().context("seats")?.len();
            ids.extend((1..=n).map(|k| format!("{section}:{row}:{k}")));
        }
    }
    Ok(ids)
}

/// Every seat id of a show manifest (for the baselines).
fn seat_ids_of_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)?;
    let config = boxoffice_crds::ShowConfig::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let layout = boxoffice_crds::VenueLayout::from_seating(&config.spec.seating)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(layout.seat_ids().map(|s| s.to_string()).collect())
}

/// A hold made beforehand for the confirms scenario.
struct Prepared {
    id: String,
    user: usize,
    seats: Vec<String>,
}

struct Shared {
    target: Target,
    http: reqwest::Client,
    bases: Vec<String>,
    next_base: AtomicUsize,
    tokens: Vec<String>,
    seats: Vec<String>,
    holds: std::sync::Mutex<Vec<Prepared>>,
    pg: Option<baseline::Postgres>,
    redis: Option<baseline::Redis>,
    next_id: AtomicU64,
    /// This run's random prefix of baseline hold ids: `bl_bookings.hold_id` is unique
    /// across shows and runs share a database, so ids counted from 0 in every run
    /// collided with an earlier run's bookings (their confirms failed as errors).
    run_id: u32,
    /// Seats held so far, and where to stop (`--stop-at-fill`).
    held: AtomicU64,
    stop_at: Option<u64>,
    /// Holds won in a war (for `--then-confirm`).
    won: std::sync::Mutex<Vec<Prepared>>,
    /// Churn: what happens to a granted hold (fractions released and confirmed).
    release_fraction: f64,
    confirm_fraction: f64,
    /// Churn: follow-up requests answered with 5xx or not at all.
    followups_failed: AtomicU64,
}

impl Shared {
    fn base(&self) -> &str {
        let i = self.next_base.fetch_add(1, Ordering::Relaxed);
        &self.bases[i % self.bases.len()]
    }

    /// Counts newly held seats; true once the run should stop.
    fn filled(&self, newly_held: usize) -> bool {
        let held = self.held.fetch_add(newly_held as u64, Ordering::Relaxed) + newly_held as u64;
        self.stop_at.is_some_and(|at| held >= at)
    }

    fn won(&self, id: &str, user: usize, seats: &[String]) {
        if let Ok(mut won) = self.won.lock() {
            won.push(Prepared {
                id: id.to_string(),
                user,
                seats: seats.to_vec(),
            });
        }
    }

    fn new_id(&self) -> String {
        format!(
            "bl-{:08x}-{}",
            self.run_id,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// What a request wants.
enum Want {
    Seats(Vec<String>),
    Best(i64),
    Confirm(Prepared),
    Map,
}

fn next_want(shared: &Shared, scenario: Scenario) -> Option<(usize, Want)> {
    let mut rng = rand::rng();
    let user = rng.random_range(0..shared.tokens.len().max(1));
    Some(match scenario {
        Scenario::Seatmap => (user, Want::Map),
        Scenario::Confirms => {
            let p = shared.holds.lock().map(|mut h| h.pop()).ok().flatten()?;
            (p.user, Want::Confirm(p))
        }
        Scenario::Holds | Scenario::Churn => {
            let k = rng.random_range(1..=2);
            let seats = shared.seats.choose_multiple(&mut rng, k).cloned().collect();
            (user, Want::Seats(seats))
        }
        Scenario::Hot => {
            let k = rng.random_range(1..=2);
            let hot = &shared.seats[..shared.seats.len().min(100)];
            (
                user,
                Want::Seats(hot.choose_multiple(&mut rng, k).cloned().collect()),
            )
        }
        Scenario::War => (user, Want::Best(rng.random_range(2..=4))),
    })
}

fn from_baseline(o: baseline::Outcome) -> (u16, Vec<String>) {
    match o {
        baseline::Outcome::Held { seats, .. } => (201, seats),
        baseline::Outcome::Ok => (200, vec![]),
        baseline::Outcome::Conflict => (409, vec![]),
        baseline::Outcome::Error => (500, vec![]),
    }
}

/// One request; None when there is nothing left to do.
async fn one(shared: &Shared, scenario: Scenario) -> Option<(u16, Vec<String>)> {
    let (user, want) = next_want(shared, scenario)?;
    let user_name = format!("load-{user}");
    match shared.target {
        Target::Postgres => {
            let pg = shared.pg.as_ref()?;
            let id = shared.new_id();
            Some(from_baseline(match want {
                Want::Seats(seats) => pg.hold(&user_name, &seats, &id).await,
                Want::Best(n) => {
                    let out = pg.best(&user_name, n, &id).await;
                    if let baseline::Outcome::Held { id, seats } = &out {
                        shared.won(id, user, seats);
                    }
                    out
                }
                Want::Confirm(p) => pg.confirm(&format!("load-{}", p.user), &p.id).await,
                Want::Map => pg.seat_map().await,
            }))
        }
        Target::Redis => {
            let r = shared.redis.as_ref()?;
            let id = shared.new_id();
            Some(from_baseline(match want {
                Want::Seats(seats) => r.hold(&seats, &id).await,
                // Best available has no natural Redis form; not measured.
                Want::Best(_) => baseline::Outcome::Error,
                Want::Confirm(p) => {
                    r.confirm(&format!("load-{}", p.user), &p.id, &p.seats)
                        .await
                }
                Want::Map => r.seat_map(&shared.seats).await,
            }))
        }
        Target::Boxoffice => {
            let base = shared.base();
            let token = &shared.tokens[user];
            let request = match want {
                Want::Map => shared.http.get(format!("{base}/seats")),
                Want::Confirm(p) => shared
                    .http
                    .post(format!("{base}/holds/{}/confirm", p.id))
                    .bearer_auth(&shared.tokens[p.user])
                    .json(&json!({"paymentReference": format!("load-{}", p.id)})),
                Want::Seats(seats) => shared
                    .http
                    .post(format!("{base}/holds"))
                    .bearer_auth(token)
                    .json(&json!({ "seats": seats })),
                Want::Best(n) => shared
                    .http
                    .post(format!("{base}/holds"))
                    .bearer_auth(token)
                    .json(&json!({"best": {"quantity": n}})),
            };
            let is_hold = scenario != Scenario::Confirms && scenario != Scenario::Seatmap;
            if scenario == Scenario::Churn {
                return Some(churn(shared, request, token).await);
            }
            Some(
                match request.timeout(Duration::from_secs(10)).send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let mut held = Vec::new();
                        if status == 201 && is_hold {
                            if let Ok(v) = resp.json::<Value>().await {
                                held = v["seats"]
                                    .as_array()
                                    .map(|a| {
                                        a.iter()
                                            .filter_map(|s| s.as_str().map(String::from))
                                            .collect()
                                    })
                                    .unwrap_or_default();
                                if scenario == Scenario::War
                                    && let Some(id) = v["id"].as_str()
                                {
                                    shared.won(id, user, &held);
                                }
                            }
                        } else {
                            let _ = resp.bytes().await;
                        }
                        (status, held)
                    }
                    Err(_) => (0, vec![]),
                },
            )
        }
    }
}

/// Churn: send the hold, then release it, confirm it or leave it to expire. Returns
/// the hold's status; a failed follow-up is counted in `followups_failed`. Seats are
/// not reported (they are held many times over a soak).
async fn churn(shared: &Shared, hold: reqwest::RequestBuilder, token: &str) -> (u16, Vec<String>) {
    let resp = match hold.timeout(Duration::from_secs(10)).send().await {
        Ok(r) => r,
        Err(_) => return (0, vec![]),
    };
    let status = resp.status().as_u16();
    if status != 201 {
        let _ = resp.bytes().await;
        return (status, vec![]);
    }
    let Some(id) = resp
        .json::<Value>()
        .await
        .ok()
        .and_then(|v| v["id"].as_str().map(String::from))
    else {
        return (status, vec![]);
    };
    let roll: f64 = rand::rng().random();
    let base = shared.base();
    let followup = if roll < shared.release_fraction {
        shared.http.delete(format!("{base}/holds/{id}"))
    } else if roll < shared.release_fraction + shared.confirm_fraction {
        shared
            .http
            .post(format!("{base}/holds/{id}/confirm"))
            .json(&json!({"paymentReference": format!("soak-{id}")}))
    } else {
        return (status, vec![]);
    };
    let ok = match followup
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16() < 500,
        Err(_) => false,
    };
    if !ok {
        shared.followups_failed.fetch_add(1, Ordering::Relaxed);
    }
    (status, vec![])
}

async fn prepare_holds(shared: &Shared, n: usize) -> Result<()> {
    let mut made = Vec::with_capacity(n);
    let mut attempts = 0;
    while made.len() < n && attempts < n * 3 {
        attempts += 1;
        let (user, seat) = {
            let mut rng = rand::rng();
            let user = rng.random_range(0..shared.tokens.len().max(1));
            (
                user,
                shared.seats.choose(&mut rng).context("no seats")?.clone(),
            )
        };
        let id = shared.new_id();
        let user_name = format!("load-{user}");
        let held = match shared.target {
            Target::Postgres => match shared
                .pg
                .as_ref()
                .context("pg")?
                .hold(&user_name, std::slice::from_ref(&seat), &id)
                .await
            {
                baseline::Outcome::Held { id, .. } => Some(id),
                _ => None,
            },
            Target::Redis => match shared
                .redis
                .as_ref()
                .context("redis")?
                .hold(std::slice::from_ref(&seat), &id)
                .await
            {
                baseline::Outcome::Held { id, .. } => Some(id),
                _ => None,
            },
            Target::Boxoffice => {
                let resp = shared
                    .http
                    .post(format!("{}/holds", shared.base()))
                    .bearer_auth(&shared.tokens[user])
                    .json(&json!({"seats": [seat]}))
                    .send()
                    .await?;
                if resp.status().as_u16() == 201 {
                    let v: Value = resp.json().await?;
                    Some(v["id"].as_str().context("hold id")?.to_string())
                } else {
                    None
                }
            }
        };
        if let Some(id) = held {
            made.push(Prepared {
                id,
                user,
                seats: vec![seat],
            });
        }
    }
    *shared.holds.lock().map_err(|_| anyhow::anyhow!("lock"))? = made;
    Ok(())
}

/// Per-bucket answered and failed requests.
struct Timeline {
    bucket: Duration,
    ok: Vec<AtomicU64>,
    failed: Vec<AtomicU64>,
}

impl Timeline {
    fn new(bucket_ms: u64, seconds: u64) -> Option<Self> {
        if bucket_ms == 0 {
            return None;
        }
        let n = (seconds * 1000 / bucket_ms + 2) as usize;
        Some(Self {
            bucket: Duration::from_millis(bucket_ms),
            ok: (0..n).map(|_| AtomicU64::new(0)).collect(),
            failed: (0..n).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// `answered`: a definite answer from the service (2xx or 4xx — a conflict is an
    /// answer); 5xx, timeouts and refused connections are not.
    fn record(&self, since_start: Duration, answered: bool) {
        let i = (since_start.as_millis() / self.bucket.as_millis().max(1)) as usize;
        let list = if answered { &self.ok } else { &self.failed };
        if let Some(c) = list.get(i.min(list.len() - 1)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let bases: Vec<String> = args
        .url
        .split(',')
        .map(|u| format!("{}/v1/shows/{}", u.trim().trim_end_matches('/'), args.show))
        .collect();
    let seats = match (args.target, args.scenario) {
        (Target::Boxoffice, Scenario::Seatmap | Scenario::War) => Vec::new(),
        (Target::Boxoffice, _) => seat_ids(&http, &bases[0]).await?,
        _ => seat_ids_of_file(args.show_file.as_deref().context("--show-file")?)?,
    };
    let (pg, redis) = match args.target {
        Target::Boxoffice => (None, None),
        Target::Postgres => {
            let pool = baseline::pg_pool(
                args.pg_url.as_deref().context("--pg-url")?,
                args.concurrency.min(64) as u32,
            )
            .await?;
            (
                Some(baseline::Postgres::setup(pool, &args.show, &seats, 600).await?),
                None,
            )
        }
        Target::Redis => {
            let pool = baseline::pg_pool(
                args.pg_url.as_deref().context("--pg-url")?,
                args.concurrency.min(64) as u32,
            )
            .await?;
            (
                None,
                Some(baseline::Redis::setup(&args.redis_url, pool, &args.show, 600).await?),
            )
        }
    };
    let seat_count = seats.len();
    let shared = Arc::new(Shared {
        target: args.target,
        http,
        bases,
        next_base: AtomicUsize::new(0),
        tokens: if args.target == Target::Boxoffice {
            tokens(&args.secret, args.users)?
        } else {
            vec![String::new(); args.users]
        },
        seats,
        holds: std::sync::Mutex::new(Vec::new()),
        pg,
        redis,
        next_id: AtomicU64::new(0),
        run_id: rand::rng().random(),
        held: AtomicU64::new(0),
        won: std::sync::Mutex::new(Vec::new()),
        stop_at: (args.stop_at_fill > 0.0)
            .then_some((seat_count as f64 * args.stop_at_fill) as u64),
        release_fraction: args.release_fraction,
        confirm_fraction: args.confirm_fraction,
        followups_failed: AtomicU64::new(0),
    });
    if args.scenario == Scenario::Confirms {
        prepare_holds(&shared, args.prepare).await?;
    }
    run_phase(&args, &shared, args.scenario).await?;
    if args.scenario == Scenario::War && args.then_confirm {
        // The war's second act: everyone who got seats pays.
        let won = std::mem::take(&mut *shared.won.lock().map_err(|_| anyhow::anyhow!("lock"))?);
        *shared.holds.lock().map_err(|_| anyhow::anyhow!("lock"))? = won;
        run_phase(&args, &shared, Scenario::Confirms).await?;
    }
    Ok(())
}

/// One phase: drive `scenario`, then report (stderr summary, one JSON line) and check.
async fn run_phase(args: &Args, shared: &Arc<Shared>, scenario: Scenario) -> Result<()> {
    let timeline = Arc::new(Timeline::new(args.timeline_ms, args.duration));
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let cpu_start = own_cpu_seconds();
    let others_start: Vec<f64> = args
        .cpu_of
        .iter()
        .map(|(_, p)| tree_cpu_seconds(*p))
        .collect();
    let mut total = Tally::new();
    if args.rate > 0 {
        // Open loop: start requests on schedule, at most `concurrency` in flight.
        let slots = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
        let tally = Arc::new(std::sync::Mutex::new(Tally::new()));
        let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
        let mut tasks = tokio::task::JoinSet::new();
        let mut k: u32 = 0;
        loop {
            let intended = started + interval * k;
            k += 1;
            if intended >= deadline
                || shared
                    .stop_at
                    .is_some_and(|at| shared.held.load(Ordering::Relaxed) >= at)
            {
                break;
            }
            tokio::time::sleep_until(intended.into()).await;
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let (shared, tally, timeline) = (Arc::clone(shared), tally.clone(), timeline.clone());
            tasks.spawn(async move {
                let answer = one(&shared, scenario).await;
                drop(slot);
                if let Some((status, held)) = answer {
                    let micros = intended.elapsed().as_micros() as u64;
                    shared.filled(held.len());
                    if let Some(t) = timeline.as_ref() {
                        t.record(started.elapsed(), (200..500).contains(&status));
                    }
                    if let Ok(mut t) = tally.lock() {
                        t.count(status, held, micros);
                    }
                }
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        let t = std::mem::take(&mut *tally.lock().map_err(|_| anyhow::anyhow!("lock"))?);
        total.merge(t)?;
    } else {
        let mut workers = Vec::with_capacity(args.concurrency);
        for _ in 0..args.concurrency {
            let (shared, timeline) = (Arc::clone(shared), timeline.clone());
            workers.push(tokio::spawn(async move {
                let mut tally = Tally::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let Some((status, held)) = one(&shared, scenario).await else {
                        break;
                    };
                    if let Some(tl) = timeline.as_ref() {
                        tl.record(started.elapsed(), (200..500).contains(&status));
                    }
                    let full = shared.filled(held.len());
                    tally.count(status, held, t.elapsed().as_micros() as u64);
                    if full {
                        break;
                    }
                    if scenario == Scenario::War && status == 409 && tally.conflict > 50 {
                        // Sold out for this worker's sizes.
                        break;
                    }
                }
                tally
            }));
        }
        for w in workers {
            total.merge(w.await?)?;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_seconds = own_cpu_seconds() - cpu_start;
    let attempts =
        total.ok + total.conflict + total.other_4xx + total.server_error + total.transport;
    let per_attempt = |secs: f64| (secs * 1e6 / attempts.max(1) as f64 * 10.0).round() / 10.0;
    let mut cpu = serde_json::Map::new();
    for ((name, pid), start) in args.cpu_of.iter().zip(&others_start) {
        cpu.insert(
            name.clone(),
            json!(per_attempt(tree_cpu_seconds(*pid) - start)),
        );
    }
    cpu.insert("generator".into(), json!(per_attempt(cpu_seconds)));
    let cpu_total: f64 = cpu.values().filter_map(Value::as_f64).sum();
    cpu.insert("total".into(), json!((cpu_total * 10.0).round() / 10.0));
    let mut unique = HashSet::with_capacity(total.seats.len());
    let doubles = total
        .seats
        .iter()
        .filter(|s| !unique.insert(s.as_str()))
        .count();

    // Bookings durable = acknowledged confirms.
    let mut bookings_in_db: Option<i64> = None;
    if scenario == Scenario::Confirms {
        bookings_in_db = match args.target {
            Target::Postgres => Some(shared.pg.as_ref().context("pg")?.bookings().await?),
            Target::Redis => Some(shared.redis.as_ref().context("redis")?.bookings().await?),
            Target::Boxoffice => match &args.database_url {
                Some(url) => {
                    let pool = baseline::pg_pool(url, 1).await?;
                    let n: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM bookings WHERE status = 'confirmed' AND show LIKE '%/' || $1",
                    )
                    .bind(&args.show)
                    .fetch_one(&pool)
                    .await?;
                    Some(n)
                }
                None => None,
            },
        };
    }

    let h = total
        .latency
        .unwrap_or_else(|| Histogram::new(3).expect("histogram"));
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let quantiles: Vec<f64> = (1..100)
        .map(|i| i as f64 / 100.0)
        .chain([0.995, 0.999, 0.9999, 1.0])
        .collect();
    let cdf: Vec<[f64; 2]> = quantiles.iter().map(|&q| [q, ms(q)]).collect();
    let timeline_json = timeline.as_ref().as_ref().map(|t| {
        json!({
            "bucket_ms": t.bucket.as_millis() as u64,
            "ok": t.ok.iter().map(|c| c.load(Ordering::Relaxed)).collect::<Vec<_>>(),
            "failed": t.failed.iter().map(|c| c.load(Ordering::Relaxed)).collect::<Vec<_>>(),
        })
    });
    let report = json!({
        "scenario": format!("{:?}", scenario).to_lowercase(),
        "target": format!("{:?}", args.target).to_lowercase(),
        "label": args.label,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "seconds": elapsed,
        "cpu_us_per_attempt": cpu,
        "attempts": attempts,
        "attempts_per_s": attempts as f64 / elapsed,
        "ok": total.ok,
        "ok_per_s": total.ok as f64 / elapsed,
        "conflicts": total.conflict,
        "other_4xx": total.other_4xx,
        "server_errors": total.server_error,
        "transport_errors": total.transport,
        "latency_ms": {"p50": ms(0.5), "p95": ms(0.95), "p99": ms(0.99), "max": h.max() as f64 / 1000.0},
        "cdf": cdf,
        "seats_held": total.seats.len(),
        "seats_held_twice": doubles,
        "bookings_in_db": bookings_in_db,
        "followups_failed": shared.followups_failed.load(Ordering::Relaxed),
        "timeline": timeline_json,
    });
    eprintln!(
        "{:?} {:?} c={} rate={} {:.1}s: {} attempts ({:.0}/s), {} ok ({:.0}/s), {} conflicts, {} other 4xx, {} 5xx, {} transport; \
         latency ms p50 {:.2} p95 {:.2} p99 {:.2} max {:.2}; seats held {} (twice: {}); bookings in the database {:?}",
        args.target,
        scenario,
        args.concurrency,
        args.rate,
        elapsed,
        attempts,
        attempts as f64 / elapsed,
        total.ok,
        total.ok as f64 / elapsed,
        total.conflict,
        total.other_4xx,
        total.server_error,
        total.transport,
        ms(0.5),
        ms(0.95),
        ms(0.99),
        h.max() as f64 / 1000.0,
        total.seats.len(),
        doubles,
        bookings_in_db,
    );
    println!("{report}");
    if doubles > 0 {
        bail!("{doubles} seats were granted to two holds");
    }
    if let Some(n) = bookings_in_db
        && n != total.ok as i64
    {
        bail!(
            "{n} bookings in the database but {} confirms were acknowledged",
            total.ok
        );
    }
    Ok(())
}

/// CPU seconds (user + system) of a process from its /proc stat file; 0 where
/// unreadable. Also its parent pid.
fn stat_cpu(path: &std::path::Path) -> (f64, u32) {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return (0.0, 0);
    };
    // Fields after the command name (which may hold spaces) end with ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // stat(5): ppid is field 4, utime and stime 14 and 15 (here 1, 11 and 12); the
    // clock ticks 100 times a second on Linux.
    ((field(11) + field(12)) / 100.0, field(1) as u32)
}

fn own_cpu_seconds() -> f64 {
    stat_cpu(std::path::Path::new("/proc/self/stat")).0
}

/// CPU seconds of `root` and every process descending from it (PostgreSQL's
/// backends under the postmaster).
fn tree_cpu_seconds(root: u32) -> f64 {
    let mut procs: Vec<(u32, u32, f64)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let (cpu, ppid) = stat_cpu(&entry.path().join("stat"));
        procs.push((pid, ppid, cpu));
    }
    let mut inside = std::collections::HashSet::from([root]);
    // Parents before children is not guaranteed: repeat until nothing is added.
    loop {
        let before = inside.len();
        for (pid, ppid, _) in &procs {
            if inside.contains(ppid) {
                inside.insert(*pid);
            }
        }
        if inside.len() == before {
            break;
        }
    }
    procs
        .iter()
        .filter(|(pid, _, _)| inside.contains(pid))
        .map(|(_, _, c)| c)
        .sum()
}

fn parse_cpu_of(s: &str) -> std::result::Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected NAME=PID")?;
    let pid = pid.parse().map_err(|_| format!("{pid} is not a pid"))?;
    Ok((name.to_string(), pid))
}
