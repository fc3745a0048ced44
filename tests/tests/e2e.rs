//! End to end, the way a platform team would run it: `helm install` the chart into a
//! real control plane whose pods run as local processes (the pod runner), `helm test`,
//! `kubectl apply` a Show, book through the Show's Service (resolved from its
//! EndpointSlices) with live SSE, delete the leader pod, roll the shards with a changed
//! seating, `helm upgrade`, `helm uninstall`: no seat sold twice, no acknowledged
//! booking lost, and every acknowledged booking's event delivered, signed, to the
//! Show's own webhook and to the chart's default webhook, each with its own Secret.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boxoffice_crds::Show;
use boxoffice_e2e::pods::{Images, PodRunner, resolve_service};
use boxoffice_e2e::shard::{TEST_JWT_SECRET, confirm_until_answered, shard_binary, strings};
use boxoffice_e2e::tools::repo_root;
use boxoffice_e2e::webhook::{Receiver, new_key, whsec};
use boxoffice_e2e::{ControlPlane, EtcdOptions, EtcdServer, PostgresServer, token, wait_for};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

const SYSTEM: &str = "boxoffice-system";
const SHOWS: &str = "shows";

fn operator_binary() -> std::path::PathBuf {
    let path = shard_binary()
        .expect("binaries built")
        .with_file_name("boxoffice-operator");
    assert!(
        path.exists(),
        "{} missing: cargo build --workspace --bins",
        path.display()
    );
    path
}

async fn show(client: &Client) -> Option<Show> {
    Api::<Show>::namespaced(client.clone(), SHOWS)
        .get_opt("club-night")
        .await
        .ok()
        .flatten()
}

fn ready(show: &Show) -> bool {
    show.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Ready pods of the club's shard Deployment.
async fn shard_pods(client: &Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), SHOWS)
        .list(&ListParams::default().labels("boxoffice.dev/show=club-night"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect()
}

/// The club with its own webhook, signed with the key in Secret `club-webhook`.
fn with_webhook(club: &str, url: &str) -> String {
    format!(
        "{club}  events:\n    webhooks:\n      - url: {url}\n        \
         secretRef: {{name: club-webhook, key: whsec}}\n"
    )
}

/// What the booking client saw.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<(String, Vec<String>)>,
    attempts: u64,
    errors: u64,
}

