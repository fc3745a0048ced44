//! The Show's validation rules in Rust, for manifests that never reach an API server.
//!
//! The API server enforces the same rules from the CRD schema (see [`crate::rules`]);
//! this twin lets the shard refuse a bad `--show` file with the same field names.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use crate::seating::{VenueLayout, row_names};
use crate::show::ShowSpec;

/// One problem with a Show, naming the field like the API server does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All problems found in a Show, joined for display.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Show: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidShow(pub Vec<FieldError>);

/// Parses a Go-style duration such as `10m`, `1h30m` or `90s`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut digits = String::new();
    let mut last_unit = 0u8; // enforce h, m, s order, each at most once
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (rank, secs) = match c {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return None,
        };
        if digits.is_empty() || rank <= last_unit {
            return None;
        }
        total = total.checked_add(digits.parse::<u64>().ok()?.checked_mul(secs)?)?;
        digits.clear();
        last_unit = rank;
    }
    if !digits.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_price(s: &str) -> bool {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    (1..=7).contains(&whole.len())
        && digits(whole)
        && (!s.contains('.') || (1..=2).contains(&frac.len()))
        && digits(frac)
}

/// A rough RFC 3339 check: `YYYY-MM-DDTHH:MM:SS` followed by a zone.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    b.len() >= 20
        && (0..4).all(d)
        && b[4] == b'-'
        && d(5)
        && d(6)
        && b[7] == b'-'
        && d(8)
        && d(9)
        && (b[10] == b'T' || b[10] == b't')
        && d(11)
        && d(12)
        && b[13] == b':'
        && d(14)
        && d(15)
        && b[16] == b':'
        && d(17)
        && d(18)
        && (s.ends_with('Z') || s.ends_with('z') || s[19..].contains(['+', '-']))
}

/// The twins of `spec.payments`' schema rules.
fn payments(p: &crate::payments::PaymentPolicy, err: &mut impl FnMut(String, &str)) {
    use crate::payments::PaymentMode;
    if p.mode == PaymentMode::Provider && (p.provider.is_none() || p.provider_secret_ref.is_none())
    {
        err(
            "spec.payments.providerSecretRef".into(),
            "payments.mode provider needs payments.provider and payments.providerSecretRef",
        );
    }
    if p.provider.as_deref().is_some_and(|n| !is_dns_label(n, 32)) {
        err(
            "spec.payments.provider".into(),
            "must be a DNS label of at most 32 characters",
        );
    }
    match parse_duration(&p.window) {
        Some(d) if (60..=3600).contains(&d.as_secs()) => {}
        _ => err(
            "spec.payments.window".into(),
            "payments.window must be between 1m and 1h",
        ),
    }
    match parse_duration(&p.tolerance) {
        Some(d) if (10..=600).contains(&d.as_secs()) => {}
        _ => err(
            "spec.payments.tolerance".into(),
            "payments.tolerance must be between 10s and 10m",
        ),
    }
}

/// The twins of `spec.events`' schema rules.
fn events(e: &crate::events::EventSinks, err: &mut impl FnMut(String, &str)) {
    use crate::events::{MAX_WEBHOOKS, kafka_topic_problem, webhook_url_problem};
    if e.webhooks.len() > MAX_WEBHOOKS {
        err("spec.events.webhooks".into(), "at most 8 webhooks");
    }
    let mut urls = HashSet::new();
    for (i, hook) in e.webhooks.iter().enumerate() {
        if let Some(problem) = webhook_url_problem(&hook.url) {
            err(format!("spec.events.webhooks[{i}].url"), problem);
        }
        if !urls.insert(hook.url.as_str()) {
            err(
                format!("spec.events.webhooks[{i}].url"),
                "duplicate webhook URL",
            );
        }
        let r = &hook.secret_ref;
        if r.name.is_empty() || r.key.is_empty() {
            err(
                format!("spec.events.webhooks[{i}].secretRef"),
                "needs a Secret name and key",
            );
        }
    }
    let topic = e.kafka.as_ref().and_then(|k| k.topic.as_deref());
    if let Some(problem) = topic.and_then(kafka_topic_problem) {
        err("spec.events.kafka.topic".into(), problem);
    }
}

