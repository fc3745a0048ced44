//! The shard's event sinks: the operator's defaults with the Show's own, as env and
//! read-only Secret files; Kafka per Show; conflicts refused.

use super::*;
use boxoffice_crds::{EventSinks, KafkaSink, WebhookSink};
use k8s_openapi::api::core::v1::PodSpec;

use crate::events::{parse_brokers, parse_webhooks};
use crate::policy::{self, RefusalReason};

fn config_with(extra: &[&str]) -> Config {
    let mut args = vec!["boxoffice-operator", "--etcd", "http://etcd:2379"];
    args.extend_from_slice(extra);
    Config::parse_from(args)
}

const AUDIT: &str = r#"[{"url": "https://audit.example/hooks", "secretName": "audit-webhook", "secretKey": "whsec"}]"#;

fn hook(url: &str, name: &str, key: &str) -> WebhookSink {
    WebhookSink {
        url: url.into(),
        secret_ref: SecretKeyRef {
            name: name.into(),
            key: key.into(),
        },
    }
}

fn with_events(events: EventSinks) -> Show {
    let mut show = theatre();
    show.spec.events = Some(events);
    show
}

fn own_webhooks(hooks: Vec<WebhookSink>) -> Show {
    with_events(EventSinks {
        webhooks: hooks,
        kafka: None,
    })
}

fn pod(show: &Show, config: &Config) -> PodSpec {
    deployment(show, config)
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
}

fn value(env: &BTreeMap<String, EnvVar>, name: &str) -> Option<String> {
    env.get(name).and_then(|e| e.value.clone())
}

#[test]
fn each_webhook_secret_is_a_read_only_file_with_only_its_key_defaults_first() {
    let show = own_webhooks(vec![
        hook("https://mail.example/hooks/boxoffice", "mail-hook", "whsec"),
        hook("http://crm.crm.svc:8080/in", "crm", "signing"),
    ]);
    let p = pod(&show, &config_with(&["--events-webhooks", AUDIT]));
    let c = &p.containers[0];
    let env = env_of(c);
    assert_eq!(
        value(&env, "BOXOFFICE_EVENTS_WEBHOOK_URLS").as_deref(),
        Some(
            "https://audit.example/hooks,https://mail.example/hooks/boxoffice,http://crm.crm.svc:8080/in"
        )
    );
    assert_eq!(
        value(&env, "BOXOFFICE_EVENTS_WEBHOOK_SECRET_FILE").as_deref(),
        Some(
            "/var/run/secrets/boxoffice-webhooks/0/secret,\
             /var/run/secrets/boxoffice-webhooks/1/secret,\
             /var/run/secrets/boxoffice-webhooks/2/secret"
        )
    );
    // No secret reaches the shard as an env var.
    for e in c.env.iter().flatten() {
        let from_secret = e
            .value_from
            .as_ref()
            .is_some_and(|v| v.secret_key_ref.is_some());
        assert!(
            !from_secret || e.name == "DATABASE_URL",
            "{} comes from a Secret",
            e.name
        );
    }
    for (i, (secret, key)) in [
        ("audit-webhook", "whsec"),
        ("mail-hook", "whsec"),
        ("crm", "signing"),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = format!("/var/run/secrets/boxoffice-webhooks/{i}");
        let s = mounted_secret(&p, &dir);
        assert_eq!(s.secret_name.as_deref(), Some(secret));
        let items: Vec<(&str, &str)> = s
            .items
            .iter()
            .flatten()
            .map(|i| (i.key.as_str(), i.path.as_str()))
            .collect();
        assert_eq!(items, [(key, "secret")]);
        assert_eq!(s.default_mode, Some(0o440));
        assert_eq!(s.optional, Some(false));
    }
    // The pod's group reads them (mode 0440).
    assert!(
        p.security_context
            .as_ref()
            .is_some_and(|s| s.fs_group.is_some())
    );
}

