//! `/readyz`: 200 only while this replica's API serves — as the leader (it leads and
//! has loaded the book) or as a standby whose leader serves (a standby forwards, so it
//! is ready only when the leader it would forward to answers as leader). Anything else
//! is 503, so a Service routes only to replicas that can answer `/v1`.
//!
//! One exception keeps a failover quiet: a replica that was ready stays ready for a
//! short grace ([`Readiness`]) while no leader serves, answering `/v1` with its own
//! 503 + Retry-After (`no_leader`, `leader_unreachable`). Without it, every replica
//! would leave the Service during an election and a gateway in front would answer
//! with its own 503 or 404, which a client cannot tell from "no such show". A replica
//! that never served (a new pod in a rollout) is not ready until a leader serves.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::shard::Role;

/// How long a standby waits for its leader's `/readyz`.
const LEADER_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// When this replica was last ready, and how long it stays ready without a leader.
#[derive(Debug)]
pub struct Readiness {
    last_ready_ms: AtomicI64,
    grace_ms: i64,
}

impl Readiness {
    /// `grace`: how long a replica that was ready stays ready while no leader serves.
    pub fn new(grace: Duration) -> Self {
        Self {
            last_ready_ms: AtomicI64::new(i64::MIN),
            grace_ms: i64::try_from(grace.as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn ready(&self, now_ms: i64, what: &'static str) -> Response {
        self.last_ready_ms.store(now_ms, Ordering::Relaxed);
        (StatusCode::OK, what).into_response()
    }

    /// Not serving now: still ready within the grace after the last ready answer.
    fn not_ready(&self, now_ms: i64, why: &'static str) -> Response {
        let last = self.last_ready_ms.load(Ordering::Relaxed);
        if last != i64::MIN && now_ms.saturating_sub(last) <= self.grace_ms {
            return (StatusCode::OK, "no leader (answering 503 + Retry-After)").into_response();
        }
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let now = now_ms();
    let readiness = &state.readiness;
    if state.shard.leadership().is_ok() {
        return readiness.ready(now, "leader");
    }
    let Role::Follower(Some(leader)) = state.shard.role() else {
        return readiness.not_ready(now, "no leader known");
    };
    if leader.address == state.shard.me.address
        || !state
            .keys
            .leader_signed(&leader.pod, &leader.address, &leader.sig)
    {
        return readiness.not_ready(now, "no leader known");
    }
    let url = format!("{}/readyz", leader.address.trim_end_matches('/'));
    let answer = state
        .http
        .get(&url)
        .timeout(LEADER_PROBE_TIMEOUT)
        .send()
        .await;
    let serving = match answer {
        Ok(r) if r.status().is_success() => r.text().await.is_ok_and(|t| t == "leader"),
        _ => false,
    };
    if serving {
        readiness.ready(now, "standby")
    } else {
        readiness.not_ready(now, "the leader does not serve yet")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_within_the_grace_after_being_ready() {
        let r = Readiness::new(Duration::from_secs(10));
        // Never ready: not ready.
        assert_eq!(
            r.not_ready(1_000, "x").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(r.ready(2_000, "leader").status(), StatusCode::OK);
        assert_eq!(r.not_ready(12_000, "x").status(), StatusCode::OK);
        assert_eq!(
            r.not_ready(12_001, "x").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // A zero grace is the strict readiness.
        let strict = Readiness::new(Duration::ZERO);
        assert_eq!(strict.ready(5, "leader").status(), StatusCode::OK);
        assert_eq!(
            strict.not_ready(6, "x").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
