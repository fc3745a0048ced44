//! The event as it leaves the shard: a CloudEvents 1.0 envelope (JSON format) around
//! the versioned booking payload, the same on every sink and in the feed.

use serde::Serialize;

use crate::store::EventRow;

/// The payload's version; part of the type (`dev.boxoffice.booking.confirmed.v1`), so a
/// consumer can tell a new shape from an old one.
pub const DATA_VERSION: &str = "v1";

/// A booking event (CloudEvents 1.0, structured JSON). `sequence` is gapless per show:
/// a consumer that saw `n` and then `n + 2` knows it missed one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CloudEvent {
    /// Always `1.0`.
    pub specversion: &'static str,
    /// Unique per event; a redelivery carries the same id (drop duplicates by it).
    pub id: String,
    /// `/boxoffice/<namespace>/<show>`.
    pub source: String,
    /// `dev.boxoffice.booking.<kind>.v1`; kind is confirmed, cancelled, checked_in or
    /// refunded.
    #[serde(rename = "type")]
    pub kind: String,
    /// `bookings/<booking id>`.
    pub subject: String,
    /// When the change was committed (RFC 3339).
    pub time: String,
    /// Always `application/json`.
    pub datacontenttype: &'static str,
    /// The show's gapless sequence number (extension attribute).
    pub sequence: i64,
    /// The fencing epoch of the leader that wrote the change (extension attribute).
    pub epoch: i64,
    /// The booking after the change (version `v1` of the payload: the API's booking).
    #[schema(value_type = crate::engine::Booking)]
    pub data: serde_json::Value,
}

impl CloudEvent {
    /// The envelope of an outbox row of the show `source`.
    pub fn of(source: &str, row: &EventRow) -> Self {
        Self {
            specversion: "1.0",
            id: row.event_id.clone(),
            source: source.to_string(),
            kind: format!("dev.boxoffice.booking.{}.{DATA_VERSION}", row.kind),
            subject: format!("bookings/{}", row.booking_id),
            time: row.time.clone(),
            datacontenttype: "application/json",
            sequence: row.seq,
            epoch: row.epoch,
            data: row.payload.clone(),
        }
    }

    /// The show's `source` attribute for a `<namespace>/<name>` key.
    pub fn source_of(show_key: &str) -> String {
        format!("/boxoffice/{show_key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_carries_the_cloudevents_attributes() {
        let row = EventRow {
            seq: 7,
            event_id: "e-1".into(),
            kind: "confirmed".into(),
            booking_id: "b1".into(),
            epoch: 42,
            time: "2026-12-01T10:00:00.000Z".into(),
            payload: serde_json::json!({"reference": "K7QX-4M2P"}),
        };
        let v =
            serde_json::to_value(CloudEvent::of("/boxoffice/ns/club", &row)).unwrap_or_default();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "dev.boxoffice.booking.confirmed.v1");
        assert_eq!(v["source"], "/boxoffice/ns/club");
        assert_eq!(v["subject"], "bookings/b1");
        assert_eq!(v["sequence"], 7);
        assert_eq!(v["epoch"], 42);
        assert_eq!(v["data"]["reference"], "K7QX-4M2P");
    }
}
