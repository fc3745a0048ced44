//! Routing configuration: how Shows are published on the public hostname (a Gateway
//! API HTTPRoute or an Ingress per Show), and the hostname scheme that keeps two
//! namespaces' Shows of the same name apart (docs/architecture.md, "Routing").

use boxoffice_crds::{RouteMode, Show};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

/// The placeholder a host template carries for the Show's namespace.
pub const NAMESPACE_PLACEHOLDER: &str = "{namespace}";

/// A Gateway (or one of its listeners) that HTTPRoutes attach to. (Read back from the
/// API server it also has the defaulted `group` and `kind`, which are ignored.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// The operator's `--gateway-parent-refs`: a JSON list of [`ParentRef`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentRefs(pub Vec<ParentRef>);

pub fn parse_parent_refs(s: &str) -> Result<ParentRefs, String> {
    if s.trim().is_empty() {
        return Ok(ParentRefs::default());
    }
    let shape = || "not a JSON list of {name, namespace?, sectionName?, port?}";
    let raw: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(s).map_err(|e| format!("{}: {e}", shape()))?;
    let known = ["name", "namespace", "sectionName", "port"];
    if let Some(key) = raw
        .iter()
        .flat_map(|m| m.keys())
        .find(|k| !known.contains(&k.as_str()))
    {
        return Err(format!("{}: unknown key {key:?}", shape()));
    }
    let refs: Vec<ParentRef> = serde_json::from_value(serde_json::Value::Array(
        raw.into_iter().map(serde_json::Value::Object).collect(),
    ))
    .map_err(|e| format!("{}: {e}", shape()))?;
    if refs.iter().any(|r| r.name.trim().is_empty()) {
        return Err("every parent ref needs a name".into());
    }
    Ok(ParentRefs(refs))
}

pub fn parse_mode(s: &str) -> Result<RouteMode, String> {
    match s.trim() {
        "gateway" => Ok(RouteMode::Gateway),
        "ingress" => Ok(RouteMode::Ingress),
        "none" | "" => Ok(RouteMode::None),
        other => Err(format!("{other:?} is not gateway, ingress or none")),
    }
}

/// How Shows are routed from outside the cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct Routing {
    /// Default for Shows without spec.route.mode: gateway (an HTTPRoute), ingress (an
    /// Ingress) or none (in-cluster only).
    #[arg(long = "route-mode", env = "BOXOFFICE_ROUTE_MODE", default_value = "gateway", value_parser = parse_mode)]
    pub mode: RouteMode,

    /// The public hostname of a namespace's Shows, with `{namespace}` as its first
    /// label, e.g. `{namespace}.tickets.example.com`. Without the placeholder only when
    /// exactly one namespace is watched. Empty: Shows are not routed (Routed=False).
    #[arg(long = "route-host", env = "BOXOFFICE_ROUTE_HOST", default_value = "")]
    pub host: String,

    /// The scheme of the public URL in status.url (the gateway's listener terminates TLS).
    #[arg(
        long = "route-scheme",
        env = "BOXOFFICE_ROUTE_SCHEME",
        default_value = "https"
    )]
    pub scheme: String,

    /// Gateways that HTTPRoutes attach to, as JSON: `[{"name": "public", "namespace":
    /// "gateway", "sectionName": "https"}]`.
    #[arg(long = "gateway-parent-refs", env = "BOXOFFICE_GATEWAY_PARENT_REFS", default_value = "", value_parser = parse_parent_refs)]
    pub parent_refs: ParentRefs,

    /// The IngressClass of Ingresses (ingress mode); empty: the cluster's default class.
    #[arg(
        long = "ingress-class",
        env = "BOXOFFICE_INGRESS_CLASS",
        default_value = ""
    )]
    pub ingress_class: String,
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            mode: RouteMode::Gateway,
            host: String::new(),
            scheme: "https".into(),
            parent_refs: ParentRefs::default(),
            ingress_class: String::new(),
        }
    }
}

/// Why a Show cannot be routed with this configuration (Routed=False, this reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotConfigured(pub String);

impl Routing {
    /// The mode a Show is routed in: its own spec.route.mode, else the default.
    pub fn mode_of(&self, show: &Show) -> RouteMode {
        show.spec
            .route
            .as_ref()
            .and_then(|r| r.mode)
            .unwrap_or(self.mode)
    }

