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

/// Pairs each webhook URL with its secret file, as `--events-webhook-urls` and
/// `--events-webhook-secret-file` are given: one file signs for every URL; N files for
/// N URLs go one per URL, in order; any other count is an error (a guess would sign an
/// endpoint's events with another endpoint's key). Empty items, as an empty env var
/// gives, are no items.
pub fn pair_secrets<'a, F: AsRef<std::path::Path>>(
    urls: &'a [String],
    files: &'a [F],
) -> anyhow::Result<Vec<(&'a str, &'a F)>> {
    let urls: Vec<&str> = urls
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
        .collect();
    let files: Vec<&F> = files
        .iter()
        .filter(|f| !f.as_ref().as_os_str().is_empty())
        .collect();
    match (urls.len(), files.len()) {
        (0, _) => Ok(Vec::new()),
        (_, 0) => anyhow::bail!(
            "webhook URLs are set: set --events-webhook-secret-file (BOXOFFICE_EVENTS_WEBHOOK_SECRET_FILE)"
        ),
        (_, 1) => Ok(urls.into_iter().map(|u| (u, files[0])).collect()),
        (n, m) if n == m => Ok(urls.into_iter().zip(files).collect()),
        (n, m) => anyhow::bail!(
            "{m} webhook secret files for {n} webhook URLs: give one file for every URL, \
             or one per URL in the order of --events-webhook-urls (BOXOFFICE_EVENTS_WEBHOOK_URLS)"
        ),
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
        // The cursor's name: the endpoint without scheme, credentials or query (the
        // operator checks a Show's webhooks against the same rule).
        let endpoint = boxoffice_crds::events::webhook_endpoint(url)
            .ok_or_else(|| anyhow::anyhow!("a webhook URL is http or https with a host"))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let name = format!("webhook:{endpoint}");
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
    fn one_secret_file_signs_for_every_url_and_n_files_go_one_per_url() {
        let urls: Vec<String> = ["https://a/h", "https://b/h", "https://c/h"]
            .map(String::from)
            .to_vec();
        let one = ["/s/all"];
        assert_eq!(
            pair_secrets(&urls, &one).expect("one file"),
            [
                ("https://a/h", &"/s/all"),
                ("https://b/h", &"/s/all"),
                ("https://c/h", &"/s/all")
            ]
        );
        let three = ["/s/a", "/s/b", "/s/c"];
        assert_eq!(
            pair_secrets(&urls, &three).expect("one per URL"),
            [
                ("https://a/h", &"/s/a"),
                ("https://b/h", &"/s/b"),
                ("https://c/h", &"/s/c")
            ]
        );
        // Empty items (an empty env var, a trailing comma) are no items.
        let urls_with_blank: Vec<String> = vec!["https://a/h".into(), " ".into()];
        assert_eq!(
            pair_secrets(&urls_with_blank, &["/s/a", ""]).expect("blank items"),
            [("https://a/h", &"/s/a")]
        );
        assert!(
            pair_secrets::<&str>(&[], &[])
                .expect("no webhooks")
                .is_empty()
        );
        assert!(
            pair_secrets(&[], &["/s/a"])
                .expect("a file, no URLs")
                .is_empty()
        );
    }

    #[test]
    fn any_other_count_of_secret_files_is_an_error_naming_both_counts() {
        let urls: Vec<String> = ["https://a/h", "https://b/h", "https://c/h"]
            .map(String::from)
            .to_vec();
        let err = pair_secrets(&urls, &["/s/a", "/s/b"]).expect_err("2 for 3");
        assert!(
            err.to_string()
                .contains("2 webhook secret files for 3 webhook URLs"),
            "{err}"
        );
        let err = pair_secrets(&urls[..2], &["/s/a", "/s/b", "/s/c"]).expect_err("3 for 2");
        assert!(
            err.to_string()
                .contains("3 webhook secret files for 2 webhook URLs"),
            "{err}"
        );
        let err = pair_secrets::<&str>(&urls, &[]).expect_err("none");
        assert!(
            err.to_string()
                .contains("BOXOFFICE_EVENTS_WEBHOOK_SECRET_FILE"),
            "{err}"
        );
    }

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
