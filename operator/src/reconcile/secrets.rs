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
