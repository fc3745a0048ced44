//! The HTTP server loop, bounded against slow and numerous clients.
//!
//! - At most `max_connections` connections are served at once; one more is answered
//!   `503` (the API's error shape, `Connection: close`) and closed, so a flood of idle
//!   sockets cannot exhaust file descriptors and starve `/readyz`.
//! - A client must send a request's headers within `header_timeout`; the same timer runs
//!   while an HTTP/1.1 keep-alive connection waits for its next request, so idle
//!   connections are closed after it too.
//! - HTTP/2 connections are pinged and closed when the peer stops answering, and carry at
//!   most 100 concurrent streams.
//!
//! Request bodies have their own deadline where they are read ([`super::error::ApiJson`],
//! forwarding), and event streams their own caps ([`super::streams`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::observe::Metrics;

/// Limits of the server loop.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// How long shutdown waits for open connections (event streams end on shutdown).
    pub drain: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(10),
        }
    }
}

/// The answer to a connection over the cap: written once, without reading the request.
fn over_capacity() -> Vec<u8> {
    let body = r#"{"error":{"code":"overloaded","message":"too many connections; retry shortly"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets open
/// connections finish (up to `limits.drain`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    metrics: Option<Arc<Metrics>>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(10))
        .max_concurrent_streams(100);
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or a transient error): back off a little.
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Some(m) = &metrics {
                m.refused_connections.inc();
            }
            // A fresh socket's send buffer takes this whole; never wait on the client.
            let _ = stream.try_write(&over_capacity());
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let service = TowerToHyperService::new(service);
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Some(m) = &metrics {
                m.open_connections.inc();
            }
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            if let Some(m) = &metrics {
                m.open_connections.dec();
            }
            drop(slot);
        });
    }
    // Wait for open connections to finish, but not for ever.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.drain, slots.acquire_many(all)).await;
}
