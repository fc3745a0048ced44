//! `spec.events`: where a Show's booking events go besides the operator's default sinks
//! (docs/architecture.md, "Where a show's sinks come from").

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::rules;
use crate::show::SecretKeyRef;

/// Most webhooks a Show may list (each is a relay task and a cursor in PostgreSQL).
pub const MAX_WEBHOOKS: usize = 8;
/// Longest webhook URL.
pub const MAX_URL_LENGTH: usize = 2048;

/// The Show's own event sinks.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EventSinks {
    /// Endpoints that get every booking event of the show as a signed POST (Standard
    /// Webhooks), besides the operator's default webhooks. At most 8; URLs are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["url".into()]))]
    pub webhooks: Vec<WebhookSink>,
    /// The show's use of the operator's Kafka sink; unset: on whenever the operator has
    /// brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSink>,
}

/// One webhook endpoint and the Secret key its deliveries are signed with.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSink {
    /// The endpoint: an http or https URL with a host and no credentials (a Secret is
    /// the place for those).
    #[schemars(
        length(min = 8, max = 2048),
        regex(pattern = r"^https?://[^/?#@\s]+([/?#]\S*)?$")
    )]
    #[x_kube(validation = Rule::new(rules::WEBHOOK_URL)
        .message("events.webhooks[].url must be an http or https URL with a host"))]
    pub url: String,
    /// The Secret key (in the Show's namespace) holding the signing secret,
    /// `whsec_<base64>` as Standard Webhooks prints it; the shard reads it as a file.
    pub secret_ref: SecretKeyRef,
}

/// Whether the show's events go to the operator's Kafka brokers, and on which topic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSink {
    /// Relay the show's events to the operator's Kafka brokers (when the operator has
    /// none, there is no Kafka sink either way). `false` opts the show out.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// The topic instead of the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    #[x_kube(validation = Rule::new(rules::KAFKA_TOPIC_NOT_DOTS)
        .message("events.kafka.topic may not be . or .."))]
    pub topic: Option<String>,
}

impl Default for KafkaSink {
    fn default() -> Self {
        Self {
            enabled: true,
            topic: None,
        }
    }
}

fn enabled() -> bool {
    true
}

/// The endpoint a webhook URL names: its host, its port unless the scheme's default,
/// and its path; not the scheme, credentials or query. The shard keeps a webhook's
/// cursor under it, so two webhooks of one shard may not name the same endpoint.
/// `None` for what is not an http or https URL with a host.
pub fn webhook_endpoint(url: &str) -> Option<String> {
    let parsed = ::url::Url::parse(url.trim()).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str().filter(|h| !h.is_empty())?;
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("{host}{port}{}", parsed.path()))
}

/// What is wrong with a webhook URL, as [`WebhookSink::url`]'s schema says, or `None`.
pub fn webhook_url_problem(url: &str) -> Option<&'static str> {
    let plain =
        ::url::Url::parse(url).is_ok_and(|u| u.username().is_empty() && u.password().is_none());
    if url.len() > MAX_URL_LENGTH {
        Some("must be at most 2048 characters")
    } else if webhook_endpoint(url).is_none() || url.trim() != url {
        Some("events.webhooks[].url must be an http or https URL with a host")
    } else if !plain {
        Some("may not carry credentials (put them in the Secret)")
    } else {
        None
    }
}

/// What is wrong with a Kafka topic name, as [`KafkaSink::topic`]'s schema says, or
/// `None`.
pub fn kafka_topic_problem(topic: &str) -> Option<&'static str> {
    let legal = topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    (topic.is_empty() || topic.len() > 249 || topic == "." || topic == ".." || !legal)
        .then_some("must be a Kafka topic name: 1 to 249 of a-z A-Z 0-9 . _ -, not . or ..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_host_port_and_path() {
        for (url, endpoint) in [
            (
                "https://mail.example.com/hooks/boxoffice",
                "mail.example.com/hooks/boxoffice",
            ),
            ("http://127.0.0.1:8080/hook", "127.0.0.1:8080/hook"),
            // The scheme's own port, the query and credentials do not make another one.
            ("https://a.example:443/h?x=1", "a.example/h"),
            ("http://user:pw@a.example/h", "a.example/h"),
            ("https://a.example", "a.example/"),
        ] {
            assert_eq!(webhook_endpoint(url).as_deref(), Some(endpoint), "{url}");
        }
        for bad in [
            "ftp://a.example/h",
            "a.example/h",
            "https://",
            "",
            "mailto:x@y",
        ] {
            assert_eq!(webhook_endpoint(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn webhook_urls_are_checked_like_the_schema() {
        assert_eq!(webhook_url_problem("https://a.example/h"), None);
        assert_eq!(webhook_url_problem("http://10.0.0.1:9000/"), None);
        for bad in [
            "ftp://a.example/h",
            "https://",
            " https://a.example/h",
            "https://u:p@a.example/h",
        ] {
            assert!(webhook_url_problem(bad).is_some(), "{bad:?}");
        }
        let long = format!("https://a.example/{}", "x".repeat(2048));
        assert!(webhook_url_problem(&long).is_some());
    }

    #[test]
    fn kafka_topics_are_checked_like_the_schema() {
        assert_eq!(kafka_topic_problem("boxoffice.bookings"), None);
        assert_eq!(kafka_topic_problem("Club_Night-2"), None);
        for bad in ["", ".", "..", "a b", "a/b", &"t".repeat(250)] {
            assert!(kafka_topic_problem(bad).is_some(), "{bad:?}");
        }
    }
}
