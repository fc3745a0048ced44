//! Confirm, cancel, check in, and a leader change.

use std::time::Duration;

use super::super::check;
use super::super::sim::{Op, Sim, layout, rules};
use super::super::*;
use super::{engine, hold, now, seats};

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
    sim.hold_seats(0, &[0]);
    sim.confirm_first();
    assert_eq!(sim.engine.inventory().counts().sold, 1);
    sim.step(&Op::Cancel { pick: 0 }).expect("cancel");
    assert_eq!(sim.engine.inventory().counts().sold, 0);
    assert!(sim.world.bookings[0].cancelled);
    check::world(&sim.engine, &sim.world).expect("consistent");
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
        payment_intent: None,
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
    assert_eq!(
        orphans,
        &["main:A:2", "main:B:1"],
        "every lock of the earlier layout"
    );
    // The live hold expires on the new leader at its stored time.
    let mut e = loaded.engine;
    assert!(e.expire(t.after(Duration::from_secs(9))).is_none());
    assert!(e.expire(t.after(Duration::from_secs(10))).is_some());
}

#[test]
fn in_a_provider_show_only_a_verified_payment_confirms_and_a_new_leader_keeps_the_checkout() {
    use super::super::sim::Outcome;
    let mut sim = Sim::with_mode(PaymentMode::Provider, PaymentMode::Provider);
    sim.hold_seats(0, &[0, 1]);
    sim.confirm_first();
    assert!(sim.world.bookings.is_empty(), "a user cannot confirm");
    sim.step(&Op::Checkout {
        pick: 0,
        outcome: Outcome::Ok,
    })
    .expect("checkout");
    let id = sim.first_hold().expect("hold").record.id.clone();
    assert!(sim.world.holds[&id].payment_intent.is_some(), "in etcd");
    // A new leader loads the checkout from etcd: the hold still waits for its payment.
    sim.leader_change();
    assert!(matches!(
        sim.engine.release("u0", false, &id),
        Err(ShardError::Illegal(IllegalTransition::PaymentInProgress))
    ));
    sim.step(&Op::PaymentFailed { pick: 0 }).expect("failed");
    assert!(sim.world.holds[&id].payment_intent.is_none(), "held again");
    sim.step(&Op::Checkout {
        pick: 0,
        outcome: Outcome::Ok,
    })
    .expect("checkout");
    sim.step(&Op::Paid {
        pick: 0,
        outcome: Outcome::Ok,
    })
    .expect("paid");
    assert_eq!(sim.world.bookings.len(), 1);
    assert_eq!(
        sim.world.bookings[0].confirmed_by,
        ("provider".to_string(), format!("evt_{id}"))
    );
    check::world(&sim.engine, &sim.world).expect("consistent");
}
