//! Payments through the API against real etcd and PostgreSQL: checkout, provider
//! callbacks signed like a provider's (forged, stale, tampered, replayed, mismatched,
//! late), trusted-service confirms, cancel and refund, and the audit trail.

mod common;

use booking_shard::payments::sign;
use boxoffice_e2e::{token, wait_for};
use common::{Cluster, show_yaml};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "whsec_test_0123456789abcdef";

fn paid_show(name: &str, mode: &str) -> String {
    let mut yaml = show_yaml(name, 2, 4, Some(10), 4, None);
    yaml.push_str(&format!(
        "  payments:\n    mode: {mode}\n    provider: sim\n    providerSecretRef:\n      name: pay\n      key: secret\n    window: 2m\n    tolerance: 1m\n"
    ));
    yaml
}

/// A cluster of `replicas` whose shards read the provider secret from a file.
async fn start(yaml: &str, replicas: usize, hold_ttl: Option<u64>, window: Option<u64>) -> Cluster {
    let mut cluster = Cluster::new(yaml, 3, hold_ttl).await;
    let secret = cluster.dir.path().join("payment-secret");
    std::fs::write(&secret, SECRET).expect("secret");
    cluster.options.extra_env.push((
        "BOXOFFICE_PAYMENT_SECRET_FILE".into(),
        secret.display().to_string(),
    ));
    if let Some(w) = window {
        cluster
            .options
            .extra_env
            .push(("BOXOFFICE_PAYMENT_WINDOW_SECONDS".into(), w.to_string()));
    }
    for i in 0..replicas {
        cluster.add_replica(&format!("shard-{i}")).await;
    }
    cluster.leader().await;
    cluster
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A callback body as a provider sends it.
fn event(id: &str, kind: &str, intent: &str, amount: i64, currency: &str) -> String {
    json!({"id": id, "type": kind, "intent": intent, "amountMinor": amount,
           "currency": currency, "payment": format!("pay_{id}")})
    .to_string()
}

/// Posts `body` with `header` as the signature (none: no header) to `replica`.
async fn raw_callback(
    c: &Cluster,
    replica: usize,
    provider: &str,
    body: &str,
    header: Option<String>,
) -> (StatusCode, Value) {
    let mut req = c
        .http
        .post(format!("{}/payments/{provider}/callback", c.base(replica)))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(h) = header {
        req = req.header("boxoffice-signature", h);
    }
    let resp = req.send().await.expect("callback");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A correctly signed callback.
async fn callback(c: &Cluster, replica: usize, body: &str) -> (StatusCode, Value) {
    let header = sign(SECRET.as_bytes(), now_s(), body.as_bytes());
    raw_callback(c, replica, "sim", body, Some(header)).await
}

async fn with_roles(
    c: &Cluster,
    method: reqwest::Method,
    path: &str,
    user: &str,
    roles: &[&str],
    body: Option<Value>,
) -> (StatusCode, Value) {
    with_roles_at(c, 0, method, path, user, roles, body).await
}

async fn with_roles_at(
    c: &Cluster,
    replica: usize,
    method: reqwest::Method,
    path: &str,
    user: &str,
    roles: &[&str],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = c
        .http
        .request(method, format!("{}{path}", c.base(replica)))
        .bearer_auth(token(user, roles));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

async fn hold(c: &Cluster, user: &str, seats: &[&str]) -> String {
    let (s, h) = c.post(0, "/holds", user, json!({"seats": seats})).await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    h["id"].as_str().expect("hold id").to_string()
}

/// The history's rows chain (each starts where the last ended) from held; returns the
/// actions and the last state.
fn chain(history: &Value) -> (Vec<String>, String) {
    let rows = history.as_array().expect("rows");
    let mut state = "held".to_string();
    let mut actions = Vec::new();
    for r in rows {
        assert_eq!(r["from"], state.as_str(), "{history}");
        state = r["to"].as_str().expect("to").to_string();
        actions.push(r["action"].as_str().expect("action").to_string());
        assert!(r["epoch"].as_i64().is_some_and(|e| e > 0), "{r}");
    }
    (actions, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_mode_from_checkout_to_refund() {
    let c = start(&paid_show("paid", "provider"), 2, None, None).await;
    let leader = c.leader().await;
    let standby = 1 - leader;
    let id = hold(&c, "ann", &["main:A:1", "main:A:2"]).await;

    // A plain user can no longer confirm; nor confirm with someone else's role.
    let confirm = json!({"paymentReference": "i-paid-honest"});
    let (s, b) = c
        .post(0, &format!("/holds/{id}/confirm"), "ann", confirm.clone())
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::FORBIDDEN, "payment_required"),
        "{b}"
    );
    let (s, b) = with_roles(
        &c,
        reqwest::Method::POST,
        &format!("/holds/{id}/confirm"),
        "desk",
        &["payments"],
        Some(confirm.clone()),
    )
    .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::FORBIDDEN, "payment_required"),
        "not trustedService: {b}"
    );

    // Checkout: the server prices two seats at 10.50 EUR; a retry is the same intent.
    let (s, out) = c
        .post(0, &format!("/holds/{id}/checkout"), "ann", Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    let intent = out["intent"]["id"].as_str().expect("intent").to_string();
    assert_eq!(
        (
            out["intent"]["amountMinor"].as_i64(),
            out["intent"]["currency"].as_str()
        ),
        (Some(2100), Some("EUR"))
    );
    assert_eq!(out["hold"]["paymentIntent"], intent.as_str());
    assert_eq!(out["hold"]["status"], "payment_pending", "{out}");
    let (_, h) = c.get(0, &format!("/holds/{id}"), "ann").await;
    assert_eq!(h["status"], "payment_pending", "{h}");
    let (s, again) = c
        .post(0, &format!("/holds/{id}/checkout"), "ann", Value::Null)
        .await;
    assert_eq!((s, &again["intent"]), (StatusCode::OK, &out["intent"]));
    let (s, b) = c
        .post(0, &format!("/holds/{id}/checkout"), "bob", Value::Null)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another user's hold: {b}");
    // While the payment runs, the hold cannot be released.
    let resp = c
        .http
        .delete(format!("{}/holds/{id}", c.base(0)))
        .bearer_auth(token("ann", &[]))
        .send()
        .await
        .expect("release");
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let b: Value = resp.json().await.expect("json");
    assert_eq!(code(&b), "illegal_transition", "{b}");

    // Forged, stale, tampered, unsigned: 401 and nothing changes.
    let paid = event("evt_paid", "payment.succeeded", &intent, 2100, "EUR");
    let wrong = sign(b"whsec_guessed_guessed", now_s(), paid.as_bytes());
    let stale = sign(SECRET.as_bytes(), now_s() - 3600, paid.as_bytes());
    let tampered_body = event("evt_paid", "payment.succeeded", &intent, 1, "EUR");
    let signed = sign(SECRET.as_bytes(), now_s(), paid.as_bytes());
    for (body, header) in [
        (&paid, Some(wrong)),
        (&paid, Some(stale)),
        (&tampered_body, Some(signed)),
        (&paid, None),
        (&paid, Some("t=1,v1=zz".to_string())),
    ] {
        let (s, b) = raw_callback(&c, leader, "sim", body, header).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{b}"
        );
    }
    let (s, h) = c.get(0, &format!("/holds/{id}"), "ann").await;
    assert_eq!(
        (s, h["paymentIntent"].as_str()),
        (StatusCode::OK, Some(intent.as_str())),
        "still pending: {h}"
    );

    // Wrong provider, unknown intent: 404; a wrong amount: 422, logged, and its replay
    // gets the same answer.
    let (s, _) = raw_callback(
        &c,
        leader,
        "other",
        &paid,
        Some(sign(SECRET.as_bytes(), now_s(), paid.as_bytes())),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = callback(
        &c,
        leader,
        &event("evt_x", "payment.succeeded", "pi_nope", 2100, "EUR"),
    )
    .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "not_found"), "{b}");
    let short = event("evt_short", "payment.succeeded", &intent, 2000, "EUR");
    let (s, b) = callback(&c, leader, &short).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "payment_mismatch"),
        "{b}"
    );
    let (s2, b2) = callback(&c, standby, &short).await;
    assert_eq!(
        (s2, &b2),
        (s, &b),
        "a replay (through the standby) gets the first answer"
    );
    let (s, b) = callback(
        &c,
        leader,
        &event("evt_usd", "payment.succeeded", &intent, 2100, "USD"),
    )
    .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "payment_mismatch"),
        "{b}"
    );

    // The payment fails: the hold is held again (and can be paid again).
    let (s, b) = callback(
        &c,
        leader,
        &event("evt_fail", "payment.failed", &intent, 2100, "EUR"),
    )
    .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("held")),
        "{b}"
    );
    let (_, h) = c.get(0, &format!("/holds/{id}"), "ann").await;
    assert!(h["paymentIntent"].is_null(), "{h}");
    assert_eq!(h["status"], "held", "{h}");
    let (s, _) = c
        .post(0, &format!("/holds/{id}/checkout"), "ann", Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);

    // Success, sent by the simulator through the standby: confirmed, once.
    let sim = std::process::Command::new(env!("CARGO_BIN_EXE_pay-sim"))
        .args([
            "--api",
            &c.base(standby),
            "--provider",
            "sim",
            "--intent",
            &intent,
            "--amount",
            "2100",
            "--currency",
            "EUR",
            "--event",
            "evt_paid",
            "--secret-file",
        ])
        .arg(c.dir.path().join("payment-secret"))
        .output()
        .expect("pay-sim");
    let out = String::from_utf8_lossy(&sim.stdout).to_string();
    assert!(
        sim.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let (status, body) = out.trim().split_once(' ').expect("status and body");
    assert_eq!(status, "200", "{out}");
    let first: Value = serde_json::from_str(body).expect("json");
    let reference = first["reference"].as_str().expect("reference").to_string();
    assert_eq!(first["state"], "confirmed");
    let (s, replay) = callback(&c, leader, &paid).await;
    assert_eq!(
        (s, &replay),
        (StatusCode::OK, &first),
        "a replayed event gets the first answer"
    );
    let (s, other) = callback(
        &c,
        leader,
        &event("evt_paid_again", "payment.succeeded", &intent, 2100, "EUR"),
    )
    .await;
    assert_eq!(
        (s, &other["reference"]),
        (StatusCode::OK, &first["reference"]),
        "another success: the same booking"
    );
    let (s, b) = callback(
        &c,
        leader,
        &event("evt_late_fail", "payment.failed", &intent, 2100, "EUR"),
    )
    .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::CONFLICT, "illegal_transition"),
        "a failure after success: {b}"
    );
    let (_, booking) = c.get(0, &format!("/bookings/{reference}"), "ann").await;
    assert_eq!(booking["status"], "confirmed", "{booking}");
    assert_eq!(booking["paymentReference"], "pay_evt_paid", "{booking}");
    let counts = c.check_counts(0).await.expect("counts");
    assert_eq!(counts["inventory"]["sold"], 2, "{counts}");

    // Cancel: refund pending, seats back on sale at once; the refund callback completes it.
    let (s, b) = c
        .post(
            0,
            &format!("/bookings/{reference}/cancel"),
            "ann",
            Value::Null,
        )
        .await;
    assert_eq!(
        (s, b["refundStatus"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{b}"
    );
    let counts = c.check_counts(0).await.expect("counts");
    assert_eq!(counts["inventory"]["sold"], 0, "{counts}");
    let refund = event("evt_refund", "refund.succeeded", &intent, 2100, "EUR");
    let (s, b) = callback(&c, leader, &refund).await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("refunded")),
        "{b}"
    );
    let (_, booking) = c.get(0, &format!("/bookings/{reference}"), "ann").await;
    assert_eq!(booking["refundStatus"], "refunded", "{booking}");
    let (s, b) = c
        .post(
            0,
            &format!("/bookings/{reference}/check-in"),
            "ann",
            json!({"ticket": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");

    // The trail, for staff only: it replays from held to refunded.
    let (s, _) = c
        .get(0, &format!("/bookings/{reference}/history"), "ann")
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, history) = with_roles(
        &c,
        reqwest::Method::GET,
        &format!("/bookings/{reference}/history"),
        "clerk",
        &["staff"],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{history}");
    let (actions, last) = chain(&history);
    assert_eq!(
        actions,
        [
            "checkout",
            "payment_failed",
            "checkout",
            "paid",
            "cancel",
            "refunded"
        ],
        "{history}"
    );
    assert_eq!(last, "refunded");
    let roles: Vec<&str> = history
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["role"].as_str())
        .collect();
    assert_eq!(
        roles,
        ["user", "provider", "user", "provider", "user", "provider"]
    );
    assert_eq!(history[3]["actor"], "provider:sim");
    assert_eq!(history[3]["reason"], "evt_paid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_payments_take_free_seats_again_or_fail_and_ask_for_a_refund() {
    let c = start(&paid_show("late", "provider"), 1, Some(2), Some(2)).await;
    let checkout = |id: String| {
        let c = &c;
        async move {
            let (s, out) = c
                .post(0, &format!("/holds/{id}/checkout"), "ann", Value::Null)
                .await;
            assert_eq!(s, StatusCode::OK, "{out}");
            out["intent"]["id"].as_str().expect("intent").to_string()
        }
    };
    let expired = |id: String| {
        let c = &c;
        async move {
            wait_for(
                "the hold to expire",
                std::time::Duration::from_secs(20),
                || {
                    let id = id.clone();
                    async move {
                        let (s, _) = c.get(0, &format!("/holds/{id}"), "ann").await;
                        Ok((s == StatusCode::NOT_FOUND).then_some(()))
                    }
                },
            )
            .await
            .expect("expired");
        }
    };
    // Expired, seats still free: taken again and confirmed.
    let first = hold(&c, "ann", &["main:A:1"]).await;
    let intent = checkout(first.clone()).await;
    expired(first.clone()).await;
    let (s, b) = callback(
        &c,
        0,
        &event("evt_late_ok", "payment.succeeded", &intent, 1050, "EUR"),
    )
    .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("confirmed")),
        "{b}"
    );
    let reference = b["reference"].as_str().expect("reference").to_string();
    let (_, booking) = c.get(0, &format!("/bookings/{reference}"), "ann").await;
    assert_eq!(
        (booking["holdId"].as_str(), booking["seats"][0].as_str()),
        (Some(first.as_str()), Some("main:A:1"))
    );
    let (_, history) = with_roles(
        &c,
        reqwest::Method::GET,
        &format!("/bookings/{reference}/history"),
        "clerk",
        &["staff"],
        None,
    )
    .await;
    let (actions, last) = chain(&history);
    assert_eq!(
        (actions, last.as_str()),
        (
            vec!["checkout".to_string(), "expire".into(), "paid".into()],
            "confirmed"
        ),
        "{history}"
    );

    // Expired, and bob holds the seat now: the booking fails, a refund is requested,
    // bob keeps his seat; the refund callback completes it.
    let second = hold(&c, "ann", &["main:A:2"]).await;
    let intent = checkout(second.clone()).await;
    expired(second.clone()).await;
    let bob = hold(&c, "bob", &["main:A:2"]).await;
    let (s, b) = callback(
        &c,
        0,
        &event("evt_late_gone", "payment.succeeded", &intent, 1050, "EUR"),
    )
    .await;
    assert_eq!(
        (s, &b),
        (
            StatusCode::OK,
            &json!({"state": "failed", "refund": "requested"})
        )
    );
    let (s, h) = c.get(0, &format!("/holds/{bob}"), "bob").await;
    assert_eq!(s, StatusCode::OK, "bob's hold stands: {h}");
    let (s, b) = c
        .post(
            0,
            &format!("/holds/{bob}/confirm"),
            "bob",
            json!({"paymentReference": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = callback(
        &c,
        0,
        &event("evt_late_refund", "refund.succeeded", &intent, 1050, "EUR"),
    )
    .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("refunded")),
        "{b}"
    );
    let counts = c.check_counts(0).await.expect("counts");
    assert_eq!(
        (
            counts["inventory"]["sold"].as_i64(),
            counts["inventory"]["held"].as_i64()
        ),
        (Some(1), Some(1)),
        "{counts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_service_confirms_and_a_plain_user_cannot() {
    let c = start(&paid_show("desk", "trustedService"), 1, None, None).await;
    let id = hold(&c, "ann", &["main:B:1"]).await;
    let confirm = json!({"paymentReference": "cash-desk-7"});
    let (s, b) = c
        .post(0, &format!("/holds/{id}/confirm"), "ann", confirm.clone())
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::FORBIDDEN, "payment_required"),
        "{b}"
    );
    let (s, b) = with_roles(
        &c,
        reqwest::Method::POST,
        &format!("/holds/{id}/confirm"),
        "clerk",
        &["staff"],
        Some(confirm.clone()),
    )
    .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::NOT_FOUND, "not_found"),
        "staff is not payments: another user's hold: {b}"
    );
    let (s, b) = with_roles(
        &c,
        reqwest::Method::POST,
        &format!("/holds/{id}/confirm"),
        "desk-7",
        &["payments"],
        Some(confirm.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(
        (b["user"].as_str(), b["paymentReference"].as_str()),
        (Some("ann"), Some("cash-desk-7"))
    );
    let reference = b["reference"].as_str().expect("reference").to_string();
    let (s, again) = with_roles(
        &c,
        reqwest::Method::POST,
        &format!("/holds/{id}/confirm"),
        "desk-7",
        &["payments"],
        Some(confirm),
    )
    .await;
    assert_eq!((s, &again["reference"]), (StatusCode::OK, &b["reference"]));
    let (_, history) = with_roles(
        &c,
        reqwest::Method::GET,
        &format!("/bookings/{reference}/history"),
        "clerk",
        &["staff"],
        None,
    )
    .await;
    assert_eq!(history[0]["role"], "payments", "{history}");
    assert_eq!(history[0]["actor"], "desk-7", "{history}");
    assert_eq!(chain(&history).1, "confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_show_confirms_as_before_and_has_no_checkout() {
    let c = Cluster::start(&show_yaml("free", 1, 4, None, 4, None), 1, 3, None).await;
    let id = hold(&c, "ann", &["main:A:3"]).await;
    let (s, b) = c
        .post(0, &format!("/holds/{id}/checkout"), "ann", Value::Null)
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::CONFLICT, "illegal_transition"),
        "{b}"
    );
    let (s, b) = callback(&c, 0, &event("evt", "payment.succeeded", "pi_x", 1, "EUR")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no provider: {b}");
    let (s, b) = c
        .post(
            0,
            &format!("/holds/{id}/confirm"),
            "ann",
            json!({"paymentReference": "free"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let reference = b["reference"].as_str().expect("reference").to_string();
    let (s, b) = with_roles(
        &c,
        reqwest::Method::POST,
        &format!("/bookings/{reference}/check-in"),
        "clerk",
        &["staff"],
        Some(json!({"ticket": b["ticket"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = c
        .post(
            0,
            &format!("/bookings/{reference}/cancel"),
            "ann",
            Value::Null,
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::CONFLICT, "illegal_transition"),
        "{b}"
    );
    let (_, history) = with_roles(
        &c,
        reqwest::Method::GET,
        &format!("/bookings/{reference}/history"),
        "clerk",
        &["staff"],
        None,
    )
    .await;
    let (actions, last) = chain(&history);
    assert_eq!(
        (actions, last.as_str()),
        (vec!["confirm".to_string(), "check_in".into()], "checked_in"),
        "{history}"
    );
}

/// Bookings confirmed per second through the provider callback against the direct
/// confirm, in one run on one machine (`cargo test -p booking-shard --test payments --
/// --ignored --nocapture bench`); docs/benchmarks.md has the ratio. Asserts only that
/// every confirm went through, never a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn bench_confirms_through_the_callback_against_direct() {
    const N: usize = 400;
    const CLIENTS: usize = 32;
    let mut rates = Vec::new();
    for mode in ["none", "provider"] {
        let yaml = if mode == "none" {
            show_yaml(&format!("bench-{mode}"), 0, 0, Some(N as u32), 4, None)
        } else {
            let mut y = show_yaml(&format!("bench-{mode}"), 0, 0, Some(N as u32), 4, None);
            y.push_str("  payments:\n    mode: provider\n    provider: sim\n    providerSecretRef: {name: pay, key: secret}\n");
            y
        };
        let c = start(&yaml, 1, None, None).await;
        // Holds (and checkouts) first: only the confirms are timed.
        let mut prepared = Vec::new();
        for i in 0..N {
            let user = format!("bench-{i}");
            let (s, h) = c
                .post(
                    0,
                    "/holds",
                    &user,
                    json!({"general": {"area": "pit", "quantity": 1}}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{h}");
            let id = h["id"].as_str().expect("id").to_string();
            let intent = if mode == "provider" {
                let (s, out) = c
                    .post(0, &format!("/holds/{id}/checkout"), &user, Value::Null)
                    .await;
                assert_eq!(s, StatusCode::OK, "{out}");
                out["intent"]["id"].as_str().expect("intent").to_string()
            } else {
                String::new()
            };
            prepared.push((user, id, intent));
        }
        let queue = std::sync::Arc::new(std::sync::Mutex::new(prepared));
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let queue = queue.clone();
            let (http, base) = (c.http.clone(), c.base(0));
            let mode = mode.to_string();
            tasks.push(tokio::spawn(async move {
                let mut done = 0;
                loop {
                    let next = queue.lock().expect("queue").pop();
                    let Some((user, id, intent)) = next else {
                        break;
                    };
                    let resp = if mode == "provider" {
                        let body = event(
                            &format!("evt_{id}"),
                            "payment.succeeded",
                            &intent,
                            1050,
                            "EUR",
                        );
                        let header = sign(SECRET.as_bytes(), now_s(), body.as_bytes());
                        http.post(format!("{base}/payments/sim/callback"))
                            .header("content-type", "application/json")
                            .header("boxoffice-signature", header)
                            .body(body)
                            .send()
                            .await
                    } else {
                        http.post(format!("{base}/holds/{id}/confirm"))
                            .bearer_auth(token(&user, &[]))
                            .json(&json!({"paymentReference": "bench"}))
                            .send()
                            .await
                    };
                    let status = resp.expect("confirm").status();
                    assert!(status.is_success(), "{status}");
                    done += 1;
                }
                done
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("client");
        }
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(total, N);
        let counts = c.check_counts(0).await.expect("counts");
        assert_eq!(counts["inventory"]["sold"], N as i64, "{counts}");
        println!(
            "bench {mode}: {N} confirms in {secs:.2} s = {:.0}/s",
            N as f64 / secs
        );
        rates.push(N as f64 / secs);
    }
    println!("bench ratio callback/direct: {:.2}x", rates[1] / rates[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_during_a_failover_confirm_once_and_the_new_leader_keeps_the_checkout() {
    let mut c = start(&paid_show("failover", "provider"), 2, None, None).await;
    let leader = c.leader().await;
    let standby = 1 - leader;
    let paid = hold(&c, "ann", &["main:A:1"]).await;
    let pending = hold(&c, "bob", &["main:A:2"]).await;
    let mut intents = Vec::new();
    for (id, user) in [(&paid, "ann"), (&pending, "bob")] {
        let (s, out) = c
            .post(0, &format!("/holds/{id}/checkout"), user, Value::Null)
            .await;
        assert_eq!(s, StatusCode::OK, "{out}");
        intents.push(out["intent"]["id"].as_str().expect("intent").to_string());
    }
    // The provider's success arrives while the leader dies: it retries on any non-2xx
    // (no leader yet, a busy hold) until it is answered, as providers do.
    c.replicas[leader].process_mut().kill();
    let body = event(
        "evt_failover",
        "payment.succeeded",
        &intents[0],
        1050,
        "EUR",
    );
    let answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let first = wait_for(
        "the callback answered",
        std::time::Duration::from_secs(30),
        || {
            let (c, body, answers) = (&c, &body, answers.clone());
            async move {
                let (s, b) = callback(c, standby, body).await;
                answers.lock().expect("answers").push(s);
                Ok(s.is_success().then_some(b))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", c.logs()));
    assert_eq!(first["state"], "confirmed", "{first}");
    let answers = answers.lock().expect("answers").clone();
    assert!(
        answers
            .iter()
            .all(|s| s.is_success() || s.is_server_error() || *s == StatusCode::CONFLICT),
        "only retryable answers before the first: {answers:?}"
    );
    let (s, again) = callback(&c, standby, &body).await;
    assert_eq!(
        (s, &again),
        (StatusCode::OK, &first),
        "the replay gets the first answer"
    );
    // The new leader loaded bob's checkout from etcd: still waiting for its payment.
    let resp = c
        .http
        .delete(format!("{}/holds/{pending}", c.base(standby)))
        .bearer_auth(token("bob", &[]))
        .send()
        .await
        .expect("release");
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let (s, h) = c.get(standby, &format!("/holds/{pending}"), "bob").await;
    assert_eq!(
        (s, h["paymentIntent"].as_str()),
        (StatusCode::OK, Some(intents[1].as_str())),
        "{h}"
    );
    let counts = c.check_counts(standby).await.expect("counts");
    assert_eq!(
        (
            counts["inventory"]["sold"].as_i64(),
            counts["inventory"]["held"].as_i64()
        ),
        (Some(1), Some(1)),
        "{counts}"
    );
    let reference = first["reference"].as_str().expect("reference");
    let (_, history) = with_roles_at(
        &c,
        standby,
        reqwest::Method::GET,
        &format!("/bookings/{reference}/history"),
        "clerk",
        &["staff"],
        None,
    )
    .await;
    let (actions, last) = chain(&history);
    assert_eq!(
        (actions, last.as_str()),
        (vec!["checkout".to_string(), "paid".into()], "confirmed"),
        "{history}"
    );
}
