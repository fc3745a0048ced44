//! The webhook sink: one HTTP POST per event, signed per the Standard Webhooks
//! specification (`webhook-id`, `webhook-timestamp`, `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "id.timestamp.body">`). Any 2xx acknowledges.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{CloudEvent, DeliveryError, Sink};

type HmacSha256 = Hmac<Sha256>;

/// A signing secret: the raw key bytes (from `whsec_<base64>`, or the text as is).
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    /// Parses the secret file's text: `whsec_<base64>` as Standard Webhooks prints it,
    /// else the bytes of the text. At least 16 bytes of key.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let key = match text.strip_prefix("whsec_") {
            Some(b64) => STANDARD
                .decode(b64)
                .map_err(|_| anyhow::anyhow!("the webhook secret's whsec_ part is not base64"))?,
            None => text.as_bytes().to_vec(),
        };
        anyhow::ensure!(
            key.len() >= 16,
            "the webhook secret is shorter than 16 bytes"
        );
        Ok(Self(key))
    }

    /// `v1,<base64 signature>` of the message `id.timestamp.body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = self.mac(id, timestamp, body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The HMAC-SHA256 state over `id.timestamp.body`.
    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// What a consumer does: true when one of the space-separated `v1,` signatures in
    /// `header` is this secret's, compared in constant time.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header.split(' ').any(|candidate| {
            let Some(b64) = candidate.strip_prefix("v1,") else {
                return false;
            };
            let Ok(given) = STANDARD.decode(b64) else {
                return false;
            };
            self.mac(id, timestamp, body).verify_slice(&given).is_ok()
        })
    }
}

/// A webhook endpoint.
pub struct Webhook {
    name: String,
    url: String,
    secret: WebhookSecret,
    http: reqwest::Client,
}

impl Webhook {
    pub fn new(url: &str, secret: WebhookSecret, timeout: Duration) -> anyhow::Result<Self> {
        let parsed = reqwest::Url::parse(url)?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https"),
            "a webhook URL is http or https"
        );
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        // The cursor's name: the endpoint without credentials or query.
        let name = format!(
            "webhook:{}{}",
            parsed.host_str().unwrap_or(""),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
        ) + parsed.path();
        Ok(Self {
            name,
            url: url.to_string(),
            secret,
            http,
        })
    }
}

impl Sink for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(
        &'a self,
        event: &'a CloudEvent,
    ) -> futures::future::BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(event).map_err(|e| DeliveryError(e.to_string()))?;
            let timestamp = chrono::Utc::now().timestamp();
            let signature = self.secret.sign(&event.id, timestamp, &body);
            let answer = self
                .http
                .post(&self.url)
                .header("content-type", "application/cloudevents+json")
                .header("webhook-id", &event.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await
                .map_err(|e| DeliveryError(format!("POST failed: {}", e.without_url())))?;
            if answer.status().is_success() {
                Ok(())
            } else {
                Err(DeliveryError(format!("answered {}", answer.status())))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_like_standard_webhooks() {
        let secret =
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let sig = secret.sign("msg_1", 1_614_265_330, b"{\"test\": 2432232314}");
        assert!(sig.starts_with("v1,"));
        assert!(secret.verify("msg_1", 1_614_265_330, b"{\"test\": 2432232314}", &sig));
        // A changed body, id or time, or another key, fails.
        assert!(!secret.verify("msg_1", 1_614_265_330, b"{\"test\": 2432232315}", &sig));
        assert!(!secret.verify("msg_2", 1_614_265_330, b"{\"test\": 2432232314}", &sig));
        assert!(!secret.verify("msg_1", 1_614_265_331, b"{\"test\": 2432232314}", &sig));
        let other = WebhookSecret::parse("another-secret-of-enough-bytes").expect("secret");
        assert!(!other.verify("msg_1", 1_614_265_330, b"{\"test\": 2432232314}", &sig));
        assert!(WebhookSecret::parse("short").is_err());
    }
}
