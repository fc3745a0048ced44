//! The standby's mirror of the book against a real etcd: after puts, overwrites and
//! deletes on both sides of its first read, it equals a fresh read, and it never claims
//! a revision it has not seen.

use std::sync::Arc;
use std::time::Duration;

use booking_shard::coord::{Coordinator, Keys};
use booking_shard::mirror::Mirror;
use boxoffice_e2e::{EtcdOptions, EtcdServer};
use etcd_client::{Client, GetOptions, TxnOp};

fn record(id: &str, seat: &str) -> String {
    serde_json::json!({
        "id": id, "user": "u", "seats": [seat], "quantity": 1,
        "expiresAtMs": 4_000_000_000_000i64, "createdAtMs": 1,
    })
    .to_string()
}

/// Puts hold `n` in one transaction: its record and, as the earlier layout did, a seat
/// lock (the mirror follows both prefixes).
async fn put_hold(etcd: &mut Client, keys: &Keys, n: usize) {
    let (id, seat) = (format!("h{n:04}"), format!("main:A:{n}"));
    etcd.txn(etcd_client::Txn::new().and_then([
        TxnOp::put(keys.hold(&id), record(&id, &seat), None),
        TxnOp::put(keys.seat(&seat), id.clone(), None),
    ]))
    .await
    .expect("put hold");
}

async fn delete_hold(etcd: &mut Client, keys: &Keys, n: usize) {
    let (id, seat) = (format!("h{n:04}"), format!("main:A:{n}"));
    etcd.txn(etcd_client::Txn::new().and_then([
        TxnOp::delete(keys.hold(&id), None),
        TxnOp::delete(keys.seat(&seat), None),
    ]))
    .await
    .expect("delete hold");
}

async fn revision(etcd: &mut Client) -> i64 {
    etcd.get("x", Some(GetOptions::new().with_count_only()))
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_equals_a_fresh_read_and_proves_its_revision() {
    let etcd_server = EtcdServer::start(EtcdOptions {
        name: "mirror-etcd".into(),
        unsafe_no_fsync: true,
        ..Default::default()
    })
    .await
    .expect("etcd");
    let keys = Keys::new("tests", "mirror");
    let mut etcd = Client::connect([etcd_server.endpoint()], None)
        .await
        .expect("etcd client");
    for n in 0..300 {
        put_hold(&mut etcd, &keys, n).await;
    }
    let coord = Arc::new(
        Coordinator::connect(&[etcd_server.endpoint()], keys.clone())
            .await
            .expect("coordinator"),
    );

    // Changes racing the mirror's first read, then changes it can only have watched.
    let mirror = Mirror::start(coord.clone());
    for n in 0..100 {
        delete_hold(&mut etcd, &keys, n).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 300..400 {
        put_hold(&mut etcd, &keys, n).await;
    }
    let before_deletes = revision(&mut etcd).await;
    for n in 100..150 {
        delete_hold(&mut etcd, &keys, n).await;
    }
    // An overwrite of a record, and a key of another show that must not appear.
    etcd.put(keys.hold("h0200"), record("h0200", "main:B:1"), None)
        .await
        .expect("overwrite");
    let other = Keys::new("tests", "other");
    put_hold(&mut etcd, &other, 1).await;

    let now = revision(&mut etcd).await;
    let book = mirror
        .book_at_least(now, Duration::from_secs(10))
        .await
        .expect("a mirror that followed every change proves it is current");
    let fresh = coord.load().await.expect("load");
    assert_eq!(book.holds.len(), 250);
    assert_eq!(book.locks.len(), 250);
    assert!(book.revision >= now, "{} < {now}", book.revision);
    assert_eq!((&book.holds, &book.locks), (&fresh.holds, &fresh.locks));
    // The new leader's check of a copy: etcd's count at the copy's revision agrees; a
    // copy that missed the last 50 deletes would hold the 300 records etcd counted
    // before them.
    assert_eq!(
        coord.hold_count_at(book.revision).await.expect("count"),
        250
    );
    assert_eq!(
        coord.hold_count_at(before_deletes).await.expect("count"),
        300
    );
    let overwritten = book.holds.iter().find(|h| h.id == "h0200").expect("h0200");
    assert_eq!(overwritten.seats, ["main:B:1"]);

    // A revision no one has written yet cannot be proven.
    let ahead = Mirror::start(coord.clone());
    let now = revision(&mut etcd).await;
    assert!(
        ahead
            .book_at_least(now + 1_000, Duration::from_millis(800))
            .await
            .is_none(),
        "the mirror claimed a revision etcd has not reached"
    );
}
