//! Bookings as the domain sees them; their life is [`super::lifecycle`].

use std::collections::HashMap;

use serde::Serialize;

use super::lifecycle::BookingState;

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
    /// Where the booking is in its life: its status, whether it was checked in, and
    /// its refund (`refund_status`: pending or refunded).
    pub fn state(&self) -> BookingState {
        match (self.status, self.checked_in_at.is_some()) {
            (BookingStatus::Cancelled, _) => match self.refund_status.as_deref() {
                Some("pending") => BookingState::RefundPending,
                Some("refunded") => BookingState::Refunded,
                _ => BookingState::Cancelled,
            },
            (BookingStatus::Confirmed, true) => BookingState::CheckedIn,
            (BookingStatus::Confirmed, false) => BookingState::Confirmed,
        }
    }

    /// Whether money was taken for it (a cancel then owes a refund).
    pub fn paid(&self) -> bool {
        self.amount_minor > 0
    }
}

/// What a confirm writes.
#[derive(Debug, Clone)]
pub struct NewBooking {
    /// The audit row written with it.
    pub audit: super::lifecycle::AuditRow,
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
