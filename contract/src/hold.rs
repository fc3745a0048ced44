//! The hold record stored at `holds/<hold-id>` ([`crate::ShowKeys::hold`]), on the
//! hold's lease: the hold's only key. A new leader (or a standby's mirror) loads the
//! book from these records.

use serde::{Deserialize, Serialize};

/// A hold as stored in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldRecord {
    pub id: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub quantity: u64,
    /// Wall-clock expiry (Unix ms); leaders turn it into a monotonic deadline.
    pub expires_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Wall-clock creation (Unix ms); extensions are bounded from it.
    #[serde(default)]
    pub created_at_ms: i64,
    /// A digest of the request that made the hold: a retry with the same
    /// Idempotency-Key and another request is refused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_digest: String,
    /// The payment intent of a checkout: set while the hold waits for its payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_its_stored_shape() {
        let r = HoldRecord {
            id: "ab".into(),
            user: "ann".into(),
            seats: vec!["main:A:1".into()],
            area: None,
            quantity: 1,
            expires_at_ms: 10,
            idempotency_key: None,
            created_at_ms: 5,
            request_digest: String::new(),
            payment_intent: None,
        };
        let text = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"id":"ab","user":"ann","seats":["main:A:1"],"quantity":1,"expiresAtMs":10,"createdAtMs":5}"#
        );
        assert_eq!(serde_json::from_str::<HoldRecord>(&text).ok(), Some(r));
    }
}
