//! Bookings: list mine, read, cancel, check in at the door, follow.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::super::AppState;
use super::super::auth::{Staff, User};
use super::super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, ErrorCode};
use super::super::schema::{BookingList, BookingView, CheckInRequest, Page};
use super::holds::status_stream;
use super::{detached, idempotency_key};
use crate::shard::SeatEvent;
use crate::store::Booking;

/// The most bookings one page holds.
const MAX_PAGE: u32 = 100;

impl BookingView {
    /// `booking` as `user` sees it: the owner also gets the ticket code.
    pub(in crate::api) fn of(state: &AppState, user: &User, booking: Booking) -> Self {
        let ticket = (booking.user == user.id).then(|| state.keys.ticket_code(&booking.reference));
        Self { booking, ticket }
    }
}

#[utoipa::path(
    get,
    path = "/v1/shows/{show}/bookings",
    operation_id = "listMyBookings",
    summary = "My bookings, newest first, a page at a time",
    tag = "bookings",
    security(("bearer" = [])),
    params(("show" = String, Path, description = "The show's name"), Page),
    responses(
        (status = 200, description = "A page; `next` is the cursor of the next one", body = BookingList),
        (status = 400, description = "`invalid_request`: a bad `limit` or `after`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such show", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `database_unavailable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn my_bookings(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<Page>,
    user: User,
) -> Result<Response, ApiError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            format!("limit must be 1-{MAX_PAGE}"),
        ));
    }
    if page
        .after
        .as_ref()
        .is_some_and(|a| a.is_empty() || a.chars().count() > 64)
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            "after must be the next cursor of the previous page",
        ));
    }
    state.shard.leadership()?;
    let (bookings, next) = state
        .shard
        .store()
        .bookings_of(&user.id, page.after.as_deref(), limit)
        .await?;
    Ok(Json(BookingList {
        bookings: bookings
            .into_iter()
            .map(|b| BookingView::of(&state, &user, b))
            .collect(),
        next,
    })
    .into_response())
}

/// A booking the caller may see: their own, or any for staff (404 otherwise, so
/// references cannot be probed).
async fn visible_booking(
    state: &AppState,
    user: &User,
    reference: &str,
) -> Result<Booking, ApiError> {
    state.shard.leadership()?;
    match state.shard.store().booking(reference).await? {
        Some(b) if user.staff || b.user == user.id => Ok(b),
        _ => Err(ApiError::not_found("booking")),
    }
}

#[utoipa::path(
    get,
    path = "/v1/shows/{show}/bookings/{reference}",
    operation_id = "getBooking",
    summary = "One of my bookings (any, for staff)",
    tag = "bookings",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("reference" = String, Path, description = "The booking's reference, e.g. K7QX-4M2P"),
    ),
    responses(
        (status = 200, description = "The booking", body = BookingView),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found` (also another user's booking)", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `database_unavailable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn get_booking(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    let reference = ids.1;
    let booking = visible_booking(&state, &user, &reference).await?;
    Ok(Json(BookingView::of(&state, &user, booking)).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/shows/{show}/bookings/{reference}/cancel",
    operation_id = "cancelBooking",
    summary = "Cancel a booking; its seats return to sale; refund pending (again: the cancelled booking)",
    tag = "bookings",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("reference" = String, Path, description = "The booking's reference"),
    ),
    responses(
        (status = 200, description = "The cancelled booking", body = BookingView),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: checked in already", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `unknown_outcome`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn cancel_booking(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    let reference = ids.1;
    let shard = state.shard.clone();
    let who = user.clone();
    let booking =
        detached(async move { shard.cancel(&user.id, user.staff, &reference).await }).await??;
    Ok(Json(BookingView::of(&state, &who, booking)).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/shows/{show}/bookings/{reference}/check-in",
    operation_id = "checkInBooking",
    summary = "Check a booking in at the door (staff, with the ticket code); a second check-in is refused",
    tag = "bookings",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("reference" = String, Path, description = "The booking's reference"),
        ("Idempotency-Key" = Option<String>, Header, description = "A scanner's retry with the same key gets the first answer", min_length = 1, max_length = 128, pattern = "^[!-~]+$"),
    ),
    request_body(content = CheckInRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Checked in", body = Booking),
        (status = 400, description = "`invalid_json`, `invalid_request`, `invalid_idempotency_key`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (staff only), `invalid_ticket`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 408, description = "`request_timeout`", body = ErrorBody),
        (status = 409, description = "`conflict`: checked in already, or cancelled", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `unknown_outcome`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn check_in(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    _staff: Staff,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CheckInRequest>,
) -> Result<Response, ApiError> {
    let reference = ids.1;
    let key = idempotency_key(&headers)?;
    // The reference alone admits nobody: it travels on receipts and in e-mails.
    if !state.keys.ticket_valid(&reference, &body.ticket) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::InvalidTicket,
            "the ticket code does not match this booking",
        ));
    }
    let shard = state.shard.clone();
    let booking =
        detached(async move { shard.check_in(&reference, key.as_deref()).await }).await??;
    Ok(Json(booking).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/shows/{show}/bookings/{reference}/events",
    operation_id = "streamBooking",
    summary = "One booking's status (Server-Sent Events: status, first the booking, then returned when cancelled)",
    tag = "bookings",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("reference" = String, Path, description = "The booking's reference"),
    ),
    responses(
        (status = 200, description = "`status` events: the BookingView, then SeatEvents of this booking",
         content((SeatEvent = "text/event-stream"))),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 429, description = "`too_many_streams`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`too_many_streams`, `no_leader`, `leader_unreachable`, `database_unavailable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn booking_events(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    let reference = ids.1;
    let booking = visible_booking(&state, &user, &reference).await?;
    let view = BookingView::of(&state, &user, booking);
    Ok(status_stream(
        &state,
        &user,
        serde_json::to_value(&view).unwrap_or_default(),
        move |ev: &SeatEvent| ev.booking.as_deref() == Some(reference.as_str()),
    )?
    .into_response())
}
