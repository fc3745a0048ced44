//! The API's wire shapes. Handlers answer with these types and the OpenAPI document is
//! generated from them, so the two cannot drift apart.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The counts the operator reads too: defined once in the contract crate.
pub use boxoffice_contract::{AreaCounts, Availability, Counts, SectionCounts};

/// A price category.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Category {
    pub name: String,
    /// Decimal, e.g. `"49.50"`.
    #[schema(example = "49.50")]
    pub price: String,
    /// ISO 4217, e.g. `EUR`.
    pub currency: String,
}

/// When sales open and close (RFC 3339); either may be absent.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sales {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<String>,
}

/// The show: title, prices, hold policy, counts.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShowSummary {
    pub name: String,
    pub namespace: String,
    pub title: String,
    pub starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sales: Option<Sales>,
    pub categories: Vec<Category>,
    pub hold_ttl_seconds: u64,
    pub max_seats_per_hold: u32,
    pub max_seats_per_user: u32,
    /// The replica that leads (answers writes).
    pub leader: String,
    pub inventory: Counts,
}

/// A row of the seat map.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowMap {
    pub name: String,
    /// One letter a seat, from seat 1: `A` available, `H` held, `S` sold.
    #[schema(pattern = "^[AHS]*$")]
    pub seats: String,
}

/// A section of the seat map.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SectionMap {
    pub name: String,
    pub category: String,
    pub rows: Vec<RowMap>,
}

/// The seat map: every seat's state, compact enough for an 80,000-seat stadium.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatMap {
    pub sections: Vec<SectionMap>,
    pub general_admission: Vec<AreaCounts>,
    pub inventory: Counts,
}

/// A JSON integer: JSON Schema counts `2.0` as the integer 2, and so do we.
fn whole_number<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    });
    whole
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| D::Error::custom(format!("expected a whole number in range, got {n}")))
}

/// Best available: `quantity` adjacent seats in one row, front rows first.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BestRequest {
    #[schema(minimum = 1, maximum = 100)]
    #[serde(deserialize_with = "whole_number")]
    pub quantity: u32,
    /// Only in this section.
    #[serde(default)]
    #[schema(max_length = 63)]
    pub section: Option<String>,
    /// Only seats of this price category.
    #[serde(default)]
    #[schema(max_length = 63)]
    pub category: Option<String>,
}

/// A general-admission quantity.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneralRequest {
    #[schema(max_length = 63)]
    pub area: String,
    #[schema(minimum = 1, maximum = 100)]
    #[serde(deserialize_with = "whole_number")]
    pub quantity: u64,
}

/// Explicit seats, `section:row:number`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatsHold {
    #[schema(min_items = 1, max_items = 100, example = json!(["floor:A:3", "floor:A:4"]))]
    pub seats: Vec<String>,
}

/// Best available seats.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BestHold {
    pub best: BestRequest,
}

/// General-admission tickets.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneralHold {
    pub general: GeneralRequest,
}

/// What to hold: exactly one of `seats`, `best` or `general`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum CreateHold {
    Seats(SeatsHold),
    Best(BestHold),
    General(GeneralHold),
}

/// Confirm a hold into a booking.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfirmRequest {
    /// The payment's reference at the payment provider.
    #[schema(min_length = 1, max_length = 256)]
    pub payment_reference: String,
}

/// A checkout's answer: the hold, now waiting for its payment, and what to pay.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutView {
    pub hold: crate::shard::HoldView,
    pub intent: IntentView,
}

/// A payment intent: the amount and currency the server computed from the held seats.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntentView {
    /// Pass it to the provider; its callback names it.
    pub id: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The end of the payment window (Unix ms).
    pub expires_at_ms: i64,
}

/// A provider callback's body (signed as received).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackBody {
    /// The provider's event id: a replay gets the first answer.
    pub id: String,
    /// payment.succeeded, payment.failed or refund.succeeded.
    #[serde(rename = "type")]
    pub kind: String,
    /// The payment intent (from the checkout).
    pub intent: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The provider's payment id (the booking's payment reference; default: the
    /// event id).
    pub payment: Option<String>,
}

/// What the door scanner read: the ticket code the booking's owner was given.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub ticket: String,
}

/// Paging of a list, newest first.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// The `next` cursor of the previous page.
    #[param(min_length = 1, max_length = 64)]
    #[serde(default)]
    pub after: Option<String>,
    /// At most this many (1-100, default 50).
    #[param(minimum = 1, maximum = 100)]
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A booking as its reader sees it; the owner also gets the ticket code.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BookingView {
    #[serde(flatten)]
    pub booking: crate::store::Booking,
    /// The ticket code (owner only): what the door scans, and what check-in needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// A page of bookings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BookingList {
    pub bookings: Vec<BookingView>,
    /// The cursor of the next page (`?after=`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The first event of the public stream (`snapshot`), and what a `reset` carries: the
/// counts and every seat's state (as `GET /seats`). Its event id numbers the last
/// change it holds; the `seats` events after it continue from there.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub counts: Counts,
    pub seat_map: SeatMap,
}
