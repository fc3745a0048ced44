//! `/readyz`: 200 only while this replica's API serves — as the leader (it leads and
//! has loaded the book) or as a standby whose leader serves (a standby forwards, so it
//! is ready only when the leader it would forward to answers as leader). Anything else
//! is 503, so a Service routes only to replicas that can answer `/v1`.
//!
//! The pods' readiness probe asks `/readyz?grace=<seconds>` (the operator's Deployment:
//! 15 s) to keep a failover quiet: a replica that was ready within the last `grace`
//! seconds stays ready while no leader serves, with the body `no leader (answering 503
//! + Retry-After)`, and answers `/v1` itself with 503 + Retry-After (`no_leader`,
//! `leader_unreachable`). Without it, every replica would leave the Service during an
//! election and a gateway in front would answer with its own 503 or 404, which a
//! client cannot tell from "no such show". A replica that never served (a new pod in a
//! rollout) is not ready until a leader serves. Plain `/readyz` stays strict.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::shard::Role;

/// How long a standby waits for its leader's `/readyz`.
const LEADER_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest grace a probe may ask for, in seconds.
pub const MAX_GRACE_S: i64 = 300;

/// When this replica was last ready (the probe's grace counts from there).
#[derive(Debug)]
pub struct Readiness {
    last_ready_ms: AtomicI64,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            last_ready_ms: AtomicI64::new(i64::MIN),
        }
    }
}

impl Readiness {
    fn ready(&self, now_ms: i64, what: &'static str) -> Response {
        self.last_ready_ms.store(now_ms, Ordering::Relaxed);
        (StatusCode::OK, what).into_response()
    }

    /// Not serving now: still ready when the last ready answer is at most `grace_ms` old.
    fn not_ready(&self, now_ms: i64, grace_ms: i64, why: &'static str) -> Response {
        let last = self.last_ready_ms.load(Ordering::Relaxed);
        if grace_ms > 0 && last != i64::MIN && now_ms.saturating_sub(last) <= grace_ms {
            return (StatusCode::OK, "no leader (answering 503 + Retry-After)").into_response();
        }
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

/// The `grace` of `/readyz?grace=<seconds>` in ms: 0 when absent, `Err` when not a
/// whole number of seconds from 0 to [`MAX_GRACE_S`].
fn grace_ms(query: Option<&str>) -> Result<i64, ()> {
    let Some(query) = query else { return Ok(0) };
    let mut grace = 0;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("grace", v)) => {
                grace = v
                    .parse::<i64>()
                    .ok()
                    .filter(|g| (0..=MAX_GRACE_S).contains(g))
                    .ok_or(())?;
            }
            _ => return Err(()),
        }
    }
    Ok(grace * 1000)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub async fn readyz(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Ok(grace) = grace_ms(query.as_deref()) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("the only parameter is grace=<seconds, 0..={MAX_GRACE_S}>"),
        )
            .into_response();
    };
    let now = now_ms();
    let readiness = &state.readiness;
    if state.shard.leadership().is_ok() {
        return readiness.ready(now, "leader");
    }
    let Role::Follower(Some(leader)) = state.shard.role() else {
        return readiness.not_ready(now, grace, "no leader known");
    };
    if leader.address == state.shard.me.address
        || !state
            .keys
            .leader_signed(&leader.pod, &leader.address, &leader.sig)
    {
        return readiness.not_ready(now, grace, "no leader known");
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
        readiness.not_ready(now, grace, "the leader does not serve yet")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_within_the_grace_after_being_ready() {
        let r = Readiness::default();
        // Never ready: not ready, whatever the grace.
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(r.not_ready(1_000, 10_000, "x").status(), unavailable);
        assert_eq!(r.ready(2_000, "leader").status(), StatusCode::OK);
        assert_eq!(r.not_ready(12_000, 10_000, "x").status(), StatusCode::OK);
        assert_eq!(r.not_ready(12_001, 10_000, "x").status(), unavailable);
        // Without a grace (plain `/readyz`): strict.
        assert_eq!(r.ready(5_000, "leader").status(), StatusCode::OK);
        assert_eq!(r.not_ready(5_001, 0, "x").status(), unavailable);
    }

    #[test]
    fn the_grace_parameter_is_bounded() {
        assert_eq!(grace_ms(None), Ok(0));
        assert_eq!(grace_ms(Some("")), Ok(0));
        assert_eq!(grace_ms(Some("grace=15")), Ok(15_000));
        assert_eq!(grace_ms(Some("grace=300")), Ok(300_000));
        for bad in [
            "grace=301",
            "grace=-1",
            "grace=",
            "grace=1e3",
            "other=1",
            "grace",
        ] {
            assert_eq!(grace_ms(Some(bad)), Err(()), "{bad}");
        }
    }
}
