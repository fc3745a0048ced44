//! Leader changes: kill -9 under load, a paused leader that wakes up after it was
//! replaced (fencing), and graceful handover on SIGTERM.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, show_yaml};
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection;

/// Bookings acknowledged with 201: reference → seats.
type Acked = Arc<Mutex<HashMap<String, Vec<String>>>>;

async fn assert_bookings_durable_and_unique(cluster: &Cluster, acked: &Acked) {
    let mut db = sqlx::PgConnection::connect(&cluster.db_url)
        .await
        .expect("db");
    let acked = acked.lock().expect("lock").clone();
    assert!(!acked.is_empty());
    for (reference, seats) in &acked {
        let stored: Vec<String> = sqlx::query_scalar(
            "SELECT s.seat FROM booking_seats s JOIN bookings b ON b.id = s.booking_id \
             WHERE b.reference = $1 AND b.status = 'confirmed' ORDER BY s.seat",
        )
        .bind(reference)
        .fetch_all(&mut db)
        .await
        .expect("query");
        let mut expected = seats.clone();
        expected.sort();
        assert_eq!(
            stored, expected,
            "acknowledged booking {reference} lost or changed"
        );
    }
    let doubles: Vec<(String, i64)> = sqlx::query_as(
        "SELECT seat, count(*) FROM booking_seats WHERE status = 'confirmed' \
         GROUP BY seat HAVING count(*) > 1",
    )
    .fetch_all(&mut db)
    .await
    .expect("query");
    assert!(doubles.is_empty(), "seats confirmed twice: {doubles:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_under_load_loses_no_booking() {
    let mut cluster = Cluster::start(
        &show_yaml("failover", 20, 200, None, 4, Some(10_000)),
        2,
        2,
        None,
    )
    .await;
    let leader = cluster.leader().await;
    let standby = 1 - leader;

    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let successes: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let base = cluster.base(standby);
    let http = cluster.http.clone();
    let mut workers = Vec::new();
    for w in 0..12 {
        let (acked, stop, successes, base, http) = (
            acked.clone(),
            stop.clone(),
            successes.clone(),
            base.clone(),
            http.clone(),
        );
        workers.push(tokio::spawn(async move {
            let user = format!("buyer-{w}");
            let auth = boxoffice_e2e::token(&user, &[]);
            while !stop.load(Ordering::Relaxed) {
                // All traffic goes through the standby, which forwards to the leader
                // and becomes the leader after the kill.
                let resp = http
                    .post(format!("{base}/holds"))
                    .bearer_auth(&auth)
                    .json(&json!({"best": {"quantity": 2}}))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                let Ok(resp) = resp else { continue };
                if resp.status() != StatusCode::CREATED {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                let hold: serde_json::Value = resp.json().await.unwrap_or_default();
                let id = hold["id"].as_str().unwrap_or_default().to_string();
                // Retry the confirm until it is answered: confirming twice is safe.
                let booking = boxoffice_e2e::shard::confirm_until_answered(
                    &http,
                    &base,
                    &auth,
                    &id,
                    50,
                    Duration::from_millis(100),
                )
                .await;
                if let Some(b) = booking {
                    acked.lock().expect("lock").insert(
                        b["reference"].as_str().unwrap_or_default().to_string(),
                        boxoffice_e2e::shard::strings(&b["seats"]),
                    );
                    successes.lock().expect("lock").push(Instant::now());
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = acked.lock().expect("lock").len();
    assert!(
        before > 0,
        "no bookings before the kill\n{}",
        cluster.logs()
    );
    let killed_at = Instant::now();
    cluster.replicas[leader].process_mut().kill();

    cluster.wait_leader(standby).await;
    let took_over = killed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let after_kill = successes
        .lock()
        .expect("lock")
        .iter()
        .filter(|t| **t > killed_at)
        .min()
        .map(|t| t.duration_since(killed_at));
    println!(
        "kill -9: standby led after {took_over:?}; first booking after the kill at {after_kill:?}; {} bookings acknowledged",
        acked.lock().expect("lock").len()
    );
    assert!(
        after_kill.is_some(),
        "no booking after the failover\n{}",
        cluster.logs()
    );
    assert_bookings_durable_and_unique(&cluster, &acked).await;
    cluster.check_counts(standby).await.expect("counts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_cannot_write_after_it_was_replaced() {
    // The first replica delays every write by 3 s (fault injection) so it can be
    // paused while it holds in-flight work; the second is normal.
    let yaml = show_yaml("fencing", 2, 5, None, 4, None);
    let mut cluster = {
        let mut c = Cluster::new(&yaml, 2, None).await;
        c.options.extra_env = vec![("BOXOFFICE_FAULT_DELAY_WRITES_MS".into(), "3000".into())];
        c.add_replica("old-leader").await;
        c.options.extra_env.clear();
        c
    };
    assert_eq!(cluster.leader().await, 0);
    cluster.add_replica("new-leader").await;

    // A live hold on the old leader.
    let (status, h1) = cluster
        .post(
            0,
            "/holds",
            "u1",
            json!({"seats": ["main:A:1", "main:A:2"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{h1}");
    let h1_id = h1["id"].as_str().expect("id").to_string();

    // In-flight work on the old leader: a hold (paused before its etcd write) and a
    // confirm (paused before its PostgreSQL write).
    let hold_req = {
        let (http, url) = (cluster.http.clone(), format!("{}/holds", cluster.base(0)));
        tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(boxoffice_e2e::token("u3", &[]))
                .json(&json!({"seats": ["main:B:1"]}))
                .send()
                .await
                .expect("request");
            (r.status(), r.text().await.unwrap_or_default())
        })
    };
    let confirm_req = {
        let (http, url) = (
            cluster.http.clone(),
            format!("{}/holds/{h1_id}/confirm", cluster.base(0)),
        );
        tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(boxoffice_e2e::token("u1", &[]))
                .json(&json!({"paymentReference": "late"}))
                .send()
                .await
                .expect("request");
            (r.status(), r.text().await.unwrap_or_default())
        })
    };
    // Pause only once both requests are inside the old leader's write window: its log
    // shows three delayed writes (h1's hold, then these two).
    let log = cluster.replicas[0].process().log_path().to_path_buf();
    boxoffice_e2e::wait_for(
        "both writes to be in flight",
        Duration::from_secs(20),
        || {
            let log = log.clone();
            async move {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                Ok((text.matches("fault injection: delaying a write").count() >= 3).then_some(()))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
    cluster.replicas[0]
        .process()
        .signal(Signal::SIGSTOP)
        .expect("SIGSTOP");

    // The new leader takes over and sells the seat the old one was about to lock.
    cluster.wait_leader(1).await;
    let (status, h2) = cluster
        .post(1, "/holds", "u2", json!({"seats": ["main:B:1"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{h2}");
    let h2_id = h2["id"].as_str().expect("id");
    let (status, b2) = cluster
        .post(
            1,
            &format!("/holds/{h2_id}/confirm"),
            "u2",
            json!({"paymentReference": "p2"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{b2}");

    cluster.replicas[0]
        .process()
        .signal(Signal::SIGCONT)
        .expect("SIGCONT");
    let (hold_status, hold_body) = hold_req.await.expect("hold task");
    let (confirm_status, confirm_body) = confirm_req.await.expect("confirm task");
    assert_eq!(
        hold_status,
        StatusCode::SERVICE_UNAVAILABLE,
        "old leader's hold: {hold_body}"
    );
    assert_eq!(
        confirm_status,
        StatusCode::SERVICE_UNAVAILABLE,
        "old leader's confirm: {confirm_body}"
    );

    // Both writes were refused by fencing (etcd for the hold, PostgreSQL for the
    // confirm), each counted by the old leader.
    let fenced = cluster.replicas[0]
        .metric(&cluster.http, "boxoffice_fenced_writes_total")
        .await
        .expect("metric");
    assert!(
        fenced >= 2.0,
        "fenced writes counted: {fenced}\n{}",
        cluster.logs()
    );
    let log = cluster.replicas[0].process().log_tail(20_000);
    assert!(log.contains("fenced by etcd on hold"), "{log}");
    assert!(log.contains("fenced by PostgreSQL"), "{log}");

    let mut db = sqlx::PgConnection::connect(&cluster.db_url)
        .await
        .expect("db");
    let h1_booked: i64 = sqlx::query_scalar("SELECT count(*) FROM bookings WHERE hold_id = $1")
        .bind(&h1_id)
        .fetch_one(&mut db)
        .await
        .expect("query");
    assert_eq!(h1_booked, 0, "the deposed leader wrote a booking");
    let b1: Vec<String> = sqlx::query_scalar(
        "SELECT b.user_id FROM booking_seats s JOIN bookings b ON b.id = s.booking_id \
         WHERE s.seat = 'main:B:1' AND s.status = 'confirmed'",
    )
    .fetch_all(&mut db)
    .await
    .expect("query");
    assert_eq!(b1, ["u2"]);
    assert_eq!(cluster.leader().await, 1, "the new leader still leads");
    cluster.check_counts(1).await.expect("counts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_leadership_over_without_waiting_for_the_lease() {
    // A long lease: if the standby took over only when it expired, that would take 15 s.
    let lease_ttl = 15;
    let mut cluster = Cluster::start(
        &show_yaml("handover", 2, 5, None, 4, None),
        2,
        lease_ttl,
        None,
    )
    .await;
    let leader = cluster.leader().await;
    let standby = 1 - leader;
    let start = Instant::now();
    cluster.replicas[leader]
        .process()
        .signal(Signal::SIGTERM)
        .expect("SIGTERM");
    cluster.wait_leader(standby).await;
    let handover = start.elapsed();
    println!("graceful handover took {handover:?}");
    assert!(
        handover < Duration::from_secs(lease_ttl),
        "standby waited for the lease to expire ({handover:?})"
    );
    assert!(
        cluster.replicas[leader]
            .process_mut()
            .wait_exit(Duration::from_secs(10)),
        "the old leader did not exit after SIGTERM"
    );
    let (status, body) = cluster
        .post(standby, "/holds", "u", json!({"best": {"quantity": 2}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A new leader must load a book far bigger than one gRPC message (4 MiB): tens of
/// thousands of live holds. Before reads were paged, such a show could not fail over at
/// all (every candidate's load failed and it stepped down again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_loads_a_book_bigger_than_one_grpc_message() {
    let yaml = show_yaml("big-book", 0, 0, Some(100_000), 4, None);
    let mut cluster = Cluster::new(&yaml, 2, None).await;
    // 20,000 live GA holds with long idempotency keys: about 6 MB of records.
    let mut etcd = etcd_client::Client::connect([cluster.etcd.endpoint()], None)
        .await
        .expect("etcd");
    let prefix = format!("/boxoffice/tests/{}/holds/", cluster.show);
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 600_000;
    let holds = 20_000;
    for batch in 0..holds / 100 {
        let ops: Vec<etcd_client::TxnOp> = (0..100)
            .map(|i| {
                let id = format!("{:032x}", batch * 100 + i);
                let record = json!({
                    "id": id, "user": format!("user-{i}"), "area": "pit", "quantity": 1,
                    "expiresAtMs": expires, "createdAtMs": expires - 600_000,
                    "idempotencyKey": "k".repeat(128),
                });
                etcd_client::TxnOp::put(format!("{prefix}{id}"), record.to_string(), None)
            })
            .collect();
        etcd.txn(etcd_client::Txn::new().and_then(ops))
            .await
            .expect("seed holds");
    }
    cluster.add_replica("shard-0").await;
    let leader = cluster.leader().await;
    let counts = cluster.check_counts(leader).await.expect("counts");
    assert_eq!(
        counts["inventory"]["held"].as_i64(),
        Some(holds as i64),
        "{}",
        cluster.logs()
    );
}

/// A standby follows the book in etcd (hold records, and their removal on confirm,
/// release and cancel); when it takes over it loads from that copy instead of reading
/// etcd, and the copy is exact: the counts are the old leader's, and a hold taken
/// before the handover confirms through the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_its_mirror_of_the_book() {
    let cluster = Cluster::start(
        &show_yaml("mirrored", 4, 10, Some(20), 4, Some(10_000)),
        2,
        15,
        None,
    )
    .await;
    let leader = cluster.leader().await;
    let standby = 1 - leader;
    let mut holds = Vec::new();
    for i in 0..10 {
        let user = format!("u{i}");
        let (status, body) = cluster
            .post(leader, "/holds", &user, json!({"best": {"quantity": 2}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        holds.push((user, body["id"].as_str().expect("id").to_string()));
    }
    for i in 0..3 {
        let (status, body) = cluster
            .post(
                leader,
                "/holds",
                "ga",
                json!({"general": {"area": "pit", "quantity": 2 + i}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // Three confirmed (one booking then cancelled), two released.
    let mut references = Vec::new();
    for (user, id) in &holds[..3] {
        let (status, body) = cluster
            .post(
                leader,
                &format!("/holds/{id}/confirm"),
                user,
                json!({"paymentReference": "p"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        references.push((
            user.clone(),
            body["reference"].as_str().unwrap().to_string(),
        ));
    }
    let (user, reference) = &references[0];
    let (status, body) = cluster
        .post(
            leader,
            &format!("/bookings/{reference}/cancel"),
            user,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (user, id) in &holds[3..5] {
        let status = cluster
            .http
            .delete(format!("{}/holds/{id}", cluster.base(leader)))
            .bearer_auth(boxoffice_e2e::token(user, &[]))
            .send()
            .await
            .expect("release")
            .status();
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let before = cluster.check_counts(leader).await.expect("counts");

    cluster.replicas[leader]
        .process()
        .signal(Signal::SIGTERM)
        .expect("SIGTERM");
    cluster.wait_leader(standby).await;
    let after = cluster.check_counts(standby).await.expect("counts");
    assert_eq!(
        after["inventory"],
        before["inventory"],
        "{}",
        cluster.logs()
    );
    assert_eq!(after["inventory"]["held"], 2 * 5 + 2 + 3 + 4);
    assert_eq!(after["inventory"]["sold"], 2 * 2);
    let log = cluster.replicas[standby].process().log_tail(100_000);
    let loaded = log
        .lines()
        .rfind(|l| l.contains("loaded the book"))
        .expect("the new leader logs its load");
    assert!(
        loaded.contains("mirror"),
        "loaded from etcd, not the mirror: {loaded}"
    );

    let (user, id) = &holds[9];
    let (status, body) = cluster
        .post(
            standby,
            &format!("/holds/{id}/confirm"),
            user,
            json!({"paymentReference": "p"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The released and cancelled seats are free for the new leader to sell again.
    let (status, body) = cluster
        .post(standby, "/holds", "late", json!({"best": {"quantity": 4}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    cluster.check_counts(standby).await.expect("counts");
}
