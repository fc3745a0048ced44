//! Caps on Server-Sent Event streams: in total (503 `too_many_streams`) and per client
//! (429 `too_many_streams`), so anonymous watchers cannot hold unbounded memory.
//!
//! The client is the authenticated user for a user's own streams and the client
//! address for the public one (for a request a standby forwarded, the address the
//! standby saw, which it vouches for with the peer signature).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use super::error::{ApiError, ErrorCode};
use super::observe::Metrics;

/// Stream limits.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub total: usize,
    pub per_client: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            total: 2000,
            per_client: 8,
        }
    }
}

/// Counts open streams; hands out permits that give their place back when dropped.
pub struct StreamGate {
    limits: StreamLimits,
    open: Mutex<(usize, HashMap<String, usize>)>,
    metrics: Option<Arc<Metrics>>,
}

/// One open stream's place; dropping it frees the place.
pub struct StreamPermit {
    gate: Arc<StreamGate>,
    client: String,
}

impl StreamGate {
    pub fn new(limits: StreamLimits, metrics: Option<Arc<Metrics>>) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new((0, HashMap::new())),
            metrics,
        })
    }

    /// A place for one more stream of `client`, or the error to answer with.
    pub fn admit(self: &Arc<Self>, client: String) -> Result<StreamPermit, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let refused = if open.0 >= self.limits.total {
            Some(
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::TooManyStreams,
                    "this server has as many event streams open as it serves; retry later",
                )
                .retry_after(5),
            )
        } else if open.1.get(&client).copied().unwrap_or(0) >= self.limits.per_client {
            Some(
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::TooManyStreams,
                    format!(
                        "at most {} event streams per client; close one first",
                        self.limits.per_client
                    ),
                )
                .retry_after(5),
            )
        } else {
            None
        };
        if let Some(e) = refused {
            if let Some(m) = &self.metrics {
                m.refused_streams.inc();
            }
            return Err(e);
        }
        open.0 += 1;
        *open.1.entry(client.clone()).or_default() += 1;
        if let Some(m) = &self.metrics {
            m.open_streams.inc();
        }
        Ok(StreamPermit {
            gate: self.clone(),
            client,
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.lock().map(|o| o.0).unwrap_or(0)
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.client);
            }
        }
        if let Some(m) = &self.gate.metrics {
            m.open_streams.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_client_and_frees_places() {
        let gate = StreamGate::new(
            StreamLimits {
                total: 3,
                per_client: 2,
            },
            None,
        );
        let a1 = gate.admit("a".into()).expect("a1");
        let _a2 = gate.admit("a".into()).expect("a2");
        let e = gate.admit("a".into()).err().expect("a3 refused");
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        let _b1 = gate.admit("b".into()).expect("b1");
        let e = gate.admit("c".into()).err().expect("total reached");
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        drop(a1);
        assert_eq!(gate.open(), 2);
        gate.admit("c".into()).expect("a place was freed");
    }
}
