//! The maintenance rules: pure functions of what was read from etcd.

use std::time::Duration;

use super::Mode;

/// One member's size, as its status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSize {
    pub db_size: i64,
    pub in_use: i64,
}

/// What the rules decide before acting.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub compact: bool,
    /// Indices of the members to defragment.
    pub defragment: Vec<usize>,
}

/// Whether a member's file is past half the quota (then Auto mode acts early).
fn pressed(m: &MemberSize, quota: i64) -> bool {
    m.db_size >= quota / 2
}

/// Whether defragmenting a member is worth blocking it for the copy: under the alarm,
/// when it gives back at least 5% of the quota; otherwise (Auto mode) when the file is
/// past half the quota and at least half of it is free.
pub fn worth_defragmenting(m: &MemberSize, quota: i64, mode: Mode, nospace: bool) -> bool {
    let free = m.db_size - m.in_use;
    match (mode, nospace) {
        (Mode::Off, _) => false,
        (_, true) => free >= quota / 20,
        (Mode::Auto, false) => pressed(m, quota) && free >= m.db_size / 2,
        (Mode::Alarm, false) => false,
    }
}

/// Whether history is piling up: a member holds more than a quarter of the quota in
/// use (live keys and the revisions not yet compacted). Then Auto mode compacts.
fn piling_up(m: &MemberSize, quota: i64) -> bool {
    m.in_use >= quota / 4
}

/// How long until the next look. A busy show writes megabytes of revisions a second
/// (each hold puts and later deletes its keys), so one interval of history can be
/// more than the quota: once a member's bytes in use pass an eighth of the quota,
/// Auto mode looks (and compacts, keeping one pass of history) every second.
pub fn pace(members: &[MemberSize], quota: i64, mode: Mode, interval: Duration) -> Duration {
    let busy = members.iter().any(|m| m.in_use >= quota / 8);
    if mode == Mode::Auto && busy {
        interval.min(FAST_PACE)
    } else {
        interval
    }
}

/// The pace of the loop while history piles up.
pub const FAST_PACE: Duration = Duration::from_secs(1);

/// What to do, from the members' sizes and the alarm.
pub fn plan(members: &[MemberSize], quota: i64, mode: Mode, nospace: bool) -> Plan {
    let compact = match mode {
        Mode::Off => false,
        Mode::Alarm => nospace,
        Mode::Auto => {
            nospace
                || members
                    .iter()
                    .any(|m| pressed(m, quota) || piling_up(m, quota))
        }
    };
    let defragment = members
        .iter()
        .enumerate()
        .filter(|(_, m)| worth_defragmenting(m, quota, mode, nospace))
        .map(|(i, _)| i)
        .collect();
    Plan {
        compact,
        defragment,
    }
}

/// Whether the alarm may be disarmed: every member's file is at most 80% of the quota,
/// so writes have room again (disarming earlier would only raise it at once).
pub fn may_disarm(members: &[MemberSize], quota: i64) -> bool {
    !members.is_empty() && members.iter().all(|m| m.db_size <= quota / 10 * 8)
}
