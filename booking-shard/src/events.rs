//! The leader's seat changes, numbered and kept in a bounded ring so an event stream
//! can be resumed.
//!
//! Every change gets the next number of this leadership term; its event id is
//! `<epoch>.<number>`. The last [`RING_CAPACITY`] changes stay in memory: a client
//! that reconnects with `Last-Event-ID` gets the changes it missed, or — when its id
//! is from another term (another leader, or this one before it lost the lease), in the
//! future, or older than the ring — a fresh snapshot (`reset`). Numbers are assigned
//! under one lock, in the order the changes are sent, so a subscriber sees them in
//! order. A change is published after the book took it, so a snapshot numbered `n`
//! holds every change up to `n` and possibly a few later ones; changes carry the new
//! state of their seats, so applying one twice is harmless.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::shard::SeatEvent;

/// How many changes are kept for resuming streams (and buffered per subscriber).
pub const RING_CAPACITY: usize = 4096;

/// One published change and its place in the term.
#[derive(Debug, Clone)]
pub struct Published {
    pub epoch: i64,
    pub seq: u64,
    pub event: Arc<SeatEvent>,
}

impl Published {
    /// The SSE event id: `<epoch>.<seq>`.
    pub fn id(&self) -> String {
        event_id(self.epoch, self.seq)
    }
}

/// `<epoch>.<seq>`.
pub fn event_id(epoch: i64, seq: u64) -> String {
    format!("{epoch}.{seq}")
}

/// Parses a `Last-Event-ID` (`<epoch>.<seq>`).
pub fn parse_event_id(id: &str) -> Option<(i64, u64)> {
    let (epoch, seq) = id.trim().split_once('.')?;
    Some((epoch.parse().ok()?, seq.parse().ok()?))
}

struct Ring {
    epoch: i64,
    last: u64,
    events: VecDeque<Published>,
}

/// The numbered changes of this replica's current term.
pub struct EventLog {
    ring: Mutex<Ring>,
    capacity: usize,
    tx: broadcast::Sender<Published>,
}

impl EventLog {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            ring: Mutex::new(Ring {
                epoch: 0,
                last: 0,
                events: VecDeque::with_capacity(capacity),
            }),
            capacity,
            tx,
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new leadership term: the ring starts empty, ids carry `epoch`.
    pub fn new_term(&self, epoch: i64) {
        let mut ring = self.ring();
        ring.epoch = epoch;
        ring.events.clear();
    }

    /// Numbers a change, keeps it, and sends it to the subscribers.
    pub fn publish(&self, event: SeatEvent) -> u64 {
        let mut ring = self.ring();
        ring.last += 1;
        let published = Published {
            epoch: ring.epoch,
            seq: ring.last,
            event: Arc::new(event),
        };
        if ring.events.len() == self.capacity {
            ring.events.pop_front();
        }
        if self.capacity > 0 {
            ring.events.push_back(published.clone());
        }
        // Sent under the lock, so subscribers get the changes in number order.
        let _ = self.tx.send(published);
        ring.last
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }

    /// The term and the number of the last change published.
    pub fn last(&self) -> (i64, u64) {
        let ring = self.ring();
        (ring.epoch, ring.last)
    }

    /// The changes after `seq` of term `epoch`, when the ring still has all of them;
    /// `None` when the id is from another term, in the future, or too old.
    pub fn since(&self, epoch: i64, seq: u64) -> Option<Vec<Published>> {
        let ring = self.ring();
        if epoch != ring.epoch || seq > ring.last {
            return None;
        }
        let oldest = ring.events.front().map_or(ring.last + 1, |p| p.seq);
        if seq + 1 < oldest {
            return None;
        }
        Some(
            ring.events
                .iter()
                .filter(|p| p.seq > seq)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxoffice_crds::InventoryCounts;

    fn change(n: u64) -> SeatEvent {
        SeatEvent {
            kind: "held",
            seats: vec![format!("main:A:{n}")],
            area: None,
            quantity: 1,
            hold: None,
            booking: None,
            counts: InventoryCounts::default(),
        }
    }

    #[test]
    fn ids_round_trip_and_junk_is_refused() {
        assert_eq!(parse_event_id(&event_id(7, 42)), Some((7, 42)));
        assert_eq!(parse_event_id("7.x"), None);
        assert_eq!(parse_event_id("42"), None);
        assert_eq!(parse_event_id(""), None);
    }

    #[test]
    fn resumes_within_the_ring_and_refuses_what_it_no_longer_has() {
        let log = EventLog::new(3);
        log.new_term(5);
        for n in 1..=5 {
            assert_eq!(log.publish(change(n)), n);
        }
        assert_eq!(log.last(), (5, 5));
        // The ring holds 3, 4, 5: resuming after 2, 3, 4 or 5 works.
        let after2: Vec<u64> = log
            .since(5, 2)
            .expect("kept")
            .iter()
            .map(|p| p.seq)
            .collect();
        assert_eq!(after2, vec![3, 4, 5]);
        assert_eq!(log.since(5, 5).expect("current").len(), 0);
        // After 1: change 2 is gone, so the client must start over.
        assert!(log.since(5, 1).is_none());
        // Another term, or an id from the future.
        assert!(log.since(4, 4).is_none());
        assert!(log.since(5, 6).is_none());
        // A new term forgets the old one's changes.
        log.new_term(6);
        assert!(log.since(5, 5).is_none());
        assert_eq!(log.since(6, 5).expect("nothing yet").len(), 0);
        assert_eq!(log.publish(change(9)), 6);
        assert_eq!(log.since(6, 5).expect("kept")[0].id(), "6.6");
    }

    #[test]
    fn subscribers_get_changes_in_order_with_their_ids() {
        let log = EventLog::new(8);
        log.new_term(1);
        let mut rx = log.subscribe();
        log.publish(change(1));
        log.publish(change(2));
        assert_eq!(rx.try_recv().expect("first").id(), "1.1");
        assert_eq!(rx.try_recv().expect("second").id(), "1.2");
    }
}
