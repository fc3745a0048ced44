//! Holds: take, read, release, extend, confirm, follow.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use super::super::AppState;
use super::super::auth::User;
use super::super::error::{ApiError, ApiJson, ApiPath, ErrorBody, ErrorCode};
use super::super::schema::{BookingView, ConfirmRequest, CreateHold};
use super::show::sse;
use super::{created_or_ok, detached, idempotency_key};
use crate::engine::Confirmer;
use crate::shard::{AuditAs, HoldRequest, HoldView, SeatEvent, ShardError};

#[utoipa::path(
    post,
    path = "/v1/shows/{show}/holds",
    operation_id = "createHold",
    summary = "Hold seats: explicit, best available, or a general-admission quantity",
    description = "With the same `Idempotency-Key` a retry returns the first hold (200); the same key with another request is 422.",
    tag = "holds",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-128 visible characters; makes retries safe", min_length = 1, max_length = 128, pattern = "^[!-~]+$"),
    ),
    request_body(content = CreateHold, content_type = "application/json"),
    responses(
        (status = 201, description = "Held", body = HoldView),
        (status = 200, description = "A retry with the same Idempotency-Key: the first hold", body = HoldView),
        (status = 400, description = "`invalid_json`, `invalid_request`, `unknown_seat`, `duplicate_seat`, `invalid_quantity`, `unknown_section`, `unknown_category`, `unknown_area`, `invalid_idempotency_key`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such show", body = ErrorBody),
        (status = 408, description = "`request_timeout`", body = ErrorBody),
        (status = 409, description = "`seats_unavailable` (with `seats`), `sold_out`, `limit_exceeded`, `conflict`, `sales_closed`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `unknown_outcome` (retry with the same Idempotency-Key), `storage_full` (etcd is out of space; nothing was held)", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn create_hold(
    State(state): State<AppState>,
    user: User,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateHold>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let request = match body {
        CreateHold::Seats(s) => HoldRequest::Seats(s.seats),
        CreateHold::Best(b) => HoldRequest::Best {
            quantity: b.best.quantity,
            section: b.best.section,
            category: b.best.category,
        },
        CreateHold::General(g) => HoldRequest::General {
            area: g.general.area,
            quantity: g.general.quantity,
        },
    };
    let shard = state.shard.clone();
    let (hold, created) =
        detached(async move { shard.hold(&user.id, request, key).await }).await??;
    Ok((created_or_ok(created), Json(hold)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/shows/{show}/holds/{hold}",
    operation_id = "getHold",
    summary = "One of my holds (410 `hold_confirmed` with its booking's reference once confirmed)",
    description = "A confirmed hold is no longer a hold: the answer is 410 `hold_confirmed` whose `booking` names the booking it became (`GET /v1/shows/{show}/bookings/{booking}`). A hold that expired or was released is 404.",
    tag = "holds",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("hold" = String, Path, description = "The hold's id"),
    ),
    responses(
        (status = 200, description = "The hold", body = HoldView),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found` (also another user's hold)", body = ErrorBody),
        (status = 410, description = "`hold_confirmed`: the hold became the booking named in `booking`", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `database_unavailable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn get_hold(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    let hold = ids.1;
    match state.shard.get_hold(&user.id, user.staff, &hold) {
        Ok(view) => Ok(Json(view).into_response()),
        Err(ShardError::NotFound) => Err(confirmed_into(&state, &user, &hold).await?),
        Err(e) => Err(e.into()),
    }
}

/// What a hold that is not in the book became: 410 `hold_confirmed` naming its booking
/// when it was confirmed (for its owner or staff), else 404.
async fn confirmed_into(state: &AppState, user: &User, hold: &str) -> Result<ApiError, ApiError> {
    let booking = state.shard.store().booking_for_hold(hold).await?;
    Ok(match booking {
        Some(b) if user.staff || b.user == user.id => ApiError {
            booking: Some(b.reference.clone()),
            ..ApiError::new(
                StatusCode::GONE,
                ErrorCode::HoldConfirmed,
                format!("the hold was confirmed into booking {}", b.reference),
            )
        },
        _ => ApiError::not_found("resource"),
    })
}

#[utoipa::path(
    delete,
    path = "/v1/shows/{show}/holds/{hold}",
    operation_id = "releaseHold",
    summary = "Release a hold: its seats return to sale",
    tag = "holds",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("hold" = String, Path, description = "The hold's id"),
    ),
    responses(
        (status = 204, description = "Released"),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: a confirm or release is in flight", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `unknown_outcome`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn release_hold(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    let hold = ids.1;
    let shard = state.shard.clone();
    detached(async move { shard.release(&user.id, user.staff, &hold).await }).await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post,
    path = "/v1/shows/{show}/holds/{hold}/extend",
    operation_id = "extendHold",
    summary = "Extend a hold: it then expires one hold TTL from now (at most three TTLs after it was made)",
    tag = "holds",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("hold" = String, Path, description = "The hold's id"),
    ),
    responses(
        (status = 200, description = "The hold with its new expiry", body = HoldView),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`, `limit_exceeded`: it lives three TTLs at most", body = ErrorBody),
        (status = 410, description = "`hold_expired`", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `unknown_outcome`, `storage_full` (the hold keeps its expiry)", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn extend_hold(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    let hold = ids.1;
    let shard = state.shard.clone();
    let view = detached(async move { shard.extend(&user.id, user.staff, &hold).await }).await??;
    Ok(Json(view).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/shows/{show}/holds/{hold}/confirm",
    operation_id = "confirmHold",
    summary = "Confirm a hold into a booking (again: the same booking, 200)",
    tag = "holds",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("hold" = String, Path, description = "The hold's id"),
    ),
    request_body(content = ConfirmRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Booked; the answer carries the ticket code", body = BookingView),
        (status = 200, description = "Confirmed before: the same booking", body = BookingView),
        (status = 400, description = "`invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 408, description = "`request_timeout`", body = ErrorBody),
        (status = 403, description = "`payment_required`: the show confirms through its payments (a provider's callback, or a token with the `payments` role)", body = ErrorBody),
        (status = 409, description = "`conflict`, `seats_unavailable`, `sold_out`, `illegal_transition` (a payment is in progress)", body = ErrorBody),
        (status = 410, description = "`hold_expired`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `unknown_outcome` (retry: confirming twice gives one booking), `database_unavailable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn confirm_hold(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    user: User,
    ApiJson(body): ApiJson<ConfirmRequest>,
) -> Result<Response, ApiError> {
    let hold = ids.1;
    if body.payment_reference.is_empty() || body.payment_reference.len() > 256 {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            "paymentReference must be 1-256 characters",
        ));
    }
    let shard = state.shard.clone();
    let payment = body.payment_reference;
    let who = user.clone();
    let (booking, created) = detached(async move {
        if user.payments {
            // A trusted service (cash desk, external checkout): any user's hold, in
            // trustedService mode only (the lifecycle table decides).
            let audit = AuditAs {
                actor: user.id.clone(),
                role: "payments",
                reason: payment.clone(),
                from: None,
            };
            shard
                .confirm_by(Confirmer::Service, audit, &hold, &payment)
                .await
        } else {
            shard.confirm(&user.id, &hold, &payment).await
        }
    })
    .await??;
    let booking = BookingView::of(&state, &who, booking);
    Ok((created_or_ok(created), Json(booking)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/shows/{show}/holds/{hold}/events",
    operation_id = "streamHold",
    summary = "One hold's status (Server-Sent Events: status, first the hold, then sold, released or expired)",
    tag = "holds",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("hold" = String, Path, description = "The hold's id"),
    ),
    responses(
        (status = 200, description = "`status` events: the HoldView, then SeatEvents of this hold",
         content((SeatEvent = "text/event-stream"))),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 429, description = "`too_many_streams`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`too_many_streams`, `no_leader`, `leader_unreachable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn hold_events(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    let hold = ids.1;
    let view = state.shard.get_hold(&user.id, user.staff, &hold)?;
    Ok(status_stream(
        &state,
        &user,
        serde_json::to_value(&view).unwrap_or_default(),
        move |ev| ev.hold.as_deref() == Some(hold.as_str()),
    )?
    .into_response())
}

/// A `status` stream for one hold or booking: `first` now, then the changes `keep`
/// picks, for a signed-in user (counted per user under the stream caps).
pub(super) fn status_stream<F>(
    state: &AppState,
    user: &User,
    first: serde_json::Value,
    keep: F,
) -> Result<impl IntoResponse + use<F>, ApiError>
where
    F: Fn(&SeatEvent) -> bool + Send + 'static,
{
    let permit = state.streams.admit(format!("user:{}", user.id))?;
    let (epoch, last) = state.shard.events().last();
    let head = futures::stream::once(async move {
        Ok(Event::default()
            .event("status")
            .id(crate::events::event_id(epoch, last))
            .json_data(first)
            .unwrap_or_default())
    });
    let live = BroadcastStream::new(state.shard.subscribe()).filter_map(move |p| match p {
        Ok(p) if keep(&p.event) => Some(Ok(Event::default()
            .event("status")
            .id(p.id())
            .json_data(&*p.event)
            .unwrap_or_default())),
        Ok(_) => None,
        Err(_) => Some(Ok(Event::default().event("resync").data("{}"))),
    });
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        Box::pin(head.chain(live));
    Ok(sse(stream, permit))
}
