//! The contract with the operator against a real etcd: what the shard's coordinator
//! writes (the leader record, hold records) is read back at the keys and
//! in the shapes `boxoffice-contract` defines, and the way the operator has read the
//! leader record (untyped, `pod` and `address`) still finds it.

use booking_shard::coord::{Campaign, Coordinator, HoldRecord, Keys, LeaderInfo, now_ms};
use boxoffice_contract::ShowKeys;
use boxoffice_e2e::{EtcdOptions, EtcdServer};
use etcd_client::{Client, GetOptions};

#[tokio::test]
async fn the_operator_reads_what_the_shard_writes() {
    let server = EtcdServer::start(EtcdOptions {
        name: "contract".into(),
        ..EtcdOptions::default()
    })
    .await
    .expect("etcd");
    let coord = Coordinator::connect(&[server.endpoint()], Keys::new("tickets", "club"))
        .await
        .expect("coordinator");
    let me = LeaderInfo {
        pod: "club-7f9c-0".into(),
        address: "http://10.1.2.3:8080".into(),
        sig: "c2lnbmVk".into(),
    };
    let Campaign::Won { epoch, .. } = coord.campaign(&me, 30).await.expect("campaign") else {
        panic!("a fresh etcd has no leader");
    };
    let expires_at_ms = now_ms() + 60_000;
    let hold = HoldRecord {
        id: "0af3".into(),
        user: "ann".into(),
        seats: vec!["main:A:1".into(), "main:A:2".into()],
        area: None,
        quantity: 2,
        expires_at_ms,
        idempotency_key: Some("k1".into()),
        created_at_ms: expires_at_ms - 60_000,
        request_digest: "d1".into(),
        payment_intent: None,
    };
    let lease = coord.hold_lease(expires_at_ms).await.expect("lease");
    coord.create_hold(epoch, &hold, lease).await.expect("hold");

    let mut etcd = Client::connect([server.endpoint()], None)
        .await
        .expect("client");
    // The leader key where the operator has always looked for it.
    let got = etcd
        .get("/boxoffice/tickets/club/leader", None)
        .await
        .expect("get leader");
    let kv = got.kvs().first().expect("the leader key exists");
    assert_eq!(
        kv.create_revision(),
        epoch,
        "its create revision is the epoch"
    );
    let untyped: serde_json::Value = serde_json::from_slice(kv.value()).expect("json");
    assert_eq!(untyped["pod"], "club-7f9c-0");
    assert_eq!(untyped["address"], "http://10.1.2.3:8080");
    assert_eq!(LeaderInfo::from_bytes(kv.value()).ok(), Some(me));

    // The hold is one record under the contract's prefix, and the show has no other
    // keys (no seat locks: one key per hold).
    let keys = ShowKeys::new("tickets", "club");
    let prefix = GetOptions::new().with_prefix();
    let all = etcd
        .get(keys.show_prefix(), Some(prefix.clone().with_keys_only()))
        .await
        .expect("show keys");
    let names: Vec<String> = all
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect();
    assert_eq!(names, [keys.hold("0af3"), keys.leader()]);
    let holds = etcd
        .get(keys.holds_prefix(), Some(prefix))
        .await
        .expect("holds");
    let [kv] = holds.kvs() else {
        panic!("one hold record, got {}", holds.kvs().len());
    };
    assert_eq!(String::from_utf8_lossy(kv.key()), keys.hold("0af3"));
    let stored: HoldRecord = serde_json::from_slice(kv.value()).expect("a hold record");
    assert_eq!(stored, hold);
    assert_eq!(kv.lease(), lease, "the record lives on the hold's lease");
}
