//! The shards' etcd against its space quota, as the Show's `EtcdSpace` condition.
//!
//! A show's leader keeps etcd below its quota (compaction, defragmentation, disarming
//! the NOSPACE alarm: docs/reliability.md, "etcd space") and exports the sizes as
//! metrics. The operator reads the same numbers when it polls a Show, so `kubectl get
//! shows` / `kubectl describe show` tell a platform team that the etcd is filling up
//! before holds are refused, whichever show's traffic fills it.

/// What etcd reported: the largest member's file, its quota, and whether the NOSPACE
/// alarm is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdSpace {
    pub db_size: i64,
    pub quota: i64,
    pub nospace: bool,
}

/// etcd's own default for `--quota-backend-bytes` (etcd before 3.6 does not report it).
const DEFAULT_QUOTA: i64 = 2 * 1024 * 1024 * 1024;

/// The file size above which the condition warns, in percent of the quota: the leader's
/// maintenance defragments long before, so a file this large means it cannot (it is
/// off, lacks the root role under etcd auth, or live data fills the quota).
pub const WARN_PERCENT: i64 = 80;

/// The condition's status, reason and message.
pub fn condition(space: Option<&EtcdSpace>) -> (bool, &'static str, String) {
    let Some(s) = space else {
        return (
            false,
            "Unknown",
            "etcd's status could not be read".to_string(),
        );
    };
    let percent = if s.quota > 0 {
        s.db_size.saturating_mul(100) / s.quota
    } else {
        0
    };
    let sizes = format!(
        "etcd file {} MiB of a {} MiB quota ({percent}%)",
        s.db_size / (1024 * 1024),
        s.quota / (1024 * 1024)
    );
    if s.nospace {
        (
            false,
            "NoSpace",
            format!(
                "{sizes}: the NOSPACE alarm is raised, holds are refused until space is reclaimed"
            ),
        )
    } else if percent >= WARN_PERCENT {
        (
            false,
            "NearQuota",
            format!("{sizes}: compact and defragment etcd, or raise its quota"),
        )
    } else {
        (true, "Room", sizes)
    }
}

/// Reads every member's status and the alarms.
pub async fn read(client: &mut etcd_client::Client) -> Result<EtcdSpace, String> {
    let explain = |e: etcd_client::Error| boxoffice_transport::explain_etcd_error(&e);
    // The status is the member the client reached (members' files stay within a
    // few percent of each other; the shard's gauges show the largest); the alarm list
    // covers every member.
    let status = client.status().await.map_err(explain)?;
    let alarms = client
        .alarm(
            etcd_client::AlarmAction::Get,
            etcd_client::AlarmType::None,
            None,
        )
        .await
        .map_err(explain)?;
    let quota = match status.db_size_quota() {
        q if q > 0 => q,
        _ => DEFAULT_QUOTA,
    };
    Ok(EtcdSpace {
        db_size: status.db_size(),
        quota,
        nospace: alarms
            .alarms()
            .iter()
            .any(|a| a.alarm() == etcd_client::AlarmType::Nospace),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: i64 = 1024 * 1024;

    fn space(db: i64, quota: i64, nospace: bool) -> EtcdSpace {
        EtcdSpace {
            db_size: db * MIB,
            quota: quota * MIB,
            nospace,
        }
    }

    #[test]
    fn room_near_the_quota_and_the_alarm() {
        let (ok, reason, message) = condition(Some(&space(29, 64, false)));
        assert!(ok);
        assert_eq!(reason, "Room");
        assert_eq!(message, "etcd file 29 MiB of a 64 MiB quota (45%)");
        let (ok, reason, _) = condition(Some(&space(52, 64, false)));
        assert!(!ok);
        assert_eq!(reason, "NearQuota");
        // The alarm wins even after the file shrank (it stays until disarmed).
        let (ok, reason, message) = condition(Some(&space(10, 64, true)));
        assert!(!ok);
        assert_eq!(reason, "NoSpace");
        assert!(message.contains("holds are refused"), "{message}");
        assert_eq!(condition(None).1, "Unknown");
        // A zero quota (nonsense) does not divide by zero.
        assert!(condition(Some(&space(1, 0, false))).0);
    }
}
