//! boxoffice-load: closed-loop load against a booking shard.
//!
//! ```text
//! boxoffice-load --url http://127.0.0.1:8081 --show cup-final --secret S \
//!   --scenario holds --concurrency 64 --duration 10 --users 5000
//! ```
//!
//! Scenarios: `holds` (explicit random seats over the whole venue), `hot` (everyone
//! after the same 100 seats), `war` (best-available 2–4 seats until sold out),
//! `seatmap` (GET the seat map), `confirms` (confirm holds made beforehand). Reports
//! attempts/s, outcomes and latency percentiles (HDR histogram), checks that no seat
//! was held twice, and prints one JSON line for scripts.

use std::collections::HashSet;
use std::sync::Arc;
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
}

#[derive(Parser, Debug)]
#[command(about = "Load generator for a boxoffice booking shard")]
struct Args {
    /// Shard base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    url: String,
    /// Show name.
    #[arg(long)]
    show: String,
    /// The shard's HS256 JWT secret (to mint tokens for the simulated users).
    #[arg(long, env = "BOXOFFICE_JWT_SECRET", hide_env_values = true)]
    secret: String,
    #[arg(long, value_enum, default_value = "holds")]
    scenario: Scenario,
    /// Concurrent clients (each keeps one request in flight).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to run (confirms: until the prepared holds are confirmed).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Distinct users.
    #[arg(long, default_value_t = 5000)]
    users: usize,
    /// Holds to prepare for the confirms scenario.
    #[arg(long, default_value_t = 5000)]
    prepare: usize,
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

struct Shared {
    http: reqwest::Client,
    base: String,
    tokens: Vec<String>,
    seats: Vec<String>,
    /// Prepared (hold id, user index) for the confirms scenario.
    holds: std::sync::Mutex<Vec<(String, usize)>>,
}

/// The next request of a scenario (None: nothing left to do).
fn next_request(shared: &Shared, scenario: Scenario) -> Option<reqwest::RequestBuilder> {
    let mut rng = rand::rng();
    let user = rng.random_range(0..shared.tokens.len());
    let token = &shared.tokens[user];
    Some(match scenario {
        Scenario::Seatmap => shared.http.get(format!("{}/seats", shared.base)),
        Scenario::Confirms => {
            let (id, owner) = shared.holds.lock().map(|mut h| h.pop()).ok().flatten()?;
            shared
                .http
                .post(format!("{}/holds/{id}/confirm", shared.base))
                .bearer_auth(&shared.tokens[owner])
                .json(&json!({"paymentReference": format!("load-{id}")}))
        }
        _ => {
            let body = match scenario {
                Scenario::Holds => {
                    let k = rng.random_range(1..=2);
                    json!({"seats": shared.seats.choose_multiple(&mut rng, k).collect::<Vec<_>>()})
                }
                Scenario::Hot => {
                    let k = rng.random_range(1..=2);
                    let hot = &shared.seats[..shared.seats.len().min(100)];
                    json!({"seats": hot.choose_multiple(&mut rng, k).collect::<Vec<_>>()})
                }
                _ => json!({"best": {"quantity": rng.random_range(2..=4)}}),
            };
            shared
                .http
                .post(format!("{}/holds", shared.base))
                .bearer_auth(token)
                .json(&body)
        }
    })
}

async fn one(shared: &Shared, scenario: Scenario) -> (Option<u16>, Vec<String>) {
    let Some(request) = next_request(shared, scenario) else {
        return (None, vec![]);
    };
    match request.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let mut held = Vec::new();
            if status == 201 && scenario != Scenario::Confirms {
                if let Ok(v) = resp.json::<Value>().await {
                    held = v["seats"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|s| s.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                }
            } else {
                let _ = resp.bytes().await;
            }
            (Some(status), held)
        }
        Err(_) => (Some(0), vec![]),
    }
}

