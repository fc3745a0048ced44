//! The clients: each holds seats (explicit, best available, or general admission), then
//! confirms, releases, or walks away, and records every operation in the history.
//! Unknown outcomes are retried with the same idempotency key (holds) or the same hold
//! (confirms are idempotent per hold), and recorded as unknown when no attempt answered.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::history::{History, HoldGrant, Op, OpKind, Outcome};
use crate::shard::token;

/// What every client shares.
pub struct Workload {
    pub http: reqwest::Client,
    /// Base URLs of the replicas as they are now (restarted replicas get new ports).
    pub urls: Arc<RwLock<Vec<String>>>,
    pub show: String,
    pub history: Arc<History>,
    /// Rows of the section `main` (A, B, ...) and seats per row.
    pub rows: u32,
    pub seats_per_row: u32,
    pub think_ms: (u64, u64),
    /// Clients `0..patient` wait up to 8 s for an answer (longer than any pause, so
    /// their requests stay in flight through a failover); the others give up after 2 s.
    pub patient: u32,
    /// A paid show's provider secret: confirms go through checkout and a signed
    /// callback (provider `sim`), retried like a provider retries.
    pub payment_secret: Option<Vec<u8>>,
}

/// A provider's signature of `body` at `t`, computed here independently of the shard:
/// `t=<t>,v1=<hex HMAC-SHA256 over "t.body">`.
fn provider_signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// One attempt's answer.
enum Answer {
    Status(StatusCode, Value),
    None(String),
}

