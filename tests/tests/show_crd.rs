//! The Show CRD in a real API server: it installs, the examples are accepted, `kubectl
//! get shows` is useful, and bad Shows are rejected by the server naming the field.

use boxoffice_e2e::ControlPlane;
use boxoffice_e2e::tools::repo_root;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

async fn plane() -> &'static ControlPlane {
    static PLANE: OnceCell<ControlPlane> = OnceCell::const_new();
    PLANE
        .get_or_init(|| async {
            let plane = ControlPlane::start().await.expect("control plane starts");
            plane.install_show_crd().await.expect("CRD installs");
            plane
        })
        .await
}

fn club() -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("examples/shows/club.yaml")).expect("club.yaml");
    serde_yaml::from_str(&text).expect("club.yaml is YAML")
}

fn create_namespace(plane: &ControlPlane, name: &str) {
    let (ok, _, err) = plane
        .kubectl_run(&["create", "namespace", name])
        .expect("kubectl");
    assert!(ok || err.contains("AlreadyExists"), "{err}");
}

#[tokio::test]
async fn examples_are_accepted_and_listed_with_columns() {
    let plane = plane().await;
    create_namespace(plane, "examples");
    let dir = repo_root().join("examples/shows").display().to_string();
    let (ok, out, err) = plane
        .kubectl_run(&["apply", "-n", "examples", "-f", &dir])
        .expect("kubectl");
    assert!(ok, "kubectl apply -f examples/shows/ failed: {err}");
    for name in ["club-night", "hamlet-opening", "cup-final"] {
        assert!(
            out.contains(&format!("show.boxoffice.dev/{name} created")),
            "{out}"
        );
    }

    let (ok, out, err) = plane
        .kubectl_run(&["get", "shows", "-n", "examples"])
        .expect("kubectl");
    assert!(ok, "{err}");
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "LEADER",
            "AVAILABLE",
            "SOLD",
            "ROUTED",
            "AGE"
        ],
        "{out}"
    );
    assert_eq!(out.lines().count(), 4, "{out}");

    // Defaults are applied by the server.
    let (ok, out, err) = plane
        .kubectl_run(&["get", "show", "cup-final", "-n", "examples", "-o", "json"])
        .expect("kubectl");
    assert!(ok, "{err}");
    let show: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(show["spec"]["shard"]["replicas"], 3);
    assert_eq!(show["spec"]["holds"]["ttl"], "8m");
    let (ok, out, _) = plane
        .kubectl_run(&["get", "show", "club-night", "-n", "examples", "-o", "json"])
        .expect("kubectl");
    assert!(ok);
    let show: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(show["spec"]["holds"]["maxSeatsPerHold"], 6);
}