    /// The public hostname of a namespace's Shows. A template without the namespace
    /// placeholder would give two namespaces one hostname (and their same-named Shows
    /// one path), so it is refused unless exactly one namespace is watched.
    pub fn host_for(&self, namespace: &str, watched: &[String]) -> Result<String, NotConfigured> {
        let template = self.host.trim();
        if template.is_empty() {
            return Err(NotConfigured(
                "no public hostname is configured (operator --route-host, chart routing.host)"
                    .into(),
            ));
        }
        let host = if let Some(rest) = template.strip_prefix(NAMESPACE_PLACEHOLDER) {
            if !rest.starts_with('.') || rest.contains(NAMESPACE_PLACEHOLDER) {
                return Err(NotConfigured(format!(
                    "route host {template:?}: {NAMESPACE_PLACEHOLDER} must be the whole first label, once"
                )));
            }
            format!("{namespace}{rest}")
        } else if template.contains(NAMESPACE_PLACEHOLDER) {
            return Err(NotConfigured(format!(
                "route host {template:?}: {NAMESPACE_PLACEHOLDER} must be the first label"
            )));
        } else if watched.len() == 1 && watched[0] == namespace {
            template.to_string()
        } else {
            return Err(NotConfigured(format!(
                "route host {template:?} has no {NAMESPACE_PLACEHOLDER} label: Shows of the same name in two namespaces would share one URL (allowed only when exactly one namespace is watched)"
            )));
        };
        if !valid_hostname(&host) {
            return Err(NotConfigured(format!("{host:?} is not a DNS hostname")));
        }
        Ok(host)
    }

    /// The public base URL of a Show on `host`.
    pub fn url(&self, host: &str, show: &Show) -> String {
        format!("{}://{host}/v1/shows/{}", self.scheme, show.name_any())
    }
}

/// Lower-case DNS labels (1-63 characters, letters, digits and inner dashes), 253
/// characters at most, at least two labels.
fn valid_hostname(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    host.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(host: &str) -> Routing {
        Routing {
            host: host.into(),
            ..Routing::default()
        }
    }

    #[test]
    fn each_namespace_gets_its_own_hostname() {
        let r = routing("{namespace}.tickets.example.com");
        assert_eq!(
            r.host_for("blue-room", &[]).unwrap(),
            "blue-room.tickets.example.com"
        );
        assert_ne!(r.host_for("a", &[]).unwrap(), r.host_for("b", &[]).unwrap());
    }

    #[test]
    fn a_shared_hostname_is_refused_unless_one_namespace_is_watched() {
        let r = routing("tickets.example.com");
        assert!(r.host_for("a", &[]).is_err());
        assert!(r.host_for("a", &["a".into(), "b".into()]).is_err());
        assert_eq!(
            r.host_for("a", &["a".into()]).unwrap(),
            "tickets.example.com"
        );
        // The placeholder anywhere but the whole first label could still collide
        // ("{namespace}x" for namespaces "a" and "ax"?) or be no hostname at all.
        for bad in [
            "x{namespace}.example.com",
            "tickets.{namespace}.example.com",
            "{namespace}",
            "{namespace}.{namespace}.example.com",
            "{namespace}.Tickets.example.com",
            "",
        ] {
            assert!(routing(bad).host_for("a", &[]).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parent_refs_parse_from_json_and_reject_typos() {
        let refs = parse_parent_refs(
            r#"[{"name": "public", "namespace": "gateway", "sectionName": "https"}]"#,
        )
        .unwrap();
        assert_eq!(refs.0.len(), 1);
        assert_eq!(refs.0[0].namespace.as_deref(), Some("gateway"));
        assert!(parse_parent_refs("").unwrap().0.is_empty());
        assert!(parse_parent_refs(r#"[{"nmae": "public"}]"#).is_err());
        assert!(parse_parent_refs(r#"[{"name": ""}]"#).is_err());
        assert!(parse_parent_refs("public").is_err());
    }

    #[test]
    fn modes_parse() {
        assert_eq!(parse_mode("ingress").unwrap(), RouteMode::Ingress);
        assert_eq!(parse_mode("none").unwrap(), RouteMode::None);
        assert!(parse_mode("Gateway").is_err());
    }
}
