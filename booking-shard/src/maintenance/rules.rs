//! The maintenance rules: pure functions of what was read from etcd.

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

/// What to do, from the members' sizes and the alarm.
pub fn plan(members: &[MemberSize], quota: i64, mode: Mode, nospace: bool) -> Plan {
    let compact = match mode {
        Mode::Off => false,
        Mode::Alarm => nospace,
        Mode::Auto => nospace || members.iter().any(|m| pressed(m, quota)),
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
