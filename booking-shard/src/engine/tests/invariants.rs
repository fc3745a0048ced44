//! The invariant check's negative controls (each corrupts one thing and the check must
//! say so), and the property test that runs random command sequences through the
//! engine and checks every invariant after every step.

use proptest::prelude::*;

use super::super::PaymentMode;
use super::super::check;
use super::super::sim::{Op, Outcome, Sim, Want};
use crate::inventory::Holding;

fn sim_with_a_sale_and_a_hold() -> Sim {
    let mut sim = Sim::new();
    sim.hold_seats(0, &[0, 1]);
    sim.confirm_first();
    sim.hold_seats(1, &[2]);
    check::book(&sim.engine).expect("sound");
    check::world(&sim.engine, &sim.world).expect("sound");
    sim
}

#[test]
fn the_check_sees_a_seat_in_two_holds() {
    let mut sim = sim_with_a_sale_and_a_hold();
    let mut twin = sim.first_hold().expect("a hold").clone_for_test();
    twin.record.id = "twin".into();
    let slot = sim.engine.book.next_slot();
    sim.engine.book.insert(slot, twin);
    assert!(check::book(&sim.engine).is_err());
}

#[test]
fn the_check_sees_counters_that_drift_from_the_seats() {
    let mut sim = sim_with_a_sale_and_a_hold();
    // A held seat sold behind its hold's back.
    let held = sim.first_hold().expect("a hold").holding.clone();
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
fn the_check_sees_a_double_sale_a_lost_booking_and_a_seat_in_two_etcd_records() {
    let mut sim = sim_with_a_sale_and_a_hold();
    let twice = sim.world.bookings[0].clone();
    sim.world.bookings.push(twice);
    assert!(check::world(&sim.engine, &sim.world).is_err(), "sold twice");
    let mut sim = sim_with_a_sale_and_a_hold();
    sim.world.bookings.clear();
    assert!(check::world(&sim.engine, &sim.world).is_err(), "lost");
    let mut sim = sim_with_a_sale_and_a_hold();
    let held = sim.first_hold().expect("a hold").record.id.clone();
    sim.world.holds.remove(&held);
    assert!(
        check::world(&sim.engine, &sim.world).is_err(),
        "not in etcd"
    );
    // A second record with the live hold's seat (what a per-seat key used to refuse).
    let mut sim = sim_with_a_sale_and_a_hold();
    let mut twin = sim.first_hold().expect("a hold").record.clone();
    twin.id = "twin".into();
    sim.world.holds.insert(twin.id.clone(), twin);
    assert!(
        check::world(&sim.engine, &sim.world).is_err(),
        "in two records"
    );
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
        2 => (any::<usize>(), outcome()).prop_map(|(pick, outcome)| Op::Checkout { pick, outcome }),
        3 => (any::<usize>(), outcome()).prop_map(|(pick, outcome)| Op::Paid { pick, outcome }),
        1 => any::<usize>().prop_map(|pick| Op::PaymentFailed { pick }),
    ]
}

/// How a run is broken on purpose (the negative controls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    Nothing,
    /// A leader change that forgets what was sold.
    Load,
    /// A provider show whose engine is told payments are off (users confirm).
    Mode,
}

fn mode() -> impl Strategy<Value = PaymentMode> {
    prop_oneof![
        Just(PaymentMode::None),
        Just(PaymentMode::Provider),
        Just(PaymentMode::TrustedService),
    ]
}

/// Runs `ops` and checks every invariant after every step and after a last leader
/// change.
fn run(mode: PaymentMode, ops: &[Op], broken: Broken) -> Result<(), TestCaseError> {
    let engine_mode = if broken == Broken::Mode {
        PaymentMode::None
    } else {
        mode
    };
    let mut sim = Sim::with_mode(mode, engine_mode);
    sim.broken_load = broken == Broken::Load;
    for (i, op) in ops.iter().enumerate() {
        let stepped = sim.step(op);
        prop_assert!(stepped.is_ok(), "step {i} {op:?}: {stepped:?}");
        let ok = check::book(&sim.engine).and_then(|()| check::world(&sim.engine, &sim.world));
        prop_assert!(ok.is_ok(), "after step {i} {op:?}: {ok:?}");
    }
    sim.leader_change();
    let ok = check::book(&sim.engine).and_then(|()| check::world(&sim.engine, &sim.world));
    prop_assert!(ok.is_ok(), "after the last leader change: {ok:?}");
    Ok(())
}

fn sequences() -> impl Strategy<Value = (PaymentMode, Vec<Op>)> {
    (mode(), proptest::collection::vec(op(), 1..60))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random command sequences keep every invariant after every step, and a new
    /// leader at the end agrees with the stores.
    #[test]
    fn random_command_sequences_keep_the_invariants((mode, ops) in sequences()) {
        run(mode, &ops, Broken::Nothing)?;
    }
}

/// The property test's own negative control: the same runs with a broken leader change
/// must find a violation (else the runs would not reach sales and leader changes).
#[test]
fn the_property_test_finds_a_leader_that_forgets_its_sales() {
    let config = ProptestConfig {
        cases: 128,
        failure_persistence: None,
        max_shrink_iters: 0,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&sequences(), |(mode, ops)| run(mode, &ops, Broken::Load));
    assert!(result.is_err(), "no run found the broken leader change");
}

/// And a provider show whose engine lets users confirm must be found selling unpaid
/// bookings (the runs reach confirms and the check looks at who confirmed).
#[test]
fn the_property_test_finds_bookings_confirmed_without_a_payment() {
    let config = ProptestConfig {
        cases: 128,
        failure_persistence: None,
        max_shrink_iters: 0,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let provider = (
        Just(PaymentMode::Provider),
        proptest::collection::vec(op(), 1..60),
    );
    let result = runner.run(&provider, |(mode, ops)| run(mode, &ops, Broken::Mode));
    assert!(result.is_err(), "no run found an unpaid booking");
}
