//! The show's booking events for consumers: a paged feed and an SSE stream that
//! resumes from `Last-Event-ID` (staff and admin roles), and the dead letters of the
//! relay's sinks (list, replay).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::super::AppState;
use super::super::auth::Staff;
use super::super::error::{ApiError, ApiPath, ApiQuery, ErrorBody, ErrorCode};
use super::detached;
use super::show::sse;
use crate::relay::CloudEvent;
use crate::shard::FeedPage;
use crate::store::DeadLetter;

/// The most events one page holds.
const MAX_FEED_PAGE: i64 = 500;

/// A feed cursor: the last sequence number seen.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct FeedQuery {
    /// The `sequence` of the last event seen (0 or absent: from the start).
    #[param(minimum = 0)]
    #[serde(default)]
    after: Option<i64>,
    /// At most this many (1-500, default 100).
    #[param(minimum = 1, maximum = 500)]
    #[serde(default)]
    limit: Option<i64>,
}

/// A page of the feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct FeedView {
    /// In sequence order, gapless.
    events: Vec<CloudEvent>,
    /// The cursor for the next page: the last sequence number in this one (or the
    /// request's `after` when empty).
    next: i64,
}

fn expired(after: i64, pruned: i64) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        ErrorCode::CursorExpired,
        format!(
            "events after {after} up to {pruned} were pruned (retention); resume after {pruned} \
             and reconcile the gap from the bookings"
        ),
    )
}

fn cursor(after: Option<i64>) -> Result<i64, ApiError> {
    match after.unwrap_or(0) {
        a if a < 0 => Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            "after is a sequence number (0 or more)",
        )),
        a => Ok(a),
    }
}

#[utoipa::path(
    get,
    path = "/v1/shows/{show}/events/feed",
    operation_id = "eventFeed",
    summary = "The show's booking events after a sequence number, a page at a time (staff)",
    tag = "events",
    security(("bearer" = [])),
    params(("show" = String, Path, description = "The show's name"), FeedQuery),
    responses(
        (status = 200, description = "A page of CloudEvents in sequence order", body = FeedView),
        (status = 400, description = "`invalid_request`: a bad `after` or `limit`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (staff only)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such show", body = ErrorBody),
        (status = 410, description = "`cursor_expired`: events after the cursor were pruned", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `database_unavailable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn feed(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<FeedQuery>,
    _staff: Staff,
) -> Result<Response, ApiError> {
    let after = cursor(query.after)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_FEED_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            format!("limit is 1-{MAX_FEED_PAGE}"),
        ));
    }
    let shard = state.shard.clone();
    match detached(async move { shard.event_feed(after, limit).await }).await?? {
        FeedPage::Events(events) => {
            let next = events.last().map_or(after, |e| e.sequence);
            Ok(Json(FeedView { events, next }).into_response())
        }
        FeedPage::Expired { pruned } => Err(expired(after, pruned)),
    }
}

#[utoipa::path(
    get,
    path = "/v1/shows/{show}/events/stream",
    operation_id = "eventStream",
    summary = "The show's booking events as Server-Sent Events (staff); `Last-Event-ID: N` resumes with N+1",
    tag = "events",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("Last-Event-ID" = Option<i64>, Header, description = "The sequence number of the last event seen"),
    ),
    responses(
        (status = 200, description = "`booking` events, each a CloudEvent with `id` = its sequence number", content_type = "text/event-stream", body = String),
        (status = 400, description = "`invalid_request`: a bad `Last-Event-ID`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (staff only)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such show", body = ErrorBody),
        (status = 410, description = "`cursor_expired`: events after the cursor were pruned", body = ErrorBody),
        (status = 429, description = "`too_many_streams`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`too_many_streams`, `no_leader`, `leader_unreachable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn stream(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = match headers.get("last-event-id") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::InvalidRequest,
                    "Last-Event-ID is a sequence number (0 or more)",
                )
            })?,
    };
    // Refuse a too-old cursor up front, with the feed's error.
    if let FeedPage::Expired { pruned } = state.shard.event_feed(after, 1).await? {
        return Err(expired(after, pruned));
    }
    let permit = state.streams.admit(format!("user:{}", staff.0.id))?;
    let shard = state.shard.clone();
    // Reads the outbox from the cursor on; polls when caught up. Ends (the client
    // reconnects with its Last-Event-ID) when this replica stops leading or the
    // cursor falls behind retention.
    let events = futures::stream::unfold(
        (after, Vec::<CloudEvent>::new().into_iter()),
        move |(mut after, mut pending)| {
            let shard = shard.clone();
            async move {
                loop {
                    if let Some(e) = pending.next() {
                        after = e.sequence;
                        let event = Event::default()
                            .event("booking")
                            .id(e.sequence.to_string())
                            .json_data(&e)
                            .unwrap_or_default();
                        return Some((Ok::<_, Infallible>(event), (after, pending)));
                    }
                    match shard.event_feed(after, 100).await {
                        Ok(FeedPage::Events(page)) if page.is_empty() => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Ok(FeedPage::Events(page)) => pending = page.into_iter(),
                        _ => return None,
                    }
                }
            }
        },
    );
    Ok(sse(events, permit).into_response())
}

/// Which dead letters to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeadLetterQuery {
    /// Only those not replayed yet (default false: all).
    #[serde(default)]
    pending: Option<bool>,
    /// At most this many (1-500, default 100).
    #[param(minimum = 1, maximum = 500)]
    #[serde(default)]
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/shows/{show}/events/dead-letters",
    operation_id = "listDeadLetters",
    summary = "Events a sink refused for its whole retry window, oldest first (staff)",
    tag = "events",
    security(("bearer" = [])),
    params(("show" = String, Path, description = "The show's name"), DeadLetterQuery),
    responses(
        (status = 200, description = "The dead letters", body = Vec<DeadLetter>),
        (status = 400, description = "`invalid_request`: a bad `limit`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (staff only)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such show", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `database_unavailable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn dead_letters(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DeadLetterQuery>,
    _staff: Staff,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_FEED_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            format!("limit is 1-{MAX_FEED_PAGE}"),
        ));
    }
    let pending = query.pending.unwrap_or(false);
    let shard = state.shard.clone();
    let rows = detached(async move { shard.dead_letters(pending, limit).await }).await??;
    Ok(Json(rows).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/shows/{show}/events/dead-letters/{id}/replay",
    operation_id = "replayDeadLetter",
    summary = "Deliver a dead letter to its sink once more (staff)",
    tag = "events",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("id" = i64, Path, description = "The dead letter's id"),
    ),
    responses(
        (status = 204, description = "The sink acknowledged it"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (staff only)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such show or dead letter", body = ErrorBody),
        (status = 503, description = "`sink_unavailable`: the sink refused it again; `no_leader`, `leader_unreachable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn replay(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    _staff: Staff,
) -> Result<Response, ApiError> {
    let id: i64 = ids
        .1
        .parse()
        .map_err(|_| ApiError::not_found("dead letter"))?;
    let shard = state.shard.clone();
    if detached(async move { shard.replay_dead_letter(id).await }).await?? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::SinkUnavailable,
            "the sink refused the event again; it stays a dead letter",
        )
        .retry_after(30))
    }
}
