//! Booking events leave the shard: real shard replicas on real etcd and PostgreSQL
//! relay every booking's events to webhook receivers running in this test process.
//! The receivers check each delivery the way a consumer would (Standard Webhooks:
//! HMAC-SHA256 over `id.timestamp.body`, compared in constant time, timestamp within
//! five minutes), computed here with the hmac, sha2 and base64 crates and not with the
//! shard's code. Then: the order and completeness of what arrived across a kill -9 of
//! the leader, an endpoint failing for a while next to a healthy one, dead letters and
//! their replay, the feed's pages, the stream's resume and retention's error.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use boxoffice_e2e::webhook::{
    Delivery, Receiver, TOLERANCE_SECS, confirmed_references, new_key, verify, whsec,
};
use boxoffice_e2e::{KafkaServer, TopicReader, token, wait_for};
use common::sse::SseReader;
use common::{Cluster, show_yaml};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

/// Writes `key` where the shard reads it, as Standard Webhooks prints a secret
/// (`whsec_<base64>`); returns the path.
fn write_secret(cluster: &Cluster, key: &[u8]) -> String {
    let path = cluster.dir.path().join("webhook-secret");
    std::fs::write(&path, whsec(key)).expect("secret file");
    path.display().to_string()
}

fn staff() -> String {
    token("events-staff", &["staff"])
}

/// Holds one seat (best available) and confirms it at `base` (a replica's
/// `/v1/shows/<show>`); the booking's reference once acknowledged, None when refused
/// or never answered.
async fn book_at(http: &reqwest::Client, base: &str, user: &str) -> Option<String> {
    let auth = token(user, &[]);
    let resp = http
        .post(format!("{base}/holds"))
        .bearer_auth(&auth)
        .json(&json!({"best": {"quantity": 1}}))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if resp.status() != StatusCode::CREATED {
        return None;
    }
    let hold: Value = resp.json().await.ok()?;
    let id = hold["id"].as_str()?.to_string();
    let booking = boxoffice_e2e::shard::confirm_until_answered(
        http,
        base,
        &auth,
        &id,
        50,
        Duration::from_millis(100),
    )
    .await?;
    booking["reference"].as_str().map(String::from)
}

async fn book(cluster: &Cluster, replica: usize, user: &str) -> Option<String> {
    book_at(&cluster.http, &cluster.base(replica), user).await
}

async fn db(cluster: &Cluster) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&cluster.db_url)
        .await
        .expect("db")
}

async fn cursor_of(cluster: &Cluster, sink: &str) -> i64 {
    sqlx::query_scalar("SELECT seq FROM event_cursors WHERE sink = $1")
        .bind(sink)
        .fetch_optional(&mut db(cluster).await)
        .await
        .expect("cursor")
        .unwrap_or(0)
}

async fn last_seq(cluster: &Cluster) -> i64 {
    sqlx::query_scalar("SELECT last FROM event_sequences")
        .fetch_one(&mut db(cluster).await)
        .await
        .expect("last")
}

/// A labelled series from a replica's `/metrics` (0 when absent).
async fn metric(cluster: &Cluster, replica: usize, series: &str) -> f64 {
    cluster.replicas[replica]
        .metric(&cluster.http, series)
        .await
        .unwrap_or(0.0)
}

/// A cluster whose replicas relay to `receivers` (one signing secret for all).
async fn cluster_with_webhooks(
    yaml: &str,
    replicas: usize,
    receivers: &[&Receiver],
    env: &[(&str, &str)],
    key: &[u8],
) -> Cluster {
    let mut cluster = Cluster::new(yaml, 2, None).await;
    let path = write_secret(&cluster, key);
    let urls: Vec<&str> = receivers.iter().map(|r| r.url.as_str()).collect();
    let mut extra = vec![
        ("BOXOFFICE_EVENTS_WEBHOOK_URLS".to_string(), urls.join(",")),
        ("BOXOFFICE_EVENTS_WEBHOOK_SECRET_FILE".to_string(), path),
    ];
    extra.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    cluster.options.extra_env.extend(extra);
    for i in 0..replicas {
        cluster.add_replica(&format!("shard-{i}")).await;
    }
    cluster.all_serving().await;
    cluster
}

