//! Every state against every action, written out as a table independently of the
//! transition function: each cell is the expected outcome.

use super::super::lifecycle::PaymentMode::{None as Free, Provider, TrustedService};
use super::super::*;

/// The actions, one column each (the header of [`EXPECTED`]).
fn actions() -> Vec<(&'static str, BookingAction<'static>)> {
    use BookingAction as A;
    let confirm = |mode, trusted| A::Confirm { mode, trusted };
    let check_in = |key, first_key| A::CheckIn { key, first_key };
    vec![
        ("checkout/none", A::Checkout { mode: Free }),
        ("checkout/provider", A::Checkout { mode: Provider }),
        ("confirm/none", confirm(Free, false)),
        ("confirm/provider", confirm(Provider, false)),
        ("confirm/provider+payments role", confirm(Provider, true)),
        ("confirm/trusted", confirm(TrustedService, false)),
        (
            "confirm/trusted+payments role",
            confirm(TrustedService, true),
        ),
        ("paid/seats free", A::Paid { seats_free: true }),
        ("paid/seats taken", A::Paid { seats_free: false }),
        ("payment failed", A::PaymentFailed),
        ("release", A::Release),
        ("expire", A::Expire),
        ("cancel/paid", A::Cancel { paid: true }),
        ("cancel/free", A::Cancel { paid: false }),
        ("refunded", A::Refunded),
        ("check in", check_in(None, None)),
        ("check in/same key", check_in(Some("k"), Some("k"))),
        ("check in/other key", check_in(Some("j"), Some("k"))),
    ]
}

/// Rows in [`BookingState::ALL`]'s order; `=` unchanged, a state name a move there,
/// `!x` an illegal transition (see [`illegal`]).
const EXPECTED: [&str; 10] = [
    // checkout   | confirm: none, provider, provider+role, trusted, trusted+role | paid free, taken | failed | release | expire | cancel paid, free | refunded | check in ×3
    "!off payment_pending     confirmed !pay !pay !pay confirmed   confirmed confirmed   =  released         expired  !nb !nb  !nr  !nb !nb !nb",
    "=    =                   !busy !pay !pay !pay confirmed       confirmed confirmed   held !busy         expired  !nb !nb  !nr  !nb !nb !nb",
    "!booked !booked          = = = = =                            = =                   !settled !booked   !booked  refund_pending cancelled  !nr  checked_in checked_in checked_in",
    "!booked !booked          = = = = =                            = =                   !settled !booked   !booked  !cci !cci  !nr  !twice = !twice",
    "!booked !booked          = = = = =                            = =                   !settled !booked   !booked  = =  !nr  !cic !cic !cic",
    "!booked !booked          = = = = =                            = =                   !settled !booked   !booked  = =  refunded  !cic !cic !cic",
    "!booked !booked          = = = = =                            = =                   !settled !booked   !booked  = =  =  !cic !cic !cic",
    "!ended !ended            !ended !ended !ended !ended !ended   confirmed failed      = !ended           =  !nb !nb  !nr  !nb !nb !nb",
    "!ended !ended            !ended !ended !ended !ended !ended   confirmed failed      = !ended           =  !nb !nb  !nr  !nb !nb !nb",
    "!late !late              !late !late !late !late !late        = =                   !settled !late     !late  = =  refunded  !nb !nb !nb",
];

fn illegal(code: &str) -> IllegalTransition {
    use IllegalTransition::*;
    match code {
        "!off" => PaymentsOff,
        "!pay" => PaymentRequired,
        "!busy" => PaymentInProgress,
        "!booked" => AlreadyBooked,
        "!settled" => PaymentSettled,
        "!ended" => HoldEnded,
        "!late" => PaymentTooLate,
        "!nb" => NotBooked,
        "!nr" => NoRefundPending,
        "!cci" => CancelCheckedIn,
        "!cic" => CheckInCancelled,
        "!twice" => CheckedInTwice,
        other => panic!("unknown code {other}"),
    }
}

fn expected(cell: &str) -> Result<Transition, IllegalTransition> {
    if cell == "=" {
        Ok(Transition::Unchanged)
    } else if cell.starts_with('!') {
        Err(illegal(cell))
    } else {
        Ok(Transition::To(
            BookingState::parse(cell).unwrap_or_else(|| panic!("unknown state {cell}")),
        ))
    }
}

#[test]
fn every_state_and_action_follows_the_table() {
    let actions = actions();
    let mut legal = 0;
    for (state, row) in BookingState::ALL.into_iter().zip(EXPECTED) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.len(), actions.len(), "row {state}");
        for ((name, action), cell) in actions.iter().zip(cells) {
            let got = state.apply(*action);
            assert_eq!(got, expected(cell), "{state} + {name}");
            legal += usize::from(got.is_ok());
        }
    }
    // The table is not trivially all-legal or all-illegal.
    assert_eq!(legal, 77);
}

#[test]
fn seats_are_held_or_owned_only_where_the_table_says() {
    use BookingState::*;
    let holding: Vec<_> = BookingState::ALL
        .into_iter()
        .filter(|s| s.holds_seats())
        .collect();
    let owning: Vec<_> = BookingState::ALL
        .into_iter()
        .filter(|s| s.owns_seats())
        .collect();
    assert_eq!(holding, [Held, PaymentPending]);
    assert_eq!(owning, [Confirmed, CheckedIn]);
    for s in BookingState::ALL {
        assert_eq!(BookingState::parse(s.as_str()), Some(s));
    }
    assert_eq!(
        IllegalTransition::CheckInCancelled.to_string(),
        "booking is cancelled"
    );
}

#[test]
fn a_stored_booking_reads_its_refund_into_its_state() {
    let booking = |status, refund: Option<&str>, checked_in: bool| Booking {
        id: "b".into(),
        reference: "R".into(),
        show: "s".into(),
        user: "u".into(),
        status,
        hold_id: "h".into(),
        payment_reference: "p".into(),
        amount_minor: 100,
        currency: "EUR".into(),
        seats: Vec::new(),
        general: Vec::new(),
        refund_status: refund.map(String::from),
        checked_in_at: checked_in.then(|| "now".to_string()),
        created_at: "now".into(),
    };
    use BookingState::*;
    use BookingStatus as S;
    assert_eq!(booking(S::Confirmed, None, false).state(), Confirmed);
    assert_eq!(booking(S::Confirmed, None, true).state(), CheckedIn);
    assert_eq!(booking(S::Cancelled, None, false).state(), Cancelled);
    assert_eq!(
        booking(S::Cancelled, Some("pending"), false).state(),
        RefundPending
    );
    assert_eq!(
        booking(S::Cancelled, Some("refunded"), false).state(),
        Refunded
    );
}
