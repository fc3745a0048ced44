//! What the API promises where a newcomer could be surprised, against a real shard:
//! what extend does to a hold's expiry, what a confirmed hold answers, and that
//! `/readyz` is true only while the API serves (the pods' probe adds a failover grace).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Cluster, show_yaml};
use reqwest::StatusCode;
use serde_json::json;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Extend sets the expiry to one hold TTL from the call: it does not add a TTL to the
/// current expiry, so two extends in a row give the same expiry give or take the time
/// between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_sets_the_expiry_to_one_ttl_from_now() {
    let ttl_ms = 600_000; // the test show's 10m
    let cluster = Cluster::start(&show_yaml("extend", 1, 10, None, 4, None), 1, 3, None).await;
    let (s, hold) = cluster
        .post(0, "/holds", "ann", json!({"seats": ["main:A:1"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    let id = hold["id"].as_str().expect("id");
    let made = hold["expiresAtMs"].as_i64().expect("expiry");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut expiries = Vec::new();
    for _ in 0..2 {
        let before = now_ms();
        let (s, extended) = cluster
            .post(0, &format!("/holds/{id}/extend"), "ann", json!({}))
            .await;
        let after = now_ms();
        assert_eq!(s, StatusCode::OK, "{extended}");
        let expiry = extended["expiresAtMs"].as_i64().expect("expiry");
        // One TTL from the moment of the call (the shard's clock is this machine's).
        assert!(
            expiry >= before + ttl_ms && expiry <= after + ttl_ms,
            "expiry {expiry} not within [{}, {}]",
            before + ttl_ms,
            after + ttl_ms
        );
        expiries.push((before, expiry));
    }
    // The first extend moved the expiry by the time since the hold was made, not by a TTL.
    assert!(expiries[0].1 < made + ttl_ms / 2, "{made} -> {expiries:?}");
    // The second, right after the first, did not add another TTL.
    assert!(
        expiries[1].1 - expiries[0].1 <= expiries[1].0 - expiries[0].0 + 1000,
        "{expiries:?}"
    );
    let (s, view) = cluster.get(0, &format!("/holds/{id}"), "ann").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(view["expiresAtMs"].as_i64(), Some(expiries[1].1));
}

/// A confirmed hold answers 410 `hold_confirmed` naming its booking, to its owner and
/// staff; to anyone else it is 404 like any hold that is not theirs. A released hold is
/// 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_hold_points_to_its_booking() {
    let cluster = Cluster::start(&show_yaml("pointer", 1, 10, None, 4, None), 2, 3, None).await;
    let leader = cluster.leader().await;
    let standby = 1 - leader;
    let (s, hold) = cluster
        .post(standby, "/holds", "ann", json!({"seats": ["main:A:1"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}");
    let id = hold["id"].as_str().expect("id");
    let (s, booking) = cluster
        .post(
            standby,
            &format!("/holds/{id}/confirm"),
            "ann",
            json!({"paymentReference": "p-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{booking}");
    let reference = booking["reference"].as_str().expect("reference");

    for replica in [leader, standby] {
        let (s, body) = cluster.get(replica, &format!("/holds/{id}"), "ann").await;
        assert_eq!(s, StatusCode::GONE, "{body}");
        assert_eq!(body["error"]["code"], "hold_confirmed", "{body}");
        assert_eq!(body["error"]["booking"], reference, "{body}");
    }
    // The pointer leads to the booking.
    let (s, found) = cluster
        .get(leader, &format!("/bookings/{reference}"), "ann")
        .await;
    assert_eq!(s, StatusCode::OK, "{found}");
    assert_eq!(found["holdId"], id);
    // Another user learns nothing.
    let (s, body) = cluster.get(leader, &format!("/holds/{id}"), "bob").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].get("booking").is_none(), "{body}");
    // Staff see the pointer.
    let r = cluster
        .http
        .get(format!("{}/holds/{id}", cluster.base(leader)))
        .bearer_auth(boxoffice_e2e::token("usher", &["staff"]))
        .send()
        .await
        .expect("staff get");
    assert_eq!(r.status(), StatusCode::GONE);
    // A released hold is simply gone.
    let (s, other) = cluster
        .post(leader, "/holds", "ann", json!({"seats": ["main:A:5"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{other}");
    let other = other["id"].as_str().expect("id");
    let r = cluster
        .http
        .delete(format!("{}/holds/{other}", cluster.base(leader)))
        .bearer_auth(boxoffice_e2e::token("ann", &[]))
        .send()
        .await
        .expect("release");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (s, body) = cluster.get(leader, &format!("/holds/{other}"), "ann").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
}

/// A standby is ready only while the leader it forwards to serves: with the leader
/// gone (its lease not yet expired, so the standby still knows it as leader) plain
/// `/readyz` says 503 instead of taking requests it cannot forward. The pods' probe,
/// `/readyz?grace=<s>`, keeps it ready for that grace after it last served, answering
/// `/v1` with its own 503 + Retry-After, then 503 too; once it leads it is ready as
/// the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_true_only_while_the_api_serves() {
    let lease_ttl = 10;
    let grace_s: u64 = 3;
    let mut cluster = Cluster::start(
        &show_yaml("ready", 1, 10, None, 4, None),
        2,
        lease_ttl,
        None,
    )
    .await;
    let leader = cluster.leader().await;
    let standby = 1 - leader;
    let http = cluster.http.clone();
    let readyz = move |url: String| {
        let http = http.clone();
        async move {
            let r = http
                .get(url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .expect("readyz answers");
            (r.status(), r.text().await.unwrap_or_default())
        }
    };
    let strict = format!("{}/readyz", cluster.replicas[standby].url);
    let probe = format!("{strict}?grace={grace_s}");
    // The control: with the leader serving, the standby is ready (both ways).
    boxoffice_e2e::wait_for("the standby to be ready", Duration::from_secs(10), || {
        let check = readyz(probe.clone());
        async move { Ok((check.await == (StatusCode::OK, "standby".into())).then_some(())) }
    })
    .await
    .expect("standby ready");
    assert_eq!(readyz(strict.clone()).await.0, StatusCode::OK);
    // A bad grace is refused, not ignored.
    let bad = format!("{strict}?grace=1000");
    assert_eq!(readyz(bad).await.0, StatusCode::BAD_REQUEST);

    cluster.replicas[leader].process_mut().kill();
    let killed = std::time::Instant::now();
    let (status, body) = readyz(strict.clone()).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the standby must not be ready while its leader is gone: {body}"
    );
    // The forwarded API indeed does not serve meanwhile: the standby's own 503.
    let r = cluster
        .http
        .get(format!("{}/availability", cluster.base(standby)))
        .bearer_auth(boxoffice_e2e::token("ann", &[]))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    // The probe's grace: still in the Service, never claiming to serve.
    let (status, body) = readyz(probe.clone()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "no leader (answering 503 + Retry-After)"),
        "within the grace the standby stays ready without claiming to serve"
    );
    // After the grace, and long before the lease expires: not ready.
    boxoffice_e2e::wait_for("the grace to end", Duration::from_secs(8), || {
        let check = readyz(probe.clone());
        async move { Ok((check.await.0 == StatusCode::SERVICE_UNAVAILABLE).then_some(())) }
    })
    .await
    .expect("not ready after the grace");
    let waited = killed.elapsed();
    assert!(
        waited >= Duration::from_secs(grace_s - 1) && waited < Duration::from_secs(lease_ttl),
        "the grace lasted {waited:?}"
    );

    // After the lease expires the standby leads, and is ready as the leader.
    cluster.wait_leader(standby).await;
    let (status, body) = readyz(strict).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "leader"));
}
