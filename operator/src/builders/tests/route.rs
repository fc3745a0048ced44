//! The HTTPRoute and Ingress builders.

use super::*;
use crate::routing::{ParentRef, ParentRefs, Routing};

fn routing() -> Routing {
    Routing {
        host: "{namespace}.tickets.example.com".into(),
        parent_refs: ParentRefs(vec![ParentRef {
            name: "public".into(),
            namespace: Some("gateway".into()),
            section_name: Some("https".into()),
            port: None,
        }]),
        ingress_class: "traefik".into(),
        ..Routing::default()
    }
}

#[test]
fn the_http_route_sends_the_show_prefix_on_the_namespace_host_to_its_service() {
    let show = theatre();
    let host = routing().host_for("arts", &[]).unwrap();
    let route = http_route(&show, &routing(), &host);
    let v = serde_json::to_value(&route).unwrap();
    assert_eq!(v["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(v["kind"], "HTTPRoute");
    assert_eq!(v["metadata"]["name"], "hamlet-opening");
    assert_eq!(v["metadata"]["namespace"], "arts");
    assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "Show");
    assert_eq!(
        v["spec"]["hostnames"],
        serde_json::json!(["arts.tickets.example.com"])
    );
    assert_eq!(
        v["spec"]["parentRefs"],
        serde_json::json!([{"name": "public", "namespace": "gateway", "sectionName": "https"}])
    );
    let rule = &v["spec"]["rules"][0];
    assert_eq!(
        rule["matches"],
        serde_json::json!([{"path": {"type": "PathPrefix", "value": "/v1/shows/hamlet-opening"}}])
    );
    // The Service of this Show, on the port that reaches the pods' http port.
    let svc = service(&show);
    let port = svc.spec.unwrap().ports.unwrap()[0].port;
    assert_eq!(
        rule["backendRefs"],
        serde_json::json!([{"name": service_name(&show), "port": port}])
    );
    // No rewrite, no other filter: only Core features of the Gateway API.
    assert!(rule.get("filters").is_none());
}

#[test]
fn same_named_shows_in_two_namespaces_get_disjoint_routes() {
    let mut other = theatre();
    other.metadata.namespace = Some("opera".into());
    let a = routing().host_for("arts", &[]).unwrap();
    let b = routing().host_for("opera", &[]).unwrap();
    let ra = http_route(&theatre(), &routing(), &a);
    let rb = http_route(&other, &routing(), &b);
    assert_eq!(ra.spec.rules, rb.spec.rules, "same path and Service name");
    assert_ne!(
        ra.spec.hostnames, rb.spec.hostnames,
        "but never the same host"
    );
    assert_ne!(ra.metadata.namespace, rb.metadata.namespace);
}

#[test]
fn the_ingress_matches_the_http_route() {
    let show = theatre();
    let ing = ingress(&show, &routing(), "arts.tickets.example.com");
    let spec = ing.spec.unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("traefik"));
    let rule = &spec.rules.unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("arts.tickets.example.com"));
    let path = &rule.http.as_ref().unwrap().paths[0];
    assert_eq!(path.path.as_deref(), Some("/v1/shows/hamlet-opening"));
    assert_eq!(path.path_type, "Prefix");
    let backend = path.backend.service.as_ref().unwrap();
    assert_eq!(backend.name, service_name(&show));
    assert_eq!(backend.port.as_ref().unwrap().name.as_deref(), Some("http"));
    assert_eq!(ing.metadata.owner_references.unwrap()[0].kind, "Show");
    let default_class = Routing {
        ingress_class: String::new(),
        ..routing()
    };
    assert!(
        ingress(&show, &default_class, "h.example.com")
            .spec
            .unwrap()
            .ingress_class_name
            .is_none()
    );
}

#[test]
fn a_parent_status_matches_its_ref_with_the_route_namespace_as_default() {
    let wanted = ParentRef {
        name: "public".into(),
        namespace: None,
        section_name: None,
        port: None,
    };
    let seen = |ns: Option<&str>, section: Option<&str>| ParentRefStatus {
        name: "public".into(),
        namespace: ns.map(Into::into),
        section_name: section.map(Into::into),
        port: None,
    };
    assert!(same_parent(&wanted, &seen(None, None), "arts"));
    assert!(same_parent(&wanted, &seen(Some("arts"), None), "arts"));
    assert!(!same_parent(&wanted, &seen(Some("opera"), None), "arts"));
    assert!(!same_parent(&wanted, &seen(None, Some("https")), "arts"));
}

#[test]
fn an_http_route_as_the_api_server_returns_it_parses() {
    // Defaults the API server adds (group, kind, weight) and a gateway's status.
    let served = serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "club-night", "namespace": "east", "generation": 1},
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "gateway"}],
            "hostnames": ["east.tickets.test"],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/v1/shows/club-night"}}],
                "backendRefs": [{"group": "", "kind": "Service", "name": "club-night", "port": 80, "weight": 1}]
            }]
        },
        "status": {"parents": [{
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "gateway"},
            "controllerName": "traefik.io/gateway-controller",
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                            "observedGeneration": 1, "lastTransitionTime": "2026-12-07T03:00:00Z"}]
        }]}
    });
    let route: HttpRoute = serde_json::from_value(served).expect("parses");
    assert_eq!(route.spec.parent_refs[0].name, "public");
    assert_eq!(
        route.status.unwrap().parents[0].conditions[0].type_,
        "Accepted"
    );
}
