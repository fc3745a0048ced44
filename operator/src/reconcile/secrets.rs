//! The Secrets a shard needs and cannot find.

use boxoffice_crds::{SecretKeyRef, Show};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::{Context, Result};
use crate::builders::{self};
use crate::config::Config;

/// Every Secret key the shard pods mount or read, with what it is for.
fn needed(show: &Show, config: &Config) -> Vec<(String, SecretKeyRef)> {
    let (database, jwt) = builders::secret_refs(show, config);
    let transport = builders::transport_secret_refs(config)
        .into_iter()
        .map(|(what, r)| (what.to_string(), r));
    [
        ("database URL".to_string(), database),
        ("JWT key".into(), jwt),
    ]
    .into_iter()
    .chain(transport)
    .chain(
        crate::payments::secret_ref(show)
            .map(|r| ("payment provider's signing secret".to_string(), r.clone())),
    )
    .chain(crate::events::secret_refs(show, config))
    .collect()
}

/// A message naming the Secrets (or keys) the shard needs but cannot find.
pub(super) async fn missing_secrets(
    ctx: &Context,
    show: &Show,
    ns: &str,
) -> Result<Option<String>> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut missing = Vec::new();
    for (what, r) in needed(show, &ctx.config) {
        match secrets.get_opt(&r.name).await? {
            None => missing.push(format!("Secret {ns}/{} ({what}) not found", r.name)),
            Some(s) => {
                let has = s.data.as_ref().is_some_and(|d| d.contains_key(&r.key))
                    || s.string_data
                        .as_ref()
                        .is_some_and(|d| d.contains_key(&r.key));
                if !has {
                    missing.push(format!(
                        "Secret {ns}/{} has no key {:?} ({what})",
                        r.name, r.key
                    ));
                }
            }
        }
    }
    Ok((!missing.is_empty()).then(|| missing.join("; ")))
}

#[cfg(test)]
mod tests {
    use boxoffice_crds::{
        EventSinks, PaymentMode, PaymentPolicy, SecretKeyRef, Show, ShowConfig, WebhookSink,
    };
    use clap::Parser;

    use super::needed;
    use crate::config::Config;

    fn key(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            key: key.into(),
        }
    }

    fn names(show: &Show, config: &Config) -> Vec<(String, String)> {
        needed(show, config)
            .into_iter()
            .map(|(what, r)| (what, format!("{}/{}", r.name, r.key)))
            .collect()
    }

    fn pair(what: &str, secret: &str) -> (String, String) {
        (what.into(), secret.into())
    }

    #[test]
    fn every_secret_the_shard_mounts_is_checked() {
        let text = include_str!("../../../examples/shows/club.yaml");
        let config = ShowConfig::parse(text).expect("club parses");
        let mut show = Show::new(&config.name, config.spec);
        let base = vec![
            pair("database URL", "boxoffice-database/url"),
            pair("JWT key", "boxoffice-jwt/secret"),
        ];
        assert_eq!(
            names(&show, &Config::parse_from(["boxoffice-operator"])),
            base
        );
        show.spec.payments = Some(PaymentPolicy {
            mode: PaymentMode::Provider,
            provider: Some("sim".into()),
            provider_secret_ref: Some(key("club-payments", "whsec")),
            ..PaymentPolicy::default()
        });
        show.spec.events = Some(EventSinks {
            webhooks: vec![WebhookSink {
                url: "https://mail.example/h".into(),
                secret_ref: key("club-hooks", "whsec"),
            }],
            kafka: None,
        });
        let defaults = Config::parse_from([
            "boxoffice-operator",
            "--events-webhooks",
            r#"[{"url": "https://audit.example/h", "secretName": "audit", "secretKey": "k"}]"#,
        ]);
        let mut want = base;
        want.extend([
            pair("payment provider's signing secret", "club-payments/whsec"),
            pair(
                "signing secret of webhook https://audit.example/h",
                "audit/k",
            ),
            pair(
                "signing secret of webhook https://mail.example/h",
                "club-hooks/whsec",
            ),
        ]);
        assert_eq!(names(&show, &defaults), want);
    }
}
