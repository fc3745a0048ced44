//! The leader record: the value of a show's election key ([`crate::ShowKeys::leader`]).
//! The shard that wins the election writes it; standbys read it to forward requests,
//! the operator to find the leader (Show status, readiness, counts).

use serde::{Deserialize, Serialize};

/// Who leads, as stored in the election key: JSON
/// `{"pod": "...", "address": "http://...", "sig": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    /// The replica's pod name.
    pub pod: String,
    /// Base URL of the leader's API, e.g. `http://127.0.0.5:8080`.
    pub address: String,
    /// The peers' signature of `pod` and `address`: URL-safe base64 without padding of
    /// HMAC-SHA256 over `leader\n<namespace>/<show>\n<pod>\n<address>`, keyed with the
    /// peer key derived from the shard secret. Standbys forward users' requests only to
    /// a record that carries a valid one; readers without the secret (the operator)
    /// ignore it. Absent in records of older shards.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sig: String,
}

impl LeaderInfo {
    /// The record as stored in etcd.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A stored record; fields it does not know are ignored (a newer writer).
    pub fn from_bytes(value: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_tolerates_old_and_new_writers() {
        let me = LeaderInfo {
            pod: "club-0".into(),
            address: "http://10.0.0.5:8080".into(),
            sig: "c2ln".into(),
        };
        let bytes = me.to_bytes();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"pod":"club-0","address":"http://10.0.0.5:8080","sig":"c2ln"}"#
        );
        assert_eq!(LeaderInfo::from_bytes(&bytes).ok(), Some(me));
        // An older shard wrote no signature; a newer one may add fields.
        let old = LeaderInfo::from_bytes(br#"{"pod":"a","address":"http://b"}"#).ok();
        assert_eq!(old.map(|l| l.sig), Some(String::new()));
        let newer = LeaderInfo::from_bytes(br#"{"pod":"a","address":"http://b","zone":"x"}"#);
        assert!(newer.is_ok());
        assert!(LeaderInfo::from_bytes(br#"{"pod":"a"}"#).is_err());
    }

    #[test]
    fn untyped_readers_of_the_record_still_find_pod_and_address() {
        // How the operator read the record before this type existed.
        let me = LeaderInfo {
            pod: "club-1".into(),
            address: "https://club-1.club:8443".into(),
            sig: String::new(),
        };
        let value: serde_json::Value = serde_json::from_slice(&me.to_bytes()).unwrap_or_default();
        assert_eq!(value["pod"], "club-1");
        assert_eq!(value["address"], "https://club-1.club:8443");
        assert!(value.get("sig").is_none(), "an empty signature is left out");
    }
}
