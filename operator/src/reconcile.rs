//! The Show reconciler: owned objects by server-side apply, status, events, finalizer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice_crds::{InventoryCounts, Show, ShowStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::builders::{self, MANAGER};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::{self, Refusal, RefusalReason};

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
    etcd: Mutex<HashMap<String, etcd_client::Client>>,
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

/// A message naming the Secrets (or keys) the shard needs but cannot find.
async fn missing_secrets(ctx: &Context, show: &Show, ns: &str) -> Result<Option<String>> {
    let (database, jwt) = builders::secret_refs(show, &ctx.config);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut missing = Vec::new();
    let transport = builders::transport_secret_refs(&ctx.config);
    for (what, r) in [("database URL", database), ("JWT key", jwt)]
        .into_iter()
        .chain(transport)
    {
        match secrets.get_opt(&r.name).await? {
            None => missing.push(format!("Secret {ns}/{} ({what}) not found", r.name)),
            Some(s) => {
                let has = s.data.as_ref().is_some_and(|d| d.contains_key(&r.key))
                    || s.string_data
                        .as_ref()
                        .is_some_and(|d| d.contains_key(&r.key));
                if !has {
                    missing.push(format!(
                        "Secret {ns}/{} has no key {:?} ({what})",
                        r.name, r.key
                    ));
                }
            }
        }
    }
    Ok((!missing.is_empty()).then(|| missing.join("; ")))
}

/// The shard's leader from its election key in etcd: (pod, address).
async fn leader_of(ctx: &Context, show: &Show, ns: &str) -> Option<(String, String)> {
    let endpoints = builders::etcd_endpoints(show, &ctx.config);
    let key = endpoints.join(",");
    let mut client = {
        let mut cache = ctx.etcd.lock().await;
        match cache.get(&key) {
            Some(c) => c.clone(),
            None => {
                let c = match etcd_client(&endpoints, &ctx.config.etcd_access).await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "connecting to the shards' etcd failed");
                        return None;
                    }
                };
                cache.insert(key, c.clone());
                c
            }
        }
    };
    match read_leader(&mut client, ns, &show.name_any()).await {
        Ok(leader) => leader,
        Err(e) => {
            warn!(show = %show.name_any(), error = %e, "reading the shard's leader from etcd failed");
            None
        }
    }
}

/// A client for the shards' etcd with the operator's TLS and credentials.
pub async fn etcd_client(
    endpoints: &[String],
    access: &boxoffice_transport::EtcdAccess,
) -> Result<etcd_client::Client, String> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(2));
    let options = access
        .apply(endpoints, options)
        .map_err(|e| e.to_string())?;
    etcd_client::Client::connect(endpoints, Some(options))
        .await
        .map_err(|e| boxoffice_transport::explain_etcd_error(&e))
}

/// The leader a shard's election key in etcd names: (pod, address).
pub async fn read_leader(
    client: &mut etcd_client::Client,
    namespace: &str,
    show: &str,
) -> Result<Option<(String, String)>, String> {
    let resp = client
        .get(format!("/boxoffice/{namespace}/{show}/leader"), None)
        .await
        .map_err(|e| boxoffice_transport::explain_etcd_error(&e))?;
    let Some(kv) = resp.kvs().first() else {
        return Ok(None);
    };
    let value: serde_json::Value = serde_json::from_slice(kv.value()).map_err(|e| e.to_string())?;
    Ok(value["pod"]
        .as_str()
        .zip(value["address"].as_str())
        .map(|(pod, address)| (pod.to_string(), address.to_string())))
}

async fn counts_from(ctx: &Context, address: &str, show: &str) -> Option<InventoryCounts> {
    let url = format!(
        "{}/v1/shows/{show}/availability",
        address.trim_end_matches('/')
    );
    let body: serde_json::Value = ctx.http.get(url).send().await.ok()?.json().await.ok()?;
    serde_json::from_value(body["inventory"].clone()).ok()
}

