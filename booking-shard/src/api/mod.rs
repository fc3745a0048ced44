//! The HTTP API (`/v1/shows/{show}/...`), health, readiness and metrics.
//!
//! Any replica can be asked: a standby forwards `/v1` requests to the leader (address
//! from the election key), so a Service can route to every Ready pod.

pub mod auth;
pub mod error;
pub mod observe;
pub mod openapi;
pub mod page;
mod ready;
pub use ready::Readiness;
mod routes;
pub mod schema;
pub mod serve;
pub mod streams;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::keys::ShardKeys;
use crate::shard::{Role, Shard};
use auth::Auth;
use error::{ApiError, ErrorCode};
use observe::Metrics;
use streams::StreamGate;

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub struct AppState {
    pub shard: Arc<Shard>,
    pub auth: Arc<Auth>,
    pub keys: Arc<ShardKeys>,
    pub http: reqwest::Client,
    pub metrics: Arc<Metrics>,
    pub streams: Arc<StreamGate>,
    /// Proxies (e.g. the gateway) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// The payment provider's callback key (`spec.payments`, mode provider).
    pub payments: Arc<PaymentKeys>,
    /// `/readyz`'s memory of being ready (the failover grace, see [`ready`]).
    pub readiness: Arc<ready::Readiness>,
}

/// What a provider callback is checked against.
#[derive(Debug, Clone, Default)]
pub struct PaymentKeys {
    /// The provider's name in the callback path.
    pub provider: Option<String>,
    /// Its signing secret (read from `--payment-secret-file`).
    pub secret: Option<Vec<u8>>,
    /// How far a callback's timestamp may be from our clock, in seconds.
    pub tolerance_s: i64,
}

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// How long a client may take to send a request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The header a standby adds to a request it forwards (signed; see [`ShardKeys`]).
pub const FORWARDED_HEADER: &str = "x-boxoffice-forwarded";

/// The header naming the leader, on every `/v1` answer.
pub const LEADER_HEADER: &str = "x-boxoffice-leader";

/// The forwarding client: bounded connect and read times (event streams send a
/// keep-alive comment every 15 s, so a silent leader is noticed within the read time).
pub fn peer_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .read_timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// The public API (probes and `/v1`); `/metrics` is served by [`metrics_app`] on its
/// own port.
pub fn app(state: AppState) -> Router {
    let (v1, doc) = routes::router().split_for_parts();
    let show = &state.shard.show;
    let document = openapi::served(
        doc,
        &openapi::ShowFacts {
            name: &show.config.name,
            layout: &show.layout,
            categories: show
                .config
                .spec
                .categories
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            max_per_hold: show.rules.max_per_hold,
        },
    );
    let v1 = v1
        .layer(middleware::from_fn_with_state(
            state.clone(),
            forward_to_leader,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(reject_oversized));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready::readyz))
        .route(
            "/v1/openapi.json",
            get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    document,
                )
            }),
        )
        .merge(v1)
        .merge(page::router(&show.config.name))
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this route does not take that method",
            )
        })
        .fallback(|| async { ApiError::not_found("route") })
        // Outside the routing, so unmatched requests are counted too (as `unmatched`).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}

/// The metrics port: `/metrics` only (keep it off the public network).
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(&state.shard),
    )
        .into_response()
}

/// Bodies up to this size are read and discarded before a 413, so the client reliably
/// gets the answer (closing with unread data makes the kernel reset the connection,
/// which can destroy the response in flight); larger ones are refused unread.
const DRAIN_LIMIT: u64 = 1024 * 1024;

/// Answers a declared-oversized body with 413 in the API's error shape.
async fn reject_oversized(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > MAX_BODY as u64 => {
            if len <= DRAIN_LIMIT {
                let drain = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT as usize);
                let _ = tokio::time::timeout(BODY_TIMEOUT, drain).await;
            }
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("request body larger than {MAX_BODY} bytes"),
            )
            .into_response()
        }
        _ => next.run(req).await,
    }
}

/// Hop-by-hop headers a proxy must not pass on.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

