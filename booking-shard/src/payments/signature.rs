//! A provider callback's signature, in the header style of the large payment providers:
//! `Boxoffice-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, the MAC taken with
//! the show's provider secret over `<t>.<raw body>`. Several `v1=` entries may be sent
//! (a secret being rotated); one matching is enough. The timestamp must be within the
//! tolerance of our clock, so a captured callback cannot be replayed later (a replay
//! within the window is answered from the event id, see docs/security.md). MACs are
//! compared in constant time (`hmac`'s `verify_slice`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header carrying the signature.
pub const HEADER: &str = "boxoffice-signature";

/// Why a callback's signature is refused (all answered 401, nothing changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing or malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance window")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The header value a provider sends for `body` at `t` (unix seconds).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(tag))
}

/// Checks a callback: the header parses, its timestamp is within `tolerance_s` of
/// `now_s`, and one of its `v1` MACs is ours. Returns the signed timestamp.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<i64, SignatureError> {
    let mut t = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            "v1" => tags.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            // Other schemes (a provider's test signatures) are ignored.
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if tags.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now_s - t).abs() > tolerance_s {
        return Err(SignatureError::Stale);
    }
    let m = mac(secret, t, body);
    if tags.iter().any(|tag| m.clone().verify_slice(tag).is_ok()) {
        Ok(t)
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment.succeeded"}"#;

    #[test]
    fn a_signed_body_verifies_and_its_timestamp_comes_back() {
        let header = sign(SECRET, 1_000, BODY);
        assert!(header.starts_with("t=1000,v1="));
        assert_eq!(verify(SECRET, &header, BODY, 1_000, 300), Ok(1_000));
        assert_eq!(verify(SECRET, &header, BODY, 1_300, 300), Ok(1_000));
        assert_eq!(verify(SECRET, &header, BODY, 700, 300), Ok(1_000));
    }

    #[test]
    fn a_changed_body_secret_or_timestamp_is_refused() {
        let header = sign(SECRET, 1_000, BODY);
        let other_body = br#"{"id":"evt_1","type":"payment.succeeded","amountMinor":1}"#;
        assert_eq!(
            verify(SECRET, &header, other_body, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"whsec_other", &header, BODY, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        // The MAC of t=1000 presented as t=1001: the timestamp is signed too.
        let moved = header.replacen("t=1000", "t=1001", 1);
        assert_eq!(
            verify(SECRET, &moved, BODY, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn outside_the_window_is_stale_even_when_the_mac_is_right() {
        let header = sign(SECRET, 1_000, BODY);
        assert_eq!(
            verify(SECRET, &header, BODY, 1_301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(SECRET, &header, BODY, 699, 300),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn a_rotated_secret_matches_any_v1_and_junk_is_malformed() {
        let old = sign(b"old", 5, BODY);
        let new = sign(SECRET, 5, BODY);
        let both = format!("{old},{}", new.split_once(',').map(|x| x.1).unwrap_or(""));
        assert_eq!(verify(SECRET, &both, BODY, 5, 300), Ok(5));
        for bad in ["", "t=5", "v1=00", "t=x,v1=00", "t=5,v1=zz", "t=5;v1=00"] {
            assert_eq!(
                verify(SECRET, bad, BODY, 5, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // A well-formed MAC of the wrong length is a mismatch, not a panic.
        assert_eq!(
            verify(SECRET, "t=5,v1=00", BODY, 5, 300),
            Err(SignatureError::Mismatch)
        );
    }
}