#[test]
fn without_sinks_the_shard_gets_no_event_env_and_no_webhook_volume() {
    for show in [theatre(), with_events(EventSinks::default())] {
        let p = pod(&show, &config_with(&[]));
        let c = &p.containers[0];
        assert!(
            c.env
                .iter()
                .flatten()
                .all(|e| !e.name.starts_with("BOXOFFICE_EVENTS")),
            "{:?}",
            c.env
        );
        assert!(
            p.volumes
                .iter()
                .flatten()
                .all(|v| !v.name.starts_with("webhook"))
        );
    }
}

#[test]
fn kafka_follows_the_operators_brokers_and_the_shows_opt_out_and_topic() {
    let brokers = [
        "--events-kafka-brokers",
        "kafka-0.kafka:9092, kafka-1.kafka:9092",
    ];
    let kafka_env = |show: &Show, config: &Config| {
        let env = env_of(&pod(show, config).containers[0]);
        (
            value(&env, "BOXOFFICE_EVENTS_KAFKA_BROKERS"),
            value(&env, "BOXOFFICE_EVENTS_KAFKA_TOPIC"),
            value(&env, "BOXOFFICE_EVENTS_KAFKA_TIMEOUT"),
        )
    };
    let on = config_with(&brokers);
    let servers = Some("kafka-0.kafka:9092,kafka-1.kafka:9092".to_string());
    // Every Show, with the default topic, unless it says otherwise.
    assert_eq!(
        kafka_env(&theatre(), &on),
        (servers.clone(), Some("boxoffice.bookings".into()), None)
    );
    let kafka = |enabled: bool, topic: Option<&str>| {
        with_events(EventSinks {
            webhooks: vec![],
            kafka: Some(KafkaSink {
                enabled,
                topic: topic.map(String::from),
            }),
        })
    };
    assert_eq!(
        kafka_env(&kafka(true, Some("arts.bookings")), &on),
        (servers.clone(), Some("arts.bookings".into()), None)
    );
    assert_eq!(
        kafka_env(&kafka(false, Some("arts.bookings")), &on),
        (None, None, None)
    );
    // The operator's default topic and timeout.
    let tuned = config_with(&[
        brokers[0],
        brokers[1],
        "--events-kafka-topic",
        "tickets",
        "--events-kafka-timeout",
        "15",
    ]);
    assert_eq!(
        kafka_env(&theatre(), &tuned),
        (servers, Some("tickets".into()), Some("15".into()))
    );
    // No brokers, no Kafka sink, whatever the Show says.
    assert_eq!(
        kafka_env(&kafka(true, Some("arts.bookings")), &config_with(&[])),
        (None, None, None)
    );
}

#[test]
fn the_retry_window_reaches_the_shard_only_when_set() {
    let env = env_of(&pod(&theatre(), &config_with(&[])).containers[0]);
    assert_eq!(value(&env, "BOXOFFICE_EVENTS_RETRY_WINDOW"), None);
    let config = config_with(&["--events-retry-window", "600"]);
    let env = env_of(&pod(&theatre(), &config).containers[0]);
    assert_eq!(
        value(&env, "BOXOFFICE_EVENTS_RETRY_WINDOW").as_deref(),
        Some("600")
    );
}

#[test]
fn changing_the_sinks_rolls_the_shard() {
    let config = config_with(&["--events-kafka-brokers", "kafka:9092"]);
    let template = |show: &Show| deployment(show, &config).spec.expect("spec").template;
    let plain = template(&theatre());
    let hooked = own_webhooks(vec![hook("https://a.example/h", "a", "whsec")]);
    let rekeyed = own_webhooks(vec![hook("https://a.example/h", "a", "whsec-2")]);
    let opted_out = with_events(EventSinks {
        webhooks: vec![],
        kafka: Some(KafkaSink {
            enabled: false,
            topic: None,
        }),
    });
    let templates = [
        plain,
        template(&hooked),
        template(&rekeyed),
        template(&opted_out),
    ];
    for (i, a) in templates.iter().enumerate() {
        for b in &templates[i + 1..] {
            assert_ne!(a, b, "two sink configurations give one pod template");
        }
    }
}

