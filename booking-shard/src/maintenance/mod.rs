//! etcd maintenance: keeps the shards' etcd below its space quota and brings it back
//! from the NOSPACE alarm, and exports its size as metrics.
//!
//! etcd keeps every revision of every key until it is compacted, and a compacted
//! database keeps its file size until it is defragmented. Every hold adds revisions
//! (its puts, then its deletes), so a show that sells for weeks fills any quota unless
//! something reclaims the space. etcd compacts by itself when started with
//! `--auto-compaction-*` (every etcd this project starts is); it never defragments by
//! itself, and once the quota is hit it raises the NOSPACE alarm and refuses every
//! write that takes space until someone disarms it. That someone is this loop:
//!
//! - every replica reads each member's status and the alarms every interval and
//!   exports them as gauges;
//! - the show's leader (or, while the alarm is raised and no replica leads, any
//!   replica: no new leader can be elected under NOSPACE, since a campaign needs a
//!   lease) acts on what it read, by the rules of [`plan`]: compact to the revision
//!   read one pass earlier, defragment the members that have space to give back, one
//!   at a time, and disarm the alarm once every member has room again.
//!
//! The rules are pure functions of what was read, unit-tested below; the loop around
//! them does the I/O.

use std::time::Duration;

use boxoffice_transport::EtcdAccess;
use etcd_client::{
    AlarmAction, AlarmOptions, AlarmType, Client, CompactionOptions, ConnectOptions,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use rand::Rng;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::shard::{Role, Shard};

mod rules;
pub use rules::{FAST_PACE, MemberSize, Plan, may_disarm, pace, plan, worth_defragmenting};

/// What the loop may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Recover from the NOSPACE alarm, and compact and defragment before it comes
    /// when a member's file passes half the quota.
    Auto,
    /// Only recover from the NOSPACE alarm (defragment on your own schedule).
    Alarm,
    /// Only export the gauges.
    Off,
}

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub interval: Duration,
    /// The quota in bytes when etcd does not report it (before 3.6).
    pub quota_bytes: Option<i64>,
}

/// etcd's own default for `--quota-backend-bytes`.
pub const ETCD_DEFAULT_QUOTA: i64 = 2 * 1024 * 1024 * 1024;

/// The gauges and counters the loop keeps (registered in `/metrics`).
#[derive(Default)]
pub struct EtcdStats {
    /// The largest member's database file (what etcd compares with its quota).
    pub db_size: Gauge,
    /// The largest member's bytes in use (the rest is free pages, which only
    /// defragmentation gives back).
    pub db_size_in_use: Gauge,
    pub quota: Gauge,
    /// 1 while etcd's NOSPACE alarm is raised.
    pub nospace: Gauge,
    pub compactions: Counter,
    pub defragmentations: Counter,
    pub alarms_disarmed: Counter,
}

impl EtcdStats {
    /// Compactions, defragmentations and disarms so far.
    fn work(&self) -> u64 {
        self.compactions.get() + self.defragmentations.get() + self.alarms_disarmed.get()
    }
}

/// One member: its endpoint and a client to it alone (status and defragmentation are
/// per member).
struct Member {
    endpoint: String,
    client: Option<Client>,
}

/// What one read of the members found.
struct Reading {
    /// (member index, size) for the members that answered.
    sizes: Vec<(usize, MemberSize)>,
    quota: i64,
    revision: i64,
    /// Member ids with a raised NOSPACE alarm.
    nospace: Vec<u64>,
}