/// The topic of the Kafka sink in the tests: several partitions, one per show used.
const TOPIC: &str = "tests.bookings";
const PARTITIONS: i32 = 3;
/// Bookings the fault test makes at least.
const BOOKINGS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_booking_reaches_the_receiver_and_kafka_through_kills_a_broker_restart_and_an_outage()
 {
    // The receiver needs the key before the shards start: make it first.
    let key = new_key();
    let receiver = Receiver::start(&key).await;
    let mut kafka = KafkaServer::start().await.expect("kafka");
    kafka
        .create_topic(TOPIC, PARTITIONS)
        .await
        .expect("the topic");
    let topic = TopicReader::start(&kafka.bootstrap(), TOPIC, PARTITIONS).expect("a consumer");
    let bootstrap = kafka.bootstrap();
    let mut cluster = cluster_with_webhooks(
        &show_yaml("relayed", 26, 60, None, 4, Some(10_000)),
        3,
        &[&receiver],
        &[
            ("BOXOFFICE_EVENTS_KAFKA_BROKERS", bootstrap.as_str()),
            ("BOXOFFICE_EVENTS_KAFKA_TOPIC", TOPIC),
            ("BOXOFFICE_EVENTS_KAFKA_TIMEOUT", "5"),
            ("BOXOFFICE_EVENTS_MAX_RETRY_DELAY_MS", "1000"),
        ],
        &key,
    )
    .await;

    // Buyers book through every live replica in turn (standbys forward).
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let live: Arc<Mutex<Vec<String>>> =
        Arc::new(Mutex::new((0..3).map(|i| cluster.base(i)).collect()));
    let mut workers = Vec::new();
    for w in 0..6 {
        let (acked, stop, live) = (acked.clone(), stop.clone(), live.clone());
        let http = cluster.http.clone();
        workers.push(tokio::spawn(async move {
            let user = format!("buyer-{w}");
            let mut turn = w;
            while !stop.load(Ordering::Relaxed) {
                turn += 1;
                let base = {
                    let live = live.lock().expect("lock");
                    live[turn % live.len()].clone()
                };
                match book_at(&http, &base, &user).await {
                    Some(reference) => {
                        acked.lock().expect("lock").insert(reference);
                    }
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }));
    }

    // Twice, mid-stream (events arriving), the leader dies; each time note the
    // cursor it left and what it had delivered, read before another replica can lead
    // (the lease outlives the kill by 2 s). Between the two, the broker dies and comes
    // back, and the receiver is down for a while.
    let mut kills = Vec::new();
    for round in 1..=2 {
        let leader = cluster.leader().await;
        let before = receiver.accepted().len();
        wait_for(
            "events at the receiver",
            Duration::from_secs(30),
            || async { Ok((receiver.accepted().len() >= before + 60).then_some(())) },
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}: events flow before kill {round}"));
        live.lock()
            .expect("lock")
            .retain(|b| *b != cluster.base(leader));
        cluster.replicas[leader].process_mut().kill();
        let delivered = receiver
            .accepted()
            .iter()
            .map(Delivery::seq)
            .max()
            .unwrap_or(0);
        let cursor = cursor_of(&cluster, &receiver.sink()).await;
        for (i, r) in cluster.replicas.iter().enumerate() {
            if i != leader {
                assert_ne!(
                    r.role(&cluster.http).await.as_deref(),
                    Some("leader"),
                    "the cursor must be read before another replica leads"
                );
            }
        }
        println!("events: kill {round}: cursor {cursor}, {delivered} delivered");
        kills.push((cursor, delivered));
        if round == 1 {
            let records = topic.records().len();
            wait_for("records in the topic", Duration::from_secs(60), || async {
                Ok((topic.records().len() > records + 20).then_some(()))
            })
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", cluster.logs(), kafka.log_tail(3000)));
            kafka.kill();
            receiver.fail(true);
            let at_kill = last_seq(&cluster).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            kafka.restart().await.expect("the broker restarts");
            tokio::time::sleep(Duration::from_secs(2)).await;
            receiver.fail(false);
            let restarted = last_seq(&cluster).await;
            assert!(
                restarted > at_kill,
                "bookings (and their events) go on while the broker and the receiver are away: {at_kill} then {restarted}"
            );
            println!("events: broker and receiver away from event {at_kill} to {restarted}");
        }
    }
    let survivor = cluster.leader().await;
    // Bookings go on under the last leader, up to the count.
    let after_kills = acked.lock().expect("lock").len();
    wait_for(
        "bookings under the last leader",
        Duration::from_secs(120),
        || async {
            let n = acked.lock().expect("lock").len();
            Ok((n >= after_kills + 60 && n >= BOOKINGS).then_some(()))
        },
    )
    .await
    .expect("bookings go on after the kills");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let acked = acked.lock().expect("lock").clone();
    println!(
        "events: {} bookings acknowledged; replica {survivor} leads at the end",
        acked.len()
    );

    // Every acknowledged booking's `confirmed` event arrives.
    receiver
        .wait_for_confirmed(&acked, Duration::from_secs(60))
        .await;
    let last = last_seq(&cluster).await;
    wait_for("every event delivered", Duration::from_secs(30), || async {
        Ok((receiver.deduplicated().0.len() as i64 >= last).then_some(()))
    })
    .await
    .expect("all events delivered");

    // Every delivery verifies with the shared secret, each within the tolerance; the
    // only refusals are the outage's 500s.
    let all = receiver.deliveries();
    let refused = all.iter().filter(|d| d.status == 500).count();
    assert!(refused > 0, "the outage refused deliveries");
    for d in &all {
        assert!(
            d.status == 204 || d.status == 500,
            "the receiver refused a delivery: {d:?}"
        );
        verify(&key, d, d.received).unwrap_or_else(|e| panic!("{e}: {d:?}"));
    }
    // Negative controls: another secret, a changed body, a changed id, a timestamp
    // outside the tolerance each fail the same check.
    let mut wrong = key.clone();
    wrong[0] ^= 1;
    for d in &all {
        assert!(
            verify(&wrong, d, d.received).is_err(),
            "a wrong secret verified"
        );
    }
    let sample = all[0].clone();
    let mut tampered = sample.clone();
    tampered.body = Bytes::from(
        String::from_utf8_lossy(&sample.body).replace("\"sequence\":", "\"sequence\":1"),
    );
    assert!(verify(&key, &tampered, tampered.received).is_err());
    let mut renamed = sample.clone();
    renamed.id.push('x');
    assert!(verify(&key, &renamed, renamed.received).is_err());
    assert!(verify(&key, &sample, sample.received + TOLERANCE_SECS + 1).is_err());

    // In sequence order once copies are dropped by id: 1, 2, ... last, no gap.
    let (kept, again) = receiver.deduplicated();
    let seqs: Vec<i64> = kept.iter().map(Delivery::seq).collect();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "the events as a consumer keeps them"
    );
    for d in &kept {
        let e = d.event();
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["id"], d.id, "webhook-id is the event's id");
        assert_eq!(e["source"], "/boxoffice/tests/relayed");
        assert!(
            e["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("bookings/"))
        );
    }
    // Every acknowledged booking has its event, and every event a booking.
    let references = confirmed_references(&kept);
    assert!(acked.is_subset(&references));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM bookings")
        .fetch_one(&mut db(&cluster).await)
        .await
        .expect("bookings");
    assert_eq!(
        references.len() as i64,
        stored,
        "one confirmed event per booking"
    );

    // Each new leader resumed from the cursor: it delivered again only what the dead
    // one had delivered after its last cursor write, each copy the same bytes.
    for (cursor, delivered) in &kills {
        assert!(
            cursor <= delivered,
            "the cursor ran ahead of the receiver: {cursor} > {delivered}"
        );
    }
    let in_flight = |seq: i64| kills.iter().any(|(c, d)| seq > *c && seq <= *d);
    let first: HashMap<&str, &Delivery> = kept.iter().map(|d| (d.id.as_str(), d)).collect();
    for d in &again {
        let seq = d.seq();
        assert!(
            in_flight(seq),
            "event {seq} delivered twice, outside what was in flight at a kill {kills:?}"
        );
        let original = first[d.id.as_str()];
        assert_eq!(
            original.event(),
            d.event(),
            "a redelivery is the same event"
        );
    }
    let bound: i64 = kills.iter().map(|(c, d)| d - c).sum();
    assert!(
        again.len() as i64 <= bound,
        "{} copies, {bound} in flight",
        again.len()
    );
    // Each leader's events carry its epoch: three terms, in sequence order.
    let by_seq: Vec<i64> = kept
        .iter()
        .map(|d| d.event()["epoch"].as_i64().unwrap_or(0))
        .collect();
    assert!(
        by_seq.windows(2).all(|w| w[0] <= w[1]),
        "an event of an older term after a newer one"
    );
    let mut terms = by_seq.clone();
    terms.dedup();
    assert_eq!(terms.len(), 3, "events from each of three terms: {terms:?}");
    println!(
        "events: {} delivered, {} duplicates after the kills",
        kept.len(),
        again.len()
    );

    // Kafka: every event in the topic, the show's on one partition under its key, in
    // sequence order once copies are dropped by id; every acknowledged booking's
    // confirmed event among them.
    wait_for(
        "every event in the topic",
        Duration::from_secs(60),
        || async { Ok((topic.deduplicated().len() as i64 >= last).then_some(())) },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}: {} of {last} events in the topic\n{}",
            topic.deduplicated().len(),
            cluster.logs()
        )
    });
    let records = topic.records();
    let kept = topic.deduplicated();
    assert!(
        records.iter().all(|r| r.key == "tests/relayed"),
        "one key, the show"
    );
    let partitions: HashSet<i32> = records.iter().map(|r| r.partition).collect();
    assert_eq!(
        partitions.len(),
        1,
        "the show's events on one partition: {partitions:?}"
    );
    assert!(
        records
            .iter()
            .all(|r| r.content_type == "application/cloudevents+json")
    );
    let seqs: Vec<i64> = kept
        .iter()
        .map(|r| r.event["sequence"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "the show's events in the topic"
    );
    let in_topic: HashSet<String> = kept
        .iter()
        .filter(|r| r.event["type"] == "dev.boxoffice.booking.confirmed.v1")
        .filter_map(|r| r.event["data"]["reference"].as_str().map(String::from))
        .collect();
    let missing: Vec<_> = acked.difference(&in_topic).collect();
    assert!(
        missing.is_empty(),
        "acknowledged bookings not in the topic: {missing:?}"
    );
    assert_eq!(
        in_topic.len() as i64,
        stored,
        "one confirmed record per booking"
    );
    println!(
        "kafka: {} records, {} after dropping copies",
        records.len(),
        kept.len()
    );
}

