//! A booking's life, from hold to refund, as one typed state machine: [`BookingState`]
//! and its one transition function [`BookingState::apply`]. Pure: the adapters read the
//! state, apply the action, and write the new state (and its audit row) in one
//! transaction. docs/architecture.md has the same table.
//!
//! | state \ action | checkout | confirm | paid | payment failed | release | expire | cancel | refunded | check in |
//! |---|---|---|---|---|---|---|---|---|---|
//! | held | → payment pending (mode none: refused) | mode none, or a trusted service in trustedService mode: → confirmed; else refused (`payment_required`) | → confirmed | unchanged | → released | → expired | refused | refused | refused |
//! | payment pending | unchanged (the same intent) | a trusted service in trustedService mode: → confirmed; else refused | → confirmed | → held | refused | → expired | refused | refused | refused |
//! | confirmed | refused | unchanged (a retry) | unchanged (a duplicate) | refused | refused | refused | paid: → refund pending; free: → cancelled | refused | → checked in |
//! | checked in | refused | unchanged | unchanged | refused | refused | refused | refused | refused | same key: unchanged; else refused |
//! | cancelled, refund pending, refunded | refused | unchanged | unchanged | refused | refused | refused | unchanged | refund pending: → refunded; refunded: unchanged; else refused | refused |
//! | expired, released | refused | refused | seats still free: → confirmed; else → failed (a refund is due) | unchanged | refused | unchanged | refused | refused | refused |
//! | failed | refused | refused | unchanged | refused | refused | refused | unchanged | → refunded | refused |
//!
//! Seats: held and payment pending hold them (etcd locks); confirmed and checked in own
//! them; every other state holds nothing. A cancelled booking's seats return to sale at
//! once, also while its refund is pending (the refund is about money, not seats).

use std::fmt;

/// How a show confirms bookings (`spec.payments.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaymentMode {
    /// Free events: the user confirms.
    #[default]
    None,
    /// A payment provider's signed callback confirms.
    Provider,
    /// A service holding a token with the `payments` role confirms (a cash desk, an
    /// external checkout).
    TrustedService,
}

/// Where a booking is in its life (a hold before it is confirmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BookingState {
    Held,
    PaymentPending,
    Confirmed,
    CheckedIn,
    Cancelled,
    RefundPending,
    Refunded,
    Expired,
    Released,
    /// A payment succeeded after the hold ended and its seats were gone: a refund is due.
    Failed,
}

impl BookingState {
    pub const ALL: [BookingState; 10] = [
        BookingState::Held,
        BookingState::PaymentPending,
        BookingState::Confirmed,
        BookingState::CheckedIn,
        BookingState::Cancelled,
        BookingState::RefundPending,
        BookingState::Refunded,
        BookingState::Expired,
        BookingState::Released,
        BookingState::Failed,
    ];

    /// The stored and published name.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingState::Held => "held",
            BookingState::PaymentPending => "payment_pending",
            BookingState::Confirmed => "confirmed",
            BookingState::CheckedIn => "checked_in",
            BookingState::Cancelled => "cancelled",
            BookingState::RefundPending => "refund_pending",
            BookingState::Refunded => "refunded",
            BookingState::Expired => "expired",
            BookingState::Released => "released",
            BookingState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the state holds seats (etcd locks) for its hold.
    pub fn holds_seats(self) -> bool {
        matches!(self, BookingState::Held | BookingState::PaymentPending)
    }

    /// Whether the state owns its seats (sold).
    pub fn owns_seats(self) -> bool {
        matches!(self, BookingState::Confirmed | BookingState::CheckedIn)
    }

    /// A booking in PostgreSQL (as opposed to a hold in etcd).
    pub fn is_booking(self) -> bool {
        matches!(
            self,
            BookingState::Confirmed
                | BookingState::CheckedIn
                | BookingState::Cancelled
                | BookingState::RefundPending
                | BookingState::Refunded
        )
    }
}

impl fmt::Display for BookingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of a booking's audit trail (`booking_audit`), written in the transaction
/// that changes its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Who: a user id, a service's subject, or `provider:<name>`.
    pub actor: String,
    /// In which role: user, staff, payments, provider, system.
    pub role: String,
    pub from: BookingState,
    pub to: BookingState,
    /// The action (`BookingAction::as_str`).
    pub action: String,
    /// Why, for people (a provider event id, "the hold expired").
    pub reason: String,
}

/// What may happen to a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingAction<'a> {
    /// Start paying: the hold waits for its payment (to the payment window).
    Checkout {
        mode: PaymentMode,
    },
    /// Confirm without a payment event: `trusted` when the caller holds the `payments`
    /// role.
    Confirm {
        mode: PaymentMode,
        trusted: bool,
    },
    /// The provider's verified callback says the payment succeeded. `seats_free`: for a
    /// hold that ended, whether its seats could be taken again (the adapter asks the
    /// book before applying; it is recorded so the audit trail replays).
    Paid {
        seats_free: bool,
    },
    /// The provider's verified callback says the payment failed.
    PaymentFailed,
    Release,
    Expire,
    /// `paid`: the booking was paid for (a refund is due when it is cancelled).
    Cancel {
        paid: bool,
    },
    /// The provider's verified callback says the refund went through.
    Refunded,
    /// `key`: this request's idempotency key; `first_key`: the key of the check-in
    /// that happened, when the booking is checked in already.
    CheckIn {
        key: Option<&'a str>,
        first_key: Option<&'a str>,
    },
}

