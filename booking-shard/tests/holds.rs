//! Holds and confirms against real etcd and PostgreSQL: races for the last seats,
//! general-admission capacity, expiry with Server-Sent Events.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use boxoffice_e2e::wait_for;
use common::{Cluster, show_yaml};
use futures::StreamExt;
use rand::seq::IndexedRandom;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

/// Polls the invariant `available + held + sold == total` until `stop`.
fn spawn_count_checker(
    cluster: Arc<Cluster>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u32, Vec<String>)> {
    tokio::spawn(async move {
        let mut checks = 0;
        let mut violations = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match cluster.check_counts(0).await {
                Ok(_) => checks += 1,
                Err(e) => violations.push(e),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (checks, violations)
    })
}

/// Keys of the race show in etcd under `prefix` (`holds/`, `seats/`).
async fn key_count(etcd: &mut etcd_client::Client, prefix: &str) -> i64 {
    let options = etcd_client::GetOptions::new()
        .with_prefix()
        .with_count_only();
    etcd.get(format!("/boxoffice/tests/race/{prefix}"), Some(options))
        .await
        .expect("etcd get")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_clients_race_for_fifty_seats() {
    let cluster =
        Arc::new(Cluster::start(&show_yaml("race", 5, 10, None, 4, None), 1, 3, None).await);
    let seat_ids: Arc<Vec<String>> = Arc::new(
        ["A", "B", "C", "D", "E"]
            .iter()
            .flat_map(|r| (1..=10).map(move |n| format!("main:{r}:{n}")))
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let checker = spawn_count_checker(cluster.clone(), stop.clone());

    let mut clients = Vec::new();
    for i in 0..300 {
        let cluster = cluster.clone();
        let seat_ids = seat_ids.clone();
        clients.push(tokio::spawn(async move {
            let user = format!("user-{i}");
            // First an explicit pick of 1-3 random seats, then best-available singles
            // until the show is full.
            let pick: Vec<String> = {
                let mut rng = rand::rng();
                let k = (i % 3) + 1;
                seat_ids.choose_multiple(&mut rng, k).cloned().collect()
            };
            let (status, body) = cluster
                .post(0, "/holds", &user, json!({"seats": pick}))
                .await;
            match status {
                StatusCode::CREATED => return Some((user, body)),
                StatusCode::CONFLICT => {
                    assert_eq!(body["error"]["code"], "seats_unavailable", "{body}")
                }
                other => panic!("unexpected {other}: {body}"),
            }
            // A conflict here means no seat was free at that moment: the show is full.
            let (status, body) = cluster
                .post(0, "/holds", &user, json!({"best": {"quantity": 1}}))
                .await;
            match status {
                StatusCode::CREATED => Some((user, body)),
                StatusCode::CONFLICT => None,
                other => panic!("unexpected {other}: {body}"),
            }
        }));
    }
    let mut holds = Vec::new();
    for c in clients {
        if let Some(h) = c.await.expect("client") {
            holds.push(h);
        }
    }

    // Exactly 50 seats held, none in two holds.
    let mut seen = HashSet::new();
    for (_, hold) in &holds {
        for seat in hold["seats"].as_array().expect("seats") {
            assert!(
                seen.insert(seat.as_str().expect("seat").to_string()),
                "{seat} held twice"
            );
        }
    }
    assert_eq!(seen.len(), 50, "every seat held exactly once");
    let counts = cluster.check_counts(0).await.expect("counts");
    assert_eq!(counts["inventory"]["held"], 50);
    assert_eq!(counts["inventory"]["available"], 0);

    // The holds are in etcd, one key each, and nothing per seat.
    let mut etcd = etcd_client::Client::connect([cluster.etcd.endpoint()], None)
        .await
        .expect("etcd");
    assert_eq!(key_count(&mut etcd, "holds/").await, holds.len() as i64);
    assert_eq!(key_count(&mut etcd, "seats/").await, 0);

    // Confirm everything, concurrently.
    let holds_confirmed = holds.len();
    let mut confirms = Vec::new();
    for (user, hold) in holds {
        let cluster = cluster.clone();
        confirms.push(tokio::spawn(async move {
            let id = hold["id"].as_str().expect("id").to_string();
            cluster
                .post(
                    0,
                    &format!("/holds/{id}/confirm"),
                    &user,
                    json!({"paymentReference": format!("pay-{id}")}),
                )
                .await
        }));
    }
    for c in confirms {
        let (status, body) = c.await.expect("confirm task");
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    stop.store(true, Ordering::Relaxed);
    let (checks, violations) = checker.await.expect("checker");
    assert!(
        violations.is_empty(),
        "invariant 7 violated: {violations:?}"
    );
    assert!(checks > 0);

    let mut db = sqlx::PgConnection::connect(&cluster.db_url)
        .await
        .expect("db");
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT seat) FROM booking_seats WHERE status = 'confirmed'",
    )
    .fetch_one(&mut db)
    .await
    .expect("query");
    assert_eq!((rows, distinct), (50, 50));
    let counts = cluster.check_counts(0).await.expect("counts");
    assert_eq!(counts["inventory"]["sold"], 50);
    assert_eq!(counts["inventory"]["held"], 0);
    // Metrics count what happened.
    let metrics = cluster
        .http
        .get(format!("{}/metrics", cluster.replicas[0].metrics_url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let line = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{prefix} missing:\n{metrics}"))
    };
    assert_eq!(line("boxoffice_confirms_total "), holds_confirmed as f64);
    assert_eq!(line("boxoffice_leader "), 1.0);
    assert_eq!(
        line(
            "boxoffice_http_requests_total{method=\"POST\",route=\"/v1/shows/{show}/holds/{hold}/confirm\",status=\"201\"} "
        ),
        holds_confirmed as f64
    );
    assert!(
        line("boxoffice_hold_conflicts_total ") > 0.0,
        "the race had conflicts"
    );
    // Confirmed holds' records are cleared (off the answer's path: soon after).
    wait_for(
        "confirmed holds' records to go",
        Duration::from_secs(10),
        || {
            let mut etcd = etcd.clone();
            async move { Ok((key_count(&mut etcd, "holds/").await == 0).then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn general_admission_never_exceeds_capacity() {
    let cluster =
        Arc::new(Cluster::start(&show_yaml("ga", 0, 0, Some(120), 4, None), 1, 3, None).await);
    let mut tasks = Vec::new();
    for i in 0..500u64 {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let quantity = i % 3 + 1;
            let (status, body) = cluster
                .post(
                    0,
                    "/holds",
                    &format!("fan-{i}"),
                    json!({"general": {"area": "pit", "quantity": quantity}}),
                )
                .await;
            match status {
                StatusCode::CREATED => quantity,
                StatusCode::CONFLICT => {
                    assert_eq!(body["error"]["code"], "sold_out", "{body}");
                    0
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += t.await.expect("task");
    }
    assert!(granted <= 120, "granted {granted} of 120");
    assert!(granted >= 118, "capacity left unsold: granted {granted}");
    let counts = cluster.check_counts(0).await.expect("counts");
    let pit = &counts["generalAdmission"][0]["inventory"];
    assert_eq!(pit["held"], granted);
    assert_eq!(pit["available"].as_u64(), Some(120 - granted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_holds_return_seats_and_tell_subscribers() {
    let ttl = 2;
    let cluster = Cluster::start(&show_yaml("expiry", 1, 10, None, 4, None), 1, 3, Some(ttl)).await;

    let events = cluster
        .http
        .get(format!("{}/events", cluster.base(0)))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(events.status(), StatusCode::OK);
    assert!(
        events.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream"),
        "SSE content type"
    );
    let mut stream = events.bytes_stream();

    let (status, hold) = cluster
        .post(
            0,
            "/holds",
            "ann",
            json!({"seats": ["main:A:3", "main:A:4"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let created = Instant::now();

    // Read SSE until the expiry event for our seats arrives.
    let mut buffer = String::new();
    let expired = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = stream.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.expect("sse chunk")));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let data = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data:"))
                    .unwrap_or("")
                    .trim();
                let Ok(v) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                if v["kind"] == "expired" {
                    return v;
                }
            }
        }
        panic!("event stream ended");
    })
    .await
    .expect("an expiry event");
    let elapsed = created.elapsed();
    println!("hold with TTL {ttl}s expired after {elapsed:?}");
    // The public stream names the seats, never the hold.
    assert!(expired.get("hold").is_none(), "{expired}");
    assert_eq!(expired["seats"], json!(["main:A:3", "main:A:4"]));
    assert!(
        elapsed >= Duration::from_secs(ttl),
        "a hold must not end before its TTL"
    );

    let counts = cluster.check_counts(0).await.expect("counts");
    assert_eq!(counts["inventory"]["available"], 10);
    // The seats can be held again.
    let (status, body) = cluster
        .post(
            0,
            "/holds",
            "bob",
            json!({"seats": ["main:A:3", "main:A:4"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A confirm of the expired hold is refused: 410 hold_expired.
    let id = hold["id"].as_str().expect("id");
    let (status, body) = cluster
        .post(
            0,
            &format!("/holds/{id}/confirm"),
            "ann",
            json!({"paymentReference": "p"}),
        )
        .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "hold_expired", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_clears_seat_locks_of_the_earlier_layout() {
    let mut cluster = Cluster::start(&show_yaml("orphans", 1, 5, None, 4, None), 1, 2, None).await;
    // A seat lock as the earlier layout wrote them (a key per held seat), with no
    // lease and no hold: nothing may refuse a hold because of it, and it goes.
    let mut etcd = etcd_client::Client::connect([cluster.etcd.endpoint()], None)
        .await
        .expect("etcd");
    etcd.put(
        "/boxoffice/tests/orphans/seats/main:A:1",
        "ghost-hold",
        None,
    )
    .await
    .expect("put");
    // A new leader loads the book.
    cluster.add_replica("shard-1").await;
    cluster.replicas[0].process_mut().kill();
    cluster.wait_leader(1).await;
    let (status, body) = cluster
        .post(1, "/holds", "ann", json!({"seats": ["main:A:1"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}\n{}", cluster.logs());
    let lock = etcd
        .get("/boxoffice/tests/orphans/seats/main:A:1", None)
        .await
        .expect("get");
    assert!(lock.kvs().is_empty(), "the new leader deleted the old lock");
    let record = etcd
        .get(
            format!(
                "/boxoffice/tests/orphans/holds/{}",
                body["id"].as_str().expect("id")
            ),
            None,
        )
        .await
        .expect("get");
    assert_eq!(record.kvs().len(), 1, "the hold is one record");
}