#[test]
fn webhooks_naming_one_endpoint_are_refused_naming_both() {
    let config = config_with(&["--events-webhooks", AUDIT]);
    // The default's endpoint again, with a query: the shard would keep one cursor.
    let show = own_webhooks(vec![hook("https://audit.example/hooks?show=1", "x", "k")]);
    let refusal = policy::check(&show, &config).expect_err("refused");
    assert_eq!(refusal.reason, RefusalReason::WebhookConflict);
    assert!(
        refusal.message.contains("spec.events.webhooks[0]")
            && refusal.message.contains("the operator's default webhook")
            && refusal.message.contains("https://audit.example/hooks"),
        "{}",
        refusal.message
    );
    // Two of the Show's own, apart only in scheme.
    let show = own_webhooks(vec![
        hook("https://a.example/h", "x", "k"),
        hook("http://a.example/h", "x", "k"),
    ]);
    let refusal = policy::check(&show, &config_with(&[])).expect_err("refused");
    assert!(
        refusal.message.contains("spec.events.webhooks[1]")
            && refusal.message.contains("spec.events.webhooks[0]"),
        "{}",
        refusal.message
    );
    // Another path or port is another endpoint.
    let show = own_webhooks(vec![
        hook("https://audit.example/hooks/arts", "x", "k"),
        hook("https://audit.example:8443/hooks", "x", "k"),
    ]);
    assert_eq!(policy::check(&show, &config), Ok(()));
}

#[test]
fn the_webhook_secrets_are_among_what_the_shard_needs() {
    let show = own_webhooks(vec![hook("https://a.example/h", "a-hook", "whsec")]);
    let refs = crate::events::secret_refs(&show, &config_with(&["--events-webhooks", AUDIT]));
    let names: Vec<(&str, &str, &str)> = refs
        .iter()
        .map(|(what, r)| (what.as_str(), r.name.as_str(), r.key.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (
                "signing secret of webhook https://audit.example/hooks",
                "audit-webhook",
                "whsec"
            ),
            (
                "signing secret of webhook https://a.example/h",
                "a-hook",
                "whsec"
            )
        ]
    );
}

#[test]
fn default_webhooks_and_brokers_are_parsed_strictly() {
    assert_eq!(parse_webhooks("").expect("empty").0, []);
    assert_eq!(parse_webhooks(AUDIT).expect("one").0.len(), 1);
    for (bad, needle) in [
        ("{}", "JSON list"),
        (
            r#"[{"url": "https://a.example/h", "secretName": "s", "secretKey": "k", "secret": "x"}]"#,
            "unknown field",
        ),
        (
            r#"[{"url": "ftp://a.example/h", "secretName": "s", "secretKey": "k"}]"#,
            "http or https",
        ),
        (
            r#"[{"url": "https://a.example/h", "secretName": "", "secretKey": "k"}]"#,
            "secretName",
        ),
        (
            r#"[{"url": "https://a.example/h", "secretName": "s", "secretKey": "k"},
                {"url": "http://a.example/h", "secretName": "t", "secretKey": "k"}]"#,
            "a.example/h",
        ),
    ] {
        let err = parse_webhooks(bad).expect_err(bad);
        assert!(err.contains(needle), "{bad}: {err}");
    }
    assert_eq!(
        parse_brokers(" a:9092,b.kafka:9093 ,").expect("brokers").0,
        ["a:9092", "b.kafka:9093"]
    );
    assert!(parse_brokers("").expect("none").0.is_empty());
    for bad in ["kafka", "kafka:", ":9092", "kafka:x", "http://kafka:9092"] {
        assert!(parse_brokers(bad).is_err(), "{bad}");
    }
    assert!(Config::try_parse_from(["boxoffice-operator", "--events-kafka-topic", ".."]).is_err());
}
