//! boxoffice-operator: reconciles `Show` resources into booking shards (ConfigMap,
//! Deployment, Service, PodDisruptionBudget, NetworkPolicy), with status, events and
//! metrics.

pub mod builders;
pub mod config;
pub mod election;
pub mod etcd_space;
pub mod events;
pub mod metrics;
pub mod payments;
pub mod policy;
pub mod reconcile;
pub mod routing;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use boxoffice_crds::Show;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::reconcile::{Context, error_policy, reconcile};

/// Runs the admin server and the controllers (under leader election when enabled)
/// until `shutdown`.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let identity = config
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("operator-{}", std::process::id()));

    let listener = tokio::net::TcpListener::bind(config.admin_listen).await?;
    let admin_metrics = metrics.clone();
    let admin = Router::new()
        .route(
            "/metrics",
            get(move || async move { admin_metrics.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }));
    let admin_shutdown = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, admin)
            .with_graceful_shutdown(async move { admin_shutdown.cancelled().await })
            .await;
    });

    let work = |stop: CancellationToken| {
        controllers(
            client.clone(),
            config.clone(),
            metrics.clone(),
            identity.clone(),
            stop,
        )
    };
    if config.leader_election {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &config.lease_namespace);
        let lock = election::LeaseLock::new(
            leases,
            "boxoffice-operator",
            &identity,
            Duration::from_secs(15),
        );
        let m = metrics.clone();
        election::run_elected(
            lock,
            shutdown,
            move |leading| {
                m.leading.set(i64::from(leading));
            },
            work,
        )
        .await;
    } else {
        metrics.leading.set(1);
        work(shutdown).await;
    }
    Ok(())
}

async fn controllers(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    identity: String,
    stop: CancellationToken,
) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "boxoffice-operator".into(),
            instance: Some(identity),
        },
    );
    // With watched namespaces, one controller per namespace, each listing and watching
    // only there: the chart then grants rights per namespace (Roles), not cluster-wide.
    let namespaces: Vec<Option<String>> = if config.namespaces().is_empty() {
        vec![None]
    } else {
        config.namespaces().into_iter().map(Some).collect()
    };
    let network_policies = config.network_policy;
    let ctx = Arc::new(Context::new(client.clone(), config, recorder, metrics));
    let owned =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=boxoffice-operator");
    let runs = namespaces.into_iter().map(|ns| {
        fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
        where
            K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
            K::DynamicType: Default,
        {
            match ns {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            }
        }
        info!(
            namespace = ns.as_deref().unwrap_or("<all>"),
            "watching Shows"
        );
        let stop = stop.clone();
        let mut controller = Controller::new(api::<Show>(&client, &ns), watcher::Config::default())
            .owns(api::<ConfigMap>(&client, &ns), owned.clone())
            .owns(api::<Deployment>(&client, &ns), owned.clone())
            .owns(api::<Service>(&client, &ns), owned.clone())
            .owns(api::<PodDisruptionBudget>(&client, &ns), owned.clone());
        if network_policies {
            controller = controller.owns(api::<NetworkPolicy>(&client, &ns), owned.clone());
        }
        controller
            .graceful_shutdown_on(async move { stop.cancelled().await })
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|_| async {})
    });
    futures::future::join_all(runs).await;
}
