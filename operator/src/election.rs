//! Leader election among operator replicas with a coordination.k8s.io Lease: only the
//! holder runs the controllers. Updates use the Lease's resourceVersion, so two
//! replicas can never both win the same round.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaseLock {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            duration,
        }
    }

    /// Takes the Lease if it is free or expired, renews it if ours. True if we hold it.
    pub async fn try_acquire_or_renew(&self) -> kube::Result<bool> {
        let now = Timestamp::now();
        let seconds = self.duration.as_secs() as i32;
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(MicroTime(renewed)), Some(d)) => {
                *renewed + SignedDuration::from_secs(i64::from(d)) < now
            }
            _ => true,
        };
        if !ours
            && !expired
            && spec
                .holder_identity
                .as_deref()
                .is_some_and(|h| !h.is_empty())
        {
            return Ok(false);
        }
        if !ours {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(seconds);
        // The resourceVersion we read makes this a compare-and-swap.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up (on shutdown) so another replica takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            let _ = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await;
        }
    }
}

/// Runs `work` while holding the Lease; `work` gets a token that is cancelled when the
/// Lease is lost (or on shutdown) and must return then.
pub async fn run_elected<F, Fut>(
    lock: LeaseLock,
    shutdown: CancellationToken,
    on_change: impl Fn(bool),
    work: F,
) where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let retry = lock.duration / 3;
    while !shutdown.is_cancelled() {
        match lock.try_acquire_or_renew().await {
            Ok(true) => {}
            Ok(false) => {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(retry) => continue,
                }
            }
            Err(e) => {
                warn!(error = %e, "leader election failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(retry) => continue,
                }
            }
        }
        info!(identity = %lock.identity, "leading: starting controllers");
        on_change(true);
        let lost = shutdown.child_token();
        let renewer = {
            let lost = lost.clone();
            let lock = &lock;
            async move {
                let mut last_renewed = tokio::time::Instant::now();
                loop {
                    tokio::select! {
                        _ = lost.cancelled() => return,
                        _ = tokio::time::sleep(retry) => {}
                    }
                    match lock.try_acquire_or_renew().await {
                        Ok(true) => last_renewed = tokio::time::Instant::now(),
                        Ok(false) => {
                            warn!("lost the operator lease");
                            lost.cancel();
                            return;
                        }
                        Err(e) => warn!(error = %e, "renewing the operator lease failed"),
                    }
                    // Stop before another replica may consider the lease expired.
                    if last_renewed.elapsed() > lock.duration - retry {
                        warn!("could not renew the operator lease in time");
                        lost.cancel();
                        return;
                    }
                }
            }
        };
        tokio::join!(renewer, async {
            work(lost.clone()).await;
            lost.cancel();
        });
        on_change(false);
        if shutdown.is_cancelled() {
            lock.release().await;
        }
    }
}
