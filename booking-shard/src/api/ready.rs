//! `/readyz`: 200 only while this replica's API serves — as the leader (it leads and
//! has loaded the book) or as a standby whose leader serves (a standby forwards, so it
//! is ready only when the leader it would forward to answers as leader). Anything else
//! is 503, so a Service routes only to replicas that can answer `/v1`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::shard::Role;

/// How long a standby waits for its leader's `/readyz`.
const LEADER_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.shard.leadership().is_ok() {
        return (StatusCode::OK, "leader").into_response();
    }
    let Role::Follower(Some(leader)) = state.shard.role() else {
        return not_ready("no leader known");
    };
    if leader.address == state.shard.me.address
        || !state
            .keys
            .leader_signed(&leader.pod, &leader.address, &leader.sig)
    {
        return not_ready("no leader known");
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
        (StatusCode::OK, "standby").into_response()
    } else {
        not_ready("the leader does not serve yet")
    }
}

fn not_ready(why: &'static str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
}
