//! The operator against a real control plane: owned objects, status from a real shard
//! leader, rollouts on seating changes, self-healing, Degraded on a missing Secret (the
//! database's, a webhook's), the finalizer closing sales while bookings stay, Shows
//! refused for images and etcd endpoints the operator does not allow, and the chart's
//! RBAC (cluster-wide, and per namespace with watchNamespaces).

use std::collections::BTreeMap;
use std::time::Duration;

use boxoffice_crds::Show;
use boxoffice_e2e::shard::{TEST_JWT_SECRET, shard_binary};
use boxoffice_e2e::tools::repo_root;
use boxoffice_e2e::{
    ControlPlane, EtcdOptions, EtcdServer, PostgresServer, ShardOptions, ShardProcess, token,
    wait_for,
};
use boxoffice_operator::config::Config;
use clap::Parser;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sqlx::Connection;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

struct Shared {
    plane: ControlPlane,
    etcd: EtcdServer,
}

async fn shared() -> &'static Shared {
    static SHARED: OnceCell<Shared> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let plane = ControlPlane::start().await.expect("control plane");
            plane.install_show_crd().await.expect("CRD");
            let etcd = EtcdServer::start(EtcdOptions {
                name: "shard-etcd".into(),
                unsafe_no_fsync: true,
                ..Default::default()
            })
            .await
            .expect("etcd");
            Shared { plane, etcd }
        })
        .await
}

/// A namespace for one test, with an operator that watches only it.
struct Fixture {
    plane: &'static ControlPlane,
    client: Client,
    ns: String,
    db_url: String,
    operator: CancellationToken,
    dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.operator.cancel();
    }
}

async fn fixture(ns: &str, with_secrets: bool) -> Fixture {
    fixture_with(ns, with_secrets, &[]).await
}

/// A fixture whose operator gets `extra` flags.
async fn fixture_with(ns: &str, with_secrets: bool, extra: &[&str]) -> Fixture {
    let shared = shared().await;
    let client = shared.plane.client().await.expect("client");
    create_namespace(&client, ns).await;
    let db_url = PostgresServer::shared()
        .await
        .expect("pg")
        .create_database()
        .await
        .expect("db");
    if with_secrets {
        create_secrets(&client, ns, &db_url).await;
    }
    let etcd = shared.etcd.endpoint();
    let mut args = vec![
        "boxoffice-operator",
        "--etcd",
        &etcd,
        "--watch-namespaces",
        ns,
        "--admin-listen",
        "127.0.0.1:0",
        "--status-interval",
        "1",
        "--shard-image",
        "boxoffice/booking-shard:test",
    ];
    args.extend_from_slice(extra);
    let config = Config::parse_from(args);
    let operator = CancellationToken::new();
    tokio::spawn(boxoffice_operator::run(
        client.clone(),
        config,
        operator.clone(),
    ));
    Fixture {
        plane: &shared.plane,
        client,
        ns: ns.into(),
        db_url,
        operator,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

async fn create_namespace(client: &Client, ns: &str) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"),
        )
        .await
        .expect("namespace");
}

async fn create_secrets(client: &Client, ns: &str, db_url: &str) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for (name, key, value) in [
        ("boxoffice-database", "url", db_url),
        ("boxoffice-jwt", "secret", TEST_JWT_SECRET),
    ] {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Default::default()
        };
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
    }
}

fn kubectl_apply(f: &Fixture, file: &str) {
    let path = repo_root().join(file).display().to_string();
    let (ok, _, err) = f
        .plane
        .kubectl_run(&["apply", "-n", &f.ns, "-f", &path])
        .expect("kubectl");
    assert!(ok, "{err}");
}

async fn get<K>(client: &Client, ns: &str, name: &str) -> Option<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

