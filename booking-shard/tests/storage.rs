//! A full etcd: with etcd's NOSPACE alarm raised, holds are answered 503
//! `storage_full` with Retry-After, nothing is held or lost, the leader keeps leading,
//! reads, releases, expiry and confirms go on; once the space is reclaimed (by the
//! leader's maintenance loop) holds succeed again without a restart.

mod common;

use std::time::{Duration, Instant};

use booking_shard::coord::HoldRecord;
use boxoffice_e2e::{EtcdOptions, EtcdServer, PostgresServer, token, wait_for};
use common::{Cluster, show_yaml};
use etcd_client::{AlarmAction, AlarmType, DeleteOptions, GetOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A tiny quota, so a few big keys fill it.
const QUOTA: u64 = 3 * 1024 * 1024;
/// Keys that are not the shard's, put until etcd refuses them.
const JUNK: &str = "/junk/";

/// etcd with the tiny quota and no auto-compaction (nothing but the shard's
/// maintenance may reclaim space).
async fn small_etcd() -> EtcdServer {
    EtcdServer::start(EtcdOptions {
        name: "small-etcd".into(),
        quota_backend_bytes: QUOTA,
        auto_compaction_retention: None,
        ..Default::default()
    })
    .await
    .expect("etcd")
}

async fn cluster(show: &str, hold_ttl: Option<u64>, env: &[(&str, &str)]) -> Cluster {
    let etcd = small_etcd().await;
    let pg = PostgresServer::shared().await.expect("postgres");
    let db_url = pg.create_database().await.expect("database");
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Cluster::with_servers(
        &show_yaml(show, 2, 10, Some(100), 4, None),
        etcd,
        db_url,
        3,
        hold_ttl,
        env,
    )
}

/// Puts 256 KiB junk keys until etcd refuses one for lack of space (and raises its
/// NOSPACE alarm); returns how many it took.
async fn fill(etcd: &mut etcd_client::Client) -> usize {
    let value = vec![b'x'; 256 * 1024];
    for i in 0..100 {
        match etcd.put(format!("{JUNK}{i}"), value.clone(), None).await {
            Ok(_) => {}
            Err(e) => {
                assert!(
                    e.to_string().contains("database space exceeded"),
                    "etcd refused with {e}"
                );
                return i;
            }
        }
    }
    panic!("etcd took 25 MiB under a {QUOTA}-byte quota");
}

async fn nospace_alarms(etcd: &mut etcd_client::Client) -> usize {
    etcd.alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .expect("alarms")
        .alarms()
        .iter()
        .filter(|a| a.alarm() == AlarmType::Nospace)
        .count()
}

/// A hold request's status, error code and Retry-After.
async fn hold(
    cluster: &Cluster,
    replica: usize,
    user: &str,
    body: Value,
) -> (StatusCode, Value, Option<String>) {
    let resp = cluster
        .http
        .post(format!("{}/holds", cluster.base(replica)))
        .bearer_auth(token(user, &[]))
        .json(&body)
        .send()
        .await
        .expect("hold request");
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        status,
        resp.json().await.unwrap_or(Value::Null),
        retry_after,
    )
}

/// Asserts a hold attempt was refused for lack of space, as a client should see it.
fn assert_storage_full(answer: &(StatusCode, Value, Option<String>), what: &str) {
    let (status, body, retry_after) = answer;
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(body["error"]["code"], "storage_full", "{what}: {body}");
    assert!(retry_after.is_some(), "{what}: 503 without Retry-After");
}

/// The seat map's letter for `main:<row>:<n>`.
async fn seat(cluster: &Cluster, replica: usize, row: usize, n: usize) -> char {
    let (status, map) = cluster.get(replica, "/seats", "reader").await;
    assert_eq!(status, StatusCode::OK, "seat map: {map}");
    map["sections"][0]["rows"][row]["seats"]
        .as_str()
        .and_then(|s| s.chars().nth(n - 1))
        .unwrap_or('?')
}

