//! The HTTP API (`/v1/shows/{show}/...`), health, readiness and metrics.
//!
//! Any replica can be asked: a standby forwards `/v1` requests to the leader (address
//! from the election key), so a Service can route to every Ready pod.

pub mod auth;
pub mod error;
mod observe;
mod routes;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::shard::{Role, Shard};
use auth::Auth;
use error::ApiError;

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub struct AppState {
    pub shard: Arc<Shard>,
    pub auth: Arc<Auth>,
    pub http: reqwest::Client,
    pub requests: Arc<observe::RequestMetrics>,
}

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// The whole application.
pub fn app(state: AppState) -> Router {
    let v1 = routes::router()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            forward_to_leader,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(reject_oversized));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .merge(v1)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(state)
}

/// The OpenAPI 3 document of this API (served by every replica, never forwarded).
pub const OPENAPI: &str = include_str!("../../openapi.json");

async fn openapi() -> Response {
    ([("content-type", "application/json")], OPENAPI).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.shard.role() {
        Role::Leader(_) => (StatusCode::OK, "leader").into_response(),
        Role::Follower(Some(_)) => (StatusCode::OK, "standby").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "no leader known").into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let shard = &state.shard;
    let s = &shard.stats;
    let (leader, epoch) = match shard.role() {
        Role::Leader(l) => (1, l.epoch),
        _ => (0, 0),
    };
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        ));
    };
    counter(
        "boxoffice_holds_total",
        "Holds created.",
        s.holds.load(Ordering::Relaxed),
    );
    counter(
        "boxoffice_hold_conflicts_total",
        "Hold attempts refused because seats were taken.",
        s.hold_conflicts.load(Ordering::Relaxed),
    );
    counter(
        "boxoffice_confirms_total",
        "Bookings confirmed.",
        s.confirms.load(Ordering::Relaxed),
    );
    counter(
        "boxoffice_holds_expired_total",
        "Holds expired.",
        s.expired.load(Ordering::Relaxed),
    );
    counter(
        "boxoffice_fenced_writes_total",
        "Writes refused because a newer leader exists (or the outcome was unknown); each ends this replica's leadership.",
        s.fenced_writes.load(Ordering::Relaxed),
    );
    counter(
        "boxoffice_leader_terms_total",
        "Times this replica became leader.",
        s.leader_terms.load(Ordering::Relaxed),
    );
    out.push_str(&format!(
        "# HELP boxoffice_leader Whether this replica leads.\n# TYPE boxoffice_leader gauge\nboxoffice_leader {leader}\n\
         # HELP boxoffice_epoch The fencing epoch of this replica's leadership.\n# TYPE boxoffice_epoch gauge\nboxoffice_epoch {epoch}\n"
    ));
    if let Ok(c) = shard.counts() {
        for (state_name, v) in [
            ("available", c.available),
            ("held", c.held),
            ("sold", c.sold),
        ] {
            out.push_str(&format!("boxoffice_seats{{state=\"{state_name}\"}} {v}\n"));
        }
    }
    state.requests.render(&mut out);
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
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
                let _ = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT as usize).await;
            }
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
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

/// Standbys pass `/v1` requests to the leader; with no leader, 503 + Retry-After.
async fn forward_to_leader(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // A request forwarded once is never forwarded again (no ping-pong while the
    // replicas' views of who leads catch up).
    let forwarded = req.headers().contains_key("x-boxoffice-forwarded-by");
    let leader = match state.shard.role() {
        Role::Leader(_) => return next.run(req).await,
        Role::Follower(Some(leader)) if !forwarded && leader.address != state.shard.me.address => {
            leader
        }
        _ => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_leader",
                "no leader elected yet",
            )
            .retry_after(1)
            .into_response();
        }
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let url = format!("{}{}", leader.address.trim_end_matches('/'), path);
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body too large",
            )
            .into_response();
        }
    };
    let mut upstream = state.http.request(parts.method.clone(), &url).body(body);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    upstream = upstream.header("x-boxoffice-forwarded-by", state.shard.me.pod.as_str());
    match upstream.send().await {
        Ok(resp) => {
            let mut builder = Response::builder().status(resp.status());
            for (name, value) in resp.headers() {
                if !HOP_BY_HOP.contains(&name.as_str()) {
                    builder = builder.header(name, value);
                }
            }
            builder
                .header(
                    HeaderName::from_static("x-boxoffice-leader"),
                    leader.pod.as_str(),
                )
                .body(Body::from_stream(resp.bytes_stream()))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "leader_unreachable",
            format!("the leader did not answer: {e}"),
        )
        .retry_after(1)
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every route the router declares is documented, and every documented path and
    /// method is routed (the integration tests call each one on a live shard).
    #[test]
    fn openapi_documents_exactly_the_routes() {
        let doc: serde_json::Value =
            serde_json::from_str(super::OPENAPI).expect("openapi.json parses");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in ["get", "post", "delete", "put", "patch"] {
                if item.get(method).is_some() {
                    documented.insert((method.to_string(), path.clone()));
                }
            }
        }
        let mut routed = BTreeSet::from([("get".to_string(), "/v1/openapi.json".to_string())]);
        // The router's `.route("path", get(a).post(b))` calls, whitespace removed so
        // formatting does not matter; the router function ends at its closing line.
        let source = include_str!("routes.rs");
        let source = &source[source.find("pub fn router()").expect("router()")..];
        let source = &source[..source.find("\n}\n").expect("end of router()")];
        let body: String = source.split_whitespace().collect();
        for chunk in body.split(".route(\"").skip(1) {
            let (path, handlers) = chunk.split_once('"').expect("route path");
            for method in ["get", "post", "delete", "put", "patch"] {
                if handlers.contains(&format!(",{method}("))
                    || handlers.contains(&format!(").{method}("))
                {
                    routed.insert((method.to_string(), path.to_string()));
                }
            }
        }
        assert_eq!(documented, routed);
    }
}
