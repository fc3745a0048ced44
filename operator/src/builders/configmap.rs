//! The ConfigMap holding the normalized show, and the hash that rolls the shard.

use std::collections::BTreeMap;

use boxoffice_crds::{Show, ShowConfig};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::{config_name, meta};

/// The normalized show the shard reads.
pub fn show_config(show: &Show) -> ShowConfig {
    ShowConfig {
        namespace: show.namespace().unwrap_or_else(|| "default".into()),
        name: show.name_any(),
        spec: show.spec.clone(),
    }
}

/// A hash of what the shard process needs from the spec. Display-only fields (title,
/// startsAt) and the shard's own deployment settings are left out, so changing them
/// does not restart shards; seating, prices, holds and sales do.
pub fn config_hash(show: &Show) -> String {
    let spec = &show.spec;
    let relevant = serde_json::json!({
        "namespace": show.namespace(),
        "name": show.name_any(),
        "seating": spec.seating,
        "categories": spec.categories,
        "holds": spec.holds,
        "sales": spec.sales,
    });
    let digest = Sha256::digest(relevant.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub fn config_map(show: &Show) -> ConfigMap {
    ConfigMap {
        metadata: meta(show, config_name(show)),
        data: Some(BTreeMap::from([(
            "show.json".into(),
            show_config(show).to_json(),
        )])),
        ..Default::default()
    }
}
