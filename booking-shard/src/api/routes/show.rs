//! The show, its seat map, its counts and the public stream of seat changes.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio_stream::StreamExt;

use super::super::AppState;
use super::super::Client;
use super::super::error::{ApiError, ErrorBody};
use super::super::schema::{
    AreaCounts, Availability, Category, Counts, RowMap, Sales, SeatMap, SectionCounts, SectionMap,
    ShowSummary,
};
use super::super::streams::StreamPermit;
use crate::inventory::{Inventory, SeatState};
use crate::shard::PublicSeatEvent;

#[utoipa::path(
    get,
    path = "/v1/shows/{show}",
    operation_id = "getShow",
    summary = "The show: title, prices, hold policy, counts",
    tag = "show",
    security(()),
    params(("show" = String, Path, description = "The show's name")),
    responses(
        (status = 200, description = "The show", body = ShowSummary),
        (status = 404, description = "`not_found`: no such show", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn show_info(State(state): State<AppState>) -> Result<Response, ApiError> {
    let show = &state.shard.show;
    let spec = &show.config.spec;
    let counts = state.shard.counts()?;
    Ok(Json(ShowSummary {
        name: show.config.name.clone(),
        namespace: show.config.namespace.clone(),
        title: spec.title.clone(),
        starts_at: spec.starts_at.clone(),
        sales: spec.sales.as_ref().map(|s| Sales {
            opens_at: s.opens_at.clone(),
            closes_at: s.closes_at.clone(),
        }),
        categories: spec
            .categories
            .iter()
            .map(|c| Category {
                name: c.name.clone(),
                price: c.price.clone(),
                currency: c.currency.clone(),
            })
            .collect(),
        hold_ttl_seconds: show.rules.hold_ttl.as_secs(),
        max_seats_per_hold: show.rules.max_per_hold,
        max_seats_per_user: show.rules.max_per_user,
        leader: state.shard.me.pod.clone(),
        inventory: counts.into(),
    })
    .into_response())
}

fn area_counts(inv: &Inventory) -> Vec<AreaCounts> {
    inv.areas()
        .iter()
        .map(|a| AreaCounts {
            name: a.name.clone(),
            category: a.category.clone(),
            inventory: Counts {
                total: a.capacity as i64,
                available: a.available() as i64,
                held: a.held as i64,
                sold: a.sold as i64,
            },
        })
        .collect()
}

/// The seat map: per row a string with one letter a seat — `A`vailable, `H`eld,
/// `S`old — so the 80,000-seat stadium is one compact document.
#[utoipa::path(
    get,
    path = "/v1/shows/{show}/seats",
    operation_id = "getSeatMap",
    summary = "Seat map: per row one letter a seat (A available, H held, S sold); at most 100 ms stale",
    tag = "show",
    security(()),
    params(("show" = String, Path, description = "The show's name")),
    responses(
        (status = 200, description = "The seat map", body = SeatMap),
        (status = 404, description = "`not_found`: no such show", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn seat_map(State(state): State<AppState>) -> Result<Response, ApiError> {
    let body = state.shard.seat_map_json(seat_map_of)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// Every seat's state, per row one letter a seat.
pub(crate) fn seat_map_of(inv: &Inventory) -> SeatMap {
    SeatMap {
        sections: inv
            .sections()
            .iter()
            .map(|s| SectionMap {
                name: s.name.clone(),
                category: s.category.clone(),
                rows: s
                    .rows
                    .iter()
                    .map(|r| RowMap {
                        name: r.name.clone(),
                        seats: (r.first..r.first + r.seats)
                            .map(|i| match inv.state(i) {
                                SeatState::Available => 'A',
                                SeatState::Held(_) => 'H',
                                SeatState::Sold => 'S',
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        general_admission: area_counts(inv),
        inventory: inv.counts().into(),
    }
}

#[utoipa::path(
    get,
    path = "/v1/shows/{show}/availability",
    operation_id = "getAvailability",
    summary = "Counts per section and general-admission area",
    tag = "show",
    security(()),
    params(("show" = String, Path, description = "The show's name")),
    responses(
        (status = 200, description = "Counts", body = Availability),
        (status = 404, description = "`not_found`: no such show", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn availability(State(state): State<AppState>) -> Result<Response, ApiError> {
    let body = state.shard.with_inventory(|inv| Availability {
        sections: inv
            .sections()
            .iter()
            .enumerate()
            .map(|(i, s)| SectionCounts {
                name: s.name.clone(),
                category: s.category.clone(),
                inventory: inv.section_counts(i).into(),
            })
            .collect(),
        general_admission: area_counts(inv),
        inventory: inv.counts().into(),
    })?;
    Ok(Json(body).into_response())
}

/// Live seat changes as Server-Sent Events: `event: snapshot` (the counts and every
/// seat's state) first, then `event: seats` for every change — seats or area and
/// quantity, and the counts; never a hold id, a booking reference or a user. Every
/// event has an id; `Last-Event-ID` resumes (see [`crate::api::streams::public`]).
#[utoipa::path(
    get,
    path = "/v1/shows/{show}/events",
    operation_id = "streamSeatChanges",
    summary = "Live seat changes (Server-Sent Events: snapshot, then seats; resumable with Last-Event-ID)",
    description = "Events: `snapshot` (Snapshot: the counts and every seat's state, as `GET /seats`), then one `seats` (PublicSeatEvent) per change, each with an id `<epoch>.<n>`. Reconnecting with `Last-Event-ID` replays the changes missed since that id from the leader's ring of recent changes; when that id is unknown (another leader's, or older than the ring) the stream starts with `reset` (a Snapshot: replace your state) instead. A subscriber that falls too far behind also gets a `reset`. Applying a change the snapshot already holds is harmless: changes carry their seats' new state.",
    tag = "show",
    security(()),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received (`<epoch>.<n>`): resume after it", max_length = 64),
    ),
    responses(
        (status = 200, description = "A stream of `snapshot` (Snapshot), `seats` (PublicSeatEvent) and `reset` (Snapshot) events, each with an `id`",
         content((PublicSeatEvent = "text/event-stream"))),
        (status = 404, description = "`not_found`: no such show", body = ErrorBody),
        (status = 429, description = "`too_many_streams`: this client has as many streams open as it may", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`too_many_streams`, `no_leader`, `leader_unreachable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn events(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let last_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let stream = crate::api::streams::public(&state, last_id, seat_map_of)?;
    let permit = state.streams.admit(format!("addr:{}", client.0))?;
    Ok(sse(stream, permit))
}

/// An event stream that keeps its place under the stream cap until it ends, with a
/// keep-alive comment every 15 s (proxies and the forwarding standby see it alive).
pub(super) fn sse<S>(stream: S, permit: StreamPermit) -> Sse<impl Stream<Item = S::Item>>
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let held = stream.map(move |item| {
        let _ = &permit;
        item
    });
    Sse::new(held).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