/// How long one status or alarm read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Compaction and defragmentation of a large database take a while.
const WORK_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs until `shutdown`.
pub async fn run(
    shard: Arc<Shard>,
    endpoints: Vec<String>,
    access: EtcdAccess,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let mut members: Vec<Member> = endpoints
        .into_iter()
        .map(|endpoint| Member {
            endpoint,
            client: None,
        })
        .collect();
    let stats = &shard.stats.etcd;
    // Shows that share an etcd should not all look at the same moment.
    let jitter = settings
        .interval
        .mul_f64(rand::rng().random_range(0.0..1.0));
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = tokio::time::sleep(jitter) => {}
    }
    let mut last_revision = 0;
    let mut next_look = settings.interval;
    // Warn when a failure is new, not at every pass it repeats.
    let mut last_error: Option<String> = None;
    loop {
        if let Some(reading) = read(&mut members, &access, settings.quota_bytes).await {
            export(stats, &reading);
            let acting =
                settings.mode != Mode::Off && may_act(&shard.role(), !reading.nospace.is_empty());
            let work = stats.work();
            let done = if acting {
                act(
                    &mut members,
                    &access,
                    &settings,
                    stats,
                    &reading,
                    last_revision,
                )
                .await
            } else {
                Ok(())
            };
            match done {
                Ok(()) => last_error = None,
                Err(e) => {
                    let e = format!("{e:#}");
                    if last_error.as_ref() == Some(&e) {
                        debug!(error = %e, "etcd maintenance failed");
                    } else {
                        // With etcd auth, defragmenting and disarming need the root role.
                        warn!(error = %e, "etcd maintenance failed");
                        last_error = Some(e);
                    }
                }
            }
            last_revision = reading.revision;
            let sizes: Vec<MemberSize> = reading.sizes.iter().map(|(_, m)| *m).collect();
            next_look = pace(&sizes, reading.quota, settings.mode, settings.interval);
            // Show what the work left (a disarmed alarm, a smaller file) now, not one
            // interval later.
            if stats.work() != work
                && let Some(after) = read(&mut members, &access, settings.quota_bytes).await
            {
                export(stats, &after);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(next_look) => {}
        }
    }
}

/// The leader acts; while the alarm is raised and nobody leads (none can be elected
/// under NOSPACE), any replica does.
fn may_act(role: &Role, nospace: bool) -> bool {
    match role {
        Role::Leader(l) => !l.lost.is_cancelled(),
        Role::Follower(Some(_)) => false,
        Role::Follower(None) | Role::Candidate => nospace,
    }
}

fn export(stats: &EtcdStats, r: &Reading) {
    let max = |f: fn(&MemberSize) -> i64| r.sizes.iter().map(|(_, m)| f(m)).max().unwrap_or(0);
    stats.db_size.set(max(|m| m.db_size));
    stats.db_size_in_use.set(max(|m| m.in_use));
    stats.quota.set(r.quota);
    stats.nospace.set(i64::from(!r.nospace.is_empty()));
}

/// Compaction, defragmentation and disarming, as [`plan`] and [`may_disarm`] say.
async fn act(
    members: &mut [Member],
    access: &EtcdAccess,
    settings: &Settings,
    stats: &EtcdStats,
    reading: &Reading,
    last_revision: i64,
) -> anyhow::Result<()> {
    let nospace = !reading.nospace.is_empty();
    let sizes: Vec<MemberSize> = reading.sizes.iter().map(|(_, m)| *m).collect();
    let plan = plan(&sizes, reading.quota, settings.mode, nospace);
    let Some(any) = reading.sizes.first().map(|(i, _)| *i) else {
        return Ok(());
    };
    let mut compacted = false;
    if plan.compact && last_revision > 0 {
        // Keep one interval of history: standbys' watches and a new leader's paged
        // read (at one revision) are never that far behind.
        let mut client = connect(&mut members[any], access).await?;
        let options = CompactionOptions::new().with_physical();
        match tokio::time::timeout(WORK_TIMEOUT, client.compact(last_revision, Some(options))).await
        {
            Ok(Ok(_)) => {
                stats.compactions.inc();
                compacted = true;
                debug!(revision = last_revision, "compacted etcd");
            }
            // Compacted there already (by etcd's own auto-compaction, or another show).
            Ok(Err(e)) if e.to_string().contains("compacted") => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => anyhow::bail!("compacting etcd took longer than {WORK_TIMEOUT:?}"),
        }
    }
    // A compaction frees pages: look again before deciding whom to defragment, and
    // look again at each member just before, in case another show's shard just did it.
    let candidates: Vec<usize> = if compacted {
        reading.sizes.iter().map(|(i, _)| *i).collect()
    } else {
        plan.defragment
            .iter()
            .map(|&k| reading.sizes[k].0)
            .collect()
    };
    for i in candidates {
        let Some(size) = member_size(&mut members[i], access).await else {
            continue;
        };
        if !worth_defragmenting(&size, reading.quota, settings.mode, nospace) {
            continue;
        }
        let mut client = connect(&mut members[i], access).await?;
        info!(member = %members[i].endpoint, db_size = size.db_size, in_use = size.in_use, "defragmenting etcd");
        match tokio::time::timeout(WORK_TIMEOUT, client.defragment()).await {
            Ok(Ok(_)) => {
                stats.defragmentations.inc();
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => anyhow::bail!(
                "defragmenting {} took longer than {WORK_TIMEOUT:?}",
                members[i].endpoint
            ),
        }
    }
    if !nospace {
        return Ok(());
    }
    let mut after = Vec::new();
    for m in members.iter_mut() {
        // A member that does not answer cannot be shown to have room.
        let Some(size) = member_size(m, access).await else {
            return Ok(());
        };
        after.push(size);
    }
    if !may_disarm(&after, reading.quota) {
        info!(quota = reading.quota, sizes = ?after, "etcd is still too full to disarm its NOSPACE alarm");
        return Ok(());
    }
    let mut client = connect(&mut members[any], access).await?;
    for &member in &reading.nospace {
        let mut options = AlarmOptions::new();
        options.with_member(member);
        client
            .alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(options))
            .await?;
        stats.alarms_disarmed.inc();
    }
    info!("disarmed etcd's NOSPACE alarm: writes resume");
    Ok(())
}

