//! The shard's leader as its election record in etcd names it, and what it answers.
//! The one place that reads the shard's leader record.

use std::time::Duration;

use boxoffice_contract::{Availability, LeaderInfo, ShowKeys};
use boxoffice_crds::{InventoryCounts, Show};
use kube::ResourceExt;
use tracing::warn;

use super::{Context, Result};
use crate::builders::{self};

/// The shard's leader from its election key in etcd: (pod, address).
pub(super) async fn leader_of(ctx: &Context, show: &Show, ns: &str) -> Option<(String, String)> {
    let endpoints = builders::etcd_endpoints(show, &ctx.config);
    let key = endpoints.join(",");
    let mut client = {
        let mut cache = ctx.etcd.lock().await;
        match cache.get(&key) {
            Some(c) => c.clone(),
            None => {
                let c = match etcd_client(&endpoints, &ctx.config.etcd_access).await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "connecting to the shards' etcd failed");
                        return None;
                    }
                };
                cache.insert(key, c.clone());
                c
            }
        }
    };
    match read_leader(&mut client, ns, &show.name_any()).await {
        Ok(leader) => leader,
        Err(e) => {
            warn!(show = %show.name_any(), error = %e, "reading the shard's leader from etcd failed");
            None
        }
    }
}

/// A client for the shards' etcd with the operator's TLS and credentials.
pub async fn etcd_client(
    endpoints: &[String],
    access: &boxoffice_transport::EtcdAccess,
) -> Result<etcd_client::Client, String> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(2));
    let options = access
        .apply(endpoints, options)
        .map_err(|e| e.to_string())?;
    etcd_client::Client::connect(endpoints, Some(options))
        .await
        .map_err(|e| boxoffice_transport::explain_etcd_error(&e))
}

/// The leader a shard's election key in etcd names: (pod, address).
pub async fn read_leader(
    client: &mut etcd_client::Client,
    namespace: &str,
    show: &str,
) -> Result<Option<(String, String)>, String> {
    // The shard writes both through the contract crate: key layout and record.
    let resp = client
        .get(ShowKeys::new(namespace, show).leader(), None)
        .await
        .map_err(|e| boxoffice_transport::explain_etcd_error(&e))?;
    let Some(kv) = resp.kvs().first() else {
        return Ok(None);
    };
    let leader = LeaderInfo::from_bytes(kv.value()).map_err(|e| e.to_string())?;
    Ok(Some((leader.pod, leader.address)))
}

pub(super) async fn counts_from(
    ctx: &Context,
    address: &str,
    show: &str,
) -> Option<InventoryCounts> {
    let url = format!(
        "{}/v1/shows/{show}/availability",
        address.trim_end_matches('/')
    );
    let body: Availability = ctx.http.get(url).send().await.ok()?.json().await.ok()?;
    Some(body.inventory.into())
}
