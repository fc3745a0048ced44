//! Campaigning for the show's leader key, keeping its lease alive, and watching for
//! it to go.

use std::time::{Duration, Instant};

use boxoffice_contract::LeaderInfo;
use etcd_client::{
    Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Campaign, Coordinator, Result};

impl Coordinator {
    /// One round: try to create the leader key with a fresh lease.
    pub async fn campaign(&self, me: &LeaderInfo, ttl_secs: i64) -> Result<Campaign> {
        let mut c = self.client();
        let lease = c.lease_grant(ttl_secs, None).await?.id();
        let key = self.keys.leader();
        let value = me.to_bytes();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = c.txn(txn).await?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        if resp.succeeded() {
            return Ok(Campaign::Won {
                lease,
                epoch: revision,
            });
        }
        let _ = c.lease_revoke(lease).await;
        let leader = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(g) => g
                .kvs()
                .first()
                .and_then(|kv| LeaderInfo::from_bytes(kv.value()).ok()),
            _ => None,
        });
        Ok(Campaign::Lost { leader, revision })
    }

    /// The current leader, if any.
    pub async fn leader(&self) -> Result<Option<LeaderInfo>> {
        let resp = self.client().get(self.keys.leader(), None).await?;
        Ok(resp
            .kvs()
            .first()
            .and_then(|kv| LeaderInfo::from_bytes(kv.value()).ok()))
    }

    /// Returns when the leader key is deleted (or the watch breaks), watching from
    /// `revision + 1`; `on_leader` is told of leader changes seen meanwhile.
    pub async fn wait_for_vacancy(
        &self,
        revision: i64,
        cancel: &CancellationToken,
        mut on_leader: impl FnMut(Option<LeaderInfo>),
    ) -> Result<()> {
        let mut c = self.client();
        let mut stream = c
            .watch(
                self.keys.leader(),
                Some(WatchOptions::new().with_start_revision(revision + 1)),
            )
            .await?;
        loop {
            let msg = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                m = stream.message() => m?,
            };
            let Some(msg) = msg else { return Ok(()) };
            if msg.canceled() {
                return Ok(());
            }
            for ev in msg.events() {
                match ev.event_type() {
                    EventType::Delete => {
                        on_leader(None);
                        return Ok(());
                    }
                    EventType::Put => on_leader(
                        ev.kv()
                            .and_then(|kv| LeaderInfo::from_bytes(kv.value()).ok()),
                    ),
                }
            }
        }
    }

    /// Keeps the leader lease alive until `lost` is cancelled. Any keep-alive error, a
    /// closed stream, `ttl <= 0`, or no successful renewal within the TTL cancels
    /// `lost`: the caller must stop serving writes at once.
    pub fn spawn_keep_alive(&self, lease: i64, ttl_secs: i64, lost: CancellationToken) {
        let mut c = self.client();
        tokio::spawn(async move {
            let ttl = Duration::from_secs(ttl_secs.max(1) as u64);
            let interval = ttl / 3;
            let mut deadline = Instant::now() + ttl;
            let result: Result<()> = async {
                let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
                loop {
                    keeper.keep_alive().await?;
                    let resp = tokio::select! {
                        _ = lost.cancelled() => return Ok(()),
                        _ = tokio::time::sleep_until(deadline.into()) => {
                            warn!("leader lease not renewed within its TTL");
                            return Ok(());
                        }
                        r = stream.message() => r?,
                    };
                    let Some(resp) = resp else {
                        warn!("leader lease keep-alive stream closed");
                        return Ok(());
                    };
                    if resp.ttl() <= 0 {
                        warn!("leader lease expired");
                        return Ok(());
                    }
                    // The lease now lasts `ttl` from when the request was sent; be
                    // conservative and count from the response.
                    deadline = Instant::now() + Duration::from_secs(resp.ttl() as u64)
                        - Duration::from_millis(500).min(ttl / 4);
                    tokio::select! {
                        _ = lost.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(interval) => {}
                    }
                }
            }
            .await;
            if let Err(e) = result {
                warn!(error = %e, "leader lease keep-alive failed");
            }
            lost.cancel();
        });
    }

    /// Gives up leadership: revoking the lease deletes the leader key at once.
    pub async fn resign(&self, lease: i64) {
        if let Err(e) = self.client().lease_revoke(lease).await {
            warn!(error = %e, "revoking the leader lease failed");
        } else {
            info!("resigned leadership");
        }
    }
}
