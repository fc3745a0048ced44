//! Bookings as the domain sees them, and their life as one transition function.
//!
//! | state | cancel | check in |
//! |---|---|---|
//! | confirmed | → cancelled (seats return to sale, refund pending) | → checked in |
//! | checked in | refused: "a checked-in booking cannot be cancelled" | same key: the first answer; else refused |
//! | cancelled | unchanged (the same booking) | refused: "booking is cancelled" |
//!
//! The payment states of a checkout (payment pending, refund pending, refunded,
//! failed) are further [`BookingState`] variants with their rows in this table.

use std::collections::HashMap;

use serde::Serialize;

/// A booking's stored status (`bookings.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BookingStatus {
    Confirmed,
    Cancelled,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Cancelled => "cancelled",
        }
    }

    /// The stored text; an unknown one reads as confirmed (what a row without a
    /// later state has always meant).
    pub fn parse(text: &str) -> Self {
        match text {
            "cancelled" => BookingStatus::Cancelled,
            _ => BookingStatus::Confirmed,
        }
    }
}

/// General-admission tickets in a booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneralTickets {
    pub area: String,
    pub quantity: i64,
}

/// A booking as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    pub id: String,
    pub reference: String,
    pub show: String,
    pub user: String,
    #[schema(value_type = String)]
    pub status: BookingStatus,
    pub hold_id: String,
    pub payment_reference: String,
    pub amount_minor: i64,
    pub currency: String,
    pub seats: Vec<String>,
    pub general: Vec<GeneralTickets>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_in_at: Option<String>,
    pub created_at: String,
}

impl Booking {
    /// Where the booking is in its life.
    pub fn state(&self) -> BookingState {
        match (self.status, self.checked_in_at.is_some()) {
            (BookingStatus::Cancelled, _) => BookingState::Cancelled,
            (BookingStatus::Confirmed, true) => BookingState::CheckedIn,
            (BookingStatus::Confirmed, false) => BookingState::Confirmed,
        }
    }
}

/// What a confirm writes.
#[derive(Debug, Clone)]
pub struct NewBooking {
    pub user: String,
    pub hold_id: String,
    pub payment_reference: String,
    pub amount_minor: i64,
    pub currency: String,
    pub seats: Vec<String>,
    pub general: Vec<GeneralTickets>,
}

/// What PostgreSQL says is sold, loaded by a new leader.
#[derive(Debug, Default, Clone)]
pub struct Sold {
    pub seats: Vec<String>,
    pub general: HashMap<String, i64>,
    /// Seats and tickets each user owns (for `maxSeatsPerUser`).
    pub per_user: HashMap<String, i64>,
    /// Hold ids already confirmed (their etcd keys may still be there).
    pub confirmed_holds: Vec<String>,
}

/// A booking's state: its status and whether it was checked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingState {
    Confirmed,
    CheckedIn,
    Cancelled,
}

/// What may happen to a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingAction<'a> {
    Cancel,
    /// `key`: this request's idempotency key; `first_key`: the key of the check-in
    /// that happened, when the booking is checked in already.
    CheckIn {
        key: Option<&'a str>,
        first_key: Option<&'a str>,
    },
}

/// What a legal action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Write the new state (and its outbox event).
    To(BookingState),
    /// Nothing to write: answer with the booking as it is (a retry).
    Unchanged,
}

/// An action the booking's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IllegalTransition {
    #[error("a checked-in booking cannot be cancelled")]
    CancelCheckedIn,
    #[error("booking is cancelled")]
    CheckInCancelled,
    #[error("booking is already checked in")]
    CheckedInTwice,
}

impl BookingState {
    /// The one transition function of a booking (the table above).
    pub fn apply(self, action: BookingAction<'_>) -> Result<Transition, IllegalTransition> {
        use BookingAction::{Cancel, CheckIn};
        use BookingState::{Cancelled, CheckedIn, Confirmed};
        match (self, action) {
            (Confirmed, Cancel) => Ok(Transition::To(Cancelled)),
            (Cancelled, Cancel) => Ok(Transition::Unchanged),
            (CheckedIn, Cancel) => Err(IllegalTransition::CancelCheckedIn),
            (Confirmed, CheckIn { .. }) => Ok(Transition::To(CheckedIn)),
            (Cancelled, CheckIn { .. }) => Err(IllegalTransition::CheckInCancelled),
            (CheckedIn, CheckIn { key, first_key }) => {
                if key.is_some() && key == first_key {
                    Ok(Transition::Unchanged)
                } else {
                    Err(IllegalTransition::CheckedInTwice)
                }
            }
        }
    }
}
