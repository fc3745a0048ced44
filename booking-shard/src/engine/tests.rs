//! The engine's rules, one test each, then the property test over random command
//! sequences and the negative controls of its invariant check. No servers: the whole
//! file runs in milliseconds.

use std::time::Duration;

use proptest::prelude::*;

use super::check;
use super::sim::{Op, Outcome, SEATS, Sim, Want, layout, rules};
use super::*;
use crate::inventory::Holding;

fn engine() -> Engine {
    Engine::new(rules(), &layout())
}

fn now() -> Now {
    Now {
        wall_ms: 1_000_000,
        mono: std::time::Instant::now(),
    }
}

fn seats(ids: &[&str]) -> HoldRequest {
    HoldRequest::Seats(ids.iter().map(|s| s.to_string()).collect())
}

/// Decides a hold of `request` for `user` and writes it.
fn hold(e: &mut Engine, user: &str, request: &HoldRequest, at: Now) -> Result<HoldFacts> {
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
    let command = HoldCommand {
        user: "ann",
        request: &request,
        idempotency_key: None,
        id: "h1".into(),
        closed: false,
        now: now(),
    };
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
        let command = HoldCommand {
            user: "ann",
            request: &request,
            idempotency_key: None,
            id: "h1".into(),
            closed: false,
            now: now(),
        };
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

#[test]
fn confirm_sells_the_holds_seats_and_a_confirming_hold_does_not_expire() {
    let mut e = engine();
    let t = now();
    let h = hold(&mut e, "ann", &seats(&["main:A:1", "main:A:2"]), t).expect("held");
    let id = h.record.id.clone();
    assert!(matches!(
        e.confirm("bob", &id, "p", t),
        Err(ShardError::NotFound)
    ));
    let Ok(ConfirmDecision::Write { booking, .. }) = e.confirm("ann", &id, "pay-1", t) else {
        panic!("confirming");
    };
    assert_eq!(
        (booking.amount_minor, booking.currency.as_str()),
        (5000, "EUR")
    );
    assert_eq!(booking.seats, ["main:A:1", "main:A:2"]);
    assert!(
        matches!(e.confirm("ann", &id, "p", t), Err(ShardError::Conflict(_))),
        "busy"
    );
    assert!(matches!(
        e.release("ann", false, &id),
        Err(ShardError::Conflict(_))
    ));
    assert!(
        e.expire(t.after(Duration::from_secs(120))).is_none(),
        "confirming"
    );
    let event = e.confirmed(&id, "REF").expect("sold");
    assert_eq!(event.kind, SeatChange::Sold);
    assert_eq!(event.booking.as_deref(), Some("REF"));
    assert_eq!(
        (e.inventory().counts().sold, e.inventory().counts().held),
        (2, 0)
    );
    assert!(
        matches!(e.confirm("ann", &id, "p", t), Ok(ConfirmDecision::LookUp)),
        "a retry"
    );
}

#[test]
fn a_failed_confirm_returns_the_hold_or_steps_down_when_the_outcome_is_unknown() {
    let mut e = engine();
    let h = hold(&mut e, "ann", &seats(&["main:A:1"]), now()).expect("held");
    let id = h.record.id.clone();
    let phase = |e: &Engine| e.get_hold("ann", false, &id).map(|f| f.phase).ok();
    e.confirm("ann", &id, "p", now()).expect("confirming");
    assert!(e.confirm_write_failed(&id, false).is_none());
    assert_eq!(phase(&e), Some(HoldPhase::Live));
    e.confirm("ann", &id, "p", now()).expect("confirming");
    let r = e.confirm_check_failed(&id, Failure::Refused);
    assert!(matches!(r.error, ShardError::Expired) && r.step_down.is_none());
    e.confirm("ann", &id, "p", now()).expect("confirming");
    let r = e.confirm_write_failed(&id, true).expect("steps down");
    assert!(r.step_down.is_some());
    assert_eq!(
        phase(&e),
        Some(HoldPhase::Confirming),
        "the seats stay off sale"
    );
}

#[test]
fn a_cancelled_booking_returns_its_seats() {
    let mut sim = Sim::new();
    sim.step(&Op::Hold {
        user: 0,
        want: Want::Seats(vec![0]),
        key: None,
        outcome: Outcome::Ok,
    })
    .expect("hold");
    sim.step(&Op::Confirm {
        user: 1,
        pick: 0,
        outcome: Outcome::Ok,
    })
    .expect("confirm");
    assert_eq!(sim.engine.inventory().counts().sold, 1);
    sim.step(&Op::Cancel { pick: 0 }).expect("cancel");
    assert_eq!(sim.engine.inventory().counts().sold, 0);
    assert!(sim.world.bookings[0].cancelled);
    check::world(&sim.engine, &sim.world).expect("consistent");
}

#[test]
fn booking_transitions_follow_the_table() {
    use BookingState::*;
    let cancel = BookingAction::Cancel;
    let check_in = |key, first_key| BookingAction::CheckIn { key, first_key };
    assert_eq!(Confirmed.apply(cancel), Ok(Transition::To(Cancelled)));
    assert_eq!(Cancelled.apply(cancel), Ok(Transition::Unchanged));
    assert_eq!(
        CheckedIn.apply(cancel),
        Err(IllegalTransition::CancelCheckedIn)
    );
    assert_eq!(
        Confirmed.apply(check_in(None, None)),
        Ok(Transition::To(CheckedIn))
    );
    assert_eq!(
        Cancelled.apply(check_in(None, None)),
        Err(IllegalTransition::CheckInCancelled)
    );
    assert_eq!(
        CheckedIn.apply(check_in(Some("k"), Some("k"))),
        Ok(Transition::Unchanged)
    );
    assert_eq!(
        CheckedIn.apply(check_in(Some("k"), Some("j"))),
        Err(IllegalTransition::CheckedInTwice)
    );
    assert_eq!(
        CheckedIn.apply(check_in(None, None)),
        Err(IllegalTransition::CheckedInTwice)
    );
    assert_eq!(
        IllegalTransition::CheckInCancelled.to_string(),
        "booking is cancelled"
    );
}

#[test]
fn a_new_leader_loads_sales_and_live_holds_and_cleans_up_the_rest() {
    let t = now();
    let record = |id: &str, seat: &str, expires_at_ms| HoldRecord {
        id: id.into(),
        user: "ann".into(),
        seats: vec![seat.into()],
        area: None,
        quantity: 1,
        expires_at_ms,
        idempotency_key: None,
        created_at_ms: 0,
        request_digest: String::new(),
    };
    let sold = Sold {
        seats: vec!["main:A:1".into()],
        general: [("pit".to_string(), 2)].into(),
        per_user: [("ann".to_string(), 3)].into(),
        confirmed_holds: vec!["done".into()],
    };
    let holds = vec![
        record("live", "main:A:2", t.wall_ms + 10_000),
        record("old", "main:A:3", t.wall_ms - 1),
        record("done", "main:A:1", t.wall_ms + 10_000),
        record("ghost", "main:Z:9", t.wall_ms + 10_000),
    ];
    let locks = vec![
        ("main:A:2".to_string(), "live".to_string()),
        ("main:B:1".to_string(), "gone".to_string()),
    ];
    let loaded = Engine::load(rules(), &layout(), &sold, holds, locks, t);
    let e = &loaded.engine;
    let c = e.inventory().counts();
    assert_eq!(
        (c.sold, c.held),
        (3, 1),
        "one seat and two tickets sold, one hold live"
    );
    assert_eq!(e.hold_count(), 1);
    let [
        Effect::DeleteHolds(stale, _),
        Effect::DeleteSeatLocks(orphans),
    ] = &loaded.effects[..]
    else {
        panic!("{:?}", loaded.effects);
    };
    let mut stale: Vec<&str> = stale.iter().map(|r| r.id.as_str()).collect();
    stale.sort();
    assert_eq!(stale, ["done", "ghost", "old"]);
    assert_eq!(orphans, &["main:B:1"]);
    // The live hold expires on the new leader at its stored time.
    let mut e = loaded.engine;
    assert!(e.expire(t.after(Duration::from_secs(9))).is_none());
    assert!(e.expire(t.after(Duration::from_secs(10))).is_some());
}

// The invariant check's negative controls: each corrupts one thing and the check
// must say so.

fn sim_with_a_sale_and_a_hold() -> Sim {
    let mut sim = Sim::new();
    sim.step(&Op::Hold {
        user: 0,
        want: Want::Seats(vec![0, 1]),
        key: None,
        outcome: Outcome::Ok,
    })
    .expect("hold");
    sim.step(&Op::Confirm {
        user: 1,
        pick: 0,
        outcome: Outcome::Ok,
    })
    .expect("confirm");
    sim.step(&Op::Hold {
        user: 1,
        want: Want::Seats(vec![2]),
        key: None,
        outcome: Outcome::Ok,
    })
    .expect("hold");
    check::book(&sim.engine).expect("sound");
    check::world(&sim.engine, &sim.world).expect("sound");
    sim
}

#[test]
fn the_check_sees_a_seat_in_two_holds() {
    let mut sim = sim_with_a_sale_and_a_hold();
    let mut twin = sim
        .engine
        .book
        .slots
        .iter()
        .flatten()
        .next()
        .expect("a hold")
        .clone_for_test();
    twin.record.id = "twin".into();
    let slot = sim.engine.book.next_slot();
    sim.engine.book.insert(slot, twin);
    assert!(check::book(&sim.engine).is_err());
}

#[test]
fn the_check_sees_counters_that_drift_from_the_seats() {
    let mut sim = sim_with_a_sale_and_a_hold();
    // A held seat sold behind its hold's back.
    let held = sim
        .engine
        .book
        .slots
        .iter()
        .flatten()
        .next()
        .expect("a hold")
        .holding
        .clone();
    sim.engine.book.inventory.sell(&held);
    assert!(check::book(&sim.engine).is_err());
    let mut sim = sim_with_a_sale_and_a_hold();
    sim.engine.book.inventory.load_sold(&Holding::General {
        area: 0,
        quantity: 7,
    });
    assert!(check::book(&sim.engine).is_err(), "an area over capacity");
}

#[test]
fn the_check_sees_a_double_sale_a_lost_booking_and_an_unlocked_hold() {
    let mut sim = sim_with_a_sale_and_a_hold();
    let twice = sim.world.bookings[0].clone();
    sim.world.bookings.push(twice);
    assert!(check::world(&sim.engine, &sim.world).is_err(), "sold twice");
    let mut sim = sim_with_a_sale_and_a_hold();
    sim.world.bookings.clear();
    assert!(check::world(&sim.engine, &sim.world).is_err(), "lost");
    let mut sim = sim_with_a_sale_and_a_hold();
    sim.world.locks.clear();
    assert!(check::world(&sim.engine, &sim.world).is_err(), "unlocked");
}

#[test]
fn the_check_catches_a_leader_that_forgets_its_sales() {
    let mut sim = sim_with_a_sale_and_a_hold();
    sim.broken_load = true;
    sim.step(&Op::LeaderChange).expect("step");
    assert!(check::world(&sim.engine, &sim.world).is_err());
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => Just(Outcome::Ok),
        1 => Just(Outcome::NoSpace),
        1 => Just(Outcome::Fenced),
        1 => any::<bool>().prop_map(|applied| Outcome::Unknown { applied }),
    ]
}

