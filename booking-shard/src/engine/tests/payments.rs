//! The lifecycle's property test: random sequences of holds, checkouts, confirms,
//! provider callbacks (success, failure, refund; duplicated, late, forged in three
//! ways), releases, cancels, time passing and leader changes, in each payment mode.
//! After every step: no seat confirmed twice; in provider mode no booking confirmed
//! without a verified payment event; every booking's audit trail replays through the
//! transition function to its current state; memory agrees with the stored states.
//! Negative controls: each broken rule must be found.

use std::collections::HashMap;

use proptest::prelude::*;

use super::super::lifecycle::{BookingState, PaymentMode, Transition};
use super::super::sim::payments::{Desk, Forgery, Kind, PayOp, Recorded, SEATS};

/// Every invariant, recomputed from the entries and their audit rows.
fn check(desk: &Desk) -> Result<(), String> {
    let mut owner: HashMap<usize, usize> = HashMap::new();
    for (i, e) in desk.entries.iter().enumerate() {
        if e.state.owns_seats() {
            for &s in &e.seats {
                if let Some(j) = owner.insert(s, i) {
                    return Err(format!("seat {s} confirmed in {j} and {i}"));
                }
            }
        }
        let mut state = BookingState::Held;
        for (n, row) in e.audit.iter().enumerate() {
            if row.from != state {
                return Err(format!(
                    "entry {i} row {n}: from {} but was {state}",
                    row.from
                ));
            }
            match state.apply(row.action.action(desk.mode)) {
                Ok(Transition::To(to)) if to == row.to => state = to,
                other => return Err(format!("entry {i} row {n} {row:?} replays to {other:?}")),
            }
            if desk.mode == PaymentMode::Provider && row.to == BookingState::Confirmed {
                let verified = matches!(row.action, Recorded::Paid { .. })
                    && row
                        .event
                        .as_ref()
                        .is_some_and(|id| desk.events.contains_key(id));
                if !verified {
                    return Err(format!(
                        "entry {i} confirmed without a verified payment: {row:?}"
                    ));
                }
            }
        }
        if state != e.state {
            return Err(format!(
                "entry {i} is {} but its trail replays to {state}",
                e.state
            ));
        }
    }
    if desk.seats != desk.stored_seats() {
        return Err(format!(
            "memory {:?} but stored {:?}",
            desk.seats,
            desk.stored_seats()
        ));
    }
    Ok(())
}

fn mode() -> impl Strategy<Value = PaymentMode> {
    prop_oneof![
        Just(PaymentMode::Provider),
        Just(PaymentMode::TrustedService),
        Just(PaymentMode::None),
    ]
}

fn op() -> impl Strategy<Value = PayOp> {
    let kind =
        prop_oneof![4 => Just(Kind::Paid), 2 => Just(Kind::Failed), 1 => Just(Kind::Refunded)];
    let forgery = prop_oneof![
        6 => Just(Forgery::None),
        1 => Just(Forgery::WrongSecret),
        1 => Just(Forgery::Stale),
        1 => Just(Forgery::Tampered),
    ];
    prop_oneof![
        4 => proptest::collection::vec(0..SEATS, 1..3).prop_map(|seats| PayOp::Hold { seats }),
        3 => any::<usize>().prop_map(|pick| PayOp::Checkout { pick }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, trusted)| PayOp::Confirm { pick, trusted }),
        // Few event ids: duplicates and replays are common.
        6 => (any::<usize>(), kind, 0u8..12, forgery).prop_map(|(pick, kind, event, forgery)| {
            PayOp::Callback { pick, kind, event, forgery }
        }),
        1 => any::<usize>().prop_map(|pick| PayOp::Release { pick }),
        1 => any::<usize>().prop_map(|pick| PayOp::Cancel { pick }),
        2 => (1i64..150).prop_map(|secs| PayOp::Advance { secs }),
        1 => Just(PayOp::LeaderChange),
    ]
}

fn cases() -> impl Strategy<Value = (PaymentMode, Vec<PayOp>)> {
    (mode(), proptest::collection::vec(op(), 1..80))
}

