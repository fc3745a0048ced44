//! The engine's rules, one test each (holds here, bookings and leader changes in
//! `bookings.rs`), then the property test over random command sequences and the
//! negative controls of its invariant check (`invariants.rs`). No servers: all of it
//! runs in well under a second.

mod bookings;
mod invariants;

use std::time::Duration;

use super::sim::{SEATS, layout, rules};
use super::*;

pub(super) fn engine() -> Engine {
    Engine::new(rules(), &layout())
}

pub(super) fn now() -> Now {
    Now {
        wall_ms: 1_000_000,
        mono: std::time::Instant::now(),
    }
}

pub(super) fn seats(ids: &[&str]) -> HoldRequest {
    HoldRequest::Seats(ids.iter().map(|s| s.to_string()).collect())
}

/// A hold command of ann's, now, without an idempotency key.
pub(super) fn ann<'a>(id: &str, request: &'a HoldRequest) -> HoldCommand<'a> {
    HoldCommand {
        user: "ann",
        request,
        idempotency_key: None,
        id: id.into(),
        closed: false,
        now: now(),
    }
}

/// Decides a hold of `request` for `user` and writes it.
pub(super) fn hold(
    e: &mut Engine,
    user: &str,
    request: &HoldRequest,
    at: Now,
) -> Result<HoldFacts> {
    let id = format!("h{}", e.hold_count() + e.book.slots.len());
    let command = HoldCommand {
        user,
        request,
        idempotency_key: None,
        id,
        closed: false,
        now: at,
    };
    match e.hold(command)? {
        HoldDecision::Write(r) => Ok(e.hold_written(&r.id)?.0),
        HoldDecision::Existing(f) => Ok(f),
    }
}

#[test]
fn a_hold_takes_free_seats_and_publishes_held_once_written() {
    let mut e = engine();
    let request = seats(&["main:A:1", "main:A:2"]);
    let command = ann("h1", &request);
    let HoldDecision::Write(record) = e.hold(command).expect("held") else {
        panic!("a new hold is written");
    };
    assert_eq!(record.seats, ["main:A:1", "main:A:2"]);
    assert_eq!(record.expires_at_ms, now().wall_ms + 60_000);
    assert_eq!(e.inventory().counts().held, 2, "reserved while pending");
    let (facts, event) = e.hold_written("h1").expect("live");
    assert_eq!(facts.phase, HoldPhase::Live);
    assert_eq!((facts.amount_minor, facts.currency.as_str()), (5000, "EUR"));
    assert_eq!(event.kind, SeatChange::Held);
    assert_eq!(event.counts.held, 2);
}

#[test]
fn taken_seats_are_refused_naming_them_and_nothing_changes() {
    let mut e = engine();
    hold(&mut e, "ann", &seats(&["main:A:1"]), now()).expect("held");
    let err = hold(&mut e, "bob", &seats(&["main:A:2", "main:A:1"]), now()).expect_err("taken");
    assert!(
        matches!(&err, ShardError::SeatsUnavailable(s) if s == &["main:A:1"]),
        "{err:?}"
    );
    assert!(err.is_conflict());
    assert_eq!(e.inventory().counts().held, 1);
}

#[test]
fn bad_input_is_refused_with_its_kind() {
    let mut e = engine();
    let kind = |e: &mut Engine, r: HoldRequest| match hold(e, "ann", &r, now()) {
        Err(ShardError::BadRequest(k, _)) => Some(k),
        _ => None,
    };
    assert_eq!(kind(&mut e, seats(&[])), Some(BadInput::Request));
    assert_eq!(
        kind(&mut e, seats(&["main:Z:1"])),
        Some(BadInput::UnknownSeat)
    );
    assert_eq!(
        kind(&mut e, seats(&["main:A:1", "main:A:1"])),
        Some(BadInput::DuplicateSeat)
    );
    let best = |q, section: Option<&str>, category: Option<&str>| HoldRequest::Best {
        quantity: q,
        section: section.map(str::to_string),
        category: category.map(str::to_string),
    };
    assert_eq!(kind(&mut e, best(0, None, None)), Some(BadInput::Quantity));
    assert_eq!(
        kind(&mut e, best(1, Some("balcony"), None)),
        Some(BadInput::UnknownSection)
    );
    assert_eq!(
        kind(&mut e, best(1, None, Some("vip"))),
        Some(BadInput::UnknownCategory)
    );
    let ga = |area: &str, q| HoldRequest::General {
        area: area.into(),
        quantity: q,
    };
    assert_eq!(kind(&mut e, ga("lawn", 1)), Some(BadInput::UnknownArea));
    assert_eq!(kind(&mut e, ga("pit", 0)), Some(BadInput::Quantity));
    assert_eq!(e.inventory().counts().held, 0);
}

