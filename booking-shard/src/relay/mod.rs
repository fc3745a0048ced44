//! The relay: the leader reads the outbox in sequence order and delivers each event to
//! every configured sink, at least once and in order per sink. Each sink has its own
//! task and its own cursor in PostgreSQL, advanced (fenced, like every write) only
//! after the sink acknowledged; a new leader resumes from the cursors, so what can be
//! delivered twice is what was in flight. A failing sink retries with exponential
//! backoff and jitter over its window, then the event becomes a dead letter and the
//! sink moves on: one sink never holds up another, and the booking path never waits
//! for any.

mod event;
#[cfg(feature = "kafka")]
pub mod kafka;
mod metrics;
pub mod webhook;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use event::{CloudEvent, DATA_VERSION};
pub use metrics::{RelayMetrics, SinkLabel};

use crate::store::{EventRow, Page, Store, StoreError};

/// Why a sink did not acknowledge an event.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

/// Where events go: one job, deliver events and say which were acknowledged.
pub trait Sink: Send + Sync {
    /// The stable name the sink's cursor is kept under.
    fn name(&self) -> &str;
    fn deliver<'a>(&'a self, event: &'a CloudEvent) -> BoxFuture<'a, Result<(), DeliveryError>>;

    /// How many events one [`Sink::deliver_many`] may carry; 1 (the default): one
    /// event at a time, each acknowledged before the next is sent.
    fn window(&self) -> usize {
        1
    }

    /// Delivers `events` in order: one result per event tried, in order, ending with
    /// the first refusal (the events after it count as not delivered). A sink whose
    /// transport keeps order with several events in flight (Kafka's idempotent
    /// producer) overrides it; the default sends one at a time.
    fn deliver_many<'a>(
        &'a self,
        events: &'a [CloudEvent],
    ) -> BoxFuture<'a, Vec<Result<(), DeliveryError>>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(events.len());
            for event in events {
                let result = self.deliver(event).await;
                let refused = result.is_err();
                results.push(result);
                if refused {
                    break;
                }
            }
            results
        })
    }
}

/// How often a sink's `event_sink_lag_events` gauge is read from PostgreSQL.
const LAG_EVERY: Duration = Duration::from_secs(1);
/// The pause after a round that caught up, before reading the outbox again.
const GATHER: Duration = Duration::from_millis(20);

/// How the relay retries and keeps events.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long after its commit an event is still retried; a failure after that
    /// makes it a dead letter.
    pub retry_window: Duration,
    /// The first retry's delay (doubling, with jitter, up to `max_delay`).
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// How often an idle sink looks for new events.
    pub poll: Duration,
    /// Events read per round.
    pub batch: i64,
    /// The longest a sink's cursor lags what it acknowledged (what a new leader may
    /// deliver again).
    pub checkpoint: Duration,
    /// Outbox rows every sink acknowledged are pruned once this old.
    pub retention: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retry_window: Duration::from_secs(3600),
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(60),
            poll: Duration::from_millis(100),
            batch: 200,
            checkpoint: Duration::from_millis(200),
            retention: Duration::from_secs(7 * 86_400),
        }
    }
}

/// The configured sinks and their counters.
pub struct Relay {
    pub sinks: Vec<(Arc<dyn Sink>, SinkLabel)>,
    pub settings: Settings,
    pub metrics: RelayMetrics,
    source: String,
}

impl Relay {
    pub fn new(show_key: &str, sinks: Vec<Arc<dyn Sink>>, settings: Settings) -> Self {
        Self {
            sinks: sinks
                .into_iter()
                .map(|s| {
                    let label = SinkLabel {
                        sink: s.name().to_string(),
                    };
                    (s, label)
                })
                .collect(),
            settings,
            metrics: RelayMetrics::default(),
            source: CloudEvent::source_of(show_key),
        }
    }

    pub fn envelope(&self, row: &EventRow) -> CloudEvent {
        CloudEvent::of(&self.source, row)
    }

    pub fn sink_names(&self) -> Vec<String> {
        self.sinks
            .iter()
            .map(|(s, _)| s.name().to_string())
            .collect()
    }

