//! `/v1/shows/{show}/...` handlers.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use super::AppState;
use super::auth::{Staff, User};
use super::error::{ApiError, ApiJson};
use crate::inventory::SeatState;
use crate::shard::HoldRequest;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/shows/{show}", get(show_info))
        .route("/v1/shows/{show}/seats", get(seat_map))
        .route("/v1/shows/{show}/availability", get(availability))
        .route("/v1/shows/{show}/events", get(events))
        .route("/v1/shows/{show}/holds", post(create_hold))
        .route(
            "/v1/shows/{show}/holds/{hold}",
            get(get_hold).delete(release_hold),
        )
        .route("/v1/shows/{show}/holds/{hold}/confirm", post(confirm_hold))
        .route("/v1/shows/{show}/holds/{hold}/extend", post(extend_hold))
        .route("/v1/shows/{show}/holds/{hold}/events", get(hold_events))
        .route(
            "/v1/shows/{show}/bookings/{reference}/events",
            get(booking_events),
        )
        .route("/v1/shows/{show}/bookings", get(my_bookings))
        .route("/v1/shows/{show}/bookings/{reference}", get(get_booking))
        .route(
            "/v1/shows/{show}/bookings/{reference}/cancel",
            post(cancel_booking),
        )
        .route(
            "/v1/shows/{show}/bookings/{reference}/check-in",
            post(check_in),
        )
}

/// Runs a write to completion even if the client hangs up. Were it run in the
/// handler, a client that hangs up would cancel it halfway (hyper drops the handler's
/// future), leaving a hold pending or confirming in memory for ever and its seats
/// stuck. The write first runs inline up to its first await — refusals decided in
/// memory (conflicts, bad input, limits) end there without a task — and the rest runs
/// on its own task, which nothing cancels.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, ApiError> {
    let mut work = Box::pin(work);
    if let Some(done) = futures::FutureExt::now_or_never(&mut work) {
        return Ok(done);
    }
    tokio::spawn(work).await.map_err(|e| {
        tracing::error!(error = %e, "a write task failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the write failed unexpectedly; its outcome is unknown",
        )
    })
}

fn check_show(state: &AppState, show: &str) -> Result<(), ApiError> {
    if show == state.shard.show.config.name {
        Ok(())
    } else {
        Err(ApiError::not_found("show"))
    }
}

async fn show_info(
    State(state): State<AppState>,
    Path(show): Path<String>,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    let spec = &state.shard.show.config.spec;
    let counts = state.shard.counts()?;
    Ok(Json(json!({
        "name": state.shard.show.config.name,
        "namespace": state.shard.show.config.namespace,
        "title": spec.title,
        "startsAt": spec.starts_at,
        "sales": spec.sales,
        "categories": spec.categories,
        "holdTtlSeconds": state.shard.show.hold_ttl.as_secs(),
        "maxSeatsPerHold": state.shard.show.max_per_hold,
        "maxSeatsPerUser": state.shard.show.max_per_user,
        "leader": state.shard.me.pod,
        "inventory": counts,
    }))
    .into_response())
}