async fn wait_show<T>(
    f: &Fixture,
    name: &str,
    what: &str,
    check: impl Fn(&Show) -> Option<T>,
) -> T {
    let api: Api<Show> = Api::namespaced(f.client.clone(), &f.ns);
    wait_for(what, Duration::from_secs(60), || {
        let api = api.clone();
        let check = &check;
        async move { Ok(api.get_opt(name).await?.as_ref().and_then(check)) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", f.plane.logs()))
}

fn condition(show: &Show, type_: &str) -> Option<(String, String, String)> {
    show.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Starts shard processes for a Show from the ConfigMap the operator wrote (what the
/// pods would mount).
async fn start_shards(f: &Fixture, show: &str, n: usize) -> Vec<ShardProcess> {
    let cm: ConfigMap = wait_for("the shard ConfigMap", Duration::from_secs(30), || async {
        Ok(get::<ConfigMap>(&f.client, &f.ns, &format!("{show}-shard-config")).await)
    })
    .await
    .expect("configmap");
    let file = f.dir.path().join(format!("{show}.json"));
    std::fs::write(&file, &cm.data.expect("data")["show.json"]).expect("write");
    let options = ShardOptions {
        binary: shard_binary().expect("shard binary"),
        show_file: file,
        etcd: shared().await.etcd.endpoint(),
        database_url: f.db_url.clone(),
        lease_ttl: 2,
        hold_ttl_seconds: None,
        extra_env: vec![],
    };
    let mut shards = Vec::new();
    for i in 0..n {
        shards.push(
            ShardProcess::start(&format!("{show}-shard-{i}"), &options, f.dir.path())
                .await
                .expect("shard"),
        );
    }
    shards
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn theatre_gets_its_objects_and_becomes_ready_with_counts() {
    let f = fixture("op-theatre", true).await;
    kubectl_apply(&f, "examples/shows/theatre.yaml");
    let name = "hamlet-opening";

    let show = wait_show(&f, name, "status Progressing", |s| {
        let (status, _, _) = condition(s, "Progressing")?;
        (status == "True").then(|| s.clone())
    })
    .await;
    let uid = show.uid().expect("uid");
    assert_eq!(
        show.status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .as_deref(),
        Some("Provisioning")
    );
    assert!(
        show.finalizers()
            .iter()
            .any(|f| f == "boxoffice.dev/close-sales")
    );

    let owned_by_show =
        |refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]| {
            refs.iter()
                .any(|o| o.uid == uid && o.kind == "Show" && o.controller == Some(true))
        };
    let d: Deployment = get(&f.client, &f.ns, "hamlet-opening-shard")
        .await
        .expect("deployment");
    assert!(owned_by_show(d.owner_references()));
    assert_eq!(d.labels()["boxoffice.dev/show"], name);
    let template = d.spec.as_ref().expect("spec").template.clone();
    let annotations = template
        .metadata
        .and_then(|m| m.annotations)
        .expect("annotations");
    assert_eq!(annotations["boxoffice.dev/config-hash"].len(), 16);
    let c = &template.spec.expect("pod").containers[0];
    assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some());
    assert_eq!(c.image.as_deref(), Some("boxoffice/booking-shard:test"));
    let svc: Service = get(&f.client, &f.ns, name).await.expect("service");
    assert!(owned_by_show(svc.owner_references()));
    let pdb: PodDisruptionBudget = get(&f.client, &f.ns, "hamlet-opening-shard")
        .await
        .expect("pdb");
    assert!(owned_by_show(pdb.owner_references()));
    let cm: ConfigMap = get(&f.client, &f.ns, "hamlet-opening-shard-config")
        .await
        .expect("configmap");
    assert!(owned_by_show(cm.owner_references()));
    // The NetworkPolicy guards exactly the Deployment's pods: the API port from the
    // show's own pods and the operator's namespace (no gateway labels configured here),
    // nothing on the metrics port (no scrapers configured).
    let np: NetworkPolicy = get(&f.client, &f.ns, "hamlet-opening-shard")
        .await
        .expect("networkpolicy");
    assert!(owned_by_show(np.owner_references()));
    let np_spec = np.spec.expect("spec");
    let d_selector = d.spec.as_ref().expect("spec").selector.clone();
    assert_eq!(np_spec.pod_selector.as_ref(), Some(&d_selector));
    assert_eq!(np_spec.policy_types, Some(vec!["Ingress".to_string()]));
    let rules = np_spec.ingress.expect("ingress");
    assert_eq!(rules.len(), 1, "{rules:?}");
    let ports: Vec<_> = rules[0]
        .ports
        .iter()
        .flatten()
        .map(|p| (p.protocol.clone(), p.port.clone()))
        .collect();
    assert_eq!(
        ports,
        [(Some("TCP".to_string()), Some(IntOrString::Int(8080)))]
    );
    let from = rules[0].from.clone().expect("from");
    assert_eq!(from.len(), 2, "{from:?}");
    assert_eq!(from[0].pod_selector.as_ref(), Some(&d_selector));
    assert!(from[0].namespace_selector.is_none());
    assert_eq!(
        from[1]
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone()),
        Some(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_string(),
            "boxoffice-system".to_string()
        )]))
    );
    assert!(from[1].pod_selector.is_none());

    // Shards (run as processes here) elect a leader; the operator sees it in etcd.
    let shards = start_shards(&f, name, 2).await;
    let show = wait_show(&f, name, "Ready with a leader", |s| {
        let (status, _, _) = condition(s, "Ready")?;
        (status == "True").then(|| s.clone())
    })
    .await;
    let status = show.status.expect("status");
    let leader = status.leader.clone().expect("leader");
    assert!(shards.iter().any(|s| s.name == leader), "{leader}");
    let inventory = status.inventory.expect("inventory");
    assert_eq!(inventory.total, 1512);
    assert_eq!(inventory.available, 1512);
    assert_eq!(status.phase.as_deref(), Some("OnSale"));
    assert_eq!(
        status.endpoint.as_deref(),
        Some("http://hamlet-opening.op-theatre.svc/v1/shows/hamlet-opening")
    );

    // Sell two seats; the counts follow.
    let http = reqwest::Client::new();
    let base = format!("{}/v1/shows/{name}", shards[0].url);
    let hold: serde_json::Value = http
        .post(format!("{base}/holds"))
        .bearer_auth(token("ann", &[]))
        .json(&json!({"seats": ["stalls:A:1", "stalls:A:2"]}))
        .send()
        .await
        .expect("hold")
        .json()
        .await
        .expect("json");
    let id = hold["id"].as_str().expect("hold id");
    let resp = http
        .post(format!("{base}/holds/{id}/confirm"))
        .bearer_auth(token("ann", &[]))
        .json(&json!({"paymentReference": "p"}))
        .send()
        .await
        .expect("confirm");
    assert_eq!(resp.status(), 201);
    wait_show(&f, name, "sold count 2", |s| {
        (s.status.as_ref()?.inventory?.sold == 2).then_some(())
    })
    .await;

    let (ok, out, err) = f
        .plane
        .kubectl_run(&["get", "shows", "-n", &f.ns])
        .expect("kubectl");
    assert!(ok, "{err}");
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..5],
        [name, "True", leader.as_str(), "1510", "2"],
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seating_changes_roll_the_shard_and_title_changes_do_not() {
    let f = fixture("op-rollout", true).await;
    kubectl_apply(&f, "examples/shows/club.yaml");
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns);
    let hash_of = |d: &Deployment| {
        d.spec
            .as_ref()?
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get("boxoffice.dev/config-hash")
            .cloned()
    };
    let first = wait_for("the deployment", Duration::from_secs(30), || async {
        Ok(deployments
            .get_opt("club-night-shard")
            .await?
            .as_ref()
            .and_then(hash_of))
    })
    .await
    .expect("deployment");
    let shows: Api<Show> = Api::namespaced(f.client.clone(), &f.ns);
    let patch = |value: serde_json::Value| {
        let shows = shows.clone();
        async move {
            shows
                .patch("club-night", &PatchParams::default(), &Patch::Merge(value))
                .await
                .expect("patch")
        }
    };

    patch(json!({"spec": {"title": "Late Set — Extended"}})).await;
    wait_for(
        "the ConfigMap to carry the new title",
        Duration::from_secs(30),
        || async {
            let cm = get::<ConfigMap>(&f.client, &f.ns, "club-night-shard-config").await;
            Ok(cm
                .and_then(|c| c.data)
                .is_some_and(|d| d["show.json"].contains("Extended"))
                .then_some(()))
        },
    )
    .await
    .expect("title in the ConfigMap");
    let after_title = deployments.get("club-night-shard").await.expect("get");
    assert_eq!(
        hash_of(&after_title).as_ref(),
        Some(&first),
        "a title change must not roll the shard"
    );

    patch(json!({"spec": {"seating": {"sections": [{"name": "floor", "category": "standard", "rows": [{"names": "A-E", "seats": 10}]}]}}})).await;
    let second = wait_for("a new config hash", Duration::from_secs(30), || async {
        let d = deployments.get("club-night-shard").await?;
        Ok(hash_of(&d).filter(|h| *h != first))
    })
    .await
    .expect("rolled");
    assert_ne!(second, first);
    let cm = get::<ConfigMap>(&f.client, &f.ns, "club-night-shard-config")
        .await
        .expect("cm");
    assert!(cm.data.expect("data")["show.json"].contains("A-E"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_children_come_back() {
    let f = fixture("op-heal", true).await;
    kubectl_apply(&f, "examples/shows/club.yaml");
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns);
    let services: Api<Service> = Api::namespaced(f.client.clone(), &f.ns);
    // The operator applies its objects one after another: wait for both.
    let (d, s) = wait_for(
        "the Deployment and the Service",
        Duration::from_secs(30),
        || async {
            let d = deployments.get_opt("club-night-shard").await?;
            let s = services.get_opt("club-night").await?;
            Ok(d.zip(s))
        },
    )
    .await
    .expect("deployment and service");
    deployments
        .delete("club-night-shard", &DeleteParams::default())
        .await
        .expect("delete");
    services
        .delete("club-night", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for(
        "a new Deployment and Service",
        Duration::from_secs(30),
        || async {
            let d2 = deployments.get_opt("club-night-shard").await?;
            let s2 = services.get_opt("club-night").await?;
            Ok(match (d2, s2) {
                (Some(d2), Some(s2)) if d2.uid() != d.uid() && s2.uid() != s.uid() => Some(()),
                _ => None,
            })
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_is_degraded_until_it_appears() {
    let f = fixture("op-secret", false).await;
    kubectl_apply(&f, "examples/shows/club.yaml");
    let (_, reason, message) = wait_show(&f, "club-night", "Degraded", |s| {
        let c = condition(s, "Degraded")?;
        (c.0 == "True").then_some(c)
    })
    .await;
    assert_eq!(reason, "SecretMissing");
    assert!(
        message.contains("Secret op-secret/boxoffice-database (database URL) not found"),
        "{message}"
    );
    let show: Show = Api::namespaced(f.client.clone(), &f.ns)
        .get("club-night")
        .await
        .expect("show");
    assert_eq!(
        show.status.and_then(|s| s.phase).as_deref(),
        Some("Degraded")
    );

    create_secrets(&f.client, &f.ns, &f.db_url).await;
    wait_show(&f, "club-night", "Degraded cleared", |s| {
        let c = condition(s, "Degraded")?;
        (c.0 == "False").then_some(())
    })
    .await;

    // A Show whose webhook's signing Secret is not there: Degraded naming it, with an
    // Event, until it appears (its pods would wait for the volume, never crash-loop
    // silently). Another Show, as the Recorder folds a repeated reason for one object
    // into the first Event's series, keeping that Event's note.
    let club = std::fs::read_to_string(repo_root().join("examples/shows/club.yaml")).unwrap();
    let mut hooked: Show = serde_yaml::from_str(&club).expect("club");
    hooked.metadata.name = Some("club-hooked".into());
    hooked.spec.events = Some(boxoffice_crds::EventSinks {
        webhooks: vec![boxoffice_crds::WebhookSink {
            url: "https://hooks.example/club".into(),
            secret_ref: boxoffice_crds::SecretKeyRef {
                name: "club-hooks".into(),
                key: "whsec".into(),
            },
        }],
        kafka: None,
    });
    Api::<Show>::namespaced(f.client.clone(), &f.ns)
        .create(&PostParams::default(), &hooked)
        .await
        .expect("create");
    let (_, reason, message) = wait_show(&f, "club-hooked", "Degraded by the webhook", |s| {
        let c = condition(s, "Degraded")?;
        (c.0 == "True").then_some(c)
    })
    .await;
    assert_eq!(reason, "SecretMissing");
    let missing = "Secret op-secret/club-hooks (signing secret of webhook https://hooks.example/club) not found";
    assert_eq!(message, missing);
    let note = wait_warning(&f.client, &f.ns, "club-hooked", "SecretMissing").await;
    assert_eq!(note, missing);
    let d: Deployment = get(&f.client, &f.ns, "club-hooked-shard")
        .await
        .expect("deployment");
    let pod = d.spec.and_then(|s| s.template.spec).expect("pod");
    assert!(
        pod.volumes.iter().flatten().any(|v| v
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref())
            == Some("club-hooks")),
        "the webhook's Secret is mounted"
    );
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("club-hooks".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "whsec".to_string(),
            ByteString(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_vec()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(f.client.clone(), &f.ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    wait_show(&f, "club-hooked", "Degraded cleared", |s| {
        let c = condition(s, "Degraded")?;
        (c.0 == "False").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_show_closes_sales_and_keeps_bookings() {
    let f = fixture("op-delete", true).await;
    kubectl_apply(&f, "examples/shows/club.yaml");
    let shards = start_shards(&f, "club-night", 1).await;
    wait_show(&f, "club-night", "Ready", |s| {
        (condition(s, "Ready")?.0 == "True").then_some(())
    })
    .await;
    let http = reqwest::Client::new();
    let base = format!("{}/v1/shows/club-night", shards[0].url);
    let hold: serde_json::Value = http
        .post(format!("{base}/holds"))
        .bearer_auth(token("ann", &[]))
        .json(&json!({"best": {"quantity": 2}}))
        .send()
        .await
        .expect("hold")
        .json()
        .await
        .expect("json");
    let id = hold["id"].as_str().expect("id");
    let booking: serde_json::Value = http
        .post(format!("{base}/holds/{id}/confirm"))
        .bearer_auth(token("ann", &[]))
        .json(&json!({"paymentReference": "p"}))
        .send()
        .await
        .expect("confirm")
        .json()
        .await
        .expect("json");
    let reference = booking["reference"]
        .as_str()
        .expect("reference")
        .to_string();

    let shows: Api<Show> = Api::namespaced(f.client.clone(), &f.ns);
    shows
        .delete("club-night", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("the Show to be gone", Duration::from_secs(60), || async {
        Ok(shows.get_opt("club-night").await?.is_none().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns);
    wait_for(
        "the garbage collector to remove the Deployment",
        Duration::from_secs(60),
        || async {
            Ok(deployments
                .get_opt("club-night-shard")
                .await?
                .is_none()
                .then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));

    let mut db = sqlx::PgConnection::connect(&f.db_url).await.expect("db");
    let closed: bool = sqlx::query_scalar(
        "SELECT closed_at IS NOT NULL FROM shows WHERE show = 'op-delete/club-night'",
    )
    .fetch_one(&mut db)
    .await
    .expect("shows row");
    assert!(closed, "sales were not closed");
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bookings WHERE reference = $1 AND status = 'confirmed'",
    )
    .bind(&reference)
    .fetch_one(&mut db)
    .await
    .expect("query");
    assert_eq!(kept, 1, "the booking must survive the Show");
    // The running shard notices and refuses new holds.
    wait_for(
        "the shard to close sales",
        Duration::from_secs(15),
        || async {
            let r = http
                .post(format!("{base}/holds"))
                .bearer_auth(token("bob", &[]))
                .json(&json!({"best": {"quantity": 1}}))
                .send()
                .await?;
            Ok((r.status() == 409).then_some(()))
        },
    )
    .await
    .expect("sales closed in the shard");
}

async fn metric(http: &reqwest::Client, port: u16, name: &str) -> Option<f64> {
    boxoffice_e2e::shard::scrape_metric(http, &format!("http://127.0.0.1:{port}/metrics"), name)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_one_leader_and_takeover_after_a_crash() {
    let shared = shared().await;
    let client = shared.plane.client().await.expect("client");
    let ns = "op-election";
    create_namespace(&client, ns).await;
    let start = |identity: &str, port: u16| {
        let config = Config::parse_from([
            "boxoffice-operator",
            "--etcd",
            &shared.etcd.endpoint(),
            "--watch-namespaces",
            ns,
            "--admin-listen",
            &format!("127.0.0.1:{port}"),
            "--leader-election",
            "--lease-namespace",
            ns,
            "--identity",
            identity,
        ]);
        tokio::spawn(boxoffice_operator::run(
            client.clone(),
            config,
            CancellationToken::new(),
        ))
    };
    let (pa, pb) = (
        boxoffice_e2e::free_port().expect("port"),
        boxoffice_e2e::free_port().expect("port"),
    );
    let a = start("operator-a", pa);
    let b = start("operator-b", pb);
    let http = reqwest::Client::new();
    let leaders = || async {
        (
            metric(&http, pa, "boxoffice_operator_leader")
                .await
                .unwrap_or(-1.0),
            metric(&http, pb, "boxoffice_operator_leader")
                .await
                .unwrap_or(-1.0),
        )
    };
    let (la, lb) = wait_for("one operator to lead", Duration::from_secs(30), || async {
        let (la, lb) = leaders().await;
        Ok((la + lb == 1.0 && la >= 0.0 && lb >= 0.0).then_some((la, lb)))
    })
    .await
    .expect("a leader");
    let (leader, leader_port, follower_port, leader_task, follower_task) = if la == 1.0 {
        ("operator-a", pa, pb, a, b)
    } else {
        ("operator-b", pb, pa, b, a)
    };
    let _ = lb;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), ns);
    let lease = leases.get("boxoffice-operator").await.expect("lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some(leader)
    );

    // Only the leader reconciles.
    let shows: Api<Show> = Api::namespaced(client.clone(), ns);
    let club = std::fs::read_to_string(repo_root().join("examples/shows/club.yaml")).expect("club");
    let show: Show = serde_yaml::from_str(&club).expect("show");
    shows
        .create(&PostParams::default(), &show)
        .await
        .expect("create");
    wait_for(
        "the leader to reconcile",
        Duration::from_secs(30),
        || async {
            Ok(
                (metric(&http, leader_port, "boxoffice_operator_reconciles_total")
                    .await
                    .unwrap_or(0.0)
                    > 0.0)
                    .then_some(()),
            )
        },
    )
    .await
    .expect("reconciled");
    assert_eq!(
        metric(&http, follower_port, "boxoffice_operator_reconciles_total").await,
        Some(0.0)
    );

    // The leader crashes (no clean release); the other takes over when the Lease expires.
    leader_task.abort();
    let _ = leader_task.await;
    wait_for(
        "the follower to take over",
        Duration::from_secs(60),
        || async {
            Ok(
                (metric(&http, follower_port, "boxoffice_operator_leader").await == Some(1.0))
                    .then_some(()),
            )
        },
    )
    .await
    .expect("takeover");
    shows
        .patch(
            "club-night",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"title": "After the takeover"}})),
        )
        .await
        .expect("patch");
    wait_for(
        "the new leader to reconcile",
        Duration::from_secs(30),
        || async {
            let cm = get::<ConfigMap>(&client, ns, "club-night-shard-config").await;
            Ok(cm
                .and_then(|c| c.data)
                .is_some_and(|d| d["show.json"].contains("After the takeover"))
                .then_some(()))
        },
    )
    .await
    .expect("reconciled by the new leader");
    follower_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_needs_only_the_charts_rbac() {
    let shared = shared().await;
    let plane = &shared.plane;
    let admin = plane.client().await.expect("client");
    for ns in ["boxoffice-system", "op-rbac"] {
        create_namespace(&admin, ns).await;
    }
    let db_url = PostgresServer::shared()
        .await
        .expect("pg")
        .create_database()
        .await
        .expect("db");
    create_secrets(&admin, "op-rbac", &db_url).await;

    // The chart's ServiceAccount and RBAC, exactly as `helm install` would create them.
    let rendered = std::process::Command::new(boxoffice_e2e::tools::tool("helm").expect("helm"))
        .args(["template", "boxoffice"])
        .arg(repo_root().join("charts/boxoffice"))
        .args([
            "--namespace",
            "boxoffice-system",
            "--kube-version",
            "1.33.13",
        ])
        .args([
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/rbac.yaml",
        ])
        .output()
        .expect("helm template");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let (ok, _, err) = plane
        .kubectl_stdin(
            &["apply", "-n", "boxoffice-system", "-f", "-"],
            &String::from_utf8_lossy(&rendered.stdout),
        )
        .expect("kubectl");
    assert!(ok, "{err}");
    let (ok, token, err) = plane
        .kubectl_run(&[
            "create",
            "token",
            "boxoffice",
            "-n",
            "boxoffice-system",
            "--duration",
            "1h",
        ])
        .expect("kubectl");
    assert!(ok, "{err}");
    let client = plane
        .client_with_token(token.trim())
        .await
        .expect("SA client");

    // Least privilege: no listing Secrets, no touching Pods.
    let sa = "system:serviceaccount:boxoffice-system:boxoffice";
    for (verb, resource) in [
        ("list", "secrets"),
        ("watch", "secrets"),
        ("create", "pods"),
        ("delete", "deployments"),
    ] {
        let (_, out, _) = plane
            .kubectl_run(&["auth", "can-i", verb, resource, "-A", "--as", sa])
            .expect("kubectl");
        assert_eq!(out.trim(), "no", "{sa} may {verb} {resource}");
    }

    let config = Config::parse_from([
        "boxoffice-operator",
        "--etcd",
        &shared.etcd.endpoint(),
        "--watch-namespaces",
        "op-rbac",
        "--admin-listen",
        "127.0.0.1:0",
        "--leader-election",
        "--lease-namespace",
        "boxoffice-system",
        "--identity",
        "rbac-operator",
        "--status-interval",
        "1",
    ]);
    let stop = CancellationToken::new();
    let operator = tokio::spawn(boxoffice_operator::run(client, config, stop.clone()));

    let (ok, _, err) = plane
        .kubectl_run(&[
            "apply",
            "-n",
            "op-rbac",
            "-f",
            &repo_root()
                .join("examples/shows/club.yaml")
                .display()
                .to_string(),
        ])
        .expect("kubectl");
    assert!(ok, "{err}");
    let shows: Api<Show> = Api::namespaced(admin.clone(), "op-rbac");
    wait_for(
        "status written by the RBAC-limited operator",
        Duration::from_secs(60),
        || async {
            let show = shows.get("club-night").await?;
            Ok(show
                .status
                .and_then(|s| s.phase)
                .filter(|p| p == "Provisioning"))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", plane.logs()));
    for (kind, name) in [
        ("deployment", "club-night-shard"),
        ("service", "club-night"),
        ("configmap", "club-night-shard-config"),
        ("pdb", "club-night-shard"),
        ("networkpolicy", "club-night-shard"),
    ] {
        let (ok, _, err) = plane
            .kubectl_run(&["get", kind, name, "-n", "op-rbac"])
            .expect("kubectl");
        assert!(ok, "{kind}/{name}: {err}");
    }
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(admin.clone(), "op-rbac");
    wait_for("the Provisioned event", Duration::from_secs(30), || async {
        let list = events.list(&Default::default()).await?;
        Ok(list
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Provisioned"))
            .then_some(()))
    })
    .await
    .expect("event");

    // The finalizer runs with these rights too.
    shows
        .delete("club-night", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for(
        "the Show to be finalized",
        Duration::from_secs(60),
        || async { Ok(shows.get_opt("club-night").await?.is_none().then_some(())) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    stop.cancel();
    let _ = operator.await;
}

/// The club example as a Show object, changed by `edit`.
fn club_with(edit: impl FnOnce(&mut Show)) -> Show {
    let club = std::fs::read_to_string(repo_root().join("examples/shows/club.yaml")).expect("club");
    let mut show: Show = serde_yaml::from_str(&club).expect("show");
    edit(&mut show);
    show
}

/// Waits for a Warning Event with `reason` about Show `name`.
async fn wait_warning(client: &Client, ns: &str, name: &str, reason: &str) -> String {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("a {reason} Event"),
        Duration::from_secs(30),
        || async {
            let list = events.list(&Default::default()).await?;
            Ok(list.items.into_iter().find_map(|e| {
                (e.reason.as_deref() == Some(reason)
                    && e.type_.as_deref() == Some("Warning")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .then(|| e.note.unwrap_or_default())
            }))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"))
}

fn image_of(d: &Deployment) -> Option<String> {
    d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .image
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_show_may_not_choose_an_image_the_operator_does_not_allow() {
    let f = fixture_with(
        "op-image",
        true,
        &["--allowed-shard-images", "registry.example/boxoffice/"],
    )
    .await;
    let shows: Api<Show> = Api::namespaced(f.client.clone(), &f.ns);
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns);
    let refused = |image: &'static str| {
        move |s: &Show| {
            let (status, reason, message) = condition(s, "Degraded")?;
            (status == "True" && reason == "ImageNotAllowed" && message.contains(image))
                .then(|| (s.clone(), message))
        }
    };

    // A new Show with an image nobody allowed: refused, and nothing is created.
    shows
        .create(
            &PostParams::default(),
            &club_with(|s| s.spec.shard.image = Some("evil.example/miner:1".into())),
        )
        .await
        .expect("create");
    let (show, message) = wait_show(
        &f,
        "club-night",
        "Degraded ImageNotAllowed",
        refused("evil.example/miner:1"),
    )
    .await;
    assert!(
        message.contains("spec.shard.image") && message.contains("\"evil.example/miner:1\""),
        "{message}"
    );
    let (ready, reason, _) = condition(&show, "Ready").expect("Ready");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ImageNotAllowed")
    );
    assert_eq!(
        show.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Degraded")
    );
    let note = wait_warning(&f.client, &f.ns, "club-night", "ImageNotAllowed").await;
    assert!(note.contains("evil.example/miner:1"), "{note}");
    assert!(
        deployments
            .get_opt("club-night-shard")
            .await
            .expect("get")
            .is_none(),
        "a refused Show must get no Deployment"
    );
    assert!(
        get::<ConfigMap>(&f.client, &f.ns, "club-night-shard-config")
            .await
            .is_none()
    );

    // An allowed image (under the allowed prefix) is applied.
    let patch_image = |image: &'static str| {
        let shows = shows.clone();
        async move {
            shows
                .patch(
                    "club-night",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"shard": {"image": image}}})),
                )
                .await
                .expect("patch")
        }
    };
    patch_image("registry.example/boxoffice/booking-shard:2").await;
    wait_for("the allowed image", Duration::from_secs(30), || async {
        Ok(deployments
            .get_opt("club-night-shard")
            .await?
            .and_then(|d| image_of(&d))
            .filter(|i| i == "registry.example/boxoffice/booking-shard:2"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    wait_show(&f, "club-night", "Degraded cleared", |s| {
        (condition(s, "Degraded")?.0 == "False").then_some(())
    })
    .await;

    // Switching to a disallowed image is refused and rolls nothing: the Deployment
    // keeps the image it had (the refusal is written by a reconcile that saw the new
    // spec, and every later one refuses it too).
    patch_image("evil.example/miner:2").await;
    wait_show(
        &f,
        "club-night",
        "Degraded ImageNotAllowed again",
        refused("evil.example/miner:2"),
    )
    .await;
    let d = deployments
        .get("club-night-shard")
        .await
        .expect("deployment");
    assert_eq!(
        image_of(&d).as_deref(),
        Some("registry.example/boxoffice/booking-shard:2")
    );
}

/// A TCP listener that counts the connections made to it.
async fn counting_listener() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_show_may_not_point_the_operator_at_an_etcd_it_does_not_allow() {
    use std::sync::atomic::Ordering;
    let (elsewhere, contacts) = counting_listener().await;
    let f = fixture("op-etcd", true).await;
    let shows: Api<Show> = Api::namespaced(f.client.clone(), &f.ns);
    shows
        .create(
            &PostParams::default(),
            &club_with(|s| s.spec.shard.etcd_endpoints = vec![elsewhere.clone()]),
        )
        .await
        .expect("create");
    let (_, message) = wait_show(&f, "club-night", "Degraded EtcdEndpointsNotAllowed", |s| {
        let (status, reason, message) = condition(s, "Degraded")?;
        (status == "True" && reason == "EtcdEndpointsNotAllowed").then_some(((), message))
    })
    .await;
    assert!(
        message.contains("spec.shard.etcdEndpoints") && message.contains(&elsewhere),
        "{message}"
    );
    let show = shows.get("club-night").await.expect("show");
    assert_eq!(
        condition(&show, "Ready").map(|c| (c.0, c.1)),
        Some(("False".to_string(), "EtcdEndpointsNotAllowed".to_string()))
    );
    wait_warning(&f.client, &f.ns, "club-night", "EtcdEndpointsNotAllowed").await;
    assert!(
        get::<Deployment>(&f.client, &f.ns, "club-night-shard")
            .await
            .is_none(),
        "a refused Show must get no Deployment"
    );
    // Several status intervals (1 s here) later, still nobody called the address.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        contacts.load(Ordering::SeqCst),
        0,
        "the operator contacted an etcd it does not allow"
    );

    // The control: an operator that allows the address does call it (so the count
    // above would have seen a call), and the Show is not refused.
    let g = fixture_with(
        "op-etcd-allowed",
        true,
        &["--allowed-etcd-endpoints", &elsewhere],
    )
    .await;
    let allowed: Api<Show> = Api::namespaced(g.client.clone(), &g.ns);
    allowed
        .create(
            &PostParams::default(),
            &club_with(|s| s.spec.shard.etcd_endpoints = vec![elsewhere.clone()]),
        )
        .await
        .expect("create");
    wait_for(
        "the operator to call the allowed etcd",
        Duration::from_secs(30),
        || async { Ok((contacts.load(Ordering::SeqCst) > 0).then_some(())) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let d: Deployment = wait_for("the Deployment", Duration::from_secs(30), || async {
        Ok(get::<Deployment>(&g.client, &g.ns, "club-night-shard").await)
    })
    .await
    .expect("deployment");
    let env = d
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod")
        .containers[0]
        .env
        .clone()
        .unwrap_or_default();
    assert!(
        env.iter()
            .any(|e| e.name == "BOXOFFICE_ETCD" && e.value.as_deref() == Some(elsewhere.as_str())),
        "{env:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_namespaces_grants_rights_there_and_nowhere_else() {
    let shared = shared().await;
    let plane = &shared.plane;
    let admin = plane.client().await.expect("client");
    let (system, a, b, c) = (
        "op-scoped-system",
        "op-scoped-a",
        "op-scoped-b",
        "op-scoped-c",
    );
    for ns in [system, a, b, c] {
        create_namespace(&admin, ns).await;
    }
    let db_url = PostgresServer::shared()
        .await
        .expect("pg")
        .create_database()
        .await
        .expect("db");
    for ns in [a, b, c] {
        create_secrets(&admin, ns, &db_url).await;
    }

    // The chart's ServiceAccount and RBAC with watchNamespaces, as `helm install` would
    // create them (release "scoped": ServiceAccount scoped-boxoffice).
    let rendered = std::process::Command::new(boxoffice_e2e::tools::tool("helm").expect("helm"))
        .args(["template", "scoped"])
        .arg(repo_root().join("charts/boxoffice"))
        .args(["--namespace", system, "--kube-version", "1.33.13"])
        .args(["--set", &format!("watchNamespaces={{{a},{b}}}")])
        .args([
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/rbac.yaml",
        ])
        .output()
        .expect("helm template");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let rendered = String::from_utf8_lossy(&rendered.stdout).into_owned();
    assert!(!rendered.contains("kind: ClusterRole"), "{rendered}");
    // Every object names its namespace (the Roles name theirs).
    let (ok, _, err) = plane
        .kubectl_stdin(&["apply", "-f", "-"], &rendered)
        .expect("kubectl");
    assert!(ok, "{err}");

    // What the API server's authorizer says (SubjectAccessReviews through kubectl).
    let sa = format!("system:serviceaccount:{system}:scoped-boxoffice");
    let can = |ns: &str, verb: &str, resource: &str, sub: Option<&str>| -> bool {
        let mut args = vec!["auth", "can-i", verb, resource, "--as", sa.as_str()];
        if ns == "*" {
            args.push("-A");
        } else {
            args.extend(["-n", ns]);
        }
        if let Some(sub) = sub {
            args.extend(["--subresource", sub]);
        }
        let (_, out, err) = plane.kubectl_run(&args).expect("kubectl");
        match out.trim() {
            "yes" => true,
            "no" => false,
            other => panic!("kubectl auth can-i {args:?}: {other} {err}"),
        }
    };
    let needed: [(&str, &str, Option<&str>); 13] = [
        ("watch", "shows.boxoffice.dev", None),
        ("patch", "shows.boxoffice.dev", None),
        ("patch", "shows.boxoffice.dev", Some("status")),
        ("update", "shows.boxoffice.dev", Some("finalizers")),
        ("create", "configmaps", None),
        ("patch", "services", None),
        ("watch", "deployments.apps", None),
        ("create", "deployments.apps", None),
        ("create", "poddisruptionbudgets.policy", None),
        ("create", "networkpolicies.networking.k8s.io", None),
        ("watch", "networkpolicies.networking.k8s.io", None),
        ("get", "secrets", None),
        ("create", "events.events.k8s.io", None),
    ];
    for (verb, resource, sub) in needed {
        for ns in [a, b] {
            assert!(
                can(ns, verb, resource, sub),
                "{sa} may not {verb} {resource} {sub:?} in {ns}"
            );
        }
        assert!(
            !can(c, verb, resource, sub),
            "{sa} may {verb} {resource} {sub:?} in {c}, which it does not watch"
        );
        assert!(
            !can("*", verb, resource, sub),
            "{sa} may {verb} {resource} {sub:?} cluster-wide"
        );
    }
    for (verb, resource) in [
        ("list", "secrets"),
        ("delete", "deployments.apps"),
        ("create", "pods"),
    ] {
        assert!(
            !can(a, verb, resource, None),
            "{sa} may {verb} {resource} in {a}"
        );
    }

    // The operator, with only these rights, reconciles Shows in a and b.
    let (ok, token, err) = plane
        .kubectl_run(&[
            "create",
            "token",
            "scoped-boxoffice",
            "-n",
            system,
            "--duration",
            "1h",
        ])
        .expect("kubectl");
    assert!(ok, "{err}");
    let client = plane
        .client_with_token(token.trim())
        .await
        .expect("SA client");
    let config = Config::parse_from([
        "boxoffice-operator",
        "--etcd",
        &shared.etcd.endpoint(),
        "--watch-namespaces",
        &format!("{a},{b}"),
        "--admin-listen",
        "127.0.0.1:0",
        "--leader-election",
        "--lease-namespace",
        system,
        "--identity",
        "scoped-operator",
        "--status-interval",
        "1",
    ]);
    let stop = CancellationToken::new();
    let operator = tokio::spawn(boxoffice_operator::run(client, config, stop.clone()));
    for ns in [a, b, c] {
        Api::<Show>::namespaced(admin.clone(), ns)
            .create(&PostParams::default(), &club_with(|_| {}))
            .await
            .expect("create");
    }
    for ns in [a, b] {
        let shows: Api<Show> = Api::namespaced(admin.clone(), ns);
        wait_for(
            &format!("status in {ns} from the namespace-scoped operator"),
            Duration::from_secs(60),
            || async {
                let show = shows.get("club-night").await?;
                Ok(show
                    .status
                    .and_then(|s| s.phase)
                    .filter(|p| p == "Provisioning"))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", plane.logs()));
        for kind in ["deployment", "networkpolicy", "pdb"] {
            let (ok, _, err) = plane
                .kubectl_run(&["get", kind, "club-night-shard", "-n", ns])
                .expect("kubectl");
            assert!(ok, "{kind} in {ns}: {err}");
        }
    }
    // The Show in c is nobody's: no status, no objects.
    let show_c = Api::<Show>::namespaced(admin.clone(), c)
        .get("club-night")
        .await
        .expect("show");
    assert!(show_c.status.is_none(), "{:?}", show_c.status);
    assert!(
        get::<Deployment>(&admin, c, "club-night-shard")
            .await
            .is_none()
    );
    stop.cancel();
    let _ = operator.await;
}
