//! The one error shape every API answer uses:
//! `{"error": {"code": "seats_unavailable", "message": "...", "seats": [...]}}`.
//! Codes are stable; messages are for people.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::shard::ShardError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub seats: Option<Vec<String>>,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            seats: None,
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let Some(seats) = self.seats {
            body["error"]["seats"] = json!(seats);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "request failed");
        }
        response
    }
}

impl From<ShardError> for ApiError {
    fn from(e: ShardError) -> Self {
        let message = e.to_string();
        match e {
            ShardError::NotLeader(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", message).retry_after(1)
            }
            ShardError::BadRequest(code, m) => ApiError::bad_request(code, m),
            ShardError::SeatsUnavailable(seats) => ApiError {
                seats: Some(seats),
                ..ApiError::new(StatusCode::CONFLICT, "seats_unavailable", message)
            },
            ShardError::SoldOut { .. } => ApiError::new(StatusCode::CONFLICT, "sold_out", message),
            ShardError::Limit(m) => ApiError::new(StatusCode::CONFLICT, "limit_exceeded", m),
            ShardError::NotFound => ApiError::not_found("resource"),
            ShardError::Expired => ApiError::new(StatusCode::GONE, "hold_expired", message),
            ShardError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            ShardError::Unknown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unknown_outcome", message)
                    .retry_after(1)
            }
            ShardError::Closed(m) => ApiError::new(StatusCode::CONFLICT, "sales_closed", m),
            ShardError::RateLimited => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).retry_after(1)
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    /// Reads that fail: the database is unreachable or failing; retry shortly.
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            e.to_string(),
        )
        .retry_after(1)
    }
}

/// `Json<T>` whose rejections use the API's error shape.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send Content-Type: application/json",
                ),
                JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
                    "invalid_json",
                    format!("malformed JSON: {}", e.body_text()),
                ),
                JsonRejection::JsonDataError(e) => {
                    ApiError::bad_request("invalid_request", e.body_text())
                }
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "request body too large",
                    )
                }
                other => ApiError::bad_request("invalid_request", other.body_text()),
            }),
        }
    }
}
