//! The public stream is resumable: every event has an id, the snapshot carries every
//! seat's state (lined up with `GET /seats`), `Last-Event-ID` replays the changes a
//! client missed, and an id the leader cannot resume from gets a `reset` snapshot.
//! Against a real shard on etcd and PostgreSQL.

mod common;

use common::sse::SseReader;
use common::{Cluster, show_yaml};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The public stream of replica 0.
async fn open(cluster: &Cluster, last_event_id: Option<&str>) -> SseReader {
    let request = cluster.http.get(format!("{}/events", cluster.base(0)));
    SseReader::open(request, last_event_id).await
}

async fn hold(cluster: &Cluster, user: &str, seats: &[&str]) -> String {
    let (s, hold) = cluster
        .post(0, "/holds", user, json!({ "seats": seats }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    hold["id"].as_str().expect("id").to_string()
}

/// The state letter of `seat` (`main:A:3`) in a seat map.
fn state_of(map: &Value, seat: &str) -> char {
    let mut parts = seat.split(':');
    let (section, row, n) = (
        parts.next().expect("section"),
        parts.next().expect("row"),
        parts.next().expect("n").parse::<usize>().expect("number"),
    );
    let rows = map["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["name"] == section)
        .expect("section")["rows"]
        .as_array()
        .expect("rows")
        .clone();
    let row = rows.iter().find(|r| r["name"] == row).expect("row");
    row["seats"]
        .as_str()
        .expect("letters")
        .chars()
        .nth(n - 1)
        .expect("seat")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_resumes_from_last_event_id_or_resets_with_a_snapshot() {
    let cluster = Cluster::start(&show_yaml("resume", 2, 10, Some(20), 4, None), 1, 3, None).await;
    let first_hold = hold(&cluster, "ann", &["main:A:1", "main:A:2"]).await;

    // The snapshot: every seat's state, numbered, and the same as GET /seats.
    let mut stream = open(&cluster, None).await;
    let snapshot = stream.next().await;
    assert_eq!(snapshot.event, "snapshot", "{snapshot:?}");
    let snapshot_id = snapshot.id.clone().expect("the snapshot has an id");
    let map = &snapshot.data["seatMap"];
    assert_eq!(state_of(map, "main:A:1"), 'H', "{map}");
    assert_eq!(state_of(map, "main:A:3"), 'A', "{map}");
    let (s, seats) = cluster.get(0, "/seats", "ann").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(&seats, map, "the snapshot lines up with GET /seats");
    assert_eq!(snapshot.data["counts"]["held"], 2, "{:?}", snapshot.data);

    // A change: a numbered `seats` event after the snapshot's number.
    hold(&cluster, "bob", &["main:A:5"]).await;
    let held = stream.next().await;
    assert_eq!(held.event, "seats", "{held:?}");
    assert_eq!(held.data["kind"], "held");
    let seen_id = held.id.clone().expect("every change has an id");
    let number = |id: &str| -> u64 { id.rsplit('.').next().unwrap_or("").parse().unwrap_or(0) };
    assert!(
        number(&seen_id) > number(&snapshot_id),
        "{seen_id} after {snapshot_id}"
    );
    drop(stream);

    // Changes while the client is away: a hold, and a release of the first hold.
    let missed_hold = hold(&cluster, "cyd", &["main:B:7", "main:B:8"]).await;
    let r = cluster
        .http
        .delete(format!("{}/holds/{first_hold}", cluster.base(0)))
        .bearer_auth(boxoffice_e2e::token("ann", &[]))
        .send()
        .await
        .expect("release");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // Resuming from the last id seen: exactly the missed changes, in order, then live.
    let mut resumed = open(&cluster, Some(&seen_id)).await;
    let a = resumed.next().await;
    let b = resumed.next().await;
    assert_eq!(
        (a.event.as_str(), b.event.as_str()),
        ("seats", "seats"),
        "{a:?} {b:?}"
    );
    assert_eq!(a.data["kind"], "held", "{a:?}");
    assert_eq!(a.data["seats"], json!(["main:B:7", "main:B:8"]));
    assert_eq!(b.data["kind"], "released", "{b:?}");
    assert_eq!(b.data["seats"], json!(["main:A:1", "main:A:2"]));
    let (ida, idb) = (a.id.expect("id"), b.id.expect("id"));
    assert_eq!(number(&ida), number(&seen_id) + 1);
    assert_eq!(number(&idb), number(&ida) + 1);
    // Still the public stream: no hold id in the replay.
    let replay = format!("{:?}{:?}", a.data, b.data);
    assert!(
        !replay.contains(&missed_hold) && !replay.contains(&first_hold),
        "{replay}"
    );
    hold(&cluster, "dee", &["main:B:1"]).await;
    let live = resumed.next().await;
    assert_eq!(live.event, "seats");
    assert_eq!(live.data["seats"], json!(["main:B:1"]));
    assert_eq!(number(live.id.as_deref().expect("id")), number(&idb) + 1);

    // Ids it cannot resume from (another term, the future, junk): a reset snapshot.
    let epoch = seen_id.split('.').next().expect("epoch").to_string();
    for stale in [
        format!("{}.1", epoch.parse::<i64>().expect("epoch") + 1000),
        format!("{epoch}.999999"),
        "junk".to_string(),
    ] {
        let mut again = open(&cluster, Some(&stale)).await;
        let first = again.next().await;
        assert_eq!(first.event, "reset", "after {stale}: {first:?}");
        let map = &first.data["seatMap"];
        assert_eq!(state_of(map, "main:A:1"), 'A', "released: {map}");
        assert_eq!(state_of(map, "main:B:7"), 'H', "held: {map}");
        assert!(first.id.is_some());
    }
}
