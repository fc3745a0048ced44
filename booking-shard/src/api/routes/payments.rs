//! Payments: checkout, the provider's callback, a booking's history.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::super::AppState;
use super::super::auth::{Staff, User};
use super::super::error::{ApiError, ApiPath, ErrorBody, ErrorCode};
use super::super::schema::{CallbackBody, CheckoutView, IntentView};
use super::detached;
use crate::payments::signature::{self, HEADER};
use crate::shard::{Callback, CallbackKind};
use crate::store::HistoryEntry;

#[utoipa::path(
    post,
    path = "/v1/shows/{show}/holds/{hold}/checkout",
    operation_id = "checkoutHold",
    summary = "Start paying for a hold: payment pending until the payment window ends; the server prices it (again: the same intent)",
    tag = "payments",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("hold" = String, Path, description = "The hold's id"),
    ),
    responses(
        (status = 200, description = "Waiting for the payment", body = CheckoutView),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict` (busy), `illegal_transition` (a free show, booked already)", body = ErrorBody),
        (status = 410, description = "`hold_expired`", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `unknown_outcome`, `database_unavailable`, `storage_full`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn checkout(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    user: User,
) -> Result<Response, ApiError> {
    let hold = ids.1;
    let shard = state.shard.clone();
    let (hold, intent) = detached(async move { shard.checkout(&user.id, &hold).await }).await??;
    let view = CheckoutView {
        hold,
        intent: IntentView {
            id: intent.id,
            amount_minor: intent.amount_minor,
            currency: intent.currency,
            expires_at_ms: intent.expires_at_ms,
        },
    };
    Ok(Json(view).into_response())
}

fn unauthorized(why: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, why)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    intent: String,
    amount_minor: i64,
    currency: String,
    #[serde(default)]
    payment: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/shows/{show}/payments/{provider}/callback",
    operation_id = "paymentCallback",
    summary = "A payment provider reports a payment or refund (signed: `Boxoffice-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of t.body>`); a replayed event id gets the first answer",
    tag = "payments",
    params(
        ("show" = String, Path, description = "The show's name"),
        ("provider" = String, Path, description = "The show's provider (`spec.payments.provider`)"),
        ("Boxoffice-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 over `t.rawbody`>"),
    ),
    request_body(content = CallbackBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Handled (or handled before: the first answer)", body = Object),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: bad signature or timestamp outside the tolerance; nothing changes", body = ErrorBody),
        (status = 404, description = "`not_found`: no such provider or intent", body = ErrorBody),
        (status = 409, description = "`conflict` (busy: retry), `illegal_transition`", body = ErrorBody),
        (status = 422, description = "`payment_mismatch`: the amount or currency differs from the intent (logged)", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `unknown_outcome`, `database_unavailable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn callback(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = ids.1;
    let keys = &state.payments;
    let (Some(name), Some(secret)) = (&keys.provider, &keys.secret) else {
        return Err(ApiError::not_found("payment provider"));
    };
    if *name != provider {
        return Err(ApiError::not_found("payment provider"));
    }
    let header = headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("the signature header is missing"))?;
    let now_s = crate::coord::now_ms() / 1000;
    if let Err(e) = signature::verify(secret, header, &body, now_s, keys.tolerance_s) {
        tracing::warn!(provider, reason = %e, "payment callback refused");
        return Err(unauthorized(&e.to_string()));
    }
    let wire: Wire = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidRequest, format!("callback body: {e}"))
    })?;
    let kind = CallbackKind::parse(&wire.kind)
        .ok_or_else(|| ApiError::bad_request(ErrorCode::InvalidRequest, "unknown callback type"))?;
    let plain =
        |s: &str| !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_graphic());
    if !plain(&wire.id)
        || !plain(&wire.intent)
        || !plain(&wire.currency)
        || wire.payment.as_deref().is_some_and(|p| !plain(p))
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            "id, intent, currency and payment must be 1-256 visible ASCII characters",
        ));
    }
    let cb = Callback {
        payment: wire.payment.unwrap_or_else(|| wire.id.clone()),
        id: wire.id,
        kind,
        intent: wire.intent,
        amount_minor: wire.amount_minor,
        currency: wire.currency,
    };
    let shard = state.shard.clone();
    let answer = detached(async move { shard.payment_callback(&provider, &cb).await }).await??;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    Ok((status, Json(answer.body)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/shows/{show}/bookings/{reference}/history",
    operation_id = "bookingHistory",
    summary = "A booking's audit trail, from checkout to refund (staff)",
    tag = "payments",
    security(("bearer" = [])),
    params(
        ("show" = String, Path, description = "The show's name"),
        ("reference" = String, Path, description = "The booking's reference"),
    ),
    responses(
        (status = 200, description = "Every transition, oldest first", body = Vec<HistoryEntry>),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (staff only)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`no_leader`, `leader_unreachable`, `database_unavailable`", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(super) async fn history(
    State(state): State<AppState>,
    ApiPath(ids): ApiPath<(String, String)>,
    _staff: Staff,
) -> Result<Response, ApiError> {
    let reference = ids.1;
    if !reference
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ApiError::not_found("booking"));
    }
    let shard = state.shard.clone();
    let rows = detached(async move { shard.history(&reference).await }).await??;
    Ok(Json(rows).into_response())
}