/// Runs `ops` with `broken` applied to the desk, checking after every step.
fn run(mode: PaymentMode, ops: &[PayOp], broken: fn(&mut Desk)) -> Result<(), TestCaseError> {
    let mut desk = Desk::new(mode);
    broken(&mut desk);
    for (i, op) in ops.iter().enumerate() {
        let before = desk.events.len();
        desk.step(op);
        if let PayOp::Callback { forgery, .. } = op
            && *forgery != Forgery::None
        {
            prop_assert_eq!(desk.events.len(), before, "a forged callback was accepted");
        }
        let ok = check(&desk);
        prop_assert!(ok.is_ok(), "after step {} {:?}: {:?}", i, op, ok);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_payment_sequences_keep_the_invariants((mode, ops) in cases()) {
        run(mode, &ops, |_| {})?;
    }
}

/// Whether the property test finds the broken rule within its usual number of runs.
fn finds(broken: fn(&mut Desk), mode: fn() -> BoxedStrategy<PaymentMode>) -> bool {
    let config = ProptestConfig {
        cases: 256,
        failure_persistence: None,
        max_shrink_iters: 0,
        ..ProptestConfig::default()
    };
    let strategy = (mode(), proptest::collection::vec(op(), 1..80));
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&strategy, |(m, ops)| run(m, &ops, broken))
        .is_err()
}

#[test]
fn the_property_test_finds_a_late_payment_that_takes_sold_seats() {
    assert!(finds(|d| d.broken_late_payment = true, || mode().boxed()));
}

#[test]
fn the_property_test_finds_a_user_confirming_without_paying() {
    assert!(finds(
        |d| d.broken_confirm = true,
        || Just(PaymentMode::Provider).boxed()
    ));
}

#[test]
fn the_check_finds_an_audit_trail_that_does_not_replay() {
    let mut desk = Desk::new(PaymentMode::Provider);
    desk.step(&PayOp::Hold { seats: vec![0] });
    desk.step(&PayOp::Checkout { pick: 0 });
    let paid = PayOp::Callback {
        pick: 0,
        kind: Kind::Paid,
        event: 1,
        forgery: Forgery::None,
    };
    desk.step(&paid);
    assert_eq!(desk.entries[0].state, BookingState::Confirmed);
    check(&desk).expect("sound");
    let mut lost = Desk::new(PaymentMode::Provider);
    lost.entries = desk.entries.clone();
    lost.events = desk.events.clone();
    lost.seats = desk.seats;
    lost.entries[0].audit.remove(0);
    assert!(check(&lost).is_err(), "a missing row");
    lost.entries = desk.entries.clone();
    lost.events.clear();
    assert!(
        check(&lost).is_err(),
        "confirmed by an event nobody verified"
    );
}

#[test]
fn a_late_payment_takes_free_seats_again_and_fails_when_they_are_gone() {
    let callback = |event| PayOp::Callback {
        pick: 0,
        kind: Kind::Paid,
        event,
        forgery: Forgery::None,
    };
    let mut desk = Desk::new(PaymentMode::Provider);
    desk.step(&PayOp::Hold { seats: vec![0, 1] });
    desk.step(&PayOp::Checkout { pick: 0 });
    desk.step(&PayOp::Advance { secs: 121 });
    assert_eq!(desk.entries[0].state, BookingState::Expired);
    desk.step(&callback(1));
    assert_eq!(
        desk.entries[0].state,
        BookingState::Confirmed,
        "seats were free"
    );

    let mut desk = Desk::new(PaymentMode::Provider);
    desk.step(&PayOp::Hold { seats: vec![0, 1] });
    desk.step(&PayOp::Checkout { pick: 0 });
    desk.step(&PayOp::Advance { secs: 121 });
    desk.step(&PayOp::Hold { seats: vec![1] });
    desk.step(&callback(1));
    assert_eq!(
        desk.entries[0].state,
        BookingState::Failed,
        "seat 1 is held by another"
    );
    // The replay gets the first answer; the refund completes the failed one.
    desk.step(&callback(1));
    assert_eq!(desk.events.get("evt_1"), Some(&(0, BookingState::Failed)));
    desk.step(&PayOp::Callback {
        pick: 0,
        kind: Kind::Refunded,
        event: 2,
        forgery: Forgery::None,
    });
    assert_eq!(desk.entries[0].state, BookingState::Refunded);
    check(&desk).expect("sound");
}

#[test]
fn forged_callbacks_change_nothing() {
    for forgery in [Forgery::WrongSecret, Forgery::Stale, Forgery::Tampered] {
        let mut desk = Desk::new(PaymentMode::Provider);
        desk.step(&PayOp::Hold { seats: vec![0] });
        desk.step(&PayOp::Checkout { pick: 0 });
        desk.step(&PayOp::Callback {
            pick: 0,
            kind: Kind::Paid,
            event: 1,
            forgery,
        });
        assert_eq!(
            desk.entries[0].state,
            BookingState::PaymentPending,
            "{forgery:?}"
        );
        assert!(desk.events.is_empty());
    }
}
