//! The shard engine: campaigning for leadership, and the leader's operations.
//!
//! A leader rules out conflicts in memory first (the [`Book`] behind one mutex, never
//! held across an await), then writes through to etcd or PostgreSQL with a write that
//! is fenced by its epoch. If a write says we are no longer the leader, or its outcome
//! is unknown, the leader steps down: the next leader reloads the truth from etcd and
//! PostgreSQL.

mod book;
mod bookings;
mod holds;
mod info;
mod leader;
mod limiter;

use book::{Book, HoldEntry, HoldState};
pub use info::{HoldRequest, HoldStatus, HoldView, PublicSeatEvent, SeatEvent, ShowInfo};
pub use limiter::RateLimiter;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use boxoffice_crds::{InventoryCounts, SeatId, ShowConfig, VenueLayout};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::coord::{Campaign, CoordError, Coordinator, HoldRecord, LeaderInfo, now_ms};
use crate::inventory::{Holding, Inventory, SeatIndex, Unavailable};
use crate::store::{Booking, GeneralTickets, NewBooking, Store, StoreError, new_id};

/// How long a confirm's PostgreSQL transaction may take before its outcome counts as
/// unknown (a partition never answers).
const DB_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new leader's load may take before it gives the key back.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What is wrong with a request's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadInput {
    Request,
    UnknownSeat,
    DuplicateSeat,
    Quantity,
    UnknownSection,
    UnknownCategory,
    UnknownArea,
}

/// What went wrong, in the domain's terms (the API maps them to HTTP once).
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("this replica does not lead the show")]
    NotLeader(Option<LeaderInfo>),
    #[error("{1}")]
    BadRequest(BadInput, String),
    #[error("seats are not available")]
    SeatsUnavailable(Vec<String>),
    #[error("only {available} tickets left in {area}")]
    SoldOut { area: String, available: u64 },
    #[error("{0}")]
    Limit(String),
    #[error("not found")]
    NotFound,
    #[error("the hold has expired")]
    Expired,
    #[error("{0}")]
    Conflict(String),
    #[error("the outcome is unknown; retry with the same Idempotency-Key")]
    Unknown,
    /// etcd refused the write for lack of space (its NOSPACE alarm): nothing was
    /// written, the leader keeps leading, and writes resume once space is reclaimed.
    #[error("seat storage is full; holds are paused until space is reclaimed, retry later")]
    StorageFull,
    #[error("{0}")]
    Closed(String),
    #[error("too many hold attempts; slow down")]
    RateLimited,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyMismatch,
}

pub type Result<T, E = ShardError> = std::result::Result<T, E>;

/// A leader's context: its epoch, the signal that leadership is lost, and the book.
pub struct Leadership {
    pub epoch: i64,
    pub lost: CancellationToken,
    book: Mutex<Book>,
}

/// What this replica is right now.
#[derive(Clone)]
pub enum Role {
    Candidate,
    Follower(Option<LeaderInfo>),
    Leader(Arc<Leadership>),
}

/// Counters the shard exports.
#[derive(Default)]
pub struct Stats {
    pub holds: Counter,
    pub hold_conflicts: Counter,
    pub confirms: Counter,
    pub expired: Counter,
    pub fenced_writes: Counter,
    pub leader_terms: Counter,
    /// etcd's size, quota and alarm, and what maintenance did about them.
    pub etcd: crate::maintenance::EtcdStats,
}

/// One booking shard replica.
pub struct Shard {
    pub show: ShowInfo,
    pub me: LeaderInfo,
    pub lease_ttl_secs: i64,
    coord: Arc<Coordinator>,
    store: Store,
    role: RwLock<Role>,
    /// Numbered seat changes, kept for resuming streams ([`crate::events`]).
    events: crate::events::EventLog,
    pub stats: Stats,
    /// Fault injection for tests (`BOXOFFICE_FAULT_DELAY_WRITES_MS`): pause between the
    /// in-memory decision and the durable write, so a test can depose the leader while
    /// it holds in-flight work. Only in a `test-switches` build (the test suite's).
    fault_delay: Option<Duration>,
    limiter: RateLimiter,
    /// Set when the show was closed in PostgreSQL (its Show was deleted).
    closed: std::sync::atomic::AtomicBool,
    seat_map: Mutex<Option<CachedMap>>,
}

/// The serialized seat map, shared by readers until the seats change (and at least
/// [`SEAT_MAP_MAX_AGE`] has passed).
struct CachedMap {
    epoch: i64,
    version: u64,
    built: Instant,
    body: axum::body::Bytes,
}

/// How stale a served seat map may be while seats keep changing. Readers that need
/// every change follow the SSE stream.
pub const SEAT_MAP_MAX_AGE: Duration = Duration::from_millis(100);

fn bump(c: &Counter) {
    c.inc();
}

