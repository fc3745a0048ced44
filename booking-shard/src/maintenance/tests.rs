//! Unit tests of the maintenance rules and of who acts.

use super::*;

const MIB: i64 = 1024 * 1024;
const QUOTA: i64 = 100 * MIB;

fn size(db_size: i64, in_use: i64) -> MemberSize {
    MemberSize {
        db_size: db_size * MIB,
        in_use: in_use * MIB,
    }
}

#[test]
fn a_small_database_is_left_alone() {
    let members = [size(40, 5)];
    assert_eq!(plan(&members, QUOTA, Mode::Auto, false), Plan::default());
}

#[test]
fn auto_mode_acts_before_the_alarm_when_half_the_quota_is_used() {
    // Past half the quota and mostly free pages: compact and defragment.
    let members = [size(60, 20), size(55, 40)];
    assert_eq!(
        plan(&members, QUOTA, Mode::Auto, false),
        Plan {
            compact: true,
            defragment: vec![0],
        }
    );
    // Only-alarm mode waits for the alarm; off does nothing.
    assert_eq!(plan(&members, QUOTA, Mode::Alarm, false), Plan::default());
    assert_eq!(plan(&members, QUOTA, Mode::Off, true), Plan::default());
}

#[test]
fn history_piling_up_is_compacted_every_second() {
    let interval = Duration::from_secs(10);
    // A small file with little in use: the interval, nothing to do.
    assert_eq!(pace(&[size(20, 10)], QUOTA, Mode::Auto, interval), interval);
    // An eighth of the quota in use: look every second.
    let busy = [size(20, 13)];
    assert_eq!(pace(&busy, QUOTA, Mode::Auto, interval), FAST_PACE);
    assert_eq!(pace(&busy, QUOTA, Mode::Alarm, interval), interval);
    let short = Duration::from_millis(500);
    assert_eq!(pace(&busy, QUOTA, Mode::Auto, short), short);
    // A quarter in use, though the file is below half the quota: compact (and no
    // defragmentation: the file is small).
    assert_eq!(
        plan(&[size(30, 26)], QUOTA, Mode::Auto, false),
        Plan {
            compact: true,
            defragment: vec![],
        }
    );
}

#[test]
fn under_the_alarm_every_member_with_space_to_give_is_defragmented() {
    let members = [size(100, 70), size(100, 97), size(99, 10)];
    for mode in [Mode::Auto, Mode::Alarm] {
        assert_eq!(
            plan(&members, QUOTA, mode, true),
            Plan {
                compact: true,
                defragment: vec![0, 2],
            },
            "{mode:?}"
        );
    }
}

#[test]
fn the_alarm_is_disarmed_only_when_every_member_has_room() {
    assert!(may_disarm(&[size(10, 10), size(80, 80)], QUOTA));
    assert!(!may_disarm(&[size(10, 10), size(81, 81)], QUOTA));
    // Live data filling the quota: compaction cannot help, the alarm stays.
    assert!(!may_disarm(&[size(98, 97)], QUOTA));
    assert!(!may_disarm(&[], QUOTA), "no member answered");
}

#[test]
fn only_the_leader_acts_unless_the_alarm_leaves_the_show_without_one() {
    use crate::coord::LeaderInfo;
    let someone = Role::Follower(Some(LeaderInfo {
        pod: "p".into(),
        address: "http://x".into(),
        sig: String::new(),
    }));
    assert!(!may_act(&someone, true));
    assert!(!may_act(&Role::Candidate, false));
    assert!(may_act(&Role::Candidate, true));
    assert!(may_act(&Role::Follower(None), true));
}
