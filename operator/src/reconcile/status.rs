//! The Show status from what was observed (pure).

use boxoffice_crds::{InventoryCounts, Show, ShowStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::builders::{self};
use crate::policy::Refusal;

/// Whether the status has condition `type_` with `status` and `reason`.
pub(super) fn has_condition(status: &ShowStatus, type_: &str, value: &str, reason: &str) -> bool {
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
        url: previous.url,
        epoch: previous.epoch,
        inventory: counts,
    }
}

/// Adds the Routed condition (from [`super::route::routed`]) and the public URL.
pub fn with_route(
    mut status: ShowStatus,
    show: &Show,
    url: Option<String>,
    (ok, reason, message): (bool, &str, String),
) -> ShowStatus {
    let previous = show.status.clone().unwrap_or_default();
    status.conditions.push(condition(
        &previous.conditions,
        "Routed",
        ok,
        reason,
        &message,
        show.metadata.generation,
    ));
    status.url = url;
    status
}