fn want() -> impl Strategy<Value = Want> {
    prop_oneof![
        3 => proptest::collection::vec(0usize..9, 1..4).prop_map(Want::Seats),
        1 => (1u32..4).prop_map(Want::Best),
        2 => (1u64..5).prop_map(Want::General),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), want(), proptest::option::of(0u8..2), outcome())
            .prop_map(|(user, want, key, outcome)| Op::Hold { user, want, key, outcome }),
        2 => ((any::<u8>(), want()), (any::<u8>(), want())).prop_map(|(a, b)| Op::Race { a, b }),
        1 => (any::<u8>(), any::<usize>()).prop_map(|(user, pick)| Op::Release { user, pick }),
        1 => (any::<u8>(), any::<usize>(), outcome())
            .prop_map(|(user, pick, outcome)| Op::Extend { user, pick, outcome }),
        4 => (any::<u8>(), any::<usize>(), outcome())
            .prop_map(|(user, pick, outcome)| Op::Confirm { user, pick, outcome }),
        1 => any::<usize>().prop_map(|pick| Op::ConfirmAtExpiry { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Op::CheckIn { pick }),
        2 => (0u64..90).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::LeaderChange),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random command sequences keep every invariant after every step, and a new
    /// leader at the end agrees with the stores.
    #[test]
    fn random_command_sequences_keep_the_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        let mut sim = Sim::new();
        for (i, op) in ops.iter().enumerate() {
            let stepped = sim.step(op);
            prop_assert!(stepped.is_ok(), "step {i} {op:?}: {stepped:?}");
            let ok = check::book(&sim.engine).and_then(|()| check::world(&sim.engine, &sim.world));
            prop_assert!(ok.is_ok(), "after step {i} {op:?}: {ok:?}");
        }
        sim.leader_change();
        let ok = check::book(&sim.engine).and_then(|()| check::world(&sim.engine, &sim.world));
        prop_assert!(ok.is_ok(), "after the last leader change: {ok:?}");
    }
}