/// Waits for `n` accepted events at `receiver`.
async fn wait_accepted(receiver: &Receiver, n: usize, within: Duration, what: &str) {
    wait_for(what, within, || async {
        Ok((receiver.deduplicated().0.len() >= n).then_some(()))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}: {} of {n} at {}",
            receiver.deduplicated().0.len(),
            receiver.url
        )
    });
}

async fn staff_request(
    cluster: &Cluster,
    method: reqwest::Method,
    replica: usize,
    path: &str,
) -> (StatusCode, Value) {
    let resp = cluster
        .http
        .request(method, format!("{}{path}", cluster.base(replica)))
        .bearer_auth(staff())
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn staff_get(cluster: &Cluster, replica: usize, path: &str) -> (StatusCode, Value) {
    staff_request(cluster, reqwest::Method::GET, replica, path).await
}

async fn staff_post(cluster: &Cluster, replica: usize, path: &str) -> (StatusCode, Value) {
    staff_request(cluster, reqwest::Method::POST, replica, path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_gets_its_events_later_and_dead_letters_are_replayed() {
    let key = new_key();
    let flaky = Receiver::start(&key).await;
    let healthy = Receiver::start(&key).await;
    // Retried for 15 s after its commit, pauses of 200 ms doubling up to 2 s.
    let window = Duration::from_secs(15);
    let cluster = cluster_with_webhooks(
        &show_yaml("flaky", 4, 20, None, 4, Some(1_000)),
        1,
        &[&flaky, &healthy],
        &[
            ("BOXOFFICE_EVENTS_RETRY_WINDOW", "15"),
            ("BOXOFFICE_EVENTS_MAX_RETRY_DELAY_MS", "2000"),
        ],
        &key,
    )
    .await;
    let retries =
        |sink: String| format!("boxoffice_event_delivery_retries_total{{sink=\"{sink}\"}}");
    let dead = |sink: String| format!("boxoffice_event_dead_letters_total{{sink=\"{sink}\"}}");

    // The flaky endpoint is down: the healthy one gets every event meanwhile.
    flaky.fail(true);
    let outage = Instant::now();
    for i in 0..20 {
        assert!(book(&cluster, 0, &format!("fan-{i}")).await.is_some());
    }
    wait_accepted(
        &healthy,
        20,
        Duration::from_secs(10),
        "the healthy endpoint's events",
    )
    .await;
    assert!(
        flaky.accepted().is_empty(),
        "the flaky endpoint accepted nothing"
    );
    // Down for 6 s (well inside the retry window), then up again.
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(outage.elapsed())).await;
    flaky.fail(false);
    wait_accepted(
        &flaky,
        20,
        window,
        "the flaky endpoint's events after the outage",
    )
    .await;
    let (kept, _) = flaky.deduplicated();
    assert_eq!(
        kept.iter().map(Delivery::seq).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>(),
        "in order after the outage"
    );
    // Backoff: the first event was tried again and again, the pauses growing.
    let first_id = kept[0].id.clone();
    let tries: Vec<Instant> = flaky
        .deliveries()
        .iter()
        .filter(|d| d.id == first_id)
        .map(|d| d.at)
        .collect();
    let pauses: Vec<Duration> = tries.windows(2).map(|w| w[1] - w[0]).collect();
    println!("events: the first event's pauses between tries: {pauses:?}");
    assert!(tries.len() >= 4, "retried during the outage: {pauses:?}");
    assert!(
        pauses[pauses.len() - 1] >= pauses[0] * 4,
        "the pauses grow (exponential backoff): {pauses:?}"
    );
    assert!(metric(&cluster, 0, &retries(flaky.sink())).await >= 3.0);
    assert_eq!(metric(&cluster, 0, &retries(healthy.sink())).await, 0.0);
    let (s, letters) = staff_get(&cluster, 0, "/events/dead-letters").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        letters,
        json!([]),
        "nothing dead-lettered within the window"
    );

    // Down for longer than the window: those events become dead letters; the healthy
    // endpoint still gets everything.
    flaky.fail(true);
    for i in 0..5 {
        assert!(book(&cluster, 0, &format!("late-{i}")).await.is_some());
    }
    wait_accepted(
        &healthy,
        25,
        Duration::from_secs(10),
        "the healthy endpoint's events",
    )
    .await;
    let letters = wait_for("five dead letters", window * 2, || async {
        let (_, letters) = staff_get(&cluster, 0, "/events/dead-letters?pending=true").await;
        Ok((letters.as_array().map_or(0, Vec::len) == 5).then_some(letters))
    })
    .await
    .expect("dead letters after the window");
    let letters = letters.as_array().expect("list").clone();
    assert_eq!(
        letters
            .iter()
            .map(|l| l["seq"].as_i64().unwrap_or(0))
            .collect::<Vec<_>>(),
        vec![21, 22, 23, 24, 25]
    );
    for l in &letters {
        assert_eq!(l["sink"], flaky.sink().as_str(), "{l}");
        assert!(l["attempts"].as_i64().unwrap_or(0) >= 1, "{l}");
        assert!(
            l["lastError"].as_str().is_some_and(|e| e.contains("500")),
            "{l}"
        );
    }
    assert_eq!(metric(&cluster, 0, &dead(flaky.sink())).await, 5.0);
    assert_eq!(metric(&cluster, 0, &dead(healthy.sink())).await, 0.0);
    // Only staff see them.
    let resp = cluster
        .http
        .get(format!("{}/events/dead-letters", cluster.base(0)))
        .bearer_auth(token("fan-1", &[]))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // A replay while the endpoint is still down is refused, and the letter stays.
    let first = letters[0]["id"].as_i64().expect("id");
    let (s, body) = staff_post(&cluster, 0, &format!("/events/dead-letters/{first}/replay")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "sink_unavailable", "{body}");

    // Up again: a dead letter does not hold back what came after it...
    flaky.fail(false);
    assert!(book(&cluster, 0, "after-the-letters").await.is_some());
    wait_for(
        "event 26 at the flaky endpoint",
        Duration::from_secs(10),
        || async { Ok(flaky.accepted().iter().any(|d| d.seq() == 26).then_some(())) },
    )
    .await
    .expect("the event after the dead letters");
    // ...and staff replay the letters: each reaches the endpoint, marked replayed.
    for l in &letters {
        let id = l["id"].as_i64().expect("id");
        let (s, body) = staff_post(&cluster, 0, &format!("/events/dead-letters/{id}/replay")).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    }
    let seqs: HashSet<i64> = flaky.accepted().iter().map(Delivery::seq).collect();
    assert_eq!(
        seqs,
        (1..=26).collect::<HashSet<_>>(),
        "every event, at last"
    );
    let (_, pending) = staff_get(&cluster, 0, "/events/dead-letters?pending=true").await;
    assert_eq!(pending, json!([]));
    let (_, all) = staff_get(&cluster, 0, "/events/dead-letters").await;
    assert_eq!(all.as_array().map_or(0, Vec::len), 5);
    assert!(
        all.as_array()
            .into_iter()
            .flatten()
            .all(|l| l["replayedAt"].is_string()),
        "{all}"
    );
    let (s, _) = staff_post(&cluster, 0, "/events/dead-letters/999999/replay").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Every delivery to both endpoints verifies.
    for d in flaky.deliveries().iter().chain(&healthy.deliveries()) {
        verify(&key, d, d.received).unwrap_or_else(|e| panic!("{e}: {d:?}"));
    }
}

/// The staff event stream of a replica: events numbered by their sequence.
struct Stream(SseReader);

impl Stream {
    async fn open(cluster: &Cluster, replica: usize, last_event_id: Option<&str>) -> Stream {
        let request = cluster
            .http
            .get(format!("{}/events/stream", cluster.base(replica)))
            .bearer_auth(staff());
        Stream(SseReader::open(request, last_event_id).await)
    }

    /// The next event's sequence and data (frames without an id skipped).
    async fn next(&mut self) -> (i64, Value) {
        loop {
            let ev = self.0.next().await;
            if let Some(id) = ev.id.and_then(|id| id.parse::<i64>().ok()) {
                return (id, ev.data);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_pages_and_the_stream_resumes_from_last_event_id() {
    let cluster = Cluster::start(&show_yaml("feed", 4, 10, None, 4, None), 2, 2, None).await;
    let leader = cluster.leader().await;
    let standby = 1 - leader;
    let mut references = Vec::new();
    for i in 0..12 {
        references.push(
            book(&cluster, standby, &format!("reader-{i}"))
                .await
                .expect("booked"),
        );
    }
    // Also a cancel: another kind of event.
    let resp = cluster
        .http
        .post(format!(
            "{}/bookings/{}/cancel",
            cluster.base(standby),
            references[3]
        ))
        .bearer_auth(token("reader-3", &[]))
        .send()
        .await
        .expect("cancel");
    assert!(resp.status().is_success(), "{}", resp.status());

    // Pages of 5 through the standby: 1-5, 6-10, 11-13, then an empty page.
    let mut seen = Vec::new();
    let mut after = 0;
    for expected in [5, 5, 3, 0] {
        let (s, page) = staff_get(
            &cluster,
            standby,
            &format!("/events/feed?after={after}&limit=5"),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let events = page["events"].as_array().expect("events").clone();
        assert_eq!(events.len(), expected, "{page}");
        for e in &events {
            seen.push(e["sequence"].as_i64().expect("sequence"));
        }
        let next = page["next"].as_i64().expect("next");
        assert_eq!(
            next,
            events
                .last()
                .map_or(after, |e| e["sequence"].as_i64().unwrap_or(0))
        );
        after = next;
    }
    assert_eq!(seen, (1..=13).collect::<Vec<_>>());
    let (_, page) = staff_get(&cluster, leader, "/events/feed?after=12&limit=1").await;
    let cancelled = &page["events"][0];
    assert_eq!(
        cancelled["type"], "dev.boxoffice.booking.cancelled.v1",
        "{page}"
    );
    assert_eq!(cancelled["data"]["reference"], references[3].as_str());
    assert_eq!(cancelled["data"]["status"], "cancelled");
    // Bad cursors and limits, and users, are refused in the one error shape.
    for query in ["after=-1", "limit=0", "limit=501", "after=x"] {
        let (s, body) = staff_get(&cluster, standby, &format!("/events/feed?{query}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["error"]["code"].is_string(), "{query}: {body}");
    }
    let (s, _) = cluster.get(standby, "/events/feed", "reader-1").await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The stream through the standby: from the start, disconnect after event 7.
    let mut stream = Stream::open(&cluster, standby, None).await;
    for n in 1..=7 {
        let (id, data) = stream.next().await;
        assert_eq!(id, n);
        assert_eq!(data["sequence"], n);
    }
    drop(stream);
    // While away, more bookings.
    for i in 0..4 {
        book(&cluster, standby, &format!("away-{i}"))
            .await
            .expect("booked");
    }
    // Back with Last-Event-ID: 7: 8, 9, ... 17, nothing twice, nothing skipped, and
    // then live events as they are committed.
    let mut stream = Stream::open(&cluster, standby, Some("7")).await;
    let mut got = Vec::new();
    for _ in 8..=17 {
        let (id, data) = stream.next().await;
        assert_eq!(data["sequence"], id);
        got.push(id);
    }
    assert_eq!(got, (8..=17).collect::<Vec<_>>());
    book(&cluster, leader, "live").await.expect("booked");
    let (id, data) = stream.next().await;
    assert_eq!(id, 18);
    assert_eq!(data["type"], "dev.boxoffice.booking.confirmed.v1");
    drop(stream);
    let resp = cluster
        .http
        .get(format!("{}/events/stream", cluster.base(standby)))
        .bearer_auth(staff())
        .header("Last-Event-ID", "seven")
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_retention_gets_cursor_expired() {
    let mut cluster = Cluster::new(&show_yaml("pruned", 2, 10, None, 4, None), 2, None).await;
    cluster
        .options
        .extra_env
        .push(("BOXOFFICE_EVENTS_RETENTION".into(), "1".into()));
    cluster.add_replica("shard-0").await;
    cluster.all_serving().await;
    for i in 0..3 {
        book(&cluster, 0, &format!("early-{i}"))
            .await
            .expect("booked");
    }
    // Pruned once a second old (no sink to wait for): a cursor before it is gone.
    let body = wait_for(
        "the first events pruned",
        Duration::from_secs(20),
        || async {
            let (s, body) = staff_get(&cluster, 0, "/events/feed?after=0").await;
            Ok((s == StatusCode::GONE).then_some(body))
        },
    )
    .await
    .expect("pruned");
    assert_eq!(body["error"]["code"], "cursor_expired", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("retention")),
        "{body}"
    );
    let resp = cluster
        .http
        .get(format!("{}/events/stream", cluster.base(0)))
        .bearer_auth(staff())
        .header("Last-Event-ID", "1")
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), StatusCode::GONE);
    let body: Value = resp.json().await.expect("error body");
    assert_eq!(body["error"]["code"], "cursor_expired", "{body}");
    // Control: from where pruning stopped, the feed answers.
    let pruned: i64 = sqlx::query_scalar("SELECT pruned FROM event_sequences")
        .fetch_one(&mut db(&cluster).await)
        .await
        .expect("pruned");
    assert!(pruned >= 1);
    let (s, page) = staff_get(&cluster, 0, &format!("/events/feed?after={pruned}")).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    book(&cluster, 0, "late").await.expect("booked");
    let (s, page) = staff_get(&cluster, 0, &format!("/events/feed?after={pruned}")).await;
    assert_eq!(s, StatusCode::OK, "{page}");
}