async fn wait_seat(cluster: &Cluster, row: usize, n: usize, want: char, what: &str) {
    wait_for(what, Duration::from_secs(30), move || async move {
        Ok((seat(cluster, 0, row, n).await == want).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
}

/// A metric of replica `i` (a series without labels).
async fn metric(cluster: &Cluster, i: usize, name: &str) -> f64 {
    let text = cluster
        .http
        .get(format!("{}/metrics", cluster.replicas[i].metrics_url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

async fn wait_metric(cluster: &Cluster, i: usize, name: &str, want: f64) {
    wait_for(name, Duration::from_secs(30), move || async move {
        Ok((metric(cluster, i, name).await == want).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_etcd_pauses_holds_without_a_leader_change_until_space_is_reclaimed() {
    let mut cluster = cluster(
        "full",
        Some(10),
        &[("BOXOFFICE_ETCD_MAINTENANCE_INTERVAL", "1")],
    )
    .await;
    cluster.add_replica("shard-0").await;
    cluster.add_replica("shard-1").await;
    let leader = cluster.all_serving().await;
    let standby = 1 - leader;
    let mut etcd = cluster.etcd.admin_client().await.expect("etcd client");

    // Holds taken before etcd fills up: one to confirm, one to expire, one to extend,
    // one to release while it is full.
    let mut holds = Vec::new();
    for (user, seat) in [
        ("carol", "main:A:1"),
        ("erin", "main:A:2"),
        ("ed", "main:A:3"),
        ("rita", "main:A:4"),
    ] {
        let (status, body, _) = hold(&cluster, leader, user, json!({"seats": [seat]})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        holds.push(body["id"].as_str().expect("hold id").to_string());
    }
    let puts = fill(&mut etcd).await;
    assert!(nospace_alarms(&mut etcd).await > 0, "the alarm is raised");

    // Confirming needs no etcd space (a check and deletes) and goes on.
    let (status, booking) = cluster
        .post(
            leader,
            &format!("/holds/{}/confirm", holds[0]),
            "carol",
            json!({"paymentReference": "psp-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "confirm while full: {booking}");
    // Extending takes space: refused, and the hold keeps its expiry.
    let (_, before) = cluster
        .get(leader, &format!("/holds/{}", holds[2]), "ed")
        .await;
    let (status, body) = cluster
        .post(
            leader,
            &format!("/holds/{}/extend", holds[2]),
            "ed",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "storage_full", "{body}");
    let (status, after) = cluster
        .get(leader, &format!("/holds/{}", holds[2]), "ed")
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["expiresAtMs"], before["expiresAtMs"]);
    // Releasing deletes: it goes on.
    let resp = cluster
        .http
        .delete(format!("{}/holds/{}", cluster.base(leader), holds[3]))
        .bearer_auth(token("rita", &[]))
        .send()
        .await
        .expect("release");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT, "release while full");

    // New holds of every kind, through the leader and through the standby.
    for (replica, body) in [
        (leader, json!({"seats": ["main:B:1", "main:B:2"]})),
        (standby, json!({"seats": ["main:B:1", "main:B:2"]})),
        (leader, json!({"best": {"quantity": 2}})),
        (leader, json!({"general": {"area": "pit", "quantity": 2}})),
    ] {
        let answer = hold(&cluster, replica, "late", body.clone()).await;
        assert_storage_full(&answer, &format!("{body} via replica {replica}"));
    }

    // Reads answer; nothing is held by the refused attempts; counts add up.
    for replica in [leader, standby] {
        let (status, map) = cluster.get(replica, "/seats", "reader").await;
        assert_eq!(status, StatusCode::OK, "{map}");
        assert_eq!(
            map["sections"][0]["rows"][1]["seats"], "AAAAAAAAAA",
            "{map}"
        );
        assert_eq!(map["generalAdmission"][0]["inventory"]["held"], 0, "{map}");
    }
    let counts = cluster.check_counts(leader).await.expect("counts add up");
    let held = counts["inventory"]["held"].as_i64().unwrap_or(-1);
    assert!(
        (0..=2).contains(&held),
        "only ed's and erin's holds: {counts}"
    );
    assert_eq!(counts["inventory"]["sold"], 1, "{counts}");
    assert!(
        !seats_in_records(&mut etcd, "full")
            .await
            .contains(&"main:B:1".to_string()),
        "a refused hold left a record"
    );
    wait_seat(&cluster, 0, 4, 'A', "the released seat to be on sale").await;
    assert_eq!(seat(&cluster, leader, 0, 1).await, 'S');
    // Expiry deletes: the 10 s hold ends while etcd is full.
    wait_seat(&cluster, 0, 2, 'A', "the expired hold's seat to be on sale").await;

    // The leader kept leading and saw the alarm; the gauges say so.
    assert_eq!(cluster.leader().await, leader, "the leader changed");
    assert_eq!(
        metric(&cluster, leader, "boxoffice_fenced_writes_total").await,
        0.0
    );
    assert_eq!(
        metric(&cluster, leader, "boxoffice_leader_terms_total").await,
        1.0
    );
    for i in [leader, standby] {
        wait_metric(&cluster, i, "boxoffice_etcd_nospace_alarm", 1.0).await;
        assert_eq!(
            metric(&cluster, i, "boxoffice_etcd_quota_bytes").await,
            QUOTA as f64
        );
        assert!(metric(&cluster, i, "boxoffice_etcd_db_size_bytes").await > 0.0);
    }
    // Live junk fills the quota: compaction and defragmentation cannot make room, so
    // the alarm stays (disarming would only raise it again).
    assert_storage_full(
        &hold(&cluster, leader, "late", json!({"seats": ["main:B:1"]})).await,
        "while the junk is still there",
    );

    // Free the space: deletes are allowed under the alarm. The leader's maintenance
    // compacts the deleted junk away, defragments, and disarms the alarm.
    etcd.delete(JUNK, Some(DeleteOptions::new().with_prefix()))
        .await
        .expect("delete junk");
    let deadline = Instant::now() + Duration::from_secs(60);
    let held = loop {
        let answer = hold(&cluster, leader, "late", json!({"seats": ["main:B:1"]})).await;
        if answer.0 == StatusCode::CREATED {
            break answer.1;
        }
        // Until then every attempt is refused the same way: never a 500, never a
        // leader change.
        assert_storage_full(&answer, "while space is being reclaimed");
        assert!(
            Instant::now() < deadline,
            "holds did not resume within 60 s ({puts} junk keys)\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(held["seats"], json!(["main:B:1"]));
    let (status, body, _) = hold(&cluster, standby, "late", json!({"seats": ["main:B:2"]})).await;
    assert_eq!(status, StatusCode::CREATED, "via the standby: {body}");

    assert_eq!(nospace_alarms(&mut etcd).await, 0, "the alarm is disarmed");
    wait_metric(&cluster, leader, "boxoffice_etcd_nospace_alarm", 0.0).await;
    assert!(metric(&cluster, leader, "boxoffice_etcd_defragmentations_total").await >= 1.0);
    assert!(metric(&cluster, leader, "boxoffice_etcd_alarms_disarmed_total").await >= 1.0);
    assert!(metric(&cluster, leader, "boxoffice_etcd_compactions_total").await >= 1.0);
    assert!(metric(&cluster, leader, "boxoffice_etcd_db_size_bytes").await <= QUOTA as f64 * 0.8);
    assert_eq!(cluster.leader().await, leader, "the leader changed");
    assert_eq!(
        metric(&cluster, leader, "boxoffice_fenced_writes_total").await,
        0.0
    );
    // Once ed's hold has expired, B:1 and B:2 are the only holds.
    let counts = wait_for("two seats held", Duration::from_secs(30), || {
        let cluster = &cluster;
        async move {
            let counts = cluster
                .check_counts(leader)
                .await
                .map_err(anyhow::Error::msg)?;
            Ok((counts["inventory"]["held"] == 2).then_some(counts))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(counts["inventory"]["sold"], 1, "{counts}");
    // etcd has one record per live hold, holding exactly the held seats.
    assert_eq!(
        seats_in_records(&mut etcd, "full").await,
        ["main:B:1", "main:B:2"],
        "the records hold the held seats: {counts}"
    );
}

/// The seats of every hold record of `show` in etcd, sorted.
async fn seats_in_records(etcd: &mut etcd_client::Client, show: &str) -> Vec<String> {
    let records = etcd
        .get(
            format!("/boxoffice/tests/{show}/holds/"),
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .expect("etcd get");
    let mut seats: Vec<String> = records
        .kvs()
        .iter()
        .flat_map(|kv| {
            let record: HoldRecord = serde_json::from_slice(kv.value()).expect("a hold record");
            record.seats
        })
        .collect();
    seats.sort();
    seats
}

/// A seat map read while a hold is pending shows its seats held; when etcd then
/// refuses the hold for lack of space, the next reads must not keep serving that copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_refused_for_space_does_not_stay_in_the_cached_seat_map() {
    // Writes pause 2 s between the in-memory reservation and etcd (test switch), so
    // the test can read the map meanwhile; maintenance off, so etcd stays full.
    let mut cluster = cluster(
        "cached",
        None,
        &[
            ("BOXOFFICE_FAULT_DELAY_WRITES_MS", "2000"),
            ("BOXOFFICE_ETCD_MAINTENANCE", "off"),
        ],
    )
    .await;
    cluster.add_replica("shard-0").await;
    cluster.leader().await;
    let (status, first, _) = hold(&cluster, 0, "ann", json!({"seats": ["main:A:1"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let mut etcd = cluster.etcd.admin_client().await.expect("etcd client");
    fill(&mut etcd).await;
    assert_eq!(seat(&cluster, 0, 0, 1).await, 'H');

    let refused = {
        let http = cluster.http.clone();
        let url = format!("{}/holds", cluster.base(0));
        tokio::spawn(async move {
            let resp = http
                .post(url)
                .bearer_auth(token("bob", &[]))
                .json(&json!({"seats": ["main:B:1"]}))
                .send()
                .await
                .expect("hold");
            (
                resp.status(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    // While bob's hold is pending, a change (ann releases) makes the next read rebuild
    // the map, with bob's seat held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = cluster
        .http
        .delete(format!(
            "{}/holds/{}",
            cluster.base(0),
            first["id"].as_str().unwrap_or("")
        ))
        .bearer_auth(token("ann", &[]))
        .send()
        .await
        .expect("release");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seat(&cluster, 0, 1, 1).await,
        'H',
        "the map was read while bob's hold was pending"
    );

    let (status, body) = refused.await.expect("hold task");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "storage_full", "{body}");
    wait_seat(
        &cluster,
        1,
        1,
        'A',
        "the refused hold's seat to show available",
    )
    .await;
    assert_eq!(seat(&cluster, 0, 0, 1).await, 'A');
    cluster.check_counts(0).await.expect("counts add up");
}

/// Under the alarm, the leader's group commit may put a hold (refused: it takes
/// space) in one transaction with deletes (which take none). Those must not fail with
/// it: expiry, releases and confirms' clean-up would stop, and the leader step down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_deletes_go_on_while_puts_are_refused() {
    use booking_shard::coord::{Campaign, CoordError, Coordinator, Keys, LeaderInfo};

    let server = small_etcd().await;
    let coord = Coordinator::connect(&[server.endpoint()], Keys::new("tests", "grouped"))
        .await
        .expect("coordinator");
    let me = LeaderInfo {
        pod: "p".into(),
        address: "http://127.0.0.1:1".into(),
        sig: String::new(),
    };
    let Campaign::Won { epoch, .. } = coord.campaign(&me, 60).await.expect("campaign") else {
        panic!("a fresh etcd has no leader");
    };
    let expires_at_ms = booking_shard::coord::now_ms() + 600_000;
    let lease = coord.hold_lease(expires_at_ms).await.expect("lease");
    let record = |n: usize| HoldRecord {
        id: format!("h{n:03}"),
        user: "u".into(),
        seats: vec![format!("main:A:{n}")],
        area: None,
        quantity: 1,
        expires_at_ms,
        idempotency_key: None,
        created_at_ms: 1,
        request_digest: String::new(),
        payment_intent: None,
    };
    let old: Vec<HoldRecord> = (0..40).map(record).collect();
    for r in &old {
        coord.create_hold(epoch, r, lease).await.expect("hold");
    }
    let mut etcd = server.admin_client().await.expect("etcd client");
    fill(&mut etcd).await;

    // Interleaved: new holds (on a lease granted before) and deletes of old holds.
    let new: Vec<HoldRecord> = (100..140).map(record).collect();
    let mut writes = Vec::new();
    for i in 0..40 {
        let (coord, old, new) = (&coord, &old, &new);
        writes.push(Box::pin(async move {
            match i % 2 {
                0 => ("put", coord.create_hold(epoch, &new[i], lease).await),
                _ => ("delete", coord.delete_holds(epoch, &[&old[i]]).await),
            }
        })
            as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>);
    }
    let answers = futures::future::join_all(writes).await;
    for (i, (kind, answer)) in answers.into_iter().enumerate() {
        match kind {
            "put" => assert!(
                matches!(answer, Err(CoordError::NoSpace)),
                "{i}: {answer:?}"
            ),
            _ => assert!(
                answer.is_ok(),
                "{kind} {i} failed under the alarm: {answer:?}"
            ),
        }
    }
    let book = coord.load().await.expect("load");
    let expected: Vec<String> = (0..40)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("h{i:03}"))
        .collect();
    let mut ids: Vec<String> = book.holds.iter().map(|h| h.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, expected, "deleted holds are gone, refused ones absent");
    assert!(book.locks.is_empty(), "one key per hold: {:?}", book.locks);
}

/// etcd applies the write that takes it over its quota and still answers "space
/// exceeded" (its quota applier raises the alarm after applying). A hold answered
/// `NoSpace` must therefore be checked: one answered `NoSpace` is not in etcd, one
/// answered `Ok` is. Before the check, the leader undid holds etcd had written: their
/// seats were sold again in memory while etcd kept the hold (then with seat locks, and
/// the next hold on one of them made the leader step down). Several rounds of filling and reclaiming, with
/// holds racing the junk each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_answered_out_of_space_was_not_written() {
    use booking_shard::coord::{Campaign, CoordError, Coordinator, Keys, LeaderInfo};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let server = small_etcd().await;
    let keys = Keys::new("tests", "racing");
    let coord = Arc::new(
        Coordinator::connect(&[server.endpoint()], keys.clone())
            .await
            .expect("coordinator"),
    );
    let me = LeaderInfo {
        pod: "p".into(),
        address: "http://127.0.0.1:1".into(),
        sig: String::new(),
    };
    let Campaign::Won { epoch, .. } = coord.campaign(&me, 120).await.expect("campaign") else {
        panic!("a fresh etcd has no leader");
    };
    let expires_at_ms = booking_shard::coord::now_ms() + 600_000;
    let lease = coord.hold_lease(expires_at_ms).await.expect("lease");
    let mut etcd = server.admin_client().await.expect("etcd client");
    let (mut written, mut refused) = (0, 0);
    for round in 0..5 {
        let full = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for t in 0..16 {
            let (coord, full) = (coord.clone(), full.clone());
            tasks.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut after_full = 0;
                for k in 0.. {
                    let id = format!("r{round}-t{t}-{k}");
                    let record = HoldRecord {
                        seats: vec![format!("{id}:1"), format!("{id}:2")],
                        id,
                        user: "u".into(),
                        area: None,
                        quantity: 2,
                        expires_at_ms,
                        idempotency_key: Some("k".repeat(128)),
                        created_at_ms: 1,
                        request_digest: "d".repeat(64),
                        payment_intent: None,
                    };
                    let answer = coord.create_hold(epoch, &record, lease).await;
                    let refused = matches!(answer, Err(CoordError::NoSpace));
                    assert!(answer.is_ok() || refused, "{answer:?}");
                    outcomes.push((record.id, refused));
                    if full.load(Ordering::Relaxed) || refused {
                        after_full += 1;
                        if after_full > 20 {
                            break;
                        }
                    }
                }
                outcomes
            }));
        }
        fill(&mut etcd).await;
        full.store(true, Ordering::Relaxed);
        for task in tasks {
            for (id, was_refused) in task.await.expect("hold task") {
                let stored = etcd.get(keys.hold(&id), None).await.expect("get");
                assert_eq!(
                    stored.kvs().is_empty(),
                    was_refused,
                    "round {round}: hold {id} answered {} but etcd {} it",
                    if was_refused { "NoSpace" } else { "Ok" },
                    if was_refused { "has" } else { "lacks" },
                );
                if was_refused {
                    refused += 1;
                } else {
                    written += 1;
                }
            }
        }
        // Make room for the next round: drop everything, compact, defragment, disarm.
        etcd.delete(JUNK, Some(DeleteOptions::new().with_prefix()))
            .await
            .expect("delete junk");
        etcd.delete(
            keys.show_prefix().to_string() + "holds/",
            Some(DeleteOptions::new().with_prefix()),
        )
        .await
        .expect("delete holds");
        let revision = etcd
            .get("x", None)
            .await
            .expect("get")
            .header()
            .map(|h| h.revision())
            .unwrap_or(0);
        etcd.compact(
            revision,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .expect("compact");
        etcd.defragment().await.expect("defragment");
        let alarms = etcd
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .expect("alarms");
        for a in alarms.alarms() {
            let mut options = etcd_client::AlarmOptions::new();
            options.with_member(a.member_id());
            etcd.alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(options))
                .await
                .expect("disarm");
        }
    }
    assert!(
        written > 0 && refused > 0,
        "{written} written, {refused} refused"
    );
}
