//! The shard's edge against an attacker and a careless client, on real etcd and
//! PostgreSQL: bounded metrics, a public stream without owners' data, read timeouts,
//! connection and stream caps, peer-authenticated forwarding, and one error shape from
//! every layer.

mod common;

use std::time::{Duration, Instant};

use boxoffice_e2e::token;
use common::{Cluster, show_yaml};
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

async fn metrics_text(cluster: &Cluster, i: usize) -> String {
    cluster
        .http
        .get(format!("{}/metrics", cluster.replicas[i].metrics_url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

fn series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

/// Reads from a raw connection until it closes or `limit` passes; returns what came
/// and whether the server closed it.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_stay_bounded_and_live_on_their_own_port() {
    let cluster = Cluster::start(&show_yaml("metrics", 2, 10, None, 4, None), 1, 3, None).await;
    let api = host_port(&cluster.replicas[0].url);
    // Warm up the routes an ordinary client uses.
    let _ = cluster.get(0, "/seats", "ann").await;
    let before = series(&metrics_text(&cluster, 0).await);

    // Made-up methods and paths, as an attacker would send them.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..300 {
        let method: String = (0..rng.random_range(3..60))
            .map(|_| (b'A' + rng.random_range(0..26)) as char)
            .collect();
        let path = format!("/v1/shows/metrics/x{i}/{}", rng.random::<u64>());
        let mut s = TcpStream::connect(&api).await.expect("connect");
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 4"), "{method}: {answer}");
    }
    let text = metrics_text(&cluster, 0).await;
    let after = series(&text);
    // Only the closed set: method "other", route "unmatched" and a few statuses.
    assert!(
        after <= before + 40,
        "series grew from {before} to {after}:\n{text}"
    );
    assert!(!text.contains("x299"), "a raw path became a label");
    assert!(text.contains("method=\"other\""), "{text}");

    // /metrics is not on the public port.
    let r = cluster
        .http
        .get(format!("{}/metrics", cluster.replicas[0].url))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_stream_carries_no_hold_ids_or_references() {
    let cluster = Cluster::start(&show_yaml("stream", 2, 10, None, 4, None), 1, 3, None).await;
    let resp = cluster
        .http
        .get(format!("{}/events", cluster.base(0)))
        .send()
        .await
        .expect("events");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.bytes_stream();

    let (s, hold) = cluster
        .post(
            0,
            "/holds",
            "ann",
            json!({"seats": ["main:A:1", "main:A:2"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    let id = hold["id"].as_str().expect("id").to_string();
    let (s, booking) = cluster
        .post(
            0,
            &format!("/holds/{id}/confirm"),
            "ann",
            json!({"paymentReference": "p1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{booking}");
    let reference = booking["reference"]
        .as_str()
        .expect("reference")
        .to_string();

    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("\"kind\":\"sold\"") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(2), body.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    assert!(seen.contains("\"kind\":\"held\""), "no held event: {seen}");
    assert!(seen.contains("main:A:1"), "seats are public: {seen}");
    assert!(seen.contains("\"kind\":\"sold\""), "no sold event: {seen}");
    assert!(!seen.contains(&id), "the hold id leaked: {seen}");
    assert!(!seen.contains(&reference), "the reference leaked: {seen}");
    assert!(!seen.contains("ann"), "the user leaked: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_dropped_and_connections_are_capped() {
    let mut cluster = Cluster::new(&show_yaml("slow", 2, 10, None, 4, None), 3, None).await;
    cluster.options.extra_env = vec![
        ("BOXOFFICE_REQUEST_READ_TIMEOUT".into(), "2".into()),
        ("BOXOFFICE_MAX_CONNECTIONS".into(), "16".into()),
    ];
    cluster.add_replica("shard-0").await;
    cluster.leader().await;
    let api = host_port(&cluster.replicas[0].url);

    // Half-sent headers: dropped within the timeout (plus slack), not kept for minutes.
    let start = Instant::now();
    let mut slow = TcpStream::connect(&api).await.expect("connect");
    slow.write_all(b"GET /v1/shows/slow HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(8)).await;
    assert!(closed, "a half-sent request was kept open");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );

    // An idle keep-alive connection is closed too.
    let mut idle = TcpStream::connect(&api).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(8)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle keep-alive connection was kept open");

    // A half-sent body: 408 in the error shape (the body deadline is 10 s).
    let mut body = TcpStream::connect(&api).await.expect("connect");
    let t = token("ann", &[]);
    body.write_all(
        format!(
            "POST /v1/shows/slow/holds HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"seats\""
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let (answer, _) = read_until_closed(&mut body, Duration::from_secs(15)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");

    // Connection cap: 16 open sockets, the 17th is told 503 and closed; /readyz works
    // again as soon as sockets go.
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(TcpStream::connect(&api).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(&api).await.expect("connect");
    let (answer, closed) = read_until_closed(&mut extra, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"overloaded\""), "{answer}");
    assert!(closed);
    drop(held);
    let ready = boxoffice_e2e::wait_for("readyz after the flood", Duration::from_secs(10), || {
        let http = cluster.http.clone();
        let url = format!("{}/readyz", cluster.replicas[0].url);
        async move {
            Ok(http
                .get(url)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ()))
        }
    })
    .await;
    assert!(ready.is_ok(), "{ready:?}");
    let m = metrics_text(&cluster, 0).await;
    assert!(
        m.lines().any(
            |l| l.starts_with("boxoffice_http_connections_refused_total ") && !l.ends_with(" 0")
        ),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_per_client_and_in_total() {
    let mut cluster = Cluster::new(&show_yaml("caps", 2, 10, None, 4, None), 3, None).await;
    cluster.options.extra_env = vec![
        ("BOXOFFICE_MAX_EVENT_STREAMS".into(), "3".into()),
        ("BOXOFFICE_MAX_EVENT_STREAMS_PER_CLIENT".into(), "2".into()),
    ];
    cluster.add_replica("shard-0").await;
    cluster.leader().await;
    let open = |user: Option<&'static str>| {
        let http = cluster.http.clone();
        let url = format!("{}/events", cluster.base(0));
        async move {
            let mut req = http.get(url);
            if let Some(u) = user {
                req = req.bearer_auth(token(u, &[]));
            }
            req.send().await.expect("events")
        }
    };
    let a = open(None).await;
    let b = open(None).await;
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    let c = open(None).await;
    assert_eq!(c.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(c.headers().contains_key("retry-after"));
    let body: Value = c.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many_streams");

    // A user's own hold stream counts per user, and against the total.
    let (s, hold) = cluster
        .post(0, "/holds", "ann", json!({"seats": ["main:A:1"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    let id = hold["id"].as_str().expect("id");
    let hold_stream = |user: &'static str| {
        cluster
            .http
            .get(format!("{}/holds/{id}/events", cluster.base(0)))
            .bearer_auth(token(user, &[]))
            .send()
    };
    let d = hold_stream("ann").await.expect("stream");
    assert_eq!(d.status(), StatusCode::OK);
    let e = hold_stream("ann").await.expect("stream");
    assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = e.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many_streams");

    // Closing streams frees their places.
    drop((a, b, d));
    let again = boxoffice_e2e::wait_for("a freed stream place", Duration::from_secs(10), || {
        let open = open(None);
        async move {
            let r = open.await;
            Ok((r.status() == StatusCode::OK).then_some(()))
        }
    })
    .await;
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_is_between_authenticated_peers_only() {
    let mut cluster = Cluster::start(&show_yaml("peers", 2, 10, None, 4, None), 2, 3, None).await;
    let leader = cluster.leader().await;
    let standby = 1 - leader;

    // A client's copy of the forwarding header neither stops the standby forwarding
    // nor reaches the leader as a peer's.
    let r = cluster
        .http
        .post(format!("{}/holds", cluster.base(standby)))
        .bearer_auth(token("ann", &[]))
        .header("x-boxoffice-forwarded", "1;shard-9;203.0.113.7;AAAA")
        .json(&json!({"seats": ["main:A:1"]}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.headers()
            .get("x-boxoffice-leader")
            .and_then(|v| v.to_str().ok()),
        Some(cluster.replicas[leader].name.as_str())
    );
    // The leader names itself on its own answers too.
    let r = cluster
        .http
        .get(format!("{}/seats", cluster.base(leader)))
        .send()
        .await
        .expect("request");
    assert!(r.headers().contains_key("x-boxoffice-leader"));

    // A replica with another secret cannot verify the leader's record: it refuses to
    // forward anyone's token to it (negative control of the signature check).
    let secret = cluster.dir.path().join("other-secret");
    std::fs::write(&secret, "another-shard-secret-0123456789-abcdef").expect("write");
    cluster.options.extra_env = vec![(
        "BOXOFFICE_SHARD_SECRET_FILE".into(),
        secret.display().to_string(),
    )];
    cluster.add_replica("shard-rogue").await;
    let rogue = cluster.replicas.len() - 1;
    let answer = boxoffice_e2e::wait_for(
        "the odd replica to see the leader",
        Duration::from_secs(15),
        || {
            let http = cluster.http.clone();
            let url = format!("{}/holds", cluster.base(rogue));
            async move {
                let r = http
                    .post(url)
                    .bearer_auth(token("bob", &[]))
                    .json(&json!({"seats": ["main:B:1"]}))
                    .send()
                    .await?;
                let s = r.status();
                let b: Value = r.json().await.unwrap_or(Value::Null);
                Ok((b["error"]["code"] == "leader_unreachable").then_some((s, b)))
            }
        },
    )
    .await
    .expect("refused");
    assert_eq!(answer.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !answer.1.to_string().contains("http://"),
        "an internal address leaked: {}",
        answer.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_errors_from_every_layer() {
    let cluster = Cluster::start(&show_yaml("contract", 2, 10, None, 4, None), 1, 3, Some(2)).await;
    let base = cluster.base(0);
    let http = &cluster.http;
    let check = |r: reqwest::Response, status: StatusCode, code: &'static str| async move {
        assert_eq!(r.status(), status);
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(ct.starts_with("application/json"), "{ct}");
        let b: Value = r.json().await.expect("json error");
        assert_eq!(b["error"]["code"], code, "{b}");
    };
    // Routing: unknown path 404, known path with another method 405.
    check(
        http.get(format!("{base}/nowhere")).send().await.expect("r"),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    check(
        http.put(format!("{base}/holds")).send().await.expect("r"),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    // Path and query extraction.
    check(
        http.get(format!("{base}/holds/%FF%FE"))
            .bearer_auth(token("ann", &[]))
            .send()
            .await
            .expect("r"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    check(
        http.get(format!("{base}/bookings?limit=abc"))
            .bearer_auth(token("ann", &[]))
            .send()
            .await
            .expect("r"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    // 401 says nothing of why.
    let r = http
        .post(format!("{base}/holds"))
        .bearer_auth("not.a.token")
        .json(&json!({"seats": ["main:A:1"]}))
        .send()
        .await
        .expect("r");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["error"]["message"], "a valid bearer token is required");

    // The same Idempotency-Key with another body: 422, and the first hold stands.
    let hold = |seat: &str| {
        http.post(format!("{base}/holds"))
            .bearer_auth(token("ann", &[]))
            .header("idempotency-key", "order-1")
            .json(&json!({"seats": [seat]}))
            .send()
    };
    let first = hold("main:A:1").await.expect("r");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.expect("json");
    let again = hold("main:A:1").await.expect("r");
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["id"], first["id"]);
    check(
        hold("main:A:2").await.expect("r"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;

    // Confirming after the hold expired: 410 hold_expired (hold TTL 2 s here).
    let id = first["id"].as_str().expect("id").to_string();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    check(
        http.post(format!("{base}/holds/{id}/confirm"))
            .bearer_auth(token("ann", &[]))
            .json(&json!({"paymentReference": "late"}))
            .send()
            .await
            .expect("r"),
        StatusCode::GONE,
        "hold_expired",
    )
    .await;
    // Another user asking about it still learns nothing.
    check(
        http.post(format!("{base}/holds/{id}/confirm"))
            .bearer_auth(token("bob", &[]))
            .json(&json!({"paymentReference": "late"}))
            .send()
            .await
            .expect("r"),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_seat_cap_per_user_and_paged_bookings() {
    // maxSeatsPerHold 2, no maxSeatsPerUser: a user may hold and own at most 4.
    let cluster = Cluster::start(&show_yaml("cap", 4, 10, None, 2, None), 1, 3, None).await;
    let mut refs = Vec::new();
    for row in ["A", "B"] {
        let (s, hold) = cluster
            .post(
                0,
                "/holds",
                "ann",
                json!({"seats": [format!("main:{row}:1"), format!("main:{row}:2")]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{hold}");
        let id = hold["id"].as_str().expect("id");
        let (s, b) = cluster
            .post(
                0,
                &format!("/holds/{id}/confirm"),
                "ann",
                json!({"paymentReference": "p"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        refs.push(b["reference"].as_str().expect("ref").to_string());
    }
    let (s, b) = cluster
        .post(0, "/holds", "ann", json!({"seats": ["main:C:1"]}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "limit_exceeded");

    // Two bookings, pages of one: newest first, then the older, then no cursor.
    let (s, page1) = cluster.get(0, "/bookings?limit=1", "ann").await;
    assert_eq!(s, StatusCode::OK, "{page1}");
    assert_eq!(page1["bookings"].as_array().map(Vec::len), Some(1));
    let next = page1["next"].as_str().expect("a next cursor");
    let (s, page2) = cluster
        .get(0, &format!("/bookings?limit=1&after={next}"), "ann")
        .await;
    assert_eq!(s, StatusCode::OK, "{page2}");
    assert_eq!(page2["bookings"].as_array().map(Vec::len), Some(1));
    assert!(page2.get("next").is_none(), "{page2}");
    let mut got = vec![
        page1["bookings"][0]["reference"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        page2["bookings"][0]["reference"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    ];
    got.sort();
    refs.sort();
    assert_eq!(got, refs);
    let (s, b) = cluster.get(0, "/bookings?limit=1000", "ann").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // Cursors no booking has (found by schemathesis): a NUL byte, which PostgreSQL
    // refuses in text, and 64 characters of more than 64 bytes, which the document
    // allows. Both are an empty page, not a 5xx or a 400.
    let long = "\u{e9}".repeat(64);
    for cursor in ["m%00x", long.as_str()] {
        let (s, b) = cluster
            .get(0, &format!("/bookings?after={cursor}"), "ann")
            .await;
        assert_eq!(s, StatusCode::OK, "{cursor}: {b}");
        assert_eq!(b["bookings"], json!([]), "{cursor}");
    }
    let (s, b) = cluster
        .get(0, &format!("/bookings?after={}", "x".repeat(65)), "ann")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}