/// One invalid variant of the club: what to break, and what the server must name.
struct Case {
    what: &'static str,
    mutate: fn(&mut Value),
    expect: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "replicas 0",
            mutate: |v| v["spec"]["shard"]["replicas"] = json!(0),
            expect: &["spec.shard.replicas"],
        },
        Case {
            what: "replicas 10",
            mutate: |v| v["spec"]["shard"]["replicas"] = json!(10),
            expect: &["spec.shard.replicas"],
        },
        Case {
            what: "ttl 10h",
            mutate: |v| v["spec"]["holds"]["ttl"] = json!("10h"),
            expect: &["spec.holds.ttl", "between 1m and 2h"],
        },
        Case {
            what: "ttl 30s",
            mutate: |v| v["spec"]["holds"]["ttl"] = json!("30s"),
            expect: &["spec.holds.ttl", "between 1m and 2h"],
        },
        Case {
            what: "duplicate section names",
            mutate: |v| {
                let section = v["spec"]["seating"]["sections"][0].clone();
                v["spec"]["seating"]["sections"]
                    .as_array_mut()
                    .expect("sections")
                    .push(section);
            },
            expect: &["spec.seating.sections[1]", "Duplicate value"],
        },
        Case {
            what: "unknown category",
            mutate: |v| v["spec"]["seating"]["sections"][0]["category"] = json!("gold"),
            expect: &[
                "spec.seating.sections",
                "must name an entry of spec.categories",
            ],
        },
        Case {
            what: "unknown GA category",
            mutate: |v| {
                v["spec"]["seating"]["generalAdmission"] =
                    json!([{"name": "bar", "capacity": 20, "category": "vip"}])
            },
            expect: &[
                "spec.seating.generalAdmission",
                "must name an entry of spec.categories",
            ],
        },
        Case {
            what: "empty seating",
            mutate: |v| v["spec"]["seating"] = json!({}),
            expect: &[
                "spec.seating",
                "at least one section or generalAdmission area",
            ],
        },
        Case {
            what: "negative capacity",
            mutate: |v| {
                v["spec"]["seating"]["generalAdmission"] =
                    json!([{"name": "bar", "capacity": -5, "category": "standard"}])
            },
            expect: &["spec.seating.generalAdmission[0].capacity"],
        },
        Case {
            what: "backwards row range",
            mutate: |v| v["spec"]["seating"]["sections"][0]["rows"][0]["names"] = json!("D-A"),
            expect: &[
                "spec.seating.sections[0].rows[0].names",
                "FIRST not after LAST",
            ],
        },
        Case {
            what: "malformed row range",
            mutate: |v| v["spec"]["seating"]["sections"][0]["rows"][0]["names"] = json!("A-"),
            expect: &["spec.seating.sections[0].rows[0].names"],
        },
        Case {
            what: "600 seats in a row",
            mutate: |v| v["spec"]["seating"]["sections"][0]["rows"][0]["seats"] = json!(600),
            expect: &["spec.seating.sections[0].rows[0].seats"],
        },
        Case {
            what: "overlapping rows",
            mutate: |v| {
                v["spec"]["seating"]["sections"][0]["rows"]
                    .as_array_mut()
                    .expect("rows")
                    .push(json!({"name": "C", "seats": 4}))
            },
            expect: &["spec.seating.sections[0].rows", "row names must be unique"],
        },
        Case {
            what: "row with name and names",
            mutate: |v| v["spec"]["seating"]["sections"][0]["rows"][0]["name"] = json!("A"),
            expect: &[
                "spec.seating.sections[0].rows[0]",
                "exactly one of name or names",
            ],
        },
        Case {
            what: "malformed price",
            mutate: |v| v["spec"]["categories"][0]["price"] = json!("25,00"),
            expect: &["spec.categories[0].price"],
        },
        Case {
            what: "sales close before they open",
            mutate: |v| {
                v["spec"]["sales"] = json!({
                    "opensAt": "2026-12-10T10:00:00Z",
                    "closesAt": "2026-12-01T10:00:00Z"
                })
            },
            expect: &["spec.sales.closesAt", "after sales.opensAt"],
        },
        Case {
            what: "section and GA share a name",
            mutate: |v| {
                v["spec"]["seating"]["generalAdmission"] =
                    json!([{"name": "floor", "capacity": 20, "category": "standard"}])
            },
            expect: &["spec.seating.generalAdmission", "may not share its name"],
        },
        Case {
            what: "provider mode without its secret",
            mutate: |v| v["spec"]["payments"] = json!({"mode": "provider", "provider": "sim"}),
            expect: &[
                "spec.payments.providerSecretRef",
                "needs payments.provider and payments.providerSecretRef",
            ],
        },
        Case {
            what: "payment window 2h",
            mutate: |v| v["spec"]["payments"] = json!({"mode": "trustedService", "window": "2h"}),
            expect: &["spec.payments.window", "between 1m and 1h"],
        },
        Case {
            what: "callback tolerance 1s",
            mutate: |v| v["spec"]["payments"] = json!({"mode": "none", "tolerance": "1s"}),
            expect: &["spec.payments.tolerance", "between 10s and 10m"],
        },
        Case {
            what: "unknown payment mode",
            mutate: |v| v["spec"]["payments"] = json!({"mode": "iou"}),
            expect: &["spec.payments.mode"],
        },
        Case {
            what: "ftp webhook",
            mutate: |v| {
                v["spec"]["events"] = json!({"webhooks": [
                    {"url": "ftp://mail.example.com/in", "secretRef": {"name": "h", "key": "k"}}
                ]})
            },
            expect: &[
                "spec.events.webhooks[0].url",
                "must be an http or https URL with a host",
            ],
        },
        Case {
            what: "webhook URL that is no URL",
            mutate: |v| {
                v["spec"]["events"] = json!({"webhooks": [
                    {"url": "http://[::1/in", "secretRef": {"name": "h", "key": "k"}}
                ]})
            },
            expect: &[
                "spec.events.webhooks[0].url",
                "must be an http or https URL with a host",
            ],
        },
        Case {
            what: "webhook URL with credentials",
            mutate: |v| {
                v["spec"]["events"] = json!({"webhooks": [
                    {"url": "https://user:pw@mail.example.com/in", "secretRef": {"name": "h", "key": "k"}}
                ]})
            },
            expect: &["spec.events.webhooks[0].url"],
        },
        Case {
            what: "webhook without its secret",
            mutate: |v| {
                v["spec"]["events"] = json!({"webhooks": [{"url": "https://mail.example.com/in"}]})
            },
            expect: &["spec.events.webhooks[0].secretRef", "Required value"],
        },
        Case {
            what: "the same webhook twice",
            mutate: |v| {
                let hook = json!({"url": "https://mail.example.com/in", "secretRef": {"name": "h", "key": "k"}});
                v["spec"]["events"] = json!({"webhooks": [hook.clone(), hook]})
            },
            expect: &["spec.events.webhooks[1]", "Duplicate value"],
        },
        Case {
            what: "nine webhooks",
            mutate: |v| {
                let hooks: Vec<Value> = (0..9)
                    .map(|i| json!({"url": format!("https://mail.example.com/{i}"), "secretRef": {"name": "h", "key": "k"}}))
                    .collect();
                v["spec"]["events"] = json!({"webhooks": hooks})
            },
            expect: &["spec.events.webhooks", "must have at most 8 items"],
        },
        Case {
            what: "Kafka topic ..",
            mutate: |v| v["spec"]["events"] = json!({"kafka": {"topic": ".."}}),
            expect: &["spec.events.kafka.topic", "may not be . or .."],
        },
        Case {
            what: "Kafka topic with a slash",
            mutate: |v| v["spec"]["events"] = json!({"kafka": {"topic": "a/b"}}),
            expect: &["spec.events.kafka.topic"],
        },
    ]
}

