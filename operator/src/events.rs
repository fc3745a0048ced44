//! A Show's event sinks: the operator's defaults (its flags, which Helm sets) with the
//! Show's own `spec.events`, given to the shard as its env. Each webhook's signing
//! secret is a read-only file holding only that key (a Secret volume per webhook, like
//! the payment secret), never an environment variable. Pure, so it is unit-tested.

use boxoffice_crds::events::{
    MAX_WEBHOOKS, kafka_topic_problem, webhook_endpoint, webhook_url_problem,
};
use boxoffice_crds::{SecretKeyRef, Show, WebhookSink};
use k8s_openapi::api::apps::v1::Deployment;
use serde::{Deserialize, Serialize};

use crate::builders::env;
use crate::config::Config;

/// Where the shard finds webhook `i`'s signing secret: `<WEBHOOK_DIR>/<i>/<WEBHOOK_FILE>`.
pub const WEBHOOK_DIR: &str = "/var/run/secrets/boxoffice-webhooks";
/// The file, under a webhook's directory, holding its secret.
pub const WEBHOOK_FILE: &str = "secret";

/// One of the operator's default webhooks: every Show's shard relays to it, signing with
/// the key of a Secret of that name in the Show's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultWebhook {
    pub url: String,
    pub secret_name: String,
    pub secret_key: String,
}

/// The operator's `--events-webhooks`: a JSON list of [`DefaultWebhook`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultWebhooks(pub Vec<DefaultWebhook>);

pub fn parse_webhooks(s: &str) -> Result<DefaultWebhooks, String> {
    if s.trim().is_empty() {
        return Ok(DefaultWebhooks::default());
    }
    let hooks: Vec<DefaultWebhook> = serde_json::from_str(s)
        .map_err(|e| format!("not a JSON list of {{url, secretName, secretKey}}: {e}"))?;
    if hooks.len() > MAX_WEBHOOKS {
        return Err(format!("at most {MAX_WEBHOOKS} default webhooks"));
    }
    let mut endpoints = Vec::new();
    for h in &hooks {
        if let Some(problem) = webhook_url_problem(&h.url) {
            return Err(format!("webhook {:?}: {problem}", h.url));
        }
        if h.secret_name.trim().is_empty() || h.secret_key.trim().is_empty() {
            return Err(format!(
                "webhook {:?} needs a secretName and a secretKey",
                h.url
            ));
        }
        let endpoint = webhook_endpoint(&h.url).unwrap_or_default();
        if endpoints.contains(&endpoint) {
            return Err(format!("two default webhooks name the endpoint {endpoint}"));
        }
        endpoints.push(endpoint);
    }
    Ok(DefaultWebhooks(hooks))
}

/// `host:port`, comma-separated, as Kafka's `bootstrap.servers`; empty: no Kafka sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Brokers(pub Vec<String>);

pub fn parse_brokers(s: &str) -> Result<Brokers, String> {
    let brokers: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(String::from)
        .collect();
    for b in &brokers {
        let port = b
            .rsplit_once(':')
            .map(|(host, port)| (host, port.parse::<u16>()));
        if !matches!(port, Some((host, Ok(p))) if !host.is_empty() && p > 0 && !host.contains('/'))
        {
            return Err(format!("{b:?} is not a host:port broker address"));
        }
    }
    Ok(Brokers(brokers))
}

fn parse_topic(s: &str) -> Result<String, String> {
    match kafka_topic_problem(s) {
        Some(problem) => Err(problem.into()),
        None => Ok(s.into()),
    }
}

/// Where every Show's booking events go unless the Show says otherwise.
#[derive(Debug, Clone, clap::Args)]
pub struct Events {
    /// Webhooks every Show's shard relays its booking events to, as JSON: `[{"url":
    /// "https://audit.example/hooks", "secretName": "audit-webhook", "secretKey":
    /// "whsec"}]`; the Secret (a `whsec_<base64>` signing secret) must exist in each
    /// Show's namespace. A Show's `spec.events.webhooks` come in addition.
    #[arg(long = "events-webhooks", env = "BOXOFFICE_EVENTS_WEBHOOKS", default_value = "", value_parser = parse_webhooks)]
    pub webhooks: DefaultWebhooks,

    /// Kafka brokers (comma-separated host:port) the shards relay booking events to;
    /// empty: no Kafka sink. A Show opts out with `spec.events.kafka.enabled: false`.
    #[arg(long = "events-kafka-brokers", env = "BOXOFFICE_EVENTS_KAFKA_BROKERS", default_value = "", value_parser = parse_brokers)]
    pub kafka_brokers: Brokers,

    /// The Kafka topic of Shows without `spec.events.kafka.topic`.
    #[arg(long = "events-kafka-topic", env = "BOXOFFICE_EVENTS_KAFKA_TOPIC", default_value = "boxoffice.bookings", value_parser = parse_topic)]
    pub kafka_topic: String,