impl BookingAction<'_> {
    /// The action's name in the audit trail.
    pub fn as_str(&self) -> &'static str {
        match self {
            BookingAction::Checkout { .. } => "checkout",
            BookingAction::Confirm { .. } => "confirm",
            BookingAction::Paid { .. } => "paid",
            BookingAction::PaymentFailed => "payment_failed",
            BookingAction::Release => "release",
            BookingAction::Expire => "expire",
            BookingAction::Cancel { .. } => "cancel",
            BookingAction::Refunded => "refunded",
            BookingAction::CheckIn { .. } => "check_in",
        }
    }
}

/// What a legal action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Write the new state (and its audit row and outbox event).
    To(BookingState),
    /// Nothing to write: answer with the booking as it is (a retry or a duplicate).
    Unchanged,
}

/// An action the booking's state does not allow. The API answers 409
/// `illegal_transition`, except [`IllegalTransition::PaymentRequired`] (403
/// `payment_required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IllegalTransition {
    #[error("a checked-in booking cannot be cancelled")]
    CancelCheckedIn,
    #[error("booking is cancelled")]
    CheckInCancelled,
    #[error("booking is already checked in")]
    CheckedInTwice,
    #[error("this show takes no payments; confirm the hold")]
    PaymentsOff,
    #[error("this show confirms a booking when its payment succeeds")]
    PaymentRequired,
    #[error("a payment is in progress for this hold")]
    PaymentInProgress,
    #[error("the hold is booked already")]
    AlreadyBooked,
    #[error("the payment has succeeded already")]
    PaymentSettled,
    #[error("the hold has expired or was released")]
    HoldEnded,
    #[error("the payment came after the seats were gone; a refund is due")]
    PaymentTooLate,
    #[error("not a booking yet")]
    NotBooked,
    #[error("no refund is pending")]
    NoRefundPending,
}

impl BookingState {
    /// The one transition function of a booking (the table above).
    pub fn apply(self, action: BookingAction<'_>) -> Result<Transition, IllegalTransition> {
        use BookingAction as A;
        use BookingState::*;
        use IllegalTransition as E;
        use Transition::{To, Unchanged};
        let ended = matches!(self, Expired | Released);
        let settled = matches!(self, Cancelled | RefundPending | Refunded);
        match action {
            A::Checkout { mode } => match self {
                Held if mode == PaymentMode::None => Err(E::PaymentsOff),
                Held => Ok(To(PaymentPending)),
                PaymentPending => Ok(Unchanged),
                _ if ended => Err(E::HoldEnded),
                Failed => Err(E::PaymentTooLate),
                _ => Err(E::AlreadyBooked),
            },
            A::Confirm { mode, trusted } => {
                let by_service = trusted && mode == PaymentMode::TrustedService;
                match self {
                    Held if mode == PaymentMode::None || by_service => Ok(To(Confirmed)),
                    PaymentPending if by_service => Ok(To(Confirmed)),
                    PaymentPending if mode == PaymentMode::None => Err(E::PaymentInProgress),
                    Held | PaymentPending => Err(E::PaymentRequired),
                    _ if ended => Err(E::HoldEnded),
                    Failed => Err(E::PaymentTooLate),
                    _ => Ok(Unchanged),
                }
            }
            A::Paid { seats_free } => match self {
                Held | PaymentPending => Ok(To(Confirmed)),
                _ if ended && seats_free => Ok(To(Confirmed)),
                _ if ended => Ok(To(Failed)),
                _ => Ok(Unchanged),
            },
            A::PaymentFailed => match self {
                PaymentPending => Ok(To(Held)),
                Held => Ok(Unchanged),
                _ if ended => Ok(Unchanged),
                _ => Err(E::PaymentSettled),
            },
            A::Release => match self {
                Held => Ok(To(Released)),
                PaymentPending => Err(E::PaymentInProgress),
                _ if ended => Err(E::HoldEnded),
                Failed => Err(E::PaymentTooLate),
                _ => Err(E::AlreadyBooked),
            },
            A::Expire => match self {
                Held | PaymentPending => Ok(To(Expired)),
                _ if ended => Ok(Unchanged),
                Failed => Err(E::PaymentTooLate),
                _ => Err(E::AlreadyBooked),
            },
            A::Cancel { paid } => match self {
                Confirmed if paid => Ok(To(RefundPending)),
                Confirmed => Ok(To(Cancelled)),
                CheckedIn => Err(E::CancelCheckedIn),
                _ if settled => Ok(Unchanged),
                Failed => Ok(Unchanged),
                _ => Err(E::NotBooked),
            },
            A::Refunded => match self {
                RefundPending | Failed => Ok(To(Refunded)),
                Refunded => Ok(Unchanged),
                _ => Err(E::NoRefundPending),
            },
            A::CheckIn { key, first_key } => match self {
                Confirmed => Ok(To(CheckedIn)),
                CheckedIn if key.is_some() && key == first_key => Ok(Unchanged),
                CheckedIn => Err(E::CheckedInTwice),
                _ if settled => Err(E::CheckInCancelled),
                _ => Err(E::NotBooked),
            },
        }
    }
}