/// The seat map: per row a string with one letter a seat — `A`vailable, `H`eld,
/// `S`old — so the 80,000-seat stadium is one compact document.
async fn seat_map(
    State(state): State<AppState>,
    Path(show): Path<String>,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    let body = state.shard.seat_map_json(|inv| {
        let sections: Vec<_> = inv
            .sections()
            .iter()
            .map(|s| {
                let rows: Vec<_> = s
                    .rows
                    .iter()
                    .map(|r| {
                        let states: String = (r.first..r.first + r.seats)
                            .map(|i| match inv.state(i) {
                                SeatState::Available => 'A',
                                SeatState::Held(_) => 'H',
                                SeatState::Sold => 'S',
                            })
                            .collect();
                        json!({"name": r.name, "seats": states})
                    })
                    .collect();
                json!({"name": s.name, "category": s.category, "rows": rows})
            })
            .collect();
        let areas: Vec<_> = inv
            .areas()
            .iter()
            .map(|a| {
                json!({"name": a.name, "category": a.category, "capacity": a.capacity,
                       "available": a.available(), "held": a.held, "sold": a.sold})
            })
            .collect();
        json!({"sections": sections, "generalAdmission": areas, "inventory": inv.counts()})
    })?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

async fn availability(
    State(state): State<AppState>,
    Path(show): Path<String>,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    let body = state.shard.with_inventory(|inv| {
        let sections: Vec<_> = (0..inv.sections().len())
            .map(|i| {
                let s = &inv.sections()[i];
                json!({"name": s.name, "category": s.category, "inventory": inv.section_counts(i)})
            })
            .collect();
        let areas: Vec<_> = inv
            .areas()
            .iter()
            .map(|a| {
                json!({"name": a.name, "category": a.category, "inventory": {
                    "total": a.capacity, "available": a.available(), "held": a.held, "sold": a.sold}})
            })
            .collect();
        json!({"sections": sections, "generalAdmission": areas, "inventory": inv.counts()})
    })?;
    Ok(Json(body).into_response())
}

/// Live seat changes as Server-Sent Events (`event: seats`).
async fn events(
    State(state): State<AppState>,
    Path(show): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    check_show(&state, &show)?;
    let counts = state.shard.counts()?;
    let first = futures::stream::once(async move {
        Ok(Event::default()
            .event("snapshot")
            .json_data(json!({"counts": counts}))
            .unwrap_or_default())
    });
    let live = BroadcastStream::new(state.shard.subscribe()).filter_map(|ev| match ev {
        Ok(ev) => Some(Ok(Event::default()
            .event("seats")
            .json_data(&ev)
            .unwrap_or_default())),
        // A slow subscriber missed events: tell it to refetch.
        Err(_) => Some(Ok(Event::default().event("resync").data("{}"))),
    });
    Ok(Sse::new(first.chain(live)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// SSE of the events that match `keep`, after a first `status` event.
fn filtered_events<F>(
    state: &AppState,
    first: Value,
    keep: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<F>>
where
    F: Fn(&crate::shard::SeatEvent) -> bool + Send + 'static,
{
    let head = futures::stream::once(async move {
        Ok(Event::default()
            .event("status")
            .json_data(first)
            .unwrap_or_default())
    });
    let live = BroadcastStream::new(state.shard.subscribe()).filter_map(move |ev| match ev {
        Ok(ev) if keep(&ev) => Some(Ok(Event::default()
            .event("status")
            .json_data(&ev)
            .unwrap_or_default())),
        Ok(_) => None,
        Err(_) => Some(Ok(Event::default().event("resync").data("{}"))),
    });
    Sse::new(head.chain(live)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// One hold's status: the hold now, then `sold`, `released` or `expired`.
async fn hold_events(
    State(state): State<AppState>,
    Path((show, hold)): Path<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    let view = state.shard.get_hold(&user.id, user.staff, &hold)?;
    let first = serde_json::to_value(&view).unwrap_or_default();
    Ok(filtered_events(&state, first, move |ev| {
        ev.hold.as_deref() == Some(hold.as_str())
    })
    .into_response())
}

/// One booking's status: the booking now, then `returned` when cancelled.
async fn booking_events(
    State(state): State<AppState>,
    Path((show, reference)): Path<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    let booking = visible_booking(&state, &user, &reference).await?;
    let first = serde_json::to_value(&booking).unwrap_or_default();
    Ok(filtered_events(&state, first, move |ev| {
        ev.booking.as_deref() == Some(reference.as_str())
    })
    .into_response())
}

async fn extend_hold(
    State(state): State<AppState>,
    Path((show, hold)): Path<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    let shard = state.shard.clone();
    let view = detached(async move { shard.extend(&user.id, user.staff, &hold).await }).await??;
    Ok(Json(view).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BestRequest {
    quantity: u32,
    #[serde(default)]
    section: Option<String>,
    #[serde(default)]
    category: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GeneralRequest {
    area: String,
    quantity: u64,
}

/// Exactly one of `seats`, `best`, `general`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateHold {
    #[serde(default)]
    seats: Option<Vec<String>>,
    #[serde(default)]
    best: Option<BestRequest>,
    #[serde(default)]
    general: Option<GeneralRequest>,
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .ok()
                .filter(|s| !s.is_empty() && s.len() <= 128)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1-128 visible characters",
                    )
                })?;
            Ok(Some(s.to_string()))
        }
    }
}

async fn create_hold(
    State(state): State<AppState>,
    Path(show): Path<String>,
    user: User,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateHold>,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    let key = idempotency_key(&headers)?;
    let request = match (body.seats, body.best, body.general) {
        (Some(seats), None, None) => HoldRequest::Seats(seats),
        (None, Some(b), None) => HoldRequest::Best {
            quantity: b.quantity,
            section: b.section,
            category: b.category,
        },
        (None, None, Some(g)) => HoldRequest::General {
            area: g.area,
            quantity: g.quantity,
        },
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give exactly one of seats, best or general",
            ));
        }
    };
    let shard = state.shard.clone();
    let (hold, created) =
        detached(async move { shard.hold(&user.id, request, key).await }).await??;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(hold)).into_response())
}