/// Whether the status has condition `type_` with `status` and `reason`.
fn has_condition(status: &ShowStatus, type_: &str, value: &str, reason: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == value && c.reason == reason)
}

fn condition(
    previous: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    // Keep the transition time while the status stays the same.
    let last = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: last,
    }
}

/// The status of a Show from what was observed. Pure, so it is unit-tested.
pub fn status_for(
    show: &Show,
    deployment: Option<&Deployment>,
    refusal: Option<&Refusal>,
    missing_secrets: Option<&str>,
    leader: Option<String>,
    counts: Option<InventoryCounts>,
) -> ShowStatus {
    let generation = show.metadata.generation;
    let previous = show.status.clone().unwrap_or_default();
    let want = show.spec.shard.replicas;
    let d = deployment
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    let ready = d.ready_replicas.unwrap_or(0);
    let updated = d.updated_replicas.unwrap_or(0);
    let current = deployment
        .and_then(|dep| dep.metadata.generation)
        .is_some_and(|g| d.observed_generation == Some(g));
    let rolled_out = current && updated >= want && ready >= want && d.replicas.unwrap_or(0) == want;
    // Ready means a leader serves: it is elected in etcd AND answered this poll (a
    // freshly elected leader is still loading its inventory and refuses requests).
    let answered = counts.is_some();
    let is_ready = leader.is_some() && answered && missing_secrets.is_none() && refusal.is_none();
    let stuck = d.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });

    let mut conditions = Vec::new();
    conditions.push(if let Some(r) = refusal {
        condition(
            &previous.conditions,
            "Ready",
            false,
            r.reason.as_str(),
            &r.message,
            generation,
        )
    } else if is_ready {
        condition(
            &previous.conditions,
            "Ready",
            true,
            "LeaderElected",
            &format!(
                "{} leads; {ready}/{want} replicas ready",
                leader.clone().unwrap_or_default()
            ),
            generation,
        )
    } else if let Some(m) = missing_secrets {
        condition(
            &previous.conditions,
            "Ready",
            false,
            "SecretMissing",
            m,
            generation,
        )
    } else if let Some(l) = &leader {
        condition(
            &previous.conditions,
            "Ready",
            false,
            "LeaderNotServing",
            &format!(
                "{l} leads but did not answer (loading its inventory, or unreachable); \
                 {ready}/{want} replicas ready"
            ),
            generation,
        )
    } else {
        condition(
            &previous.conditions,
            "Ready",
            false,
            "NoLeader",
            &format!("no shard leads yet; {ready}/{want} replicas ready"),
            generation,
        )
    });
    conditions.push(if rolled_out {
        condition(
            &previous.conditions,
            "Progressing",
            false,
            "RolloutComplete",
            &format!("{want} replicas up to date"),
            generation,
        )
    } else {
        condition(
            &previous.conditions,
            "Progressing",
            true,
            "RollingOut",
            &format!("{updated}/{want} replicas updated, {ready} ready"),
            generation,
        )
    });
    conditions.push(match (refusal, missing_secrets) {
        (Some(r), _) => condition(
            &previous.conditions,
            "Degraded",
            true,
            r.reason.as_str(),
            &r.message,
            generation,
        ),
        (None, Some(m)) => condition(
            &previous.conditions,
            "Degraded",
            true,
            "SecretMissing",
            m,
            generation,
        ),
        // A rollout that stopped making progress (the Deployment's own deadline), not
        // one that is still starting: that is what Progressing says.
        (None, None) if stuck => condition(
            &previous.conditions,
            "Degraded",
            true,
            "RolloutStuck",
            "the shard rollout exceeded its progress deadline",
            generation,
        ),
        (None, None) => condition(
            &previous.conditions,
            "Degraded",
            false,
            "AsExpected",
            "",
            generation,
        ),
    });

    let counts = counts.or(previous.inventory);
    // A show that has served keeps its sales phase through a moment without an answer.
    let phase = if refusal.is_some() || missing_secrets.is_some() {
        "Degraded"
    } else if leader.is_none() || counts.is_none() {
        "Provisioning"
    } else if counts.is_some_and(|c| c.total > 0 && c.available == 0 && c.held == 0) {
        "SoldOut"
    } else {
        "OnSale"
    };
    ShowStatus {
        observed_generation: generation,
        conditions,
        phase: Some(phase.into()),
        leader,
        endpoint: Some(builders::endpoint(show)),
        epoch: previous.epoch,
        inventory: counts,
    }
}

