//! The Secrets a shard needs and cannot find.

use boxoffice_crds::Show;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::{Context, Result};
use crate::builders::{self};

/// A message naming the Secrets (or keys) the shard needs but cannot find.
pub(super) async fn missing_secrets(
    ctx: &Context,
    show: &Show,
    ns: &str,
) -> Result<Option<String>> {
    let (database, jwt) = builders::secret_refs(show, &ctx.config);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut missing = Vec::new();
    let transport = builders::transport_secret_refs(&ctx.config);
    for (what, r) in [("database URL", database), ("JWT key", jwt)]
        .into_iter()
        .chain(transport)
    {
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
