//! Server-Sent Event streams: the public stream of seat changes, resumable with
//! `Last-Event-ID` ([`public`]); and caps on streams, in total (503
//! `too_many_streams`) and per client (429 `too_many_streams`), so anonymous watchers
//! cannot hold unbounded memory.
//!
//! The client is the authenticated user for a user's own streams and the client
//! address for the public one (for a request a standby forwarded, the address the
//! standby saw, which it vouches for with the peer signature).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::sse::Event;
use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::observe::Metrics;
use super::schema::{SeatMap, Snapshot};
use crate::events::{Published, event_id, parse_event_id};
use crate::inventory::Inventory;

/// The public stream of seat changes, from a snapshot or — with the `Last-Event-ID`
/// of an earlier stream — from the changes missed since that id when the leader's
/// ring still has them all; otherwise from a `reset` (a fresh snapshot). `map` builds
/// the seat map (as `GET /seats` serves it).
///
/// The live changes are subscribed to before the snapshot is taken, and changes the
/// snapshot or the replay already covered are skipped by number, so none is lost
/// between the two and none is sent twice.
pub fn public(
    state: &AppState,
    last_event_id: Option<&str>,
    map: fn(&Inventory) -> SeatMap,
) -> Result<impl Stream<Item = Result<Event, Infallible>> + Send + use<>, ApiError> {
    let live = state.shard.subscribe();
    let resume = last_event_id.and_then(parse_event_id);
    let missed = resume.and_then(|(epoch, seq)| state.shard.events().since(epoch, seq));
    let (head, mut after) = match (missed, resume) {
        (Some(missed), Some((_, seq))) => {
            // Resuming is for the leader only (it alone has the current term's ring).
            state.shard.leadership()?;
            let after = missed.last().map_or(seq, |p| p.seq);
            (missed.iter().map(seats_event).collect(), after)
        }
        _ => {
            let kind = if last_event_id.is_some() {
                "reset"
            } else {
                "snapshot"
            };
            let (event, after) = snapshot(state, kind, map)?;
            (vec![event], after)
        }
    };
    let state = state.clone();
    let live = BroadcastStream::new(live).filter_map(move |p| match p {
        Ok(p) if p.seq <= after => None,
        Ok(p) => {
            after = p.seq;
            Some(Ok(seats_event(&p)))
        }
        // This subscriber fell too far behind: start it over from a fresh snapshot.
        Err(BroadcastStreamRecvError::Lagged(_)) => match snapshot(&state, "reset", map) {
            Ok((event, seq)) => {
                after = seq;
                Some(Ok(event))
            }
            Err(_) => None,
        },
    });
    Ok(futures::stream::iter(head.into_iter().map(Ok)).chain(live))
}

/// A `seats` event: the public view of one change (no hold id, no booking reference).
fn seats_event(p: &Published) -> Event {
    Event::default()
        .event("seats")
        .id(p.id())
        .json_data(p.event.public())
        .unwrap_or_default()
}

/// A `snapshot` or `reset` event: the counts and every seat's state, built now (not
/// the cached map, which may be older), numbered with the last change published when
/// it was built (it may hold a few later ones too: see [`crate::events`]).
fn snapshot(
    state: &AppState,
    kind: &'static str,
    map: fn(&Inventory) -> SeatMap,
) -> Result<(Event, u64), ApiError> {
    let epoch = state.shard.leadership()?.epoch;
    let events = state.shard.events();
    let (seat_map, seq) = state
        .shard
        .with_inventory(|inv| (map(inv), events.last().1))?;
    let snapshot = Snapshot {
        counts: seat_map.inventory,
        seat_map,
    };
    Ok((
        Event::default()
            .event(kind)
            .id(event_id(epoch, seq))
            .json_data(&snapshot)
            .unwrap_or_default(),
        seq,
    ))
}

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
