//! The one error shape every API answer uses:
//! `{"error": {"code": "seats_unavailable", "message": "...", "seats": [...]}}`.
//! Codes are stable; messages are for people.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::IllegalTransition;
use crate::shard::{BadInput, ShardError};

/// Every error code the API answers with. Stable: clients switch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    InvalidRequest,
    UnknownSeat,
    DuplicateSeat,
    InvalidQuantity,
    UnknownSection,
    UnknownCategory,
    UnknownArea,
    InvalidIdempotencyKey,
    Unauthorized,
    Forbidden,
    InvalidTicket,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    SeatsUnavailable,
    SoldOut,
    LimitExceeded,
    Conflict,
    /// The booking's state does not allow the action (docs/architecture.md, the
    /// lifecycle table).
    IllegalTransition,
    /// A provider callback's amount or currency differs from the payment intent.
    PaymentMismatch,
    /// The show confirms bookings through payments: a plain user cannot confirm.
    PaymentRequired,
    SalesClosed,
    HoldExpired,
    HoldConfirmed,
    PayloadTooLarge,
    UnsupportedMediaType,
    IdempotencyKeyReused,
    RateLimited,
    TooManyStreams,
    NoLeader,
    LeaderUnreachable,
    UnknownOutcome,
    DatabaseUnavailable,
    StorageFull,
    Overloaded,
    /// A feed cursor older than the outbox's retention.
    CursorExpired,
    /// An event sink refused a replayed event.
    SinkUnavailable,
    Internal,
}

/// The error body: `{"error": {...}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people; may change.
    pub message: String,
    /// With `seats_unavailable`: the seats that are taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seats: Option<Vec<String>>,
    /// With `hold_confirmed`: the reference of the booking the hold became.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub seats: Option<Vec<String>>,
    pub booking: Option<String>,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            seats: None,
            booking: None,
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
            ErrorCode::NotFound,
            format!("{what} not found"),
        )
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The client took too long to send its request.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} s",
                super::BODY_TIMEOUT.as_secs()
            ),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let code = self.code;
        if status.is_server_error() {
            tracing::warn!(code = ?code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.message,
                seats: self.seats,
                booking: self.booking,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<ShardError> for ApiError {
    fn from(e: ShardError) -> Self {
        let message = e.to_string();
        match e {
            ShardError::NotLeader(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NoLeader,
                message,
            )
            .retry_after(1),
            ShardError::BadRequest(input, m) => ApiError::bad_request(
                match input {
                    BadInput::Request => ErrorCode::InvalidRequest,
                    BadInput::UnknownSeat => ErrorCode::UnknownSeat,
                    BadInput::DuplicateSeat => ErrorCode::DuplicateSeat,
                    BadInput::Quantity => ErrorCode::InvalidQuantity,
                    BadInput::UnknownSection => ErrorCode::UnknownSection,
                    BadInput::UnknownCategory => ErrorCode::UnknownCategory,
                    BadInput::UnknownArea => ErrorCode::UnknownArea,
                },
                m,
            ),
            ShardError::SeatsUnavailable(seats) => ApiError {
                seats: Some(seats),
                ..ApiError::new(StatusCode::CONFLICT, ErrorCode::SeatsUnavailable, message)
            },
            ShardError::SoldOut { .. } => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::SoldOut, message)
            }
            ShardError::Limit(m) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::LimitExceeded, m)
            }
            ShardError::NotFound => ApiError::not_found("resource"),
            ShardError::Expired => ApiError::new(StatusCode::GONE, ErrorCode::HoldExpired, message),
            ShardError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, m),
            ShardError::Illegal(IllegalTransition::PaymentRequired) => {
                ApiError::new(StatusCode::FORBIDDEN, ErrorCode::PaymentRequired, message)
            }
            ShardError::Illegal(_) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::IllegalTransition, message)
            }
            ShardError::Unknown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::UnknownOutcome,
                message,
            )
            .retry_after(1),
            ShardError::StorageFull => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::StorageFull,
                message,
            )
            .retry_after(5),
            ShardError::Closed(m) => ApiError::new(StatusCode::CONFLICT, ErrorCode::SalesClosed, m),
            ShardError::IdempotencyMismatch => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IdempotencyKeyReused,
                message,
            ),
            ShardError::RateLimited => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                message,
            )
            .retry_after(1),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    /// Reads that fail: the database is unreachable or failing; retry shortly.
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DatabaseUnavailable,
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
        let read = tokio::time::timeout(super::BODY_TIMEOUT, Json::<T>::from_request(req, state));
        match read.await.map_err(|_| ApiError::request_timeout())? {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ErrorCode::UnsupportedMediaType,
                    "send Content-Type: application/json",
                ),
                JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
                    ErrorCode::InvalidJson,
                    format!("malformed JSON: {}", e.body_text()),
                ),
                JsonRejection::JsonDataError(e) => {
                    ApiError::bad_request(ErrorCode::InvalidRequest, e.body_text())
                }
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        ErrorCode::PayloadTooLarge,
                        "request body too large",
                    )
                }
                other => ApiError::bad_request(ErrorCode::InvalidRequest, other.body_text()),
            }),
        }
    }
}

/// An extractor wrapping axum's `$inner<T>` whose rejections use the API's error shape
/// (`400 invalid_request`).
macro_rules! invalid_request_on_rejection {
    ($(#[$doc:meta])* $name:ident, $inner:ident) => {
        $(#[$doc])*
        pub struct $name<T>(pub T);

        impl<S, T> FromRequestParts<S> for $name<T>
        where
            T: DeserializeOwned + Send,
            S: Send + Sync,
        {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                $inner::<T>::from_request_parts(parts, state)
                    .await
                    .map(|$inner(v)| $name(v))
                    .map_err(|e| ApiError::bad_request(ErrorCode::InvalidRequest, e.body_text()))
            }
        }
    };
}

invalid_request_on_rejection!(
    /// `Path<T>` whose rejections use the API's error shape.
    ApiPath,
    Path
);
invalid_request_on_rejection!(
    /// `Query<T>` whose rejections use the API's error shape.
    ApiQuery,
    Query
);
