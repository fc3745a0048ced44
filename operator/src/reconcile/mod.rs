//! The Show reconciler: owned objects by server-side apply, status, events, finalizer.

mod cleanup;
mod leader;
pub mod route;
#[cfg(test)]
mod route_tests;
mod secrets;
mod status;
#[cfg(test)]
mod tests;

pub use cleanup::close_sales;
pub use leader::{etcd_client, read_leader};
pub use status::{status_for, with_route};

use cleanup::cleanup;
use leader::{counts_from, leader_of};
use secrets::missing_secrets;
use status::has_condition;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice_crds::Show;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Mutex;
use tracing::warn;

use crate::builders::{self, MANAGER};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::{self, RefusalReason};

/// Finalizer that closes sales before a Show goes.
pub const FINALIZER: &str = "boxoffice.dev/close-sales";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("closing sales in PostgreSQL: {0}")]
    Database(String),
}

impl Error {
    /// The `error` label of the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(_) => "finalizer",
            Error::Database(_) => "database",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub http: reqwest::Client,
    pub(super) etcd: Mutex<HashMap<String, etcd_client::Client>>,
    /// Whether Gateway API is served, and when that was looked up.
    pub(super) gateway_api: Mutex<Option<(Instant, bool)>>,
}

impl Context {
    pub fn new(client: Client, config: Config, recorder: Recorder, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            config,
            recorder,
            metrics,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
            etcd: Mutex::new(HashMap::new()),
            gateway_api: Mutex::new(None),
        }
    }
}

/// Reconciles one Show.
pub async fn reconcile(show: Arc<Show>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    ctx.metrics.reconciles.inc();
    let ns = show.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Show> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, show, |event| async {
        match event {
            Finalizer::Apply(show) => apply(show, ctx.clone()).await,
            Finalizer::Cleanup(show) => cleanup(show, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.observe_duration(start.elapsed());
    result
}

/// Requeues failed reconciles.
pub fn error_policy(show: Arc<Show>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(show = %show.name_any(), %error, "reconcile failed");
    ctx.metrics.error(error.metric_label());
    let note = error.to_string();
    tokio::spawn(async move {
        publish(&ctx, &show, EventType::Warning, "ReconcileFailed", &note).await;
    });
    Action::requeue(Duration::from_secs(5))
}

async fn apply_object<K>(client: &Client, ns: &str, obj: &K) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.patch(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await?;
    Ok(())
}

async fn apply(show: Arc<Show>, ctx: Arc<Context>) -> Result<Action> {
    let ns = show.namespace().unwrap_or_else(|| "default".into());
    let client = &ctx.client;
    let previous = show.status.clone().unwrap_or_default();
    let refusal = policy::check(&show, &ctx.config).err();

    if let Some(refusal) = &refusal {
        // Refused whole: no object changes (the shard keeps what it last ran, if
        // anything), and nothing the Show names is contacted.
        let reason = refusal.reason.as_str();
        if !has_condition(&previous, "Degraded", "True", reason) {
            warn!(show = %show.name_any(), %ns, message = %refusal.message, "Show refused");
            publish(&ctx, &show, EventType::Warning, reason, &refusal.message).await;
        }
    } else {
        // The first time, or the first time since a refused spec.
        let provisioning = show.status.is_none()
            || [
                RefusalReason::ImageNotAllowed,
                RefusalReason::EtcdEndpointsNotAllowed,
                RefusalReason::WebhookConflict,
            ]
            .iter()
            .any(|r| has_condition(&previous, "Degraded", "True", r.as_str()));
        apply_object(client, &ns, &builders::config_map(&show)).await?;
        if ctx.config.network_policy {
            // Before the pods exist, so no shard pod is ever unprotected.
            apply_object(client, &ns, &builders::network_policy(&show, &ctx.config)).await?;
        }
        apply_object(client, &ns, &builders::deployment(&show, &ctx.config)).await?;
        apply_object(client, &ns, &builders::service(&show)).await?;
        apply_object(client, &ns, &builders::pdb(&show)).await?;
        if provisioning {
            let objects = if ctx.config.network_policy {
                "ConfigMap, NetworkPolicy, Deployment, Service and PodDisruptionBudget"
            } else {
                "ConfigMap, Deployment, Service and PodDisruptionBudget"
            };
            publish(
                &ctx,
                &show,
                EventType::Normal,
                "Provisioned",
                &format!("applied the shard's {objects}"),
            )
            .await;
        }
    }

    let (url, route) = route::reconcile_route(&ctx, &show, &ns, refusal.is_none()).await?;
    let missing = missing_secrets(&ctx, &show, &ns).await?;
    let deployment: Option<Deployment> = Api::namespaced(client.clone(), &ns)
        .get_opt(&builders::shard_name(&show))
        .await?;
    let leader = match refusal {
        Some(_) => None,
        None => leader_of(&ctx, &show, &ns).await,
    };
    let counts = match &leader {
        Some((_, address)) => counts_from(&ctx, address, &show.name_any()).await,
        None => None,
    };
    let status = status_for(
        &show,
        deployment.as_ref(),
        refusal.as_ref(),
        missing.as_deref(),
        leader.as_ref().map(|l| l.0.clone()),
        counts,
    );
    let status = with_route(status, &show, url, route::routed(&route, &ns));
    if let Some(now) = status.conditions.iter().find(|c| c.type_ == "Routed")
        && !has_condition(&previous, "Routed", &now.status, &now.reason)
        && (now.status == "True"
            || now.reason == "GatewayAPIMissing"
            || now.reason == "NotAccepted")
    {
        let kind = if now.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        let reason = if now.status == "True" {
            "Routed"
        } else {
            now.reason.as_str()
        };
        publish(&ctx, &show, kind, reason, &now.message).await;
    }

    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if let Some(message) = &missing
        && !previous
            .conditions
            .iter()
            .any(|c| c.type_ == "Degraded" && c.status == "True")
    {
        publish(&ctx, &show, EventType::Warning, "SecretMissing", message).await;
    }
    if status.leader.is_some() && status.leader != previous.leader {
        let note = format!(
            "{} leads the shard",
            status.leader.clone().unwrap_or_default()
        );
        publish(&ctx, &show, EventType::Normal, "LeaderElected", &note).await;
    }
    if status.phase.as_deref() == Some("SoldOut") && previous.phase.as_deref() != Some("SoldOut") {
        publish(
            &ctx,
            &show,
            EventType::Normal,
            "SoldOut",
            "every seat is sold",
        )
        .await;
    }

    let api: Api<Show> = Api::namespaced(client.clone(), &ns);
    let patch = json!({
        "apiVersion": Show::api_version(&()),
        "kind": Show::kind(&()),
        "status": status,
    });
    api.patch_status(
        &show.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    // An elected leader that has not answered yet is usually loading: look again soon.
    let interval = if status.leader.is_some() && !ready {
        ctx.config.status_interval.clamp(1, 2)
    } else {
        ctx.config.status_interval.max(1)
    };
    Ok(Action::requeue(Duration::from_secs(interval)))
}

pub(super) async fn publish(
    ctx: &Context,
    show: &Show,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &show.object_ref(&())).await {
        warn!(error = %e, "publishing an event failed");
    }
}
