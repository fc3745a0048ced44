//! The API contract: authentication, ownership, roles, idempotency, limits, and bad
//! input answered with the one error shape (never a panic, never corrupted inventory).

mod common;

use std::time::Duration;

use boxoffice_e2e::shard::TEST_JWT_SECRET;
use boxoffice_e2e::token;
use common::{Cluster, show_yaml};
use jsonwebtoken::{EncodingKey, Header, encode};
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

async fn raw(
    cluster: &Cluster,
    method: reqwest::Method,
    path: &str,
    auth: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = cluster
        .http
        .request(method, format!("{}{path}", cluster.base(0)))
        .body(body);
    if let Some(t) = auth {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_ownership_and_roles() {
    let cluster = Cluster::start(&show_yaml("auth", 2, 10, None, 4, None), 1, 3, None).await;
    let hold_body = json!({"seats": ["main:A:1"]}).to_string().into_bytes();
    let post = reqwest::Method::POST;

    // Missing, forged and expired tokens.
    let (s, b) = raw(
        &cluster,
        post.clone(),
        "/holds",
        None,
        Some("application/json"),
        hold_body.clone(),
    )
    .await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    let forged = encode(
        &Header::default(),
        &json!({"sub": "mallory", "exp": 4_000_000_000u64}),
        &EncodingKey::from_secret(b"not-the-secret-not-the-secret!!"),
    )
    .expect("jwt");
    let (s, b) = raw(
        &cluster,
        post.clone(),
        "/holds",
        Some(&forged),
        Some("application/json"),
        hold_body.clone(),
    )
    .await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    let expired = encode(
        &Header::default(),
        &json!({"sub": "ann", "exp": 1_000_000_000u64}),
        &EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
    )
    .expect("jwt");
    let (s, b) = raw(
        &cluster,
        post.clone(),
        "/holds",
        Some(&expired),
        Some("application/json"),
        hold_body.clone(),
    )
    .await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");

    // Ann's hold is invisible to Bob.
    let (s, hold) = cluster
        .post(0, "/holds", "ann", json!({"seats": ["main:A:1"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    let id = hold["id"].as_str().expect("id");
    let (s, b) = cluster.get(0, &format!("/holds/{id}"), "bob").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = cluster
        .post(
            0,
            &format!("/holds/{id}/confirm"),
            "bob",
            json!({"paymentReference": "x"}),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = cluster.get(0, &format!("/holds/{id}"), "ann").await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Bookings: only the owner (or staff) sees one; check-in is staff-only, once.
    let (s, booking) = cluster
        .post(
            0,
            &format!("/holds/{id}/confirm"),
            "ann",
            json!({"paymentReference": "pay-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{booking}");
    let reference = booking["reference"].as_str().expect("reference");
    let (s, b) = cluster
        .get(0, &format!("/bookings/{reference}"), "bob")
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, mine) = cluster.get(0, "/bookings", "ann").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(mine["bookings"][0]["reference"], reference);
    let (s, b) = cluster
        .post(
            0,
            &format!("/bookings/{reference}/check-in"),
            "ann",
            json!({}),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let staff = token("usher", &["staff"]);
    // The owner was given the ticket code; the reference alone admits nobody.
    let ticket = booking["ticket"]
        .as_str()
        .expect("the owner gets a ticket code");
    let (_, shown) = cluster
        .get(0, &format!("/bookings/{reference}"), "ann")
        .await;
    assert_eq!(shown["ticket"], ticket);
    let scan = |auth: String, key: Option<&'static str>, ticket: Option<&str>| {
        let url = format!("{}/bookings/{reference}/check-in", cluster.base(0));
        let http = cluster.http.clone();
        let body = ticket.map(|t| json!({"ticket": t}));
        async move {
            let mut req = http.post(url).bearer_auth(auth);
            if let Some(b) = body {
                req = req.json(&b);
            }
            if let Some(k) = key {
                req = req.header("idempotency-key", k);
            }
            let r = req.send().await.expect("request");
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, b) = scan(staff.clone(), None, Some("not-the-code")).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "invalid_ticket");
    let (s, b) = scan(staff.clone(), None, None).await;
    assert_error(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let check_in = |auth: String, key: Option<&'static str>| scan(auth, key, Some(ticket));
    let (s, first) = check_in(staff.clone(), Some("scan-1")).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert!(first["checkedInAt"].is_string(), "{first}");
    // The scanner retries the same request: same answer.
    let (s, again) = check_in(staff.clone(), Some("scan-1")).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again, first);
    // Another scan of the same ticket is refused.
    let (s, b) = check_in(staff.clone(), Some("scan-2")).await;
    assert_error(s, &b, StatusCode::CONFLICT, "illegal_transition");
    let (s, b) = check_in(staff, None).await;
    assert_error(s, &b, StatusCode::CONFLICT, "illegal_transition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_safe() {
    let cluster = Cluster::start(&show_yaml("retries", 2, 10, None, 4, None), 1, 3, None).await;
    let hold = |key: &'static str| {
        let http = cluster.http.clone();
        let url = format!("{}/holds", cluster.base(0));
        async move {
            let r = http
                .post(url)
                .bearer_auth(token("ann", &[]))
                .header("idempotency-key", key)
                .json(&json!({"best": {"quantity": 2}}))
                .send()
                .await
                .expect("request");
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s1, h1) = hold("order-1").await;
    let (s2, h2) = hold("order-1").await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(h1, h2, "same key, same answer");
    let (s3, h3) = hold("order-2").await;
    assert_eq!(s3, StatusCode::CREATED);
    assert_ne!(h1["id"], h3["id"]);
    let counts = cluster.check_counts(0).await.expect("counts");
    assert_eq!(
        counts["inventory"]["held"], 4,
        "a retry must not hold more seats"
    );

    // Confirming twice gives one booking.
    let id = h1["id"].as_str().expect("id");
    let confirm = json!({"paymentReference": "pay"});
    let (s, b1) = cluster
        .post(0, &format!("/holds/{id}/confirm"), "ann", confirm.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b1}");
    let (s, b2) = cluster
        .post(0, &format!("/holds/{id}/confirm"), "ann", confirm)
        .await;
    assert_eq!(s, StatusCode::OK, "{b2}");
    assert_eq!(b1, b2);
    let (_, mine) = cluster.get(0, "/bookings", "ann").await;
    assert_eq!(mine["bookings"].as_array().map(Vec::len), Some(1));

    // Cancelling returns the seats; cancelling again returns the same booking.
    let reference = b1["reference"].as_str().expect("reference");
    let (s, c1) = cluster
        .post(
            0,
            &format!("/bookings/{reference}/cancel"),
            "ann",
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c1}");
    assert_eq!(c1["status"], "cancelled");
    assert_eq!(c1["refundStatus"], "pending");
    let (s, c2) = cluster
        .post(
            0,
            &format!("/bookings/{reference}/cancel"),
            "ann",
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(c1, c2);
    let counts = cluster.check_counts(0).await.expect("counts");
    assert_eq!(counts["inventory"]["sold"], 0);
    assert_eq!(counts["inventory"]["held"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_limits_and_rate_limit() {
    let cluster = Cluster::start(&show_yaml("limits", 3, 10, None, 4, Some(5)), 1, 3, None).await;
    let (s, _) = cluster
        .post(0, "/holds", "ann", json!({"best": {"quantity": 4}}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = cluster
        .post(0, "/holds", "ann", json!({"best": {"quantity": 2}}))
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "limit_exceeded");
    let (s, b) = cluster
        .post(
            0,
            "/holds",
            "bob",
            json!({"seats": ["main:A:1", "main:A:2", "main:A:3", "main:A:4", "main:A:5"]}),
        )
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "limit_exceeded");

    // A burst beyond the per-user rate limit gets 429 with Retry-After.
    let mut limited = None;
    for _ in 0..30 {
        let r = cluster
            .http
            .post(format!("{}/holds", cluster.base(0)))
            .bearer_auth(token("eager", &[]))
            .json(&json!({"seats": ["main:A:1"]}))
            .send()
            .await
            .expect("request");
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((
                r.headers().get("retry-after").cloned(),
                r.json::<Value>().await.unwrap_or_default(),
            ));
            break;
        }
    }
    let (retry_after, body) = limited.expect("the rate limit never triggered");
    assert!(retry_after.is_some(), "429 without Retry-After");
    assert_eq!(body["error"]["code"], "rate_limited");
}

/// What is wrong, content type, body, expected status and error code.
type BadCase = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    StatusCode,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx() {
    let cluster =
        Cluster::start(&show_yaml("badinput", 2, 10, Some(50), 4, None), 1, 3, None).await;
    let ann = token("ann", &[]);
    let post = reqwest::Method::POST;
    let json_ct = Some("application/json");
    let cases: Vec<BadCase> = vec![
        (
            "malformed JSON",
            json_ct,
            b"{\"seats\": [".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "wrong content type",
            Some("text/plain"),
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "no content type",
            None,
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "unknown field",
            json_ct,
            br#"{"seats": ["main:A:1"], "price": 0}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "nothing asked",
            json_ct,
            b"{}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "two kinds at once",
            json_ct,
            br#"{"seats": ["main:A:1"], "best": {"quantity": 1}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown seat",
            json_ct,
            br#"{"seats": ["main:Z:1"]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "unknown_seat",
        ),
        (
            "malformed seat id",
            json_ct,
            br#"{"seats": ["main;A;1"]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "unknown_seat",
        ),
        (
            "duplicate seat",
            json_ct,
            br#"{"seats": ["main:A:1", "main:A:1"]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "duplicate_seat",
        ),
        (
            "empty seats",
            json_ct,
            br#"{"seats": []}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "zero quantity",
            json_ct,
            br#"{"best": {"quantity": 0}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_quantity",
        ),
        (
            "negative quantity",
            json_ct,
            br#"{"best": {"quantity": -2}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "huge quantity",
            json_ct,
            br#"{"general": {"area": "pit", "quantity": 99999999999999999999}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "too many for a hold",
            json_ct,
            br#"{"general": {"area": "pit", "quantity": 5}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_quantity",
        ),
        (
            "unknown area",
            json_ct,
            br#"{"general": {"area": "roof", "quantity": 1}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "unknown_area",
        ),
        (
            "wrong type",
            json_ct,
            br#"{"seats": "main:A:1"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "oversized body",
            json_ct,
            vec![b' '; 200 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (what, ct, body, status, code) in cases {
        let (s, b) = raw(&cluster, post.clone(), "/holds", Some(&ann), ct, body).await;
        assert_eq!(s, status, "{what}: {b}");
        assert_eq!(b["error"]["code"], code, "{what}: {b}");
    }
    let (s, b) = raw(
        &cluster,
        post.clone(),
        "/holds/nope/confirm",
        Some(&ann),
        json_ct,
        br#"{"paymentReference": ""}"#.to_vec(),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    let (s, b) = cluster.get(0, "/../nope", "ann").await;
    assert!(s.is_client_error(), "{s} {b}");
    let resp = cluster
        .http
        .get(format!(
            "{}/v1/shows/other-show/seats",
            cluster.replicas[0].url
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // Random bodies (fixed seed): never a 5xx, always the error shape, and the
    // inventory invariant holds afterwards.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..300 {
        let body = random_body(&mut rng, 3);
        let bytes = if i % 5 == 0 {
            let mut b = body.to_string().into_bytes();
            let cut = rng.random_range(0..=b.len());
            b.truncate(cut);
            b
        } else {
            body.to_string().into_bytes()
        };
        let (s, b) = raw(&cluster, post.clone(), "/holds", Some(&ann), json_ct, bytes).await;
        assert!(!s.is_server_error(), "5xx for {body}: {b}");
        if s.is_client_error() && s != StatusCode::TOO_MANY_REQUESTS {
            assert!(
                b["error"]["code"].is_string(),
                "error shape for {body}: {s} {b}"
            );
        }
        if s == StatusCode::TOO_MANY_REQUESTS {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    cluster
        .check_counts(0)
        .await
        .expect("counts after random input");
}

/// A random JSON value shaped a bit like a hold request.
fn random_body(rng: &mut rand::rngs::StdRng, depth: u32) -> Value {
    let leaf = |rng: &mut rand::rngs::StdRng| -> Value {
        match rng.random_range(0..7) {
            0 => Value::Null,
            1 => json!(rng.random::<bool>()),
            2 => json!(rng.random_range(-5i64..20)),
            3 => json!(rng.random::<f64>() * 1e6),
            4 => json!(format!(
                "main:{}:{}",
                ["A", "B", "Q", ""][rng.random_range(0..4)],
                rng.random_range(0..14)
            )),
            5 => json!("pit"),
            _ => json!("\u{0}\u{fffd}x".repeat(rng.random_range(0..4))),
        }
    };
    if depth == 0 {
        return leaf(rng);
    }
    match rng.random_range(0..4) {
        0 => {
            let keys = [
                "seats", "best", "general", "quantity", "area", "section", "category", "x",
            ];
            let mut m = serde_json::Map::new();
            for _ in 0..rng.random_range(0..4) {
                m.insert(
                    keys[rng.random_range(0..keys.len())].to_string(),
                    random_body(rng, depth - 1),
                );
            }
            Value::Object(m)
        }
        1 => Value::Array(
            (0..rng.random_range(0..5))
                .map(|_| random_body(rng, depth - 1))
                .collect(),
        ),
        _ => leaf(rng),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_answers_and_holds_extend() {
    let cluster = Cluster::start(
        &show_yaml("documented", 2, 10, None, 4, None),
        1,
        3,
        Some(60),
    )
    .await;
    let r = cluster
        .http
        .get(format!("{}/v1/openapi.json", cluster.replicas[0].url))
        .send()
        .await
        .expect("openapi");
    assert_eq!(r.status(), StatusCode::OK);
    let doc = r.json::<Value>().await.expect("openapi json");
    assert_eq!(doc["openapi"], "3.1.0");
    // This shard serves one show: the document says which.
    let show_param = &doc["paths"]["/v1/shows/{show}/holds"]["post"]["parameters"][0];
    assert_eq!(show_param["name"], "show");
    assert_eq!(show_param["schema"]["enum"], json!([cluster.show]));

    // A hold to extend and watch, and a booking to look at.
    let (s, hold) = cluster
        .post(0, "/holds", "ann", json!({"seats": ["main:B:1"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    let hold_id = hold["id"].as_str().expect("id").to_string();
    let (s, extended) = cluster
        .post(0, &format!("/holds/{hold_id}/extend"), "ann", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{extended}");
    assert!(
        extended["expiresAtMs"].as_i64() >= hold["expiresAtMs"].as_i64(),
        "{extended}"
    );

    // One hold's status stream: the hold now, then `sold` when confirmed.
    let events = cluster
        .http
        .get(format!("{}/holds/{hold_id}/events", cluster.base(0)))
        .bearer_auth(token("ann", &[]))
        .send()
        .await
        .expect("hold events");
    assert_eq!(events.status(), StatusCode::OK);
    let (s, booking) = cluster
        .post(
            0,
            &format!("/holds/{hold_id}/confirm"),
            "ann",
            json!({"paymentReference": "p"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{booking}");
    let mut stream = futures::StreamExt::boxed(events.bytes_stream());
    let mut text = String::new();
    let sold = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
            if text.contains("\"kind\":\"sold\"") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(sold, "no sold event for the hold: {text}");

    let (_, other) = cluster
        .post(0, "/holds", "ann", json!({"seats": ["main:B:2"]}))
        .await;
    let other_id = other["id"].as_str().expect("id");
    let reference = booking["reference"].as_str().expect("reference");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let url = format!(
                "{}{}",
                cluster.replicas[0].url,
                path.replace("{show}", &cluster.show)
                    .replace("{hold}", other_id)
                    .replace("{reference}", reference)
            );
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let resp = cluster
                .http
                .request(m, &url)
                .bearer_auth(token("usher", &["staff"]))
                .json(&json!({"paymentReference": "p", "best": {"quantity": 1}}))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .expect("request");
            let status = resp.status();
            let ct = resp.headers().get("content-type").cloned();
            if ct
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"))
            {
                assert_eq!(status, StatusCode::OK, "{method} {path}");
                continue;
            }
            let body = resp.text().await.unwrap_or_default();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {body}"
            );
            assert!(
                !body.contains("route not found"),
                "{method} {path} is not routed: {body}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_only_while_sales_are_open() {
    let with_sales = |name: &str, sales: &str| {
        show_yaml(name, 1, 5, None, 4, None).replace(
            "  startsAt: \"2027-01-01T20:00:00Z\"\n",
            &format!("  startsAt: \"2027-01-01T20:00:00Z\"\n  sales:\n{sales}"),
        )
    };
    let ended = Cluster::start(
        &with_sales("ended", "    closesAt: \"2020-01-01T00:00:00Z\"\n"),
        1,
        3,
        None,
    )
    .await;
    let (s, b) = ended
        .post(0, "/holds", "ann", json!({"best": {"quantity": 1}}))
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "sales_closed");
    drop(ended);

    let future = Cluster::start(
        &with_sales("future", "    opensAt: \"2099-01-01T00:00:00Z\"\n"),
        1,
        3,
        None,
    )
    .await;
    let (s, b) = future
        .post(0, "/holds", "ann", json!({"best": {"quantity": 1}}))
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "sales_closed");
    drop(future);

    // Open, until the show is closed in PostgreSQL (what the operator's finalizer does).
    let open = Cluster::start(&show_yaml("withdrawn", 1, 5, None, 4, None), 1, 3, None).await;
    let (s, b) = open
        .post(0, "/holds", "ann", json!({"best": {"quantity": 1}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&open.db_url)
        .await
        .expect("db");
    sqlx::query("UPDATE shows SET closed_at = now() WHERE show = 'tests/withdrawn'")
        .execute(&mut db)
        .await
        .expect("close");
    let closed = boxoffice_e2e::wait_for(
        "the shard to notice the close",
        Duration::from_secs(15),
        || {
            let open = &open;
            async move {
                let (s, b) = open
                    .post(0, "/holds", "bob", json!({"best": {"quantity": 1}}))
                    .await;
                Ok(
                    (s == StatusCode::CONFLICT && b["error"]["code"] == "sales_closed")
                        .then_some(()),
                )
            }
        },
    )
    .await;
    assert!(closed.is_ok(), "{closed:?}");
    // Existing bookings and holds are untouched; confirms still work for live holds.
    open.check_counts(0).await.expect("counts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_tokens_are_verified_with_a_public_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("private.pem");
    let public = dir.path().join("public.pem");
    let genrsa = std::process::Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&private)
        .arg("2048")
        .output()
        .expect("openssl genrsa");
    assert!(
        genrsa.status.success(),
        "{}",
        String::from_utf8_lossy(&genrsa.stderr)
    );
    let pubout = std::process::Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .output()
        .expect("openssl rsa");
    assert!(
        pubout.status.success(),
        "{}",
        String::from_utf8_lossy(&pubout.stderr)
    );

    let mut cluster = Cluster::new(&show_yaml("rs256", 1, 5, None, 4, None), 3, None).await;
    cluster.options.extra_env = vec![(
        "BOXOFFICE_JWT_PUBLIC_KEY_FILE".into(),
        public.display().to_string(),
    )];
    cluster.add_replica("shard-0").await;
    cluster.leader().await;

    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    let key = EncodingKey::from_rsa_pem(&std::fs::read(&private).expect("pem")).expect("rsa key");
    let rs = encode(
        &Header::new(jsonwebtoken::Algorithm::RS256),
        &json!({"sub": "ann", "exp": exp}),
        &key,
    )
    .expect("jwt");
    let body = json!({"best": {"quantity": 1}}).to_string().into_bytes();
    let (s, b) = raw(
        &cluster,
        reqwest::Method::POST,
        "/holds",
        Some(&rs),
        Some("application/json"),
        body.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["user"], "ann");
    // An HS256 token is refused by a shard that verifies RS256.
    let (s, b) = raw(
        &cluster,
        reqwest::Method::POST,
        "/holds",
        Some(&token("ann", &[])),
        Some("application/json"),
        body,
    )
    .await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
}