/// Reads every member's status and the alarms.
async fn read(
    members: &mut [Member],
    access: &EtcdAccess,
    quota_bytes: Option<i64>,
) -> Option<Reading> {
    let mut sizes = Vec::new();
    let mut reported_quota = 0;
    let mut revision = 0;
    let mut answering = None;
    for (i, m) in members.iter_mut().enumerate() {
        let Ok(mut client) = connect(m, access).await else {
            continue;
        };
        match tokio::time::timeout(READ_TIMEOUT, client.status()).await {
            Ok(Ok(s)) => {
                sizes.push((
                    i,
                    MemberSize {
                        db_size: s.db_size(),
                        in_use: s.raft_used_db_size(),
                    },
                ));
                reported_quota = reported_quota.max(s.db_size_quota());
                revision = revision.max(s.header().map(|h| h.revision()).unwrap_or(0));
                answering.get_or_insert(client);
            }
            Ok(Err(e)) => {
                debug!(member = %m.endpoint, error = %e, "etcd status failed");
                m.client = None;
            }
            Err(_) => m.client = None,
        }
    }
    let mut client = answering?;
    let alarms = tokio::time::timeout(
        READ_TIMEOUT,
        client.alarm(AlarmAction::Get, AlarmType::None, None),
    )
    .await
    .ok()?
    .ok()?;
    let nospace = alarms
        .alarms()
        .iter()
        .filter(|a| a.alarm() == AlarmType::Nospace)
        .map(|a| a.member_id())
        .collect();
    let quota = match (reported_quota, quota_bytes) {
        (q, _) if q > 0 => q,
        (_, Some(q)) => q,
        _ => ETCD_DEFAULT_QUOTA,
    };
    Some(Reading {
        sizes,
        quota,
        revision,
        nospace,
    })
}

async fn member_size(m: &mut Member, access: &EtcdAccess) -> Option<MemberSize> {
    let mut client = connect(m, access).await.ok()?;
    let s = tokio::time::timeout(READ_TIMEOUT, client.status())
        .await
        .ok()?
        .ok()?;
    Some(MemberSize {
        db_size: s.db_size(),
        in_use: s.raft_used_db_size(),
    })
}

/// The member's own client (connected on first use, again after a failure).
async fn connect(m: &mut Member, access: &EtcdAccess) -> anyhow::Result<Client> {
    if let Some(c) = &m.client {
        return Ok(c.clone());
    }
    let endpoints = [m.endpoint.clone()];
    let options = access.apply(
        &endpoints,
        ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(WORK_TIMEOUT)
            .with_keep_alive(Duration::from_secs(6), Duration::from_secs(3)),
    )?;
    let client = Client::connect(&endpoints, Some(options)).await?;
    m.client = Some(client.clone());
    Ok(client)
}

#[cfg(test)]
mod tests;