impl Workload {
    fn pick_url(&self, rng: &mut StdRng) -> String {
        let urls = self.urls.read().unwrap_or_else(|e| e.into_inner());
        urls[rng.random_range(0..urls.len())].clone()
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        rng: &mut StdRng,
        client: u32,
        method: reqwest::Method,
        path: &str,
        user: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = format!("{}/v1/shows/{}{path}", self.pick_url(rng), self.show);
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(token(user, &[]))
            .timeout(Duration::from_secs(if client < self.patient {
                8
            } else {
                2
            }));
        if let Some(b) = body {
            req = req.json(b);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        match req.send().await {
            Err(e) => Answer::None(short_error(&e)),
            Ok(resp) => {
                let status = resp.status();
                match resp.json::<Value>().await {
                    Ok(v) => Answer::Status(status, v),
                    Err(e) if status.is_success() => Answer::None(short_error(&e)),
                    Err(_) => Answer::Status(status, Value::Null),
                }
            }
        }
    }

    fn hold_request(&self, rng: &mut StdRng) -> Value {
        let roll = rng.random_range(0..100);
        if roll < 50 {
            // Explicit seats: half the time in the two hot front rows.
            let n = rng.random_range(1..=3);
            let hot = rng.random_bool(0.5);
            let row_count = if hot { 2.min(self.rows) } else { self.rows };
            let row = (b'A' + rng.random_range(0..row_count) as u8) as char;
            let first = rng.random_range(1..=self.seats_per_row + 1 - n);
            let seats: Vec<String> = (first..first + n)
                .map(|s| format!("main:{row}:{s}"))
                .collect();
            json!({ "seats": seats })
        } else if roll < 80 {
            json!({ "best": { "quantity": rng.random_range(1..=4) } })
        } else {
            json!({ "general": { "area": "pit", "quantity": rng.random_range(1..=4) } })
        }
    }

    /// One client until `stop`.
    pub async fn client(self: Arc<Self>, id: u32, seed: u64, stop: CancellationToken) {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(id as u64));
        let user = format!("user-{id}");
        let mut n = 0u64;
        while !stop.is_cancelled() {
            n += 1;
            let request = self.hold_request(&mut rng);
            let key = format!("c{id}-{n}");
            let grant = self.hold(&mut rng, id, &user, &request, &key).await;
            if let Some(g) = grant {
                let roll = rng.random_range(0..100);
                if roll < 45 {
                    self.confirm(&mut rng, id, &user, &g.id).await;
                } else if roll < 70 {
                    self.release(&mut rng, id, &user, &g.id).await;
                }
            }
            let think = rng.random_range(self.think_ms.0..=self.think_ms.1);
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(think)) => {}
            }
        }
    }

    /// Sends one request until its outcome is known (or `max` attempts), pausing
    /// between attempts; `classify` turns each answer into an outcome. Returns the last
    /// outcome and the attempts made.
    #[allow(clippy::too_many_arguments)]
    async fn until_known(
        &self,
        rng: &mut StdRng,
        client: u32,
        request: (reqwest::Method, &str, Option<&Value>, &[(&str, &str)]),
        user: &str,
        max: u32,
        pause: Duration,
        mut classify: impl FnMut(Answer) -> Outcome,
    ) -> (Outcome, u32) {
        let (method, path, body, headers) = request;
        let mut outcome = Outcome::Unknown("not sent".into());
        let mut attempts = 0;
        while attempts < max {
            attempts += 1;
            let answer = self
                .send(rng, client, method.clone(), path, user, body, headers)
                .await;
            outcome = classify(answer);
            if !matches!(outcome, Outcome::Unknown(_)) {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        (outcome, attempts)
    }

    /// A hold, retried with the same idempotency key while its outcome is unknown.
    async fn hold(
        &self,
        rng: &mut StdRng,
        client: u32,
        user: &str,
        request: &Value,
        key: &str,
    ) -> Option<HoldGrant> {
        let invoke = self.history.now();
        let mut grant = None;
        let (outcome, attempts) = self
            .until_known(
                rng,
                client,
                (
                    reqwest::Method::POST,
                    "/holds",
                    Some(request),
                    &[("Idempotency-Key", key)],
                ),
                user,
                3,
                Duration::from_millis(300),
                |answer| match answer {
                    Answer::Status(s, v) if s.is_success() => {
                        grant = self.grant_of(&v);
                        if grant.is_some() {
                            Outcome::Ok
                        } else {
                            Outcome::Unknown(format!("unreadable hold {v}"))
                        }
                    }
                    other => definite_or_unknown(other),
                },
            )
            .await;
        self.history.record(Op {
            client,
            kind: OpKind::Hold {
                request: request.to_string(),
            },
            invoke,
            complete: self.history.now(),
            outcome,
            grant: grant.clone(),
            reference: None,
            attempts,
        });
        grant
    }

    fn grant_of(&self, v: &Value) -> Option<HoldGrant> {
        Some(HoldGrant {
            id: v["id"].as_str()?.to_string(),
            seats: crate::shard::strings(&v["seats"]),
            area: v["area"].as_str().map(String::from),
            quantity: v["quantity"].as_u64()?,
            expires_at: self.history.from_wall(v["expiresAtMs"].as_i64()?),
        })
    }

    /// Confirms until answered (a failover takes a few seconds), then records. In a
    /// paid show: checks out, then the provider's signed success callback confirms.
    async fn confirm(&self, rng: &mut StdRng, client: u32, user: &str, hold: &str) {
        if let Some(secret) = &self.payment_secret {
            return self.pay(rng, client, user, hold, secret).await;
        }
        let invoke = self.history.now();
        let body = json!({ "paymentReference": format!("pay-{hold}") });
        let path = format!("/holds/{hold}/confirm");
        let mut reference = None;
        let (outcome, attempts) = self
            .until_known(
                rng,
                client,
                (reqwest::Method::POST, &path, Some(&body), &[]),
                user,
                12,
                Duration::from_millis(500),
                |answer| match answer {
                    Answer::Status(s, v) if s.is_success() => {
                        reference = v["reference"].as_str().map(String::from);
                        Outcome::Ok
                    }
                    // The hold is busy with another confirm attempt: ask again.
                    Answer::Status(s, v)
                        if s == StatusCode::CONFLICT && code_of(s, &v).ends_with("conflict") =>
                    {
                        Outcome::Unknown(code_of(s, &v))
                    }
                    other => definite_or_unknown(other),
                },
            )
            .await;
        self.history.record(Op {
            client,
            kind: OpKind::Confirm { hold: hold.into() },
            invoke,
            complete: self.history.now(),
            outcome,
            grant: None,
            reference,
            attempts,
        });
    }

    /// Checkout, then the provider's success callback (event id fixed per hold, so
    /// every retry is the same event), recorded as one confirm: acknowledged when the
    /// callback answers a booking.
    async fn pay(&self, rng: &mut StdRng, client: u32, user: &str, hold: &str, secret: &[u8]) {
        let invoke = self.history.now();
        let path = format!("/holds/{hold}/checkout");
        let mut intent = None;
        let (mut outcome, mut attempts) = self
            .until_known(
                rng,
                client,
                (reqwest::Method::POST, &path, None, &[]),
                user,
                12,
                Duration::from_millis(500),
                |answer| match answer {
                    Answer::Status(s, v) if s.is_success() => {
                        intent = Some(v["intent"].clone());
                        Outcome::Ok
                    }
                    Answer::Status(s, v)
                        if s == StatusCode::CONFLICT && code_of(s, &v).ends_with(" conflict") =>
                    {
                        Outcome::Unknown(code_of(s, &v))
                    }
                    other => definite_or_unknown(other),
                },
            )
            .await;
        let mut reference = None;
        if let (Outcome::Ok, Some(intent)) = (&outcome, intent) {
            let body = json!({
                "id": format!("evt_{hold}"),
                "type": "payment.succeeded",
                "intent": intent["id"],
                "amountMinor": intent["amountMinor"],
                "currency": intent["currency"],
                "payment": format!("pay_{hold}"),
            });
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let signature = provider_signature(secret, t, &bytes);
            let (paid, more) = self
                .until_known(
                    rng,
                    client,
                    (
                        reqwest::Method::POST,
                        "/payments/sim/callback",
                        Some(&body),
                        &[("Boxoffice-Signature", signature.as_str())],
                    ),
                    user,
                    12,
                    Duration::from_millis(500),
                    |answer| match answer {
                        Answer::Status(s, v) if s.is_success() => {
                            match v["reference"].as_str() {
                                Some(r) => {
                                    reference = Some(r.to_string());
                                    Outcome::Ok
                                }
                                // A late payment whose seats were gone: no booking.
                                None => Outcome::Fail(format!("{} {v}", s.as_u16())),
                            }
                        }
                        Answer::Status(s, v)
                            if s == StatusCode::CONFLICT
                                && code_of(s, &v).ends_with(" conflict") =>
                        {
                            Outcome::Unknown(code_of(s, &v))
                        }
                        other => definite_or_unknown(other),
                    },
                )
                .await;
            outcome = paid;
            attempts += more;
        }
        self.history.record(Op {
            client,
            kind: OpKind::Confirm { hold: hold.into() },
            invoke,
            complete: self.history.now(),
            outcome,
            grant: None,
            reference,
            attempts,
        });
    }

    async fn release(&self, rng: &mut StdRng, client: u32, user: &str, hold: &str) {
        let invoke = self.history.now();
        let path = format!("/holds/{hold}");
        let (outcome, attempts) = self
            .until_known(
                rng,
                client,
                (reqwest::Method::DELETE, &path, None, &[]),
                user,
                3,
                Duration::from_millis(300),
                definite_or_unknown,
            )
            .await;
        self.history.record(Op {
            client,
            kind: OpKind::Release { hold: hold.into() },
            invoke,
            complete: self.history.now(),
            outcome,
            grant: None,
            reference: None,
            attempts,
        });
    }
}

/// 2xx: done; 4xx: definitely not done; 5xx or no answer: unknown.
fn definite_or_unknown(answer: Answer) -> Outcome {
    match answer {
        Answer::Status(s, _) if s.is_success() => Outcome::Ok,
        Answer::Status(s, v) if s.is_client_error() => Outcome::Fail(code_of(s, &v)),
        Answer::Status(s, v) => Outcome::Unknown(code_of(s, &v)),
        Answer::None(e) => Outcome::Unknown(e),
    }
}

fn code_of(status: StatusCode, v: &Value) -> String {
    match v["error"]["code"].as_str() {
        Some(code) => format!("{} {code}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

fn short_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else {
        "transport".into()
    }
}