    /// Runs while leading (`epoch`) until `lost`: one task per sink, plus retention.
    pub async fn run(self: Arc<Self>, store: Store, epoch: i64, lost: CancellationToken) {
        let mut tasks = Vec::new();
        for (sink, label) in &self.sinks {
            tasks.push(tokio::spawn(self.clone().run_sink(
                store.clone(),
                epoch,
                sink.clone(),
                label.clone(),
                lost.clone(),
            )));
        }
        tasks.push(tokio::spawn(self.clone().prune_loop(
            store,
            epoch,
            lost.clone(),
        )));
        lost.cancelled().await;
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn prune_loop(self: Arc<Self>, store: Store, epoch: i64, lost: CancellationToken) {
        let every = (self.settings.retention / 4)
            .clamp(Duration::from_millis(500), Duration::from_secs(60));
        let names = self.sink_names();
        loop {
            tokio::select! {
                _ = lost.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match store
                .prune_events(epoch, &names, self.settings.retention)
                .await
            {
                Ok(0) => {}
                Ok(n) => info!(pruned = n, "outbox rows past retention pruned"),
                Err(StoreError::Fenced) => return,
                Err(e) => warn!(error = %e, "pruning the outbox failed"),
            }
        }
    }

    async fn run_sink(
        self: Arc<Self>,
        store: Store,
        epoch: i64,
        sink: Arc<dyn Sink>,
        label: SinkLabel,
        lost: CancellationToken,
    ) {
        let name = sink.name().to_string();
        let m = &self.metrics;
        let mut cursor = loop {
            match store.cursor(&name).await {
                Ok(c) => break c,
                Err(e) => {
                    warn!(sink = %name, error = %e, "reading the cursor failed");
                    if !idle(&lost, Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        };
        info!(sink = %name, cursor, "relaying events");
        // The lag gauge's query runs at most once a second, not once a round.
        let mut lag_read: Option<Instant> = None;
        while !lost.is_cancelled() {
            if lag_read.is_none_or(|t| t.elapsed() >= LAG_EVERY) {
                lag_read = Some(Instant::now());
                if let Ok(last) = store.last_seq().await {
                    m.lag_events
                        .get_or_create(&label)
                        .set((last - cursor).max(0));
                }
            }
            let rows = match store.events_after(cursor, self.settings.batch).await {
                Ok(Page::Events(rows)) => rows,
                // Pruned past this sink's cursor cannot happen (pruning waits for every
                // sink); were it so, skip to what is left.
                Ok(Page::Expired { pruned }) => {
                    warn!(sink = %name, cursor, pruned, "cursor behind retention; skipping ahead");
                    cursor = pruned;
                    continue;
                }
                Err(e) => {
                    warn!(sink = %name, error = %e, "reading the outbox failed");
                    if !idle(&lost, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            if rows.is_empty() {
                m.lag_seconds.get_or_create(&label).set(0.0);
                if !idle(&lost, self.settings.poll).await {
                    return;
                }
                continue;
            }
            let full = rows.len() as i64 >= self.settings.batch;
            // Acknowledged up to `acked`; the cursor follows at least every
            // `checkpoint`, so a new leader redelivers only what was acknowledged since.
            let mut acked = cursor;
            let mut saved = Instant::now();
            let window = sink.window().max(1);
            let mut next = 0;
            // After a refusal in a window, that event goes the retrying way alone.
            let mut retrying = false;
            while next < rows.len() {
                if window > 1 && !retrying {
                    // A window of events in flight at once; the leading acknowledged
                    // ones count, the first refused one goes the retrying way below.
                    let chunk = &rows[next..(next + window).min(rows.len())];
                    m.lag_seconds
                        .get_or_create(&label)
                        .set(age(&chunk[0].time).as_secs_f64());
                    let events: Vec<CloudEvent> = chunk.iter().map(|r| self.envelope(r)).collect();
                    let results = tokio::select! {
                        _ = lost.cancelled() => break,
                        r = sink.deliver_many(&events) => r,
                    };
                    let ok = results.iter().take_while(|r| r.is_ok()).count();
                    for row in &chunk[..ok] {
                        self.delivered(&label, row);
                        acked = row.seq;
                    }
                    next += ok;
                    retrying = ok < chunk.len();
                } else {
                    let row = &rows[next];
                    m.lag_seconds
                        .get_or_create(&label)
                        .set(age(&row.time).as_secs_f64());
                    let event = self.envelope(row);
                    match self.deliver(&*sink, &event, &label, &lost).await {
                        Outcome::Delivered => {
                            self.delivered(&label, row);
                            acked = row.seq;
                        }
                        Outcome::Failed { attempts, error } => {
                            // Cursor up to here first, then the dead letter (which moves
                            // the cursor past this event) in its own fenced transaction.
                            if acked > cursor
                                && !self.advance(&store, epoch, &name, acked, &lost).await
                            {
                                return;
                            }
                            cursor = acked;
                            warn!(sink = %name, seq = row.seq, attempts, %error, "dead-lettered");
                            match store.dead_letter(epoch, &name, row, attempts, &error).await {
                                Ok(()) => {
                                    m.dead_letters.get_or_create(&label).inc();
                                    acked = row.seq;
                                    cursor = row.seq;
                                }
                                Err(StoreError::Fenced) => return,
                                Err(e) => {
                                    warn!(sink = %name, error = %e, "recording a dead letter failed");
                                    break;
                                }
                            }
                        }
                        Outcome::Stopped => break,
                    }
                    next += 1;
                    retrying = false;
                }
                if acked > cursor && saved.elapsed() >= self.settings.checkpoint {
                    if !self.advance(&store, epoch, &name, acked, &lost).await {
                        return;
                    }
                    cursor = acked;
                    saved = Instant::now();
                }
            }
            if acked > cursor {
                if !self.advance(&store, epoch, &name, acked, &lost).await {
                    return;
                }
                cursor = acked;
            }
            // A round short of a full batch caught up: let the next one gather a few
            // events (each round costs PostgreSQL a read and a cursor write).
            if !full && !idle(&lost, GATHER).await {
                return;
            }
        }
    }

    /// Counts one acknowledged event and its commit-to-acknowledgement time.
    fn delivered(&self, label: &SinkLabel, row: &EventRow) {
        self.metrics.delivered.get_or_create(label).inc();
        self.metrics
            .delivery_lag
            .get_or_create(label)
            .observe(age(&row.time).as_secs_f64());
    }

    /// Advances the cursor; false when this leader is fenced or lost (stop relaying).
    async fn advance(
        &self,
        store: &Store,
        epoch: i64,
        name: &str,
        seq: i64,
        lost: &CancellationToken,
    ) -> bool {
        loop {
            match store.advance_cursor(epoch, name, seq).await {
                Ok(()) => return true,
                Err(StoreError::Fenced) => return false,
                Err(e) => {
                    warn!(sink = %name, error = %e, "advancing the cursor failed; retrying");
                    // A leader that lost its term stops here: what it delivered since
                    // the last cursor is delivered again by the next leader.
                    if !idle(lost, Duration::from_millis(500)).await {
                        return false;
                    }
                }
            }
        }
    }

    /// One event to one sink: retried with exponential backoff and jitter until the
    /// sink acknowledges or the event is older than the retry window (at least one
    /// attempt). The window counts from the event's commit, so after a long outage
    /// the backlog is dead-lettered at once rather than one window per event.
    async fn deliver(
        &self,
        sink: &dyn Sink,
        event: &CloudEvent,
        label: &SinkLabel,
        lost: &CancellationToken,
    ) -> Outcome {
        let mut delays = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.settings.min_delay)
            .with_max_delay(self.settings.max_delay)
            .without_max_times()
            .build();
        let give_up = Instant::now() + self.settings.retry_window.saturating_sub(age(&event.time));
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let error = tokio::select! {
                _ = lost.cancelled() => return Outcome::Stopped,
                r = sink.deliver(event) => match r {
                    Ok(()) => return Outcome::Delivered,
                    Err(e) => e.0,
                },
            };
            let delay = delays.next().unwrap_or(self.settings.max_delay);
            if Instant::now() + delay > give_up {
                return Outcome::Failed { attempts, error };
            }
            self.metrics.retries.get_or_create(label).inc();
            if !idle(lost, delay).await {
                return Outcome::Stopped;
            }
        }
    }

    /// Delivers a dead letter once more (staff's replay). Ok(false): the sink refused.
    pub async fn replay(
        &self,
        store: &Store,
        epoch: i64,
        id: i64,
    ) -> Result<Option<bool>, StoreError> {
        let Some((letter, row)) = store.dead_letter_event(id).await? else {
            return Ok(None);
        };
        let Some((sink, label)) = self.sinks.iter().find(|(s, _)| s.name() == letter.sink) else {
            return Ok(None);
        };
        match sink.deliver(&self.envelope(&row)).await {
            Ok(()) => {
                store.mark_replayed(epoch, id).await?;
                self.metrics.delivered.get_or_create(label).inc();
                Ok(Some(true))
            }
            Err(e) => {
                warn!(sink = %letter.sink, id, error = %e, "replay refused");
                Ok(Some(false))
            }
        }
    }
}

enum Outcome {
    Delivered,
    Failed { attempts: u32, error: String },
    Stopped,
}

/// How long ago `time` (RFC 3339) was; zero when unreadable or in the future.
fn age(time: &str) -> Duration {
    chrono::DateTime::parse_from_rfc3339(time)
        .ok()
        .and_then(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .to_std()
                .ok()
        })
        .unwrap_or_default()
}

/// Sleeps `d`; false when `lost` fired first.
async fn idle(lost: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = lost.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}
