//! boxoffice-sink: the consumer side of the event benchmark. A Standard Webhooks
//! endpoint that verifies every delivery (HMAC-SHA256 over `id.timestamp.body`,
//! constant time) and/or a Kafka consumer of a topic; for each, counts the events
//! (first copy of each id), and measures commit-to-receipt lag (receipt time minus the
//! CloudEvent's `time`, both on this machine's clock).
//!
//! ```text
//! boxoffice-sink --webhook-listen 127.0.0.1:8199 --secret-file whsec \
//!   --kafka-brokers 127.0.0.1:9092 --kafka-topic bench.bookings --idle 5 --expect 20000
//! ```
//!
//! Stops once `--expect` events reached every sink and none arrived for `--idle`
//! seconds (or at `--max-wait`), then prints one JSON line per sink.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use sha2::Sha256;

#[derive(Parser, Debug)]
struct Args {
    /// Where the webhook endpoint listens (`POST /hook`); unset: no webhook.
    #[arg(long)]
    webhook_listen: Option<SocketAddr>,
    /// The signing secret (`whsec_<base64>`), as the shard reads it.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Kafka brokers to consume from; unset: no Kafka.
    #[arg(long)]
    kafka_brokers: Option<String>,
    #[arg(long, default_value = "boxoffice.bookings")]
    kafka_topic: String,
    /// Partitions of the topic to read.
    #[arg(long, default_value_t = 1)]
    kafka_partitions: i32,
    /// Events each sink must have before stopping.
    #[arg(long, default_value_t = 0)]
    expect: u64,
    /// Seconds without an event (after `--expect`) before stopping.
    #[arg(long, default_value_t = 5)]
    idle: u64,
    /// Seconds at most.
    #[arg(long, default_value_t = 600)]
    max_wait: u64,
}

/// What one sink received.
struct Tally {
    name: &'static str,
    seen: HashSet<String>,
    copies: u64,
    refused: u64,
    lag_us: Histogram<u64>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Tally {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            seen: HashSet::new(),
            copies: 0,
            refused: 0,
            lag_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram"),
            first: None,
            last: None,
        }
    }

    fn record(&mut self, event: &Value) {
        let now = Instant::now();
        let id = event["id"].as_str().unwrap_or_default().to_string();
        if !self.seen.insert(id) {
            self.copies += 1;
            return;
        }
        self.first.get_or_insert(now);
        self.last = Some(now);
        let lag = event["time"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .and_then(|t| {
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .ok()
            })
            .unwrap_or_default();
        let _ = self.lag_us.record((lag.as_micros() as u64).max(1));
    }

    fn report(&self) -> Value {
        let ms = |q: f64| self.lag_us.value_at_quantile(q) as f64 / 1000.0;
        let span = match (self.first, self.last) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        let n = self.seen.len() as f64;
        json!({
            "scenario": "events",
            "sink": self.name,
            "events": self.seen.len(),
            "copies": self.copies,
            "refused": self.refused,
            "events_per_s": if span > 0.0 { (n / span).round() } else { 0.0 },
            "lag_ms": {"p50": ms(0.5), "p99": ms(0.99), "max": self.lag_us.max() as f64 / 1000.0},
        })
    }
}

type Shared = Arc<Mutex<Tally>>;

struct Hook {
    key: Vec<u8>,
    tally: Shared,
}

fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (id, ts, sigs) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    sigs.split(' ').any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b| STANDARD.decode(b).ok())
            .is_some_and(|sig| mac.clone().verify_slice(&sig).is_ok())
    })
}

async fn receive(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !verify(&hook.key, &headers, &body) {
        hook.tally.lock().expect("tally").refused += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    hook.tally.lock().expect("tally").record(&event);
    StatusCode::NO_CONTENT
}

fn read_key(path: &PathBuf) -> Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let text = text.trim();
    match text.strip_prefix("whsec_") {
        Some(b) => STANDARD
            .decode(b)
            .context("the secret after whsec_ is not base64"),
        None => Ok(text.as_bytes().to_vec()),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut tallies: Vec<Shared> = Vec::new();
    if let Some(addr) = args.webhook_listen {
        let key = read_key(
            args.secret_file
                .as_ref()
                .context("--secret-file is needed with --webhook-listen")?,
        )?;
        let tally: Shared = Arc::new(Mutex::new(Tally::new("webhook")));
        tallies.push(tally.clone());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(Arc::new(Hook { key, tally }));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    if let Some(brokers) = &args.kafka_brokers {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "boxoffice-bench")
            .set("enable.auto.commit", "false")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        for p in 0..args.kafka_partitions {
            assignment.add_partition_offset(&args.kafka_topic, p, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let tally: Shared = Arc::new(Mutex::new(Tally::new("kafka")));
        tallies.push(tally.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(m) = consumer.recv().await {
                    let event: Value = m
                        .payload()
                        .and_then(|p| serde_json::from_slice(p).ok())
                        .unwrap_or(Value::Null);
                    tally.lock().expect("tally").record(&event);
                }
            }
        });
    }
    if tallies.is_empty() {
        bail!("nothing to receive: give --webhook-listen and/or --kafka-brokers");
    }
    eprintln!("boxoffice-sink: ready");
    let start = Instant::now();
    let idle = Duration::from_secs(args.idle);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let done = tallies.iter().all(|t| {
            let t = t.lock().expect("tally");
            t.seen.len() as u64 >= args.expect && t.last.is_some_and(|l| l.elapsed() >= idle)
        });
        if done || start.elapsed() >= Duration::from_secs(args.max_wait) {
            break;
        }
    }
    for t in &tallies {
        println!("{}", t.lock().expect("tally").report());
    }
    Ok(())
}
