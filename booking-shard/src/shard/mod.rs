//! The shard: campaigning for leadership, and the leader's operations as adapters
//! around the booking engine ([`crate::engine`]).
//!
//! A leader asks the engine first (its [`Engine`] behind one mutex, never held across
//! an await): the engine rules out conflicts in memory and says what to write; the
//! adapters here write through to etcd or PostgreSQL with a write that is fenced by the
//! epoch, and report the outcome back. If a write says we are no longer the leader, or
//! its outcome is unknown, the engine's reaction is to step down: the next leader
//! reloads the truth from etcd and PostgreSQL.

mod bookings;
mod feed;
mod holds;
mod info;
mod leader;
mod limiter;
mod payments;

pub use crate::engine::{BadInput, HoldRequest, Result, ShardError};
pub use crate::payments::{Callback, CallbackKind};
pub use bookings::AuditAs;
pub use feed::FeedPage;
pub use info::{HoldStatus, HoldView, PublicSeatEvent, SeatEvent, ShowInfo};
pub use limiter::RateLimiter;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use boxoffice_crds::InventoryCounts;
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::coord::{CoordError, Coordinator, LeaderInfo};
use crate::engine::{Engine, Event, Failure, Reaction};
use crate::inventory::Inventory;
use crate::store::Store;

/// How long a confirm's PostgreSQL transaction may take before its outcome counts as
/// unknown (a partition never answers).
const DB_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new leader's load may take before it gives the key back.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A leader's context: its epoch, the signal that leadership is lost, and the engine
/// (the book and its rules).
pub struct Leadership {
    pub epoch: i64,
    pub lost: CancellationToken,
    engine: Mutex<Engine>,
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
    /// Where the show's events go; the leader runs it ([`crate::relay`]).
    pub relay: std::sync::OnceLock<Arc<crate::relay::Relay>>,
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
            relay: std::sync::OnceLock::new(),
        })
    }

    /// Whether the show was withdrawn (closed in PostgreSQL).
    fn closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Relaxed)
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

    fn engine<'a>(&self, l: &'a Leadership) -> std::sync::MutexGuard<'a, Engine> {
        l.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, event: Event) {
        self.events.publish(event.into());
    }

    /// Carries out the engine's answer to a failed write; returns the client's error.
    async fn react(&self, l: &Leadership, reaction: Reaction) -> ShardError {
        if let Some(why) = reaction.step_down {
            self.step_down(l, why);
        }
        for effect in reaction.effects {
            let _ = self.delete(l, effect).await;
        }
        reaction.error
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
        let value = build(self.engine(&l).inventory());
        let body = axum::body::Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        *cache = Some(CachedMap {
            epoch: l.epoch,
            version,
            built: Instant::now(),
            body: body.clone(),
        });
        Ok(body)
    }

    fn step_down(&self, l: &Leadership, why: &str) {
        warn!(epoch = l.epoch, why, "stepping down");
        bump(&self.stats.fenced_writes);
        l.lost.cancel();
    }

    /// Counts for the whole show.
    pub fn counts(&self) -> Result<InventoryCounts> {
        let l = self.leadership()?;
        Ok(self.engine(&l).inventory().counts())
    }

    /// Runs `f` over the leader's inventory (seat map, availability).
    pub fn with_inventory<T>(&self, f: impl FnOnce(&Inventory) -> T) -> Result<T> {
        let l = self.leadership()?;
        let engine = self.engine(&l);
        Ok(f(engine.inventory()))
    }
}

/// How an etcd write failed, in the engine's terms.
fn failure(e: &CoordError) -> Failure {
    match e {
        CoordError::HoldExists | CoordError::HoldGone => Failure::Refused,
        CoordError::Fenced => Failure::Fenced,
        CoordError::NoSpace => Failure::NoSpace,
        other => {
            warn!(error = %other, "an etcd write failed");
            Failure::Unknown
        }
    }
}