#[tokio::test]
async fn invalid_shows_are_rejected_by_the_api_server_naming_the_field() {
    let plane = plane().await;
    create_namespace(plane, "invalid");
    let cases = cases();
    assert!(cases.len() >= 8);
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let mut show = club();
        show["metadata"]["name"] = json!(format!("bad-{i}"));
        (case.mutate)(&mut show);
        let yaml = serde_yaml::to_string(&show).expect("yaml");
        let (ok, out, err) = plane
            .kubectl_stdin(&["apply", "-n", "invalid", "-f", "-"], &yaml)
            .expect("kubectl");
        if ok {
            failures.push(format!("{}: accepted ({out})", case.what));
            continue;
        }
        for needle in case.expect {
            if !err.contains(needle) {
                failures.push(format!(
                    "{}: error does not mention {needle:?}: {err}",
                    case.what
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing invalid was stored.
    let (ok, out, err) = plane
        .kubectl_run(&["get", "shows", "-n", "invalid", "-o", "name"])
        .expect("kubectl");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "", "invalid shows were stored: {out}");
}

#[tokio::test]
async fn a_valid_variant_is_accepted() {
    // The rules are not so strict that they reject what they should allow: GA only, a
    // numeric row range, adjacent letter ranges, and a sales window.
    let plane = plane().await;
    create_namespace(plane, "valid");
    let mut show = club();
    show["metadata"]["name"] = json!("variant");
    show["spec"]["seating"]["sections"][0]["rows"] = json!([
        {"names": "A-Z", "seats": 10},
        {"names": "AA-AD", "seats": 10},
        {"name": "AE", "seats": 500}
    ]);
    show["spec"]["seating"]["sections"]
        .as_array_mut()
        .expect("sections")
        .push(json!({"name": "balcony", "category": "standard", "rows": [{"names": "1-40", "seats": 12}]}));
    show["spec"]["seating"]["generalAdmission"] =
        json!([{"name": "standing", "capacity": 1, "category": "standard"}]);
    show["spec"]["sales"] =
        json!({"opensAt": "2026-12-01T10:00:00Z", "closesAt": "2026-12-18T20:00:00Z"});
    show["spec"]["holds"]["ttl"] = json!("1h30m");
    show["spec"]["payments"] = json!({
        "mode": "provider", "provider": "sim",
        "providerSecretRef": {"name": "club-payments", "key": "whsec"},
        "window": "10m", "tolerance": "2m"
    });
    show["spec"]["events"] = json!({
        "webhooks": [
            {"url": "https://mail.example.com/hooks/boxoffice", "secretRef": {"name": "club-hooks", "key": "whsec"}},
            {"url": "http://10.0.0.5:8080/in?show=club", "secretRef": {"name": "crm", "key": "whsec"}}
        ],
        "kafka": {"topic": "club.bookings_v1"}
    });
    let yaml = serde_yaml::to_string(&show).expect("yaml");
    let (ok, _, err) = plane
        .kubectl_stdin(&["apply", "-n", "valid", "-f", "-"], &yaml)
        .expect("kubectl");
    assert!(ok, "valid variant rejected: {err}");
    let (ok, out, err) = plane
        .kubectl_run(&["get", "show", "variant", "-n", "valid", "-o", "json"])
        .expect("kubectl");
    assert!(ok, "{err}");
    let stored: Value = serde_json::from_str(&out).expect("json");
    // A Show that names a topic stays on the operator's Kafka sink unless it says not.
    assert_eq!(stored["spec"]["events"]["kafka"]["enabled"], true);

    let mut ga_only = club();
    ga_only["metadata"]["name"] = json!("ga-only");
    ga_only["spec"]["seating"] =
        json!({"generalAdmission": [{"name": "pit", "capacity": 300, "category": "standard"}]});
    let yaml = serde_yaml::to_string(&ga_only).expect("yaml");
    let (ok, _, err) = plane
        .kubectl_stdin(&["apply", "-n", "valid", "-f", "-"], &yaml)
        .expect("kubectl");
    assert!(ok, "GA-only show rejected: {err}");
}