impl Shard {
    pub fn new(
        show: ShowInfo,
        me: LeaderInfo,
        lease_ttl_secs: i64,
        coord: Coordinator,
        store: Store,
        limiter: RateLimiter,
    ) -> Arc<Self> {
        Arc::new(Self {
            show,
            me,
            lease_ttl_secs,
            coord: Arc::new(coord),
            store,
            role: RwLock::new(Role::Candidate),
            events: crate::events::EventLog::new(crate::events::RING_CAPACITY),
            stats: Stats::default(),
            fault_delay: std::env::var("BOXOFFICE_FAULT_DELAY_WRITES_MS")
                .ok()
                .filter(|_| cfg!(feature = "test-switches"))
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis),
            limiter,
            closed: std::sync::atomic::AtomicBool::new(false),
            seat_map: Mutex::new(None),
        })
    }

    /// Whether new holds may be taken now.
    fn sales_open(&self) -> Result<()> {
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ShardError::Closed(
                "sales are closed: the show was withdrawn".into(),
            ));
        }
        let now = now_ms();
        if self.show.opens_at_ms.is_some_and(|t| now < t) {
            return Err(ShardError::Closed("sales have not opened yet".into()));
        }
        if self.show.closes_at_ms.is_some_and(|t| now >= t) {
            return Err(ShardError::Closed("sales have closed".into()));
        }
        Ok(())
    }

    async fn fault_pause(&self) {
        if let Some(d) = self.fault_delay {
            warn!(?d, "fault injection: delaying a write");
            tokio::time::sleep(d).await;
        }
    }

    pub fn role(&self) -> Role {
        self.role
            .read()
            .map(|r| r.clone())
            .unwrap_or(Role::Candidate)
    }

    fn set_role(&self, role: Role) {
        if let Ok(mut r) = self.role.write() {
            *r = role;
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::events::Published> {
        self.events.subscribe()
    }

    /// The numbered seat changes of this term.
    pub fn events(&self) -> &crate::events::EventLog {
        &self.events
    }

    /// The leadership, or `NotLeader` naming who leads.
    pub fn leadership(&self) -> Result<Arc<Leadership>> {
        match self.role() {
            Role::Leader(l) if !l.lost.is_cancelled() => Ok(l),
            Role::Follower(leader) => Err(ShardError::NotLeader(leader)),
            _ => Err(ShardError::NotLeader(None)),
        }
    }

    fn book<'a>(&self, l: &'a Leadership) -> std::sync::MutexGuard<'a, Book> {
        l.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, event: SeatEvent) {
        self.events.publish(event);
    }

    /// The seat map as JSON bytes: rebuilt by `build` when seats changed since the
    /// cached copy and that copy is older than [`SEAT_MAP_MAX_AGE`], or when the
    /// leadership changed. Under load, thousands of readers share one serialization
    /// instead of each holding the book's lock while it is built.
    pub fn seat_map_json<T: Serialize>(
        &self,
        build: impl FnOnce(&Inventory) -> T,
    ) -> Result<axum::body::Bytes> {
        let l = self.leadership()?;
        let version = self.events.last().1;
        let mut cache = self.seat_map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.as_ref()
            && c.epoch == l.epoch
            && (c.version == version || c.built.elapsed() < SEAT_MAP_MAX_AGE)
        {
            return Ok(c.body.clone());
        }
        let value = build(&self.book(&l).inventory);
        let body = axum::body::Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        *cache = Some(CachedMap {
            epoch: l.epoch,
            version,
            built: Instant::now(),
            body: body.clone(),
        });
        Ok(body)
    }

    fn event(
        &self,
        book: &Book,
        kind: &'static str,
        holding: &Holding,
        hold: Option<&str>,
        booking: Option<&str>,
    ) -> SeatEvent {
        let (seats, area) = match holding {
            Holding::Seats(s) => (
                s.iter()
                    .map(|&i| book.inventory.seat_id(i).to_string())
                    .collect(),
                None,
            ),
            Holding::General { area, .. } => {
                (Vec::new(), Some(book.inventory.areas()[*area].name.clone()))
            }
        };
        SeatEvent {
            kind,
            seats,
            area,
            quantity: holding.quantity(),
            hold: hold.map(str::to_string),
            booking: booking.map(str::to_string),
            counts: book.inventory.counts(),
        }
    }

    fn price_of(&self, book: &Book, holding: &Holding) -> (i64, String) {
        let mut total = 0;
        let mut currency = String::new();
        let mut add = |category: &str, n: u64| {
            if let Some((minor, cur)) = self.show.prices.get(category) {
                total += minor * n as i64;
                currency.clone_from(cur);
            }
        };
        match holding {
            Holding::Seats(seats) => {
                for &s in seats {
                    let id = book.inventory.seat_id(s);
                    if let Some(sec) = book
                        .inventory
                        .sections()
                        .iter()
                        .find(|x| x.name == id.section)
                    {
                        add(&sec.category, 1);
                    }
                }
            }
            Holding::General { area, quantity } => {
                add(&book.inventory.areas()[*area].category, *quantity)
            }
        }
        (total, currency)
    }

    fn view(&self, book: &Book, entry: &HoldEntry) -> HoldView {
        let (amount_minor, currency) = self.price_of(book, &entry.holding);
        HoldView {
            id: entry.record.id.clone(),
            user: entry.record.user.clone(),
            seats: entry.record.seats.clone(),
            area: entry.record.area.clone(),
            quantity: entry.record.quantity,
            expires_at_ms: entry.record.expires_at_ms,
            amount_minor,
            currency,
            status: match entry.state {
                HoldState::Confirming => HoldStatus::Confirming,
                _ => HoldStatus::Held,
            },
        }
    }

    fn step_down(&self, l: &Leadership, why: &str) {
        warn!(epoch = l.epoch, why, "stepping down");
        bump(&self.stats.fenced_writes);
        l.lost.cancel();
    }

    /// Counts for the whole show.
    pub fn counts(&self) -> Result<InventoryCounts> {
        let l = self.leadership()?;
        Ok(self.book(&l).inventory.counts())
    }

    /// Runs `f` over the leader's inventory (seat map, availability).
    pub fn with_inventory<T>(&self, f: impl FnOnce(&Inventory) -> T) -> Result<T> {
        let l = self.leadership()?;
        let book = self.book(&l);
        Ok(f(&book.inventory))
    }
}