/// Checks a Show spec; returns every problem found.
pub fn validate(spec: &ShowSpec) -> Result<(), InvalidShow> {
    let mut errors = Vec::new();
    let mut err = |field: String, message: &str| {
        errors.push(FieldError {
            field,
            message: message.to_string(),
        })
    };

    if spec.title.is_empty() || spec.title.chars().count() > 200 {
        err("spec.title".into(), "must be 1 to 200 characters");
    }
    if !is_rfc3339(&spec.starts_at) {
        err("spec.startsAt".into(), "must be an RFC 3339 date-time");
    }
    if let Some(sales) = &spec.sales {
        for (field, value) in [("opensAt", &sales.opens_at), ("closesAt", &sales.closes_at)] {
            if value.as_deref().is_some_and(|v| !is_rfc3339(v)) {
                err(
                    format!("spec.sales.{field}"),
                    "must be an RFC 3339 date-time",
                );
            }
        }
    }

    if spec.categories.is_empty() {
        err(
            "spec.categories".into(),
            "needs at least one price category",
        );
    }
    let mut categories = HashSet::new();
    for (i, c) in spec.categories.iter().enumerate() {
        if !is_dns_label(&c.name, 32) {
            err(
                format!("spec.categories[{i}].name"),
                "must be a lowercase name",
            );
        }
        if !categories.insert(c.name.as_str()) {
            err(
                format!("spec.categories[{i}].name"),
                "duplicate category name",
            );
        }
        if !is_price(&c.price) {
            err(
                format!("spec.categories[{i}].price"),
                "must be a decimal like 49.50",
            );
        }
        if c.currency.len() != 3 || !c.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            err(
                format!("spec.categories[{i}].currency"),
                "must be an ISO 4217 code",
            );
        }
    }

    let seating = &spec.seating;
    if seating.sections.is_empty() && seating.general_admission.is_empty() {
        err(
            "spec.seating".into(),
            "seating needs at least one section or generalAdmission area",
        );
    }
    if seating.sections.len() > 100 {
        err("spec.seating.sections".into(), "at most 100 sections");
    }
    if seating.general_admission.len() > 32 {
        err("spec.seating.generalAdmission".into(), "at most 32 areas");
    }
    let mut names = HashSet::new();
    for (i, s) in seating.sections.iter().enumerate() {
        let field = format!("spec.seating.sections[{i}]");
        if !is_dns_label(&s.name, 32) {
            err(format!("{field}.name"), "must be a lowercase name");
        }
        if !names.insert(s.name.as_str()) {
            err(format!("{field}.name"), "duplicate section name");
        }
        if !categories.contains(s.category.as_str()) {
            err(
                format!("{field}.category"),
                "must name an entry of spec.categories",
            );
        }
        if s.rows.is_empty() || s.rows.len() > 32 {
            err(format!("{field}.rows"), "needs 1 to 32 row entries");
        }
        for (j, row) in s.rows.iter().enumerate() {
            if !(1..=500).contains(&row.seats) {
                err(
                    format!("{field}.rows[{j}].seats"),
                    "must be between 1 and 500",
                );
            }
            if let Err(e) = row_names(row) {
                err(format!("{field}.rows[{j}]"), &e.to_string());
            }
        }
    }
    for (i, ga) in seating.general_admission.iter().enumerate() {
        let field = format!("spec.seating.generalAdmission[{i}]");
        if !is_dns_label(&ga.name, 32) {
            err(format!("{field}.name"), "must be a lowercase name");
        }
        if !names.insert(ga.name.as_str()) {
            err(format!("{field}.name"), "duplicate section or area name");
        }
        if !(1..=1_000_000).contains(&ga.capacity) {
            err(format!("{field}.capacity"), "must be between 1 and 1000000");
        }
        if !categories.contains(ga.category.as_str()) {
            err(
                format!("{field}.category"),
                "must name an entry of spec.categories",
            );
        }
    }
    if let Err(e) = VenueLayout::from_seating(seating) {
        err("spec.seating.sections".into(), &e.to_string());
    }

    match parse_duration(&spec.holds.ttl) {
        Some(ttl) if (60..=7200).contains(&ttl.as_secs()) => {}
        _ => err(
            "spec.holds.ttl".into(),
            "holds.ttl must be between 1m and 2h",
        ),
    }
    if !(1..=100).contains(&spec.holds.max_seats_per_hold) {
        err(
            "spec.holds.maxSeatsPerHold".into(),
            "must be between 1 and 100",
        );
    }
    if spec
        .holds
        .max_seats_per_user
        .is_some_and(|n| !(1..=10_000).contains(&n))
    {
        err(
            "spec.holds.maxSeatsPerUser".into(),
            "must be between 1 and 10000",
        );
    }
    if !(1..=9).contains(&spec.shard.replicas) {
        err("spec.shard.replicas".into(), "must be between 1 and 9");
    }
    if let Some(p) = &spec.payments {
        payments(p, &mut err);
    }
    if let Some(e) = &spec.events {
        events(e, &mut err);
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(InvalidShow(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        for bad in ["", "m", "10", "1m1h", "10x", "1h1h", "-5m"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn payments_are_checked_like_the_schema() {
        let ok = crate::payments::PaymentPolicy::default();
        let mut errors = Vec::new();
        payments(&ok, &mut |f, _| errors.push(f));
        assert!(errors.is_empty(), "{errors:?}");
        let bad = crate::payments::PaymentPolicy {
            mode: crate::payments::PaymentMode::Provider,
            provider: Some("Not_A_Label".into()),
            window: "2h".into(),
            tolerance: "5s".into(),
            ..ok
        };
        payments(&bad, &mut |f, _| errors.push(f));
        assert_eq!(
            errors,
            [
                "spec.payments.providerSecretRef",
                "spec.payments.provider",
                "spec.payments.window",
                "spec.payments.tolerance"
            ]
        );
    }

    #[test]
    fn events_are_checked_like_the_schema() {
        use crate::events::{EventSinks, KafkaSink, WebhookSink};
        use crate::show::SecretKeyRef;
        let hook = |url: &str| WebhookSink {
            url: url.into(),
            secret_ref: SecretKeyRef {
                name: "hooks".into(),
                key: "whsec".into(),
            },
        };
        let ok = EventSinks {
            webhooks: vec![hook("https://a.example/h"), hook("http://b.example:8080/h")],
            kafka: Some(KafkaSink {
                enabled: false,
                topic: Some("club.bookings-v1".into()),
            }),
        };
        let mut errors = Vec::new();
        events(&ok, &mut |f, _| errors.push(f));
        assert!(errors.is_empty(), "{errors:?}");
        let bad = EventSinks {
            webhooks: vec![
                hook("ftp://a.example/h"),
                hook("https://a.example/h"),
                hook("https://a.example/h"),
            ],
            kafka: Some(KafkaSink {
                enabled: true,
                topic: Some("..".into()),
            }),
        };
        events(&bad, &mut |f, _| errors.push(f));
        assert_eq!(
            errors,
            [
                "spec.events.webhooks[0].url",
                "spec.events.webhooks[2].url",
                "spec.events.kafka.topic"
            ]
        );
        let many = EventSinks {
            webhooks: (0..9)
                .map(|i| hook(&format!("https://a.example/{i}")))
                .collect(),
            kafka: None,
        };
        errors.clear();
        events(&many, &mut |f, _| errors.push(f));
        assert_eq!(errors, ["spec.events.webhooks"]);
    }

    #[test]
    fn prices_and_dates() {
        assert!(is_price("49.50") && is_price("5") && is_price("0.5"));
        assert!(!is_price("49.") && !is_price(".5") && !is_price("1.234") && !is_price("-1"));
        assert!(is_rfc3339("2026-12-01T20:00:00Z"));
        assert!(is_rfc3339("2026-12-01T20:00:00+01:00"));
        assert!(!is_rfc3339("2026-12-01 20:00") && !is_rfc3339("tomorrow"));
    }
}
