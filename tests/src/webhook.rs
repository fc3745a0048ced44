//! A webhook endpoint for tests: an HTTP server in the test process that checks every
//! delivery the way a consumer would (Standard Webhooks: HMAC-SHA256 over
//! `id.timestamp.body` with the key, compared in constant time, the timestamp within
//! five minutes), computed with the hmac, sha2 and base64 crates and not with the
//! shard's code; answers 401 to a delivery that does not verify and 500 while told to
//! fail, and keeps every delivery as it arrived.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::Value;
use sha2::Sha256;

use crate::wait_for;

/// How far a delivery's `webhook-timestamp` may be from the receiver's clock.
pub const TOLERANCE_SECS: i64 = 300;

/// One POST a receiver got, as it arrived.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Bytes,
    /// The receiver's clock (Unix seconds) when it arrived.
    pub received: i64,
    pub at: Instant,
    /// What the receiver answered.
    pub status: u16,
}

impl Delivery {
    pub fn event(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn seq(&self) -> i64 {
        self.event()["sequence"].as_i64().unwrap_or(-1)
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A consumer's check of a Standard Webhooks delivery with `secret` (the key bytes).
pub fn verify(secret: &[u8], d: &Delivery, now: i64) -> Result<(), String> {
    let ts: i64 = d
        .timestamp
        .parse()
        .map_err(|_| format!("webhook-timestamp {:?} is not a number", d.timestamp))?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(format!("webhook-timestamp {ts} is {} s off", now - ts));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
    mac.update(d.id.as_bytes());
    mac.update(b".");
    mac.update(d.timestamp.as_bytes());
    mac.update(b".");
    mac.update(&d.body);
    for candidate in d.signature.split(' ') {
        let Some(b64) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(given) = STANDARD.decode(b64) else {
            continue;
        };
        // `verify_slice` compares in constant time.
        if mac.clone().verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err(format!("no v1 signature of {:?} matches", d.id))
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

struct ReceiverState {
    secret: Vec<u8>,
    deliveries: Mutex<Vec<Delivery>>,
    /// While set, every delivery is answered 500 (an endpoint that is down).
    failing: AtomicBool,
}

/// A webhook endpoint: an HTTP server in this process that verifies every delivery,
/// answers 401 to one that does not verify and 500 while told to fail.
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> AxumStatus {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut d = Delivery {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
        received: unix_now(),
        at: Instant::now(),
        status: 0,
    };
    let status = if state.failing.load(Ordering::SeqCst) {
        AxumStatus::INTERNAL_SERVER_ERROR
    } else if verify(&state.secret, &d, d.received).is_err() {
        AxumStatus::UNAUTHORIZED
    } else {
        AxumStatus::NO_CONTENT
    };
    d.status = status.as_u16();
    state.deliveries.lock().expect("lock").push(d);
    status
}

impl Receiver {
    pub async fn start(secret: &[u8]) -> Receiver {
        let state = Arc::new(ReceiverState {
            secret: secret.to_vec(),
            deliveries: Mutex::default(),
            failing: AtomicBool::new(false),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            state,
            server,
        }
    }

    /// The name the shard keeps this endpoint's cursor under.
    pub fn sink(&self) -> String {
        format!(
            "webhook:{}",
            self.url.strip_prefix("http://").unwrap_or(&self.url)
        )
    }

    /// POSTs `d`'s headers and body to this endpoint as they arrived at another one (a
    /// replay, or a delivery signed with another key); what it answered.
    pub async fn send(&self, d: &Delivery) -> u16 {
        reqwest::Client::new()
            .post(&self.url)
            .header("content-type", "application/cloudevents+json")
            .header("webhook-id", &d.id)
            .header("webhook-timestamp", &d.timestamp)
            .header("webhook-signature", &d.signature)
            .body(d.body.clone())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    pub fn fail(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.deliveries.lock().expect("lock").clone()
    }

    pub fn accepted(&self) -> Vec<Delivery> {
        self.deliveries()
            .into_iter()
            .filter(Delivery::accepted)
            .collect()
    }

    /// The accepted events in arrival order with later copies of an id dropped (what
    /// a consumer keeps), and the dropped copies.
    pub fn deduplicated(&self) -> (Vec<Delivery>, Vec<Delivery>) {
        let mut seen = HashSet::new();
        let (mut kept, mut again) = (Vec::new(), Vec::new());
        for d in self.accepted() {
            if seen.insert(d.id.clone()) {
                kept.push(d);
            } else {
                again.push(d);
            }
        }
        (kept, again)
    }

    /// Waits until every reference in `want` has an accepted `confirmed` event.
    pub async fn wait_for_confirmed(&self, want: &HashSet<String>, within: Duration) {
        let got = wait_for("every confirmed event at the receiver", within, || async {
            let have = confirmed_references(&self.accepted());
            Ok(want.is_subset(&have).then_some(()))
        })
        .await;
        if got.is_err() {
            let have = confirmed_references(&self.accepted());
            let missing: Vec<_> = want.difference(&have).collect();
            panic!(
                "{} of {} confirmed events never reached {}: {missing:?}",
                missing.len(),
                want.len(),
                self.url
            );
        }
    }
}

/// The booking references of the `confirmed` events among `deliveries`.
pub fn confirmed_references(deliveries: &[Delivery]) -> HashSet<String> {
    deliveries
        .iter()
        .map(Delivery::event)
        .filter(|e| e["type"] == "dev.boxoffice.booking.confirmed.v1")
        .filter_map(|e| e["data"]["reference"].as_str().map(String::from))
        .collect()
}

/// A fresh signing key.
pub fn new_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key
}

/// `key` as Standard Webhooks prints a secret: `whsec_<base64>`, what the shard reads.
pub fn whsec(key: &[u8]) -> String {
    format!("whsec_{}\n", STANDARD.encode(key))
}