#[test]
fn per_hold_and_per_user_limits() {
    let mut e = engine();
    let five = seats(&SEATS[..5]);
    assert!(matches!(
        hold(&mut e, "ann", &five, now()),
        Err(ShardError::Limit(_))
    ));
    hold(&mut e, "ann", &seats(&SEATS[..4]), now()).expect("four");
    hold(&mut e, "ann", &seats(&SEATS[4..6]), now()).expect("six in all");
    let err = hold(&mut e, "ann", &seats(&SEATS[6..7]), now()).expect_err("a seventh");
    assert!(
        matches!(&err, ShardError::Limit(m) if m.contains("per user")),
        "{err:?}"
    );
    hold(&mut e, "bob", &seats(&SEATS[6..7]), now()).expect("another user");
}

#[test]
fn sales_window_and_withdrawn_show() {
    let r = Rules {
        opens_at_ms: Some(100),
        closes_at_ms: Some(200),
        ..rules()
    };
    assert!(matches!(
        r.sales_open(99, false),
        Err(ShardError::Closed(_))
    ));
    assert!(r.sales_open(100, false).is_ok());
    assert!(matches!(
        r.sales_open(200, false),
        Err(ShardError::Closed(_))
    ));
    assert!(matches!(
        rules().sales_open(150, true),
        Err(ShardError::Closed(_))
    ));
    let mut e = Engine::new(r, &layout());
    let at = Now {
        wall_ms: 50,
        ..now()
    };
    assert!(matches!(
        hold(&mut e, "ann", &seats(&["main:A:1"]), at),
        Err(ShardError::Closed(_))
    ));
}

#[test]
fn general_admission_never_exceeds_capacity() {
    let mut e = engine();
    let ga = |q| HoldRequest::General {
        area: "pit".into(),
        quantity: q,
    };
    hold(&mut e, "ann", &ga(4), now()).expect("four");
    let err = hold(&mut e, "bob", &ga(3), now()).expect_err("two left");
    assert!(
        matches!(err, ShardError::SoldOut { available: 2, .. }),
        "{err:?}"
    );
    hold(&mut e, "bob", &ga(2), now()).expect("the last two");
}

#[test]
fn an_idempotent_retry_answers_the_first_hold_only_once_it_is_live() {
    let mut e = engine();
    let request = seats(&["main:A:1"]);
    let command = |id: &str, request| HoldCommand {
        user: "ann",
        request,
        idempotency_key: Some("k".into()),
        id: id.into(),
        closed: false,
        now: now(),
    };
    let Ok(HoldDecision::Write(first)) = e.hold(command("h1", &request)) else {
        panic!("written");
    };
    assert!(
        matches!(
            e.hold(command("h2", &request)),
            Err(ShardError::Conflict(_))
        ),
        "pending"
    );
    e.hold_written(&first.id).expect("live");
    match e.hold(command("h3", &request)) {
        Ok(HoldDecision::Existing(f)) => assert_eq!(f.record.id, "h1"),
        other => panic!("{other:?}"),
    }
    let other = seats(&["main:A:2"]);
    assert!(matches!(
        e.hold(command("h4", &other)),
        Err(ShardError::IdempotencyMismatch)
    ));
}

#[test]
fn a_failed_hold_write_undoes_the_reservation_and_says_whether_to_step_down() {
    for (failure, step_down, storage_full) in [
        (Failure::Refused, true, false),
        (Failure::Fenced, true, false),
        (Failure::NoSpace, false, true),
        (Failure::Unknown, true, false),
    ] {
        let mut e = engine();
        let request = seats(&["main:A:1"]);
        let command = ann("h1", &request);
        let Ok(HoldDecision::Write(record)) = e.hold(command) else {
            panic!("written");
        };
        let reaction = e.hold_failed(&record, failure);
        assert_eq!(reaction.step_down.is_some(), step_down, "{failure:?}");
        assert_eq!(
            matches!(reaction.error, ShardError::StorageFull),
            storage_full
        );
        assert_eq!(e.inventory().counts().held, 0, "{failure:?}: undone");
        assert_eq!(e.hold_count(), 0);
    }
}

