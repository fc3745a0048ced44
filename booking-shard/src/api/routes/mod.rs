//! `/v1/shows/{show}/...`: each handler carries its OpenAPI description
//! (`#[utoipa::path]`), and the router is built from those descriptions, so a route
//! cannot exist undocumented or be documented without existing.

mod bookings;
mod events;
mod holds;
mod payments;
mod show;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorCode};

/// The routes of one show, with their OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    routes()
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show::show_info))
        .routes(routes!(show::seat_map))
        .routes(routes!(show::availability))
        .routes(routes!(show::events))
        .routes(routes!(holds::create_hold))
        .routes(routes!(holds::get_hold, holds::release_hold))
        .routes(routes!(holds::extend_hold))
        .routes(routes!(holds::confirm_hold))
        .routes(routes!(holds::hold_events))
        .routes(routes!(bookings::my_bookings))
        .routes(routes!(bookings::get_booking))
        .routes(routes!(bookings::cancel_booking))
        .routes(routes!(bookings::check_in))
        .routes(routes!(bookings::booking_events))
        .routes(routes!(payments::checkout))
        .routes(routes!(payments::callback))
        .routes(routes!(payments::history))
        .routes(routes!(events::feed))
        .routes(routes!(events::stream))
        .routes(routes!(events::dead_letters))
        .routes(routes!(events::replay))
}

/// Every route is under `/v1/shows/{show}`; a shard serves one show, so any other name
/// is 404 before a handler runs (checked in the forwarding layer, which sees every
/// `/v1` request first).
pub fn other_show(state: &AppState, path: &str) -> Option<Response> {
    let name = path
        .strip_prefix("/v1/shows/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    (name != state.shard.show.config.name).then(|| ApiError::not_found("show").into_response())
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
            ErrorCode::Internal,
            "the write failed unexpectedly; its outcome is unknown",
        )
    })
}

/// The `Idempotency-Key` header: 1-128 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .ok()
                .filter(|s| {
                    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
                })
                .ok_or_else(|| {
                    ApiError::bad_request(
                        ErrorCode::InvalidIdempotencyKey,
                        "Idempotency-Key must be 1-128 visible characters",
                    )
                })?;
            Ok(Some(s.to_string()))
        }
    }
}

/// `201 Created` for a new resource, `200 OK` for a retry that found it.
fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// The routes' part of the OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}