/// Who sent a request: the address event-stream caps count against. Worked out only
/// where it is needed (stream handlers, forwarding), not on every request.
#[derive(Debug, Clone)]
pub struct Client(pub String);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // A request a peer forwarded carries the address that peer saw (verified).
        if let Some(f) = parts.extensions.get::<crate::keys::Forwarded>() {
            return Ok(Client(f.client.clone()));
        }
        Ok(Client(client_address(
            state,
            &parts.headers,
            &parts.extensions,
        )))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The client's address: the TCP peer, or for a trusted proxy the last address of its
/// `X-Forwarded-For`.
fn client_address(state: &AppState, headers: &HeaderMap, extensions: &Extensions) -> String {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(peer) = peer else {
        return "unknown".into();
    };
    if state.trusted_proxies.iter().any(|net| net.contains(&peer))
        && let Some(last) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return last.to_string();
    }
    peer.to_string()
}

/// The request's path and query, as signed in a forwarded request.
fn path_of(req: &Request) -> String {
    req.uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default()
}

fn with_leader_header(mut response: Response, pod: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(pod) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(LEADER_HEADER), v);
    }
    response
}

/// Standbys pass `/v1` requests to the leader; with no leader, 503 + Retry-After.
///
/// A forwarded request carries a header signed with the peers' key; any other copy of
/// that header (a client's) is dropped, so a client can neither make a standby refuse
/// to forward nor claim another client address. Standbys forward only to a leader
/// record signed with the same key, so a rogue address written into etcd receives no
/// user's token.
async fn forward_to_leader(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(not_found) = routes::other_show(&state, req.uri().path()) {
        return not_found;
    }
    // Only a peer's signed copy of the forwarding header counts; a client's is dropped.
    let forwarded = req
        .headers_mut()
        .remove(FORWARDED_HEADER)
        .and_then(|h| h.to_str().ok().map(str::to_string))
        .and_then(|h| {
            let path = path_of(&req);
            state
                .keys
                .verify_forward(&h, req.method().as_str(), &path, unix_now())
        });
    let was_forwarded = forwarded.is_some();
    if let Some(f) = forwarded {
        req.extensions_mut().insert(f);
    }
    let leader = match state.shard.role() {
        Role::Leader(_) => {
            let response = next.run(req).await;
            return with_leader_header(response, &state.shard.me.pod);
        }
        // A request forwarded once is never forwarded again (no ping-pong while the
        // replicas' views of who leads catch up).
        Role::Follower(Some(leader))
            if !was_forwarded && leader.address != state.shard.me.address =>
        {
            leader
        }
        _ => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NoLeader,
                "no leader elected yet",
            )
            .retry_after(1)
            .into_response();
        }
    };
    if !state
        .keys
        .leader_signed(&leader.pod, &leader.address, &leader.sig)
    {
        tracing::error!(
            leader = %leader.pod,
            "the leader record is not signed with this show's peer key: not forwarding"
        );
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::LeaderUnreachable,
            "the leader cannot be verified; retry shortly",
        )
        .retry_after(1)
        .into_response();
    }
    let path = path_of(&req);
    let method = req.method().as_str().to_string();
    let client = client_address(&state, req.headers(), req.extensions());
    let url = format!("{}{}", leader.address.trim_end_matches('/'), path);
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("request body larger than {MAX_BODY} bytes"),
            )
            .into_response();
        }
        Err(_) => return ApiError::request_timeout().into_response(),
    };
    let mut upstream = state.http.request(parts.method.clone(), &url).body(body);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    upstream = upstream.header(
        FORWARDED_HEADER,
        state
            .keys
            .sign_forward(&state.shard.me.pod, &client, &method, &path, unix_now()),
    );
    match upstream.send().await {
        Ok(resp) => {
            let mut builder = Response::builder().status(resp.status());
            for (name, value) in resp.headers() {
                if !HOP_BY_HOP.contains(&name.as_str()) {
                    builder = builder.header(name, value);
                }
            }
            let response = builder
                .body(Body::from_stream(resp.bytes_stream()))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
            with_leader_header(response, &leader.pod)
        }
        Err(e) => {
            tracing::warn!(leader = %leader.pod, error = %e, "forwarding to the leader failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::LeaderUnreachable,
                "the leader did not answer; retry shortly",
            )
            .retry_after(1)
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests;