async fn publish(ctx: &Context, show: &Show, type_: EventType, reason: &str, note: &str) {
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

/// Before the Show goes: close sales in PostgreSQL (bookings stay). The owned objects
/// are removed by the garbage collector once the finalizer is gone.
async fn cleanup(show: Arc<Show>, ctx: Arc<Context>) -> Result<Action> {
    let ns = show.namespace().unwrap_or_else(|| "default".into());
    let (database, _) = builders::secret_refs(&show, &ctx.config);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let url = secrets
        .get_opt(&database.name)
        .await?
        .and_then(|s| s.data)
        .and_then(|d| {
            d.get(&database.key)
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        });
    match url {
        Some(url) => {
            let options = ctx
                .config
                .database_tls
                .connect_options(&url)
                .map_err(|e| Error::Database(e.to_string()))?;
            close_sales(options, &format!("{ns}/{}", show.name_any())).await?;
            publish(
                &ctx,
                &show,
                EventType::Normal,
                "SalesClosed",
                "sales closed; bookings are kept",
            )
            .await;
        }
        None => {
            // Without the database there is nothing to close; never block deletion.
            publish(
                &ctx,
                &show,
                EventType::Warning,
                "SalesNotClosed",
                "the database Secret is missing; nothing was closed",
            )
            .await;
        }
    }
    info!(show = %show.name_any(), "finalized");
    Ok(Action::await_change())
}

/// Marks `show` (`namespace/name`) closed in the shards' database; bookings stay.
pub async fn close_sales(options: sqlx::postgres::PgConnectOptions, show: &str) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .map_err(|e| Error::Database(e.to_string()))?;
    let result = sqlx::query(
        "INSERT INTO shows (show, closed_at) VALUES ($1, now()) \
         ON CONFLICT (show) DO UPDATE SET closed_at = COALESCE(shows.closed_at, now())",
    )
    .bind(show)
    .execute(&mut conn)
    .await;
    match result {
        Ok(_) => Ok(()),
        // No shard ever ran against this database: nothing was sold, nothing to close.
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01") => {
            Ok(())
        }
        Err(e) => Err(Error::Database(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxoffice_crds::ShowConfig;
    use k8s_openapi::api::apps::v1::DeploymentStatus;

    fn club() -> Show {
        let config =
            ShowConfig::parse(include_str!("../../examples/shows/club.yaml")).expect("club");
        let mut show = Show::new(&config.name, config.spec);
        show.metadata.namespace = Some("default".into());
        show.metadata.generation = Some(3);
        show
    }

    fn deployment(ready: i32, updated: i32) -> Deployment {
        Deployment {
            metadata: kube::api::ObjectMeta {
                generation: Some(1),
                ..Default::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(1),
                replicas: Some(2),
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn cond<'a>(s: &'a ShowStatus, t: &str) -> &'a Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition")
    }

    #[test]
    fn provisioning_then_ready_then_sold_out() {
        let mut show = club();
        let s = status_for(&show, Some(&deployment(0, 0)), None, None, None, None);
        assert_eq!(s.phase.as_deref(), Some("Provisioning"));
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(cond(&s, "Progressing").status, "True");
        assert_eq!(cond(&s, "Degraded").status, "False");
        assert_eq!(s.observed_generation, Some(3));

        let counts = InventoryCounts {
            total: 40,
            available: 38,
            held: 0,
            sold: 2,
        };
        let s = status_for(
            &show,
            Some(&deployment(2, 2)),
            None,
            None,
            Some("shard-a".into()),
            Some(counts),
        );
        assert_eq!(s.phase.as_deref(), Some("OnSale"));
        assert_eq!(cond(&s, "Ready").reason, "LeaderElected");
        assert_eq!(cond(&s, "Progressing").status, "False");
        assert_eq!(s.inventory, Some(counts));

        show.status = Some(s.clone());
        let sold_out = InventoryCounts {
            total: 40,
            available: 0,
            held: 0,
            sold: 40,
        };
        let s2 = status_for(
            &show,
            Some(&deployment(2, 2)),
            None,
            None,
            Some("shard-a".into()),
            Some(sold_out),
        );
        assert_eq!(s2.phase.as_deref(), Some("SoldOut"));
        // Unchanged condition keeps its transition time.
        assert_eq!(
            cond(&s2, "Ready").last_transition_time,
            cond(&s, "Ready").last_transition_time
        );
        // Counts and the sales phase survive a moment without a leader answer, but
        // Ready says the leader did not answer.
        show.status = Some(s.clone());
        let s3 = status_for(
            &show,
            Some(&deployment(2, 2)),
            None,
            None,
            Some("shard-a".into()),
            None,
        );
        assert_eq!(s3.inventory, Some(counts));
        assert_eq!(s3.phase.as_deref(), Some("OnSale"));
        assert_eq!(
            (
                cond(&s3, "Ready").status.as_str(),
                cond(&s3, "Ready").reason.as_str()
            ),
            ("False", "LeaderNotServing")
        );
    }

    #[test]
    fn an_elected_leader_that_has_not_answered_is_not_ready() {
        let s = status_for(
            &club(),
            Some(&deployment(2, 2)),
            None,
            None,
            Some("shard-a".into()),
            None,
        );
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(cond(&s, "Ready").reason, "LeaderNotServing");
        assert_eq!(s.phase.as_deref(), Some("Provisioning"));
        assert_eq!(s.leader.as_deref(), Some("shard-a"));
        assert_eq!(s.inventory, None);
    }

    #[test]
    fn missing_secret_degrades() {
        let s = status_for(
            &club(),
            None,
            None,
            Some("Secret default/x not found"),
            Some("shard-a".into()),
            None,
        );
        assert_eq!(s.phase.as_deref(), Some("Degraded"));
        let d = cond(&s, "Degraded");
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "SecretMissing")
        );
        assert_eq!(cond(&s, "Ready").status, "False");
    }

    #[test]
    fn a_refused_spec_is_degraded_and_not_ready_even_with_a_leader() {
        let mut show = club();
        show.spec.shard.image = Some("evil.example/miner:1".into());
        let config = <Config as clap::Parser>::parse_from(["boxoffice-operator"]);
        let refusal = policy::check(&show, &config).expect_err("refused");
        let s = status_for(
            &show,
            Some(&deployment(2, 2)),
            Some(&refusal),
            Some("Secret default/x not found"),
            Some("shard-a".into()),
            Some(InventoryCounts {
                total: 40,
                available: 40,
                held: 0,
                sold: 0,
            }),
        );
        assert_eq!(s.phase.as_deref(), Some("Degraded"));
        for type_ in ["Ready", "Degraded"] {
            let c = cond(&s, type_);
            assert_eq!(c.reason, "ImageNotAllowed", "{type_}");
            assert!(
                c.message.contains("spec.shard.image")
                    && c.message.contains("evil.example/miner:1"),
                "{}",
                c.message
            );
        }
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(cond(&s, "Degraded").status, "True");
        assert!(has_condition(&s, "Degraded", "True", "ImageNotAllowed"));
    }
}