#[test]
fn release_is_for_the_owner_or_staff_and_only_when_live() {
    let mut e = engine();
    let h = hold(&mut e, "ann", &seats(&["main:A:1"]), now()).expect("held");
    assert!(matches!(
        e.release("bob", false, &h.record.id),
        Err(ShardError::NotFound)
    ));
    let Ok(Effect::DeleteHolds(records, SeatChange::Released)) =
        e.release("bob", true, &h.record.id)
    else {
        panic!("staff release");
    };
    assert!(
        matches!(
            e.release("ann", false, &h.record.id),
            Err(ShardError::Conflict(_))
        ),
        "busy"
    );
    let events = e.holds_deleted(&records, SeatChange::Released);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, SeatChange::Released);
    assert_eq!(e.inventory().counts().held, 0);
}

#[test]
fn expiry_takes_live_holds_past_their_deadline_and_remembers_them() {
    let mut e = engine();
    let t = now();
    let h = hold(&mut e, "ann", &seats(&["main:A:1"]), t).expect("held");
    assert!(e.expire(t.after(Duration::from_secs(59))).is_none());
    let Some(Effect::DeleteHolds(records, SeatChange::Expired)) =
        e.expire(t.after(Duration::from_secs(60)))
    else {
        panic!("due");
    };
    e.holds_deleted(&records, SeatChange::Expired);
    let late = t.after(Duration::from_secs(61));
    assert!(matches!(
        e.confirm("ann", &h.record.id, "p", late),
        Err(ShardError::Expired)
    ));
    assert!(matches!(
        e.extend("ann", false, &h.record.id, late),
        Err(ShardError::Expired)
    ));
    // Someone else is not told it existed.
    assert!(matches!(
        e.confirm("bob", &h.record.id, "p", late),
        Ok(ConfirmDecision::LookUp)
    ));
}

#[test]
fn extension_is_one_ttl_from_now_and_three_ttls_in_all() {
    let mut e = engine();
    let t = now();
    let h = hold(&mut e, "ann", &seats(&["main:A:1"]), t).expect("held");
    let id = h.record.id.clone();
    let at = t.after(Duration::from_secs(30));
    let record = e.extend("ann", false, &id, at).expect("extend");
    assert_eq!(record.expires_at_ms, at.wall_ms + 60_000);
    assert!(
        matches!(
            e.extend("ann", false, &id, at),
            Err(ShardError::Conflict(_))
        ),
        "pending"
    );
    e.extended(record).expect("written");
    // Not due at the old deadline any more.
    assert!(e.expire(t.after(Duration::from_secs(61))).is_none());
    let at = t.after(Duration::from_secs(85));
    let record = e.extend("ann", false, &id, at).expect("again");
    assert_eq!(record.expires_at_ms, at.wall_ms + 60_000);
    e.extended(record).expect("written");
    let at = t.after(Duration::from_secs(140));
    let record = e.extend("ann", false, &id, at).expect("and again");
    assert_eq!(
        record.expires_at_ms,
        t.wall_ms + 180_000,
        "capped at three TTLs"
    );
    e.extended(record).expect("written");
    let at = t.after(Duration::from_secs(170));
    assert!(matches!(
        e.extend("ann", false, &id, at),
        Err(ShardError::Limit(_))
    ));
}

#[test]
fn a_failed_extension_keeps_or_expires_the_hold() {
    let mut e = engine();
    let h = hold(&mut e, "ann", &seats(&["main:A:1"]), now()).expect("held");
    let later = now().after(Duration::from_secs(10));
    let record = e.extend("ann", false, &h.record.id, later).expect("extend");
    let r = e.extend_failed(&record, Failure::NoSpace);
    assert!(matches!(r.error, ShardError::StorageFull) && r.step_down.is_none());
    assert_eq!(
        e.get_hold("ann", false, &h.record.id).map(|f| f.phase).ok(),
        Some(HoldPhase::Live)
    );
    let record = e.extend("ann", false, &h.record.id, later).expect("extend");
    let r = e.extend_failed(&record, Failure::Refused);
    assert!(matches!(r.error, ShardError::Expired));
    assert!(matches!(
        &r.effects[..],
        [Effect::DeleteHolds(_, SeatChange::Expired)]
    ));
}