async fn prepare_holds(shared: &Shared, n: usize) -> Result<()> {
    let mut made = Vec::with_capacity(n);
    let mut attempts = 0;
    while made.len() < n && attempts < n * 3 {
        attempts += 1;
        let (user, seat) = {
            let mut rng = rand::rng();
            let user = rng.random_range(0..shared.tokens.len());
            (
                user,
                shared.seats.choose(&mut rng).context("no seats")?.clone(),
            )
        };
        let resp = shared
            .http
            .post(format!("{}/holds", shared.base))
            .bearer_auth(&shared.tokens[user])
            .json(&json!({"seats": [seat]}))
            .send()
            .await?;
        if resp.status().as_u16() == 201 {
            let v: Value = resp.json().await?;
            made.push((v["id"].as_str().context("hold id")?.to_string(), user));
        }
    }
    *shared.holds.lock().map_err(|_| anyhow::anyhow!("lock"))? = made;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let base = format!("{}/v1/shows/{}", args.url.trim_end_matches('/'), args.show);
    let seats = match args.scenario {
        Scenario::Seatmap | Scenario::War => Vec::new(),
        _ => seat_ids(&http, &base).await?,
    };
    let shared = Arc::new(Shared {
        http,
        base,
        tokens: tokens(&args.secret, args.users)?,
        seats,
        holds: std::sync::Mutex::new(Vec::new()),
    });
    if args.scenario == Scenario::Confirms {
        prepare_holds(&shared, args.prepare).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let mut workers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let shared = shared.clone();
        let scenario = args.scenario;
        workers.push(tokio::spawn(async move {
            let mut tally = Tally {
                latency: Histogram::new_with_bounds(1, 60_000_000, 3).ok(),
                ..Default::default()
            };
            while Instant::now() < deadline {
                let t = Instant::now();
                let (status, held) = one(&shared, scenario).await;
                let Some(status) = status else { break };
                if let Some(h) = tally.latency.as_mut() {
                    let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                }
                match status {
                    200..=299 => tally.ok += 1,
                    409 | 410 => tally.conflict += 1,
                    400..=499 => tally.other_4xx += 1,
                    0 => tally.transport += 1,
                    _ => tally.server_error += 1,
                }
                tally.seats.extend(held);
                if scenario == Scenario::War && status == 409 && tally.conflict > 50 {
                    // Sold out for this worker's sizes.
                    break;
                }
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for w in workers {
        total.merge(w.await?)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let attempts =
        total.ok + total.conflict + total.other_4xx + total.server_error + total.transport;
    let mut unique = HashSet::with_capacity(total.seats.len());
    let doubles = total
        .seats
        .iter()
        .filter(|s| !unique.insert(s.as_str()))
        .count();
    let h = total
        .latency
        .unwrap_or_else(|| Histogram::new(3).expect("histogram"));
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let report = json!({
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "concurrency": args.concurrency,
        "seconds": elapsed,
        "attempts": attempts,
        "attempts_per_s": attempts as f64 / elapsed,
        "ok": total.ok,
        "ok_per_s": total.ok as f64 / elapsed,
        "conflicts": total.conflict,
        "other_4xx": total.other_4xx,
        "server_errors": total.server_error,
        "transport_errors": total.transport,
        "latency_ms": {"p50": ms(0.5), "p95": ms(0.95), "p99": ms(0.99), "max": h.max() as f64 / 1000.0},
        "seats_held": total.seats.len(),
        "seats_held_twice": doubles,
    });
    eprintln!(
        "{:?} c={} {:.1}s: {} attempts ({:.0}/s), {} ok ({:.0}/s), {} conflicts, {} other 4xx, {} 5xx, {} transport; \
         latency ms p50 {:.2} p95 {:.2} p99 {:.2} max {:.2}; seats held {} (twice: {})",
        args.scenario,
        args.concurrency,
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
        doubles
    );
    println!("{report}");
    if doubles > 0 {
        bail!("{doubles} seats were granted to two holds");
    }
    Ok(())
}
