//! Secrets a show's replicas share, derived from one shard secret: the key that signs
//! the leader record and forwarded requests between peers, and the key of ticket
//! codes (what a booking's owner shows at the door).
//!
//! The shard secret is a file (`--shard-secret-file`, from a Kubernetes Secret); without
//! one it is derived from the HS256 JWT secret, which every replica has and which
//! already lets its holder act as anyone. Each use gets its own key
//! (HMAC-SHA256(secret, label)), and every MAC names the show, so a record or a code of
//! one show is worthless for another that shares the secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The shortest shard secret accepted.
pub const MIN_SECRET: usize = 32;

/// The derived keys of one show.
#[derive(Clone)]
pub struct ShardKeys {
    show: String,
    peer: [u8; 32],
    ticket: [u8; 32],
}

impl std::fmt::Debug for ShardKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardKeys")
            .field("show", &self.show)
            .finish_non_exhaustive()
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length; this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            m.update(b"\n");
        }
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

impl ShardKeys {
    /// Keys for `show` (`namespace/name`) from a shared secret of at least
    /// [`MIN_SECRET`] bytes.
    pub fn derive(secret: &[u8], show: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= MIN_SECRET,
            "the shard secret must be at least {MIN_SECRET} bytes"
        );
        Ok(Self {
            show: show.to_string(),
            peer: mac(secret, &[b"boxoffice peer key v1"]),
            ticket: mac(secret, &[b"boxoffice ticket key v1"]),
        })
    }

    /// The signature of a leader record (pod, address).
    pub fn sign_leader(&self, pod: &str, address: &str) -> String {
        URL_SAFE_NO_PAD.encode(mac(
            &self.peer,
            &[
                b"leader",
                self.show.as_bytes(),
                pod.as_bytes(),
                address.as_bytes(),
            ],
        ))
    }

    /// Whether `sig` signs this leader record (constant time).
    pub fn leader_signed(&self, pod: &str, address: &str, sig: &str) -> bool {
        equal(&self.sign_leader(pod, address), sig)
    }

    /// The value of the header a standby adds to a request it forwards:
    /// `<unix seconds>;<pod>;<client address>;<mac>`, the MAC over those and the
    /// request's method and path.
    pub fn sign_forward(
        &self,
        pod: &str,
        client: &str,
        method: &str,
        path: &str,
        now: u64,
    ) -> String {
        let ts = now.to_string();
        let sig = URL_SAFE_NO_PAD.encode(mac(
            &self.peer,
            &[
                b"forward",
                self.show.as_bytes(),
                ts.as_bytes(),
                pod.as_bytes(),
                client.as_bytes(),
                method.as_bytes(),
                path.as_bytes(),
            ],
        ));
        format!("{ts};{pod};{client};{sig}")
    }

    /// The client address a forwarded request vouches for, if its header was signed
    /// by a peer for this very request within the last 30 seconds.
    pub fn verify_forward(
        &self,
        header: &str,
        method: &str,
        path: &str,
        now: u64,
    ) -> Option<Forwarded> {
        let mut parts = header.splitn(4, ';');
        let ts: u64 = parts.next()?.parse().ok()?;
        let pod = parts.next()?;
        let client = parts.next()?;
        let sig = parts.next()?;
        if ts.abs_diff(now) > 30 {
            return None;
        }
        let expected = self.sign_forward(pod, client, method, path, ts);
        let expected_sig = expected.rsplit(';').next()?;
        equal(expected_sig, sig).then(|| Forwarded {
            pod: pod.to_string(),
            client: client.to_string(),
        })
    }

    /// The ticket code of a booking: what its owner shows at the door (a QR code of
    /// `<reference>.<code>`); check-in needs it, so the reference alone admits nobody.
    pub fn ticket_code(&self, reference: &str) -> String {
        let m = mac(
            &self.ticket,
            &[b"ticket", self.show.as_bytes(), reference.as_bytes()],
        );
        URL_SAFE_NO_PAD.encode(&m[..18])
    }

    /// Whether `code` is the ticket code of `reference` (constant time).
    pub fn ticket_valid(&self, reference: &str, code: &str) -> bool {
        equal(&self.ticket_code(reference), code)
    }
}

/// A request a peer forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub pod: String,
    pub client: String,
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn leader_records_verify_only_for_their_show_and_contents() {
        let k = ShardKeys::derive(SECRET, "ns/club").expect("keys");
        let sig = k.sign_leader("club-0", "http://10.0.0.5:8080");
        assert!(k.leader_signed("club-0", "http://10.0.0.5:8080", &sig));
        assert!(!k.leader_signed("club-0", "http://evil:8080", &sig));
        let other = ShardKeys::derive(SECRET, "ns/other").expect("keys");
        assert!(!other.leader_signed("club-0", "http://10.0.0.5:8080", &sig));
        let wrong =
            ShardKeys::derive(b"another-secret-another-secret-xx", "ns/club").expect("keys");
        assert!(!wrong.leader_signed("club-0", "http://10.0.0.5:8080", &sig));
    }

    #[test]
    fn forwarded_headers_bind_request_and_time() {
        let k = ShardKeys::derive(SECRET, "ns/club").expect("keys");
        let h = k.sign_forward(
            "club-1",
            "203.0.113.9",
            "POST",
            "/v1/shows/club/holds",
            1000,
        );
        let f = k
            .verify_forward(&h, "POST", "/v1/shows/club/holds", 1010)
            .expect("verifies");
        assert_eq!(f.client, "203.0.113.9");
        assert!(
            k.verify_forward(&h, "GET", "/v1/shows/club/holds", 1010)
                .is_none()
        );
        assert!(
            k.verify_forward(&h, "POST", "/v1/shows/club/seats", 1010)
                .is_none()
        );
        assert!(
            k.verify_forward(&h, "POST", "/v1/shows/club/holds", 1100)
                .is_none()
        );
        let forged = h.replace("203.0.113.9", "198.51.100.1");
        assert!(
            k.verify_forward(&forged, "POST", "/v1/shows/club/holds", 1010)
                .is_none()
        );
        assert!(k.verify_forward("club-1", "POST", "/", 1000).is_none());
    }

    #[test]
    fn ticket_codes_are_per_booking_and_show() {
        let k = ShardKeys::derive(SECRET, "ns/club").expect("keys");
        let code = k.ticket_code("K7QX-4M2P");
        assert!(k.ticket_valid("K7QX-4M2P", &code));
        assert!(!k.ticket_valid("K7QX-4M2Q", &code));
        assert!(!k.ticket_valid("K7QX-4M2P", ""));
        let other = ShardKeys::derive(SECRET, "ns/other").expect("keys");
        assert!(!other.ticket_valid("K7QX-4M2P", &code));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(ShardKeys::derive(b"short", "ns/club").is_err());
    }
}