/// Books through the Service: resolves its EndpointSlices, holds one seat, confirms one
/// hold in three and releases the others; re-resolves when an endpoint fails.
async fn book_until(client: Client, seen: Arc<Mutex<Seen>>, stop: CancellationToken) {
    let http = reqwest::Client::new();
    let mut n = 0u64;
    while !stop.is_cancelled() {
        n += 1;
        let target = resolve_service(&client, SHOWS, "club-night", Some("http"))
            .await
            .ok()
            .flatten();
        let Some(target) = target else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let urls = target.urls();
        let base = format!("{}/v1/shows/club-night", urls[(n as usize) % urls.len()]);
        let user = format!("fan-{}", n % 50);
        let auth = token(&user, &[]);
        seen.lock().expect("seen").attempts += 1;
        let held = http
            .post(format!("{base}/holds"))
            .bearer_auth(&auth)
            .json(&json!({"best": {"quantity": 1}}))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let hold: Value = match held {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
            Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            _ => {
                seen.lock().expect("seen").errors += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let id = hold["id"].as_str().unwrap_or_default().to_string();
        let seats = strings(&hold["seats"]);
        if n.is_multiple_of(3) {
            // Confirm until answered: confirming a hold twice yields one booking.
            let booking =
                confirm_until_answered(&http, &base, &auth, &id, 20, Duration::from_millis(300))
                    .await;
            if let Some(b) = booking {
                let reference = b["reference"].as_str().unwrap_or_default().to_string();
                seen.lock()
                    .expect("seen")
                    .acknowledged
                    .push((reference, seats));
            }
        } else {
            let _ = http
                .delete(format!("{base}/holds/{id}"))
                .bearer_auth(&auth)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_book_fail_over_roll_upgrade_uninstall() {
    if let Err(why) = boxoffice_e2e::pods::can_add_pod_addresses() {
        // Without CAP_NET_ADMIN pods cannot get addresses of their own; say so loudly
        // rather than fail every other test with it.
        eprintln!("SKIPPED helm_install_book_fail_over_roll_upgrade_uninstall: {why}");
        return;
    }
    let plane = ControlPlane::start().await.expect("control plane");
    let client = plane.client().await.expect("client");
    let images = Images {
        binaries: vec![
            ("boxoffice-operator".into(), operator_binary()),
            ("booking-shard".into(), shard_binary().expect("shard")),
        ],
        host: vec!["busybox".into()],
    };
    let runner = PodRunner::start(&plane, 3, images)
        .await
        .expect("pod runner");
    let etcd = EtcdServer::start(EtcdOptions {
        name: "e2e-shard-etcd".into(),
        unsafe_no_fsync: true,
        ..Default::default()
    })
    .await
    .expect("etcd");
    let db_url = PostgresServer::shared()
        .await
        .expect("postgres")
        .create_database()
        .await
        .expect("database");
    let fail = |what: &str| -> String {
        format!(
            "{what}\n{}\n{}\n{}",
            runner.logs(""),
            plane.logs(),
            plane
                .kubectl_run(&[
                    "get",
                    "pods,deploy,endpointslices,shows",
                    "-A",
                    "-o",
                    "wide"
                ])
                .map(|(_, o, e)| format!("{o}{e}"))
                .unwrap_or_default()
        )
    };

    // Two webhook endpoints, each verifying with its own key: the Show's own and the
    // chart's default for every Show.
    let (show_key, default_key) = (new_key(), new_key());
    let show_hook = Receiver::start(&show_key).await;
    let default_hook = Receiver::start(&default_key).await;

    // Namespaces and the shards' Secrets (the chart points shards at them by name).
    for ns in [SYSTEM, SHOWS] {
        let (ok, _, err) = plane.kubectl_run(&["create", "namespace", ns]).unwrap();
        assert!(ok, "{err}");
    }
    let (show_secret, default_secret) = (whsec(&show_key), whsec(&default_key));
    for (name, key, value) in [
        ("boxoffice-database", "url", db_url.as_str()),
        ("boxoffice-jwt", "secret", TEST_JWT_SECRET),
        ("club-webhook", "whsec", show_secret.as_str()),
        ("boxoffice-events", "whsec", default_secret.as_str()),
    ] {
        let (ok, _, err) = plane
            .kubectl_run(&[
                "create",
                "secret",
                "generic",
                name,
                "-n",
                SHOWS,
                &format!("--from-literal={key}={value}"),
            ])
            .unwrap();
        assert!(ok, "{err}");
    }

    // helm install: the operator runs as a pod under the chart's ServiceAccount.
    let etcd_values = format!("shard.etcdEndpoints={{{}}}", etcd.endpoint());
    let default_webhook = format!(
        "events.webhooks[0].url={},events.webhooks[0].secretName=boxoffice-events,\
         events.webhooks[0].secretKey=whsec",
        default_hook.url
    );
    let install = [
        "install",
        "boxoffice",
        "charts/boxoffice",
        "-n",
        SYSTEM,
        "--set",
        "image.repository=boxoffice-operator",
        "--set",
        "image.tag=dev",
        "--set",
        "shard.image=booking-shard:dev",
        "--set",
        &etcd_values,
        "--set",
        "statusIntervalSeconds=2",
        "--set",
        "logFormat=text",
        "--set",
        &default_webhook,
        "--wait",
        "--timeout",
        "3m",
    ];
    let (ok, out) = plane.helm(&install);
    assert!(ok, "{}", fail(&format!("helm install: {out}")));
    let operator_pods = Api::<Pod>::namespaced(client.clone(), SYSTEM)
        .list(&ListParams::default().labels("app.kubernetes.io/name=boxoffice-operator"))
        .await
        .unwrap()
        .items;
    assert_eq!(operator_pods.len(), 1, "operator pods: {operator_pods:?}");
    let operator_pod = operator_pods[0].name_any();
    assert_eq!(
        operator_pods[0]
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref()),
        Some("boxoffice"),
        "the operator runs under the chart's ServiceAccount"
    );

    // helm test: the test pod reaches the operator through its Service.
    let (ok, out) = plane.helm(&["test", "boxoffice", "-n", SYSTEM, "--timeout", "2m"]);
    assert!(ok, "{}", fail(&format!("helm test: {out}")));
    assert!(out.contains("Succeeded"), "helm test: {out}");

    // kubectl apply a Show with its own webhook: shard pods run, one leads, Ready with
    // counts.
    let club = std::fs::read_to_string(repo_root().join("examples/shows/club.yaml")).unwrap();
    let (ok, _, err) = plane
        .kubectl_stdin(
            &["apply", "-n", SHOWS, "-f", "-"],
            &with_webhook(&club, &show_hook.url),
        )
        .unwrap();
    assert!(ok, "{err}");
    let c = client.clone();
    let first = wait_for(
        "the club to be Ready with counts",
        Duration::from_secs(120),
        || {
            let c = c.clone();
            async move {
                Ok(show(&c).await.filter(|s| {
                    ready(s)
                        && s.status
                            .as_ref()
                            .and_then(|st| st.inventory.as_ref())
                            .is_some_and(|i| i.total == 40)
                }))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{}", fail(&format!("{e:#}"))));
    let first_leader = first
        .status
        .as_ref()
        .and_then(|s| s.leader.clone())
        .expect("leader");
    // The Show is Ready once its leader answers the operator; the pods' own Ready
    // conditions follow at their next readiness probe.
    wait_for("two shard pods Ready", Duration::from_secs(30), || {
        let client = client.clone();
        async move { Ok((shard_pods(&client).await.len() == 2).then_some(())) }
    })
    .await
    .unwrap_or_else(|e| panic!("{}", fail(&format!("{e:#}"))));

    // SSE through the Service: a seat change arrives as an event.
    let target = resolve_service(&client, SHOWS, "club-night", Some("http"))
        .await
        .unwrap()
        .expect("the Service has ready endpoints");
    let events = reqwest::Client::new()
        .get(format!("{}/v1/shows/club-night/events", target.url()))
        .bearer_auth(token("watcher", &[]))
        .send()
        .await
        .expect("events stream");
    assert!(events.status().is_success());
    let mut stream = events.bytes_stream();

    // Book continuously through the Service for the rest of the test.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = CancellationToken::new();
    let booker = tokio::spawn(book_until(client.clone(), seen.clone(), stop.clone()));
    let mut text = String::new();
    let sse = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap_or_default()));
            if text.contains("event: seats") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(sse, "no seat event over SSE: {text}");

    // A bigger room: a changed seating rolls the shards while clients book.
    let bigger = with_webhook(
        &club.replace("names: \"A-D\"", "names: \"A-Z\""),
        &show_hook.url,
    );
    assert!(bigger.contains("A-Z"));
    let (ok, _, err) = plane
        .kubectl_stdin(&["apply", "-n", SHOWS, "-f", "-"], &bigger)
        .unwrap();
    assert!(ok, "{err}");
    let c = client.clone();
    wait_for(
        "the shards to roll to 260 seats",
        Duration::from_secs(180),
        || {
            let c = c.clone();
            async move {
                let d = Api::<Deployment>::namespaced(c.clone(), SHOWS)
                    .get("club-night-shard")
                    .await?;
                let st = d.status.clone().unwrap_or_default();
                let rolled = st.observed_generation >= d.metadata.generation
                    && st.updated_replicas == Some(2)
                    && st.ready_replicas == Some(2)
                    && st.replicas == Some(2);
                let counted = show(&c).await.is_some_and(|s| {
                    ready(&s)
                        && s.status
                            .as_ref()
                            .and_then(|st| st.inventory.as_ref())
                            .is_some_and(|i| i.total == 260)
                });
                Ok((rolled && counted).then_some(()))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{}", fail(&format!("{e:#}"))));

    // kubectl delete pod <leader>: a standby takes over, the Deployment replaces it.
    let leader = show(&client)
        .await
        .and_then(|s| s.status?.leader)
        .expect("leader");
    let before = seen.lock().expect("seen").acknowledged.len();
    let (ok, _, err) = plane
        .kubectl_run(&["delete", "pod", "-n", SHOWS, &leader, "--wait=false"])
        .unwrap();
    assert!(ok, "{err}");
    let c = client.clone();
    let l = leader.clone();
    wait_for(
        "a new leader and two ready pods",
        Duration::from_secs(120),
        || {
            let (c, l) = (c.clone(), l.clone());
            async move {
                let s = show(&c).await;
                let new_leader = s
                    .as_ref()
                    .and_then(|s| s.status.as_ref()?.leader.clone())
                    .filter(|x| *x != l);
                let pods = shard_pods(&c).await;
                Ok((new_leader.is_some()
                    && pods.len() == 2
                    && pods.iter().all(|p| p.name_any() != l))
                .then_some(()))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{}", fail(&format!("{e:#}"))));
    // The client keeps booking after the failover.
    let s2 = seen.clone();
    wait_for(
        "bookings after the failover",
        Duration::from_secs(60),
        || {
            let s2 = s2.clone();
            async move { Ok((s2.lock().expect("seen").acknowledged.len() >= before + 3).then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{}", fail(&format!("{e:#}"))));
    stop.cancel();
    booker.await.unwrap();

    // Every acknowledged booking is in PostgreSQL, with its seats, and no seat twice.
    let (acknowledged, attempts, errors) = {
        let s = seen.lock().expect("seen");
        (s.acknowledged.clone(), s.attempts, s.errors)
    };
    println!(
        "e2e: {attempts} hold attempts, {errors} errors, {} acknowledged bookings; first leader {first_leader}, deleted {leader}",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= 5,
        "too few bookings: {}",
        acknowledged.len()
    );
    let mut conn = sqlx::PgConnection::connect(&db_url).await.unwrap();
    for (reference, seats) in &acknowledged {
        let mut got: Vec<String> = sqlx::query_scalar(
            "SELECT s.seat FROM booking_seats s JOIN bookings b ON b.id = s.booking_id \
             WHERE b.reference = $1 AND b.status = 'confirmed'",
        )
        .bind(reference)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        got.sort();
        let mut want = seats.clone();
        want.sort();
        assert_eq!(got, want, "acknowledged booking {reference} in PostgreSQL");
    }
    let doubles: Vec<(String, i64)> = sqlx::query_as(
        "SELECT seat, count(*) FROM booking_seats WHERE status = 'confirmed' \
         GROUP BY seat HAVING count(*) > 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(doubles.is_empty(), "seats confirmed twice: {doubles:?}");
    let distinct: BTreeSet<&String> = acknowledged.iter().flat_map(|(_, s)| s).collect();
    assert_eq!(
        distinct.len(),
        acknowledged.iter().map(|(_, s)| s.len()).sum::<usize>()
    );

    // Every acknowledged booking's confirmed event reached both webhooks, across the
    // rollout and the failover, each delivery signed with that webhook's own Secret.
    let references: HashSet<String> = acknowledged.iter().map(|(r, _)| r.clone()).collect();
    for hook in [&show_hook, &default_hook] {
        hook.wait_for_confirmed(&references, Duration::from_secs(60))
            .await;
        let all = hook.deliveries();
        assert!(
            all.iter().all(|d| d.status == 204),
            "a delivery to {} did not verify: {:?}",
            hook.url,
            all.iter().find(|d| d.status != 204)
        );
        assert!(
            all.iter()
                .all(|d| d.event()["source"] == "/boxoffice/shows/club-night"),
            "{}",
            hook.url
        );
    }
    // The check can fail: the Show's delivery at the default endpoint (the other key)
    // and a changed body are refused. (The latest delivery: its timestamp is well within
    // the receiver's tolerance, so a refusal is the signature's.)
    let sample = show_hook.accepted().last().cloned().expect("a delivery");
    assert_eq!(
        default_hook.send(&sample).await,
        401,
        "another key's signature"
    );
    let mut tampered = sample.clone();
    tampered.body = String::from_utf8_lossy(&sample.body)
        .replacen("club-night", "club-nighT", 1)
        .into_bytes()
        .into();
    assert_ne!(tampered.body, sample.body);
    assert_eq!(show_hook.send(&tampered).await, 401, "a changed body");
    assert_eq!(show_hook.send(&sample).await, 204, "the delivery as sent");
    println!(
        "e2e: {} and {} deliveries at the Show's and the default webhook",
        show_hook.deliveries().len(),
        default_hook.deliveries().len()
    );

    // helm upgrade with a changed value rolls the operator.
    let (ok, out) = plane.helm(&[
        "upgrade",
        "boxoffice",
        "charts/boxoffice",
        "-n",
        SYSTEM,
        "--reuse-values",
        "--set",
        "statusIntervalSeconds=3",
        "--wait",
        "--timeout",
        "3m",
    ]);
    assert!(ok, "{}", fail(&format!("helm upgrade: {out}")));
    let c = client.clone();
    let old = operator_pod.clone();
    wait_for("a new operator pod", Duration::from_secs(60), || {
        let (c, old) = (c.clone(), old.clone());
        async move {
            let pods = Api::<Pod>::namespaced(c, SYSTEM)
                .list(&ListParams::default().labels("app.kubernetes.io/name=boxoffice-operator"))
                .await?
                .items;
            Ok((pods.len() == 1 && pods[0].name_any() != old).then_some(()))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{}", fail(&format!("{e:#}"))));

    // helm uninstall leaves the CRD, the Shows and the bookings.
    let (ok, out) = plane.helm(&["uninstall", "boxoffice", "-n", SYSTEM, "--wait"]);
    assert!(ok, "helm uninstall: {out}");
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt("shows.boxoffice.dev")
        .await
        .unwrap();
    assert!(crd.is_some(), "helm uninstall removed the CRD");
    assert!(show(&client).await.is_some(), "the Show is gone");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM bookings WHERE status = 'confirmed'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(count as usize >= acknowledged.len());
    // Leave nothing running: the Show's finalizer needs the (uninstalled) operator, so
    // the test ends with the pods still present; the runner kills them on drop.
    let _ = Api::<Pod>::namespaced(client.clone(), SHOWS)
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
}