    /// Seconds Kafka has to acknowledge one event (the shard's default when unset).
    #[arg(long = "events-kafka-timeout", env = "BOXOFFICE_EVENTS_KAFKA_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=300))]
    pub kafka_timeout: Option<u64>,

    /// Seconds a shard's sink retries one event before it becomes a dead letter (the
    /// shard's default, an hour, when unset).
    #[arg(long = "events-retry-window", env = "BOXOFFICE_EVENTS_RETRY_WINDOW", value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub retry_window: Option<u64>,
}

/// A webhook of a Show's shard, and where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub secret: SecretKeyRef,
    pub origin: String,
}

/// The shard's webhooks in the order the shard gets them: the operator's defaults, then
/// the Show's own.
pub fn webhooks(show: &Show, config: &Config) -> Vec<Webhook> {
    let defaults = config.events.webhooks.0.iter().map(|h| Webhook {
        url: h.url.clone(),
        secret: SecretKeyRef {
            name: h.secret_name.clone(),
            key: h.secret_key.clone(),
        },
        origin: "the operator's default webhook".into(),
    });
    let own = show
        .spec
        .events
        .iter()
        .flat_map(|e| e.webhooks.iter().enumerate())
        .map(|(i, WebhookSink { url, secret_ref })| Webhook {
            url: url.clone(),
            secret: secret_ref.clone(),
            origin: format!("spec.events.webhooks[{i}]"),
        });
    defaults.chain(own).collect()
}

/// The brokers and topic of the show's Kafka sink, if it has one: the operator has
/// brokers and the Show did not opt out.
pub fn kafka(show: &Show, config: &Config) -> Option<(String, String)> {
    let own = show.spec.events.as_ref().and_then(|e| e.kafka.as_ref());
    if config.events.kafka_brokers.0.is_empty() || own.is_some_and(|k| !k.enabled) {
        return None;
    }
    let topic = own
        .and_then(|k| k.topic.clone())
        .unwrap_or_else(|| config.events.kafka_topic.clone());
    Some((config.events.kafka_brokers.0.join(","), topic))
}

/// Two of the shard's webhooks that name one endpoint (the shard keeps a cursor per
/// endpoint and would refuse to start), as a message naming both; `None` when there are
/// none.
pub fn conflict(show: &Show, config: &Config) -> Option<String> {
    let hooks = webhooks(show, config);
    for (i, a) in hooks.iter().enumerate() {
        let endpoint = webhook_endpoint(&a.url);
        if let Some(b) = hooks[i + 1..]
            .iter()
            .find(|b| endpoint.is_some() && webhook_endpoint(&b.url) == endpoint)
        {
            return Some(format!(
                "{} {:?} names the same endpoint as {} {:?} (one cursor per host, port and \
                 path); nothing was changed",
                b.origin, b.url, a.origin, a.url
            ));
        }
    }
    None
}

/// The Secret keys the show's webhooks are signed with, each with what it is for.
pub fn secret_refs(show: &Show, config: &Config) -> Vec<(String, SecretKeyRef)> {
    webhooks(show, config)
        .into_iter()
        .map(|h| (format!("signing secret of webhook {}", h.url), h.secret))
        .collect()
}

/// Sets the shard's event env (`BOXOFFICE_EVENTS_*`) and mounts each webhook's secret.
pub fn mount_event_sinks(deployment: &mut Deployment, show: &Show, config: &Config) {
    let hooks = webhooks(show, config);
    let Some((_, container)) = crate::builders::shard_volumes_and_container(deployment) else {
        return;
    };
    let envs = container.env.get_or_insert_default();
    if !hooks.is_empty() {
        let urls: Vec<&str> = hooks.iter().map(|h| h.url.as_str()).collect();
        let files: Vec<String> = (0..hooks.len())
            .map(|i| format!("{WEBHOOK_DIR}/{i}/{WEBHOOK_FILE}"))
            .collect();
        envs.push(env("BOXOFFICE_EVENTS_WEBHOOK_URLS", urls.join(",")));
        envs.push(env("BOXOFFICE_EVENTS_WEBHOOK_SECRET_FILE", files.join(",")));
    }
    if let Some((brokers, topic)) = kafka(show, config) {
        envs.push(env("BOXOFFICE_EVENTS_KAFKA_BROKERS", brokers));
        envs.push(env("BOXOFFICE_EVENTS_KAFKA_TOPIC", topic));
        if let Some(timeout) = config.events.kafka_timeout {
            envs.push(env("BOXOFFICE_EVENTS_KAFKA_TIMEOUT", timeout.to_string()));
        }
    }
    if let Some(window) = config.events.retry_window {
        envs.push(env("BOXOFFICE_EVENTS_RETRY_WINDOW", window.to_string()));
    }
    for (i, hook) in hooks.iter().enumerate() {
        crate::builders::mount_secret_key(
            deployment,
            &format!("webhook-{i}"),
            &hook.secret,
            &format!("{WEBHOOK_DIR}/{i}"),
            WEBHOOK_FILE,
        );
    }
}