async fn get_hold(
    State(state): State<AppState>,
    Path((show, hold)): Path<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    Ok(Json(state.shard.get_hold(&user.id, user.staff, &hold)?).into_response())
}

async fn release_hold(
    State(state): State<AppState>,
    Path((show, hold)): Path<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    let shard = state.shard.clone();
    detached(async move { shard.release(&user.id, user.staff, &hold).await }).await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfirmHold {
    payment_reference: String,
}

async fn confirm_hold(
    State(state): State<AppState>,
    Path((show, hold)): Path<(String, String)>,
    user: User,
    ApiJson(body): ApiJson<ConfirmHold>,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    if body.payment_reference.is_empty() || body.payment_reference.len() > 256 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "paymentReference must be 1-256 characters",
        ));
    }
    let shard = state.shard.clone();
    let payment = body.payment_reference;
    let (booking, created) =
        detached(async move { shard.confirm(&user.id, &hold, &payment).await }).await??;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(booking)).into_response())
}

async fn my_bookings(
    State(state): State<AppState>,
    Path(show): Path<String>,
    user: User,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    state.shard.leadership()?;
    let bookings = state.shard.store().bookings_of(&user.id).await?;
    Ok(Json(json!({"bookings": bookings})).into_response())
}

async fn get_booking(
    State(state): State<AppState>,
    Path((show, reference)): Path<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    Ok(Json(visible_booking(&state, &user, &reference).await?).into_response())
}

/// A booking the caller may see: their own, or any for staff (404 otherwise, so
/// references cannot be probed).
async fn visible_booking(
    state: &AppState,
    user: &User,
    reference: &str,
) -> Result<crate::store::Booking, ApiError> {
    state.shard.leadership()?;
    match state.shard.store().booking(reference).await? {
        Some(b) if user.staff || b.user == user.id => Ok(b),
        _ => Err(ApiError::not_found("booking")),
    }
}

async fn cancel_booking(
    State(state): State<AppState>,
    Path((show, reference)): Path<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    let shard = state.shard.clone();
    let booking =
        detached(async move { shard.cancel(&user.id, user.staff, &reference).await }).await??;
    Ok(Json(booking).into_response())
}

async fn check_in(
    State(state): State<AppState>,
    Path((show, reference)): Path<(String, String)>,
    Staff(_): Staff,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_show(&state, &show)?;
    let key = idempotency_key(&headers)?;
    let shard = state.shard.clone();
    let booking =
        detached(async move { shard.check_in(&reference, key.as_deref()).await }).await??;
    Ok(Json(booking).into_response())
}
