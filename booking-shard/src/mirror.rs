//! A standby's warm copy of the show's book in etcd: every hold record and seat lock,
//! read once and then kept current by a watch. A standby that wins the election takes
//! its book from the mirror instead of reading tens of thousands of keys, so the
//! handover is not paced by the size of the book.
//!
//! Exactness: the winner asks the watch for a progress notification at a revision at
//! least its epoch (the leader key's create revision). etcd sends one only when every
//! event up to that revision has been delivered, so the mirror then equals a read of the
//! two prefixes at that revision — what a fresh read would give, since no deposed
//! leader can write after the new leader key exists. Without that proof in time (a
//! broken watch, a compacted start revision), the new leader reads etcd as before.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::coord::{CoordError, Coordinator, RawBook, Result, StoredBook};

/// A running mirror; dropping it stops the watch.
pub struct Mirror {
    requests: mpsc::Sender<(i64, oneshot::Sender<StoredBook>)>,
    stop: CancellationToken,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// How often a pending snapshot asks etcd for progress again (etcd answers a progress
/// request only while the watch is caught up).
const PROGRESS_RETRY: Duration = Duration::from_millis(25);

impl Mirror {
    /// Starts following the show's keys; retries on its own when the watch breaks.
    pub fn start(coord: std::sync::Arc<Coordinator>) -> Mirror {
        let (requests, mut pending) = mpsc::channel(1);
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            while !token.is_cancelled() {
                match follow(&coord, &mut pending, &token).await {
                    Ok(()) => return,
                    Err(e) => {
                        debug!(error = %e, "the book mirror's watch broke; reading again");
                        tokio::select! {
                            _ = token.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                    }
                }
            }
        });
        Mirror { requests, stop }
    }

    /// The book as of a revision at least `revision`, or `None` when the mirror cannot
    /// prove it is that current within `wait`. The mirror is spent either way.
    pub async fn book_at_least(self, revision: i64, wait: Duration) -> Option<StoredBook> {
        let (answer, book) = oneshot::channel();
        self.requests.send((revision, answer)).await.ok()?;
        match tokio::time::timeout(wait, book).await {
            Ok(Ok(book)) => Some(book),
            _ => {
                warn!(
                    revision,
                    "the book mirror was not current in time; reading etcd"
                );
                None
            }
        }
    }
}

/// One life of the mirror: read both prefixes at one revision, then apply the watch
/// from the next revision. Returns `Ok` once a snapshot was handed over or on stop.
async fn follow(
    coord: &Coordinator,
    requests: &mut mpsc::Receiver<(i64, oneshot::Sender<StoredBook>)>,
    stop: &CancellationToken,
) -> Result<()> {
    let keys = coord.keys().clone();
    let (holds_prefix, seats_prefix) = (keys.holds_prefix(), keys.seats_prefix());
    let raw = coord.read_book().await?;
    let revision = raw.revision;
    let mut holds: BTreeMap<Vec<u8>, Vec<u8>> = raw.holds.into_iter().collect();
    let mut seats: BTreeMap<Vec<u8>, Vec<u8>> = raw.seats.into_iter().collect();

    let show_prefix = keys.show_prefix();
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut stream = coord.client().watch(show_prefix, Some(options)).await?;
    let mut waiting: Option<(i64, oneshot::Sender<StoredBook>)> = None;
    let mut retry = tokio::time::interval(PROGRESS_RETRY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            request = requests.recv(), if waiting.is_none() => {
                let Some(request) = request else { return Ok(()) };
                waiting = Some(request);
                stream.request_progress().await?;
            }
            _ = retry.tick(), if waiting.is_some() => stream.request_progress().await?,
            message = stream.message() => {
                let Some(message) = message? else {
                    return Err(CoordError::Unavailable("the watch ended".into()));
                };
                if message.canceled() {
                    return Err(CoordError::Unavailable(format!(
                        "the watch was cancelled (compacted at {})",
                        message.compact_revision()
                    )));
                }
                for event in message.events() {
                    let Some(kv) = event.kv() else { continue };
                    let key = kv.key();
                    let map = if key.starts_with(holds_prefix.as_bytes()) {
                        &mut holds
                    } else if key.starts_with(seats_prefix.as_bytes()) {
                        &mut seats
                    } else {
                        continue;
                    };
                    match event.event_type() {
                        EventType::Put => {
                            map.insert(key.to_vec(), kv.value().to_vec());
                        }
                        EventType::Delete => {
                            map.remove(key);
                        }
                    }
                }
                // A progress notification: every event up to its revision is applied.
                let progress = message.events().is_empty() && !message.created();
                let current = message.header().map(|h| h.revision()).unwrap_or(0);
                if progress
                    && let Some((want, _)) = &waiting
                    && current >= *want
                {
                    let (_, answer) = waiting.take().expect("waiting");
                    let raw = RawBook {
                        holds: holds.into_iter().collect(),
                        seats: seats.into_iter().collect(),
                        revision: current,
                    };
                    let book = coord.parse_book(raw)?;
                    let _ = answer.send(book);
                    return Ok(());
                }
            }
        }
    }
}
