//! The shard engine: campaigning for leadership, and the leader's operations.
//!
//! A leader rules out conflicts in memory first (the [`Book`] behind one mutex, never
//! held across an await), then writes through to etcd or PostgreSQL with a write that
//! is fenced by its epoch. If a write says we are no longer the leader, or its outcome
//! is unknown, the leader steps down: the next leader reloads the truth from etcd and
//! PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use boxoffice_crds::{InventoryCounts, SeatId, ShowConfig, VenueLayout};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::coord::{Campaign, CoordError, Coordinator, HoldRecord, LeaderInfo, now_ms};
use crate::inventory::{Holding, Inventory, SeatIndex, Unavailable};
use crate::store::{Booking, GeneralTickets, NewBooking, Store, StoreError, new_id};

/// What went wrong, in terms the API maps to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("this replica does not lead the show")]
    NotLeader(Option<LeaderInfo>),
    #[error("{1}")]
    BadRequest(&'static str, String),
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
    #[error("{0}")]
    Closed(String),
    #[error("too many hold attempts; slow down")]
    RateLimited,
}

pub type Result<T, E = ShardError> = std::result::Result<T, E>;

/// The show as the shard serves it.
pub struct ShowInfo {
    pub config: ShowConfig,
    pub layout: VenueLayout,
    /// Category → (price in minor units, currency).
    pub prices: HashMap<String, (i64, String)>,
    pub hold_ttl: Duration,
    pub max_per_hold: u32,
    pub max_per_user: Option<u32>,
    /// Sales window in Unix ms (from `spec.sales`).
    pub opens_at_ms: Option<i64>,
    pub closes_at_ms: Option<i64>,
}

fn rfc3339_ms(s: &Option<String>) -> anyhow::Result<Option<i64>> {
    s.as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|e| anyhow::anyhow!("bad sales time {t:?}: {e}"))
        })
        .transpose()
}

impl ShowInfo {
    pub fn new(config: ShowConfig) -> anyhow::Result<Self> {
        let layout = VenueLayout::from_seating(&config.spec.seating)?;
        let prices = config
            .spec
            .categories
            .iter()
            .map(|c| (c.name.clone(), (price_minor(&c.price), c.currency.clone())))
            .collect();
        let hold_ttl = boxoffice_crds::validate::parse_duration(&config.spec.holds.ttl)
            .ok_or_else(|| anyhow::anyhow!("bad holds.ttl"))?;
        let sales = config.spec.sales.clone().unwrap_or_default();
        Ok(Self {
            opens_at_ms: rfc3339_ms(&sales.opens_at)?,
            closes_at_ms: rfc3339_ms(&sales.closes_at)?,
            max_per_hold: config.spec.holds.max_seats_per_hold,
            max_per_user: config.spec.holds.max_seats_per_user,
            config,
            layout,
            prices,
            hold_ttl,
        })
    }

    /// `namespace/name`, the show's key in PostgreSQL.
    pub fn key(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }
}

/// "49.50" → 4950.
fn price_minor(price: &str) -> i64 {
    let (whole, frac) = price.split_once('.').unwrap_or((price, ""));
    let whole: i64 = whole.parse().unwrap_or(0);
    let frac: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
    whole * 100 + frac
}

/// A hold request.
#[derive(Debug, Clone)]
pub enum HoldRequest {
    Seats(Vec<String>),
    Best {
        quantity: u32,
        section: Option<String>,
        category: Option<String>,
    },
    General {
        area: String,
        quantity: u64,
    },
}

/// A hold as clients see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HoldView {
    pub id: String,
    pub user: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub quantity: u64,
    pub expires_at_ms: i64,
    pub amount_minor: i64,
    pub currency: String,
    pub status: &'static str,
}

/// A change of seats, for Server-Sent Events.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatEvent {
    /// held, released, expired, sold, returned.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub quantity: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking: Option<String>,
    pub counts: InventoryCounts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldState {
    /// Written to memory, etcd write in flight.
    Pending,
    Live,
    /// A confirm is in flight: expiry must not release it.
    Confirming,
    /// Being deleted (expiry or release).
    Ending,
}

#[derive(Debug)]
struct HoldEntry {
    record: HoldRecord,
    holding: Holding,
    deadline: Instant,
    state: HoldState,
}

/// The leader's in-memory book: inventory plus holds.
struct Book {
    inventory: Inventory,
    slots: Vec<Option<HoldEntry>>,
    free: Vec<u32>,
    by_id: HashMap<String, u32>,
    /// Seats and tickets each user holds or owns.
    per_user: HashMap<String, u64>,
    /// (user, Idempotency-Key) → hold id.
    idempotent: HashMap<(String, String), String>,
}

impl Book {
    fn new(layout: &VenueLayout) -> Self {
        Self {
            inventory: Inventory::new(layout),
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            per_user: HashMap::new(),
            idempotent: HashMap::new(),
        }
    }

    fn next_slot(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            (self.slots.len() - 1) as u32
        })
    }

    fn insert(&mut self, slot: u32, entry: HoldEntry) {
        self.by_id.insert(entry.record.id.clone(), slot);
        if let Some(key) = &entry.record.idempotency_key {
            self.idempotent.insert(
                (entry.record.user.clone(), key.clone()),
                entry.record.id.clone(),
            );
        }
        *self.per_user.entry(entry.record.user.clone()).or_default() += entry.holding.quantity();
        self.slots[slot as usize] = Some(entry);
    }

    fn entry(&self, id: &str) -> Option<(u32, &HoldEntry)> {
        let slot = *self.by_id.get(id)?;
        self.slots[slot as usize].as_ref().map(|e| (slot, e))
    }

    fn entry_mut(&mut self, id: &str) -> Option<&mut HoldEntry> {
        let slot = *self.by_id.get(id)?;
        self.slots[slot as usize].as_mut()
    }

    /// Removes a hold; `sold` turns its seats into sold ones instead of releasing them.
    fn remove(&mut self, id: &str, sold: bool) -> Option<HoldEntry> {
        let slot = self.by_id.remove(id)?;
        let entry = self.slots[slot as usize].take()?;
        self.free.push(slot);
        if let Some(key) = &entry.record.idempotency_key {
            self.idempotent
                .remove(&(entry.record.user.clone(), key.clone()));
        }
        if sold {
            self.inventory.sell(&entry.holding);
        } else {
            self.inventory.release(slot, &entry.holding);
            if let Some(n) = self.per_user.get_mut(&entry.record.user) {
                *n = n.saturating_sub(entry.holding.quantity());
            }
        }
        Some(entry)
    }
}

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
    pub holds: std::sync::atomic::AtomicU64,
    pub hold_conflicts: std::sync::atomic::AtomicU64,
    pub confirms: std::sync::atomic::AtomicU64,
    pub expired: std::sync::atomic::AtomicU64,
    pub fenced_writes: std::sync::atomic::AtomicU64,
    pub leader_terms: std::sync::atomic::AtomicU64,
}

/// One booking shard replica.
pub struct Shard {
    pub show: ShowInfo,
    pub me: LeaderInfo,
    pub lease_ttl_secs: i64,
    coord: Coordinator,
    store: Store,
    role: RwLock<Role>,
    events: broadcast::Sender<SeatEvent>,
    pub stats: Stats,
    /// Fault injection for tests (`BOXOFFICE_FAULT_DELAY_WRITES_MS`): pause between the
    /// in-memory decision and the durable write, so a test can depose the leader while
    /// it holds in-flight work. Never set in production.
    fault_delay: Option<Duration>,
    limiter: RateLimiter,
    /// Set when the show was closed in PostgreSQL (its Show was deleted).
    closed: std::sync::atomic::AtomicBool,
}

/// Per-user token buckets for hold attempts.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `user`; false when the bucket is empty.
    pub fn allow(&self, user: &str) -> bool {
        if self.per_second <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Forget users whose buckets have refilled: they carry no state.
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(user.to_string()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn bump(c: &std::sync::atomic::AtomicU64) {
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
        let (events, _) = broadcast::channel(4096);
        Arc::new(Self {
            show,
            me,
            lease_ttl_secs,
            coord,
            store,
            role: RwLock::new(Role::Candidate),
            events,
            stats: Stats::default(),
            fault_delay: std::env::var("BOXOFFICE_FAULT_DELAY_WRITES_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis),
            limiter,
            closed: std::sync::atomic::AtomicBool::new(false),
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

    pub fn subscribe(&self) -> broadcast::Receiver<SeatEvent> {
        self.events.subscribe()
    }

    /// The leadership, or `NotLeader` naming who leads.
    pub fn leadership(&self) -> Result<Arc<Leadership>> {
        match self.role() {
            Role::Leader(l) if !l.lost.is_cancelled() => Ok(l),
            Role::Follower(leader) => Err(ShardError::NotLeader(leader)),
            _ => Err(ShardError::NotLeader(None)),
        }
    }

    /// Campaigns until `shutdown`; leads while it can. On shutdown a leader resigns so a
    /// standby takes over at once.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.coord.campaign(&self.me, self.lease_ttl_secs).await {
                Err(e) => {
                    warn!(error = %e, "campaign failed; retrying");
                    self.set_role(Role::Candidate);
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Ok(Campaign::Lost { leader, revision }) => {
                    self.set_role(Role::Follower(leader));
                    let watched = self
                        .coord
                        .wait_for_vacancy(revision, &shutdown, |l| {
                            self.set_role(Role::Follower(l));
                        })
                        .await;
                    if let Err(e) = watched {
                        warn!(error = %e, "watching the leader failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                Ok(Campaign::Won { lease, epoch }) => {
                    self.lead(lease, epoch, &shutdown).await;
                }
            }
        }
        self.set_role(Role::Candidate);
    }

    async fn lead(self: &Arc<Self>, lease: i64, epoch: i64, shutdown: &CancellationToken) {
        let lost = shutdown.child_token();
        self.coord
            .spawn_keep_alive(lease, self.lease_ttl_secs, lost.clone());
        info!(epoch, "won the election; loading");
        match self.load(epoch, lost.clone()).await {
            Ok(leadership) => {
                bump(&self.stats.leader_terms);
                let leadership = Arc::new(leadership);
                self.set_role(Role::Leader(leadership.clone()));
                info!(epoch, "leading");
                let expirer = tokio::spawn(self.clone().expire_loop(leadership.clone()));
                lost.cancelled().await;
                // Stop serving writes first, then let go of the key.
                self.set_role(Role::Candidate);
                expirer.abort();
                info!(epoch, "leadership ended");
            }
            Err(e) => {
                error!(error = %e, epoch, "could not take over; stepping down");
                lost.cancel();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        self.coord.resign(lease).await;
    }

    /// A new leader's load: raise the fencing epoch, then sold seats from PostgreSQL and
    /// live holds from etcd.
    async fn load(&self, epoch: i64, lost: CancellationToken) -> anyhow::Result<Leadership> {
        if !self.store.raise_epoch(epoch, &self.me.pod).await? {
            anyhow::bail!("PostgreSQL already has a newer epoch than {epoch}");
        }
        let areas: Vec<(String, i64)> = self
            .show
            .layout
            .areas
            .iter()
            .map(|a| (a.name.clone(), a.capacity as i64))
            .collect();
        self.store.ensure_areas(&areas).await?;
        let sold = self.store.load_sold().await?;
        let (holds, locks) = self.coord.load().await?;

        let mut book = Book::new(&self.show.layout);
        for seat in &sold.seats {
            if let Some(i) = seat
                .parse::<SeatId>()
                .ok()
                .and_then(|s| book.inventory.seat_index(&s))
            {
                book.inventory.load_sold(&Holding::Seats(vec![i]));
            }
        }
        for (area, quantity) in &sold.general {
            if let Some(a) = book.inventory.area_index(area) {
                book.inventory.load_sold(&Holding::General {
                    area: a,
                    quantity: *quantity as u64,
                });
            }
        }
        for (user, n) in &sold.per_user {
            book.per_user.insert(user.clone(), *n as u64);
        }
        let confirmed: std::collections::HashSet<&String> = sold.confirmed_holds.iter().collect();
        let mut stale = Vec::new();
        let now_wall = now_ms();
        let now = Instant::now();
        for record in holds {
            if confirmed.contains(&record.id) || record.expires_at_ms <= now_wall {
                stale.push(record);
                continue;
            }
            let holding = match self.holding_of(&book.inventory, &record) {
                Some(h) => h,
                None => {
                    stale.push(record);
                    continue;
                }
            };
            let slot = book.next_slot();
            let taken = match &holding {
                Holding::Seats(seats) => book.inventory.hold_seats(slot, seats),
                Holding::General { area, quantity } => {
                    book.inventory.hold_general(*area, *quantity)
                }
            };
            if taken.is_err() {
                book.free.push(slot);
                stale.push(record);
                continue;
            }
            let remaining = Duration::from_millis((record.expires_at_ms - now_wall) as u64);
            book.insert(
                slot,
                HoldEntry {
                    record,
                    holding,
                    deadline: now + remaining,
                    state: HoldState::Live,
                },
            );
        }
        if !stale.is_empty() {
            let refs: Vec<&HoldRecord> = stale.iter().collect();
            self.coord.delete_holds(epoch, &refs).await?;
        }
        // Seat locks whose hold is not live (left by an interrupted delete): memory says
        // the seat is free, so the lock must go or every hold on it would be refused.
        let orphans: Vec<String> = locks
            .into_iter()
            .filter(|(_, hold)| !book.by_id.contains_key(hold))
            .map(|(seat, _)| seat)
            .collect();
        if !orphans.is_empty() {
            warn!(count = orphans.len(), "removing orphaned seat locks");
            self.coord.delete_seat_locks(epoch, &orphans).await?;
        }
        info!(
            epoch,
            sold = sold.seats.len(),
            holds = book.by_id.len(),
            "loaded the book"
        );
        Ok(Leadership {
            epoch,
            lost,
            book: Mutex::new(book),
        })
    }

    fn holding_of(&self, inventory: &Inventory, record: &HoldRecord) -> Option<Holding> {
        match &record.area {
            Some(area) => Some(Holding::General {
                area: inventory.area_index(area)?,
                quantity: record.quantity,
            }),
            None => record
                .seats
                .iter()
                .map(|s| {
                    s.parse::<SeatId>()
                        .ok()
                        .and_then(|id| inventory.seat_index(&id))
                })
                .collect::<Option<Vec<_>>>()
                .map(Holding::Seats),
        }
    }

    fn book<'a>(&self, l: &'a Leadership) -> std::sync::MutexGuard<'a, Book> {
        l.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, event: SeatEvent) {
        let _ = self.events.send(event);
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
                HoldState::Confirming => "confirming",
                _ => "held",
            },
        }
    }

    fn step_down(&self, l: &Leadership, why: &str) {
        warn!(epoch = l.epoch, why, "stepping down");
        bump(&self.stats.fenced_writes);
        l.lost.cancel();
    }

    /// Holds seats for `user`. With an idempotency key, a retry returns the first hold
    /// (`false`: not newly created).
    pub async fn hold(
        &self,
        user: &str,
        request: HoldRequest,
        idempotency_key: Option<String>,
    ) -> Result<(HoldView, bool)> {
        let l = self.leadership()?;
        self.sales_open()?;
        if !self.limiter.allow(user) {
            return Err(ShardError::RateLimited);
        }
        let (record, holding) = {
            let mut book = self.book(&l);
            if let Some(key) = &idempotency_key
                && let Some(id) = book
                    .idempotent
                    .get(&(user.to_string(), key.clone()))
                    .cloned()
                && let Some((_, entry)) = book.entry(&id)
            {
                // The first request's etcd write may still fail: answer only once the
                // hold is live.
                if entry.state == HoldState::Pending {
                    return Err(ShardError::Conflict(
                        "the first request with this Idempotency-Key is still in flight; retry"
                            .into(),
                    ));
                }
                return Ok((self.view(&book, entry), false));
            }
            let holding = self.plan(&book, &request)?;
            let quantity = holding.quantity();
            if quantity > u64::from(self.show.max_per_hold) {
                return Err(ShardError::Limit(format!(
                    "at most {} seats per hold",
                    self.show.max_per_hold
                )));
            }
            if let Some(max) = self.show.max_per_user {
                let owned = book.per_user.get(user).copied().unwrap_or(0);
                if owned + quantity > u64::from(max) {
                    return Err(ShardError::Limit(format!(
                        "at most {max} seats per user for this show ({owned} held or bought)"
                    )));
                }
            }
            let slot = book.next_slot();
            let taken = match &holding {
                Holding::Seats(seats) => book.inventory.hold_seats(slot, seats),
                Holding::General { area, quantity } => {
                    book.inventory.hold_general(*area, *quantity)
                }
            };
            if let Err(e) = taken {
                book.free.push(slot);
                bump(&self.stats.hold_conflicts);
                return Err(match e {
                    Unavailable::Seats(bad) => ShardError::SeatsUnavailable(
                        bad.iter()
                            .map(|&i| book.inventory.seat_id(i).to_string())
                            .collect(),
                    ),
                    Unavailable::General { area, available } => {
                        ShardError::SoldOut { area, available }
                    }
                });
            }
            let ttl = self.show.hold_ttl;
            let record = HoldRecord {
                id: new_id(),
                user: user.to_string(),
                seats: match &holding {
                    Holding::Seats(s) => s
                        .iter()
                        .map(|&i| book.inventory.seat_id(i).to_string())
                        .collect(),
                    Holding::General { .. } => Vec::new(),
                },
                area: match &holding {
                    Holding::General { area, .. } => {
                        Some(book.inventory.areas()[*area].name.clone())
                    }
                    Holding::Seats(_) => None,
                },
                quantity,
                expires_at_ms: now_ms() + ttl.as_millis() as i64,
                idempotency_key,
                created_at_ms: now_ms(),
            };
            book.insert(
                slot,
                HoldEntry {
                    record: record.clone(),
                    holding: holding.clone(),
                    deadline: Instant::now() + ttl,
                    state: HoldState::Pending,
                },
            );
            (record, holding)
        };

        self.fault_pause().await;
        let written = async {
            let lease = self.coord.hold_lease(record.expires_at_ms).await?;
            self.coord.create_hold(l.epoch, &record, lease).await
        }
        .await;
        let mut book = self.book(&l);
        match written {
            Ok(()) => {
                bump(&self.stats.holds);
                match book.entry_mut(&record.id) {
                    Some(e) => e.state = HoldState::Live,
                    None => return Err(ShardError::Unknown),
                }
                let view = match book.entry(&record.id) {
                    Some((_, e)) => self.view(&book, e),
                    None => return Err(ShardError::Unknown),
                };
                let ev = self.event(&book, "held", &holding, Some(&record.id), None);
                drop(book);
                self.publish(ev);
                Ok((view, true))
            }
            Err(e) => {
                book.remove(&record.id, false);
                drop(book);
                match e {
                    CoordError::SeatTaken => {
                        // Memory said free but etcd has a lock: memory is stale.
                        self.step_down(&l, "etcd holds a lock memory did not know");
                        Err(ShardError::SeatsUnavailable(record.seats))
                    }
                    CoordError::Fenced => {
                        self.step_down(&l, "fenced by etcd on hold");
                        Err(ShardError::NotLeader(None))
                    }
                    other => {
                        // Unknown outcome: the locks may exist. Step down so the next
                        // leader loads what etcd really has.
                        self.step_down(&l, &format!("hold write failed: {other}"));
                        Err(ShardError::Unknown)
                    }
                }
            }
        }
    }

    /// Which seats or tickets a request wants.
    fn plan(&self, book: &Book, request: &HoldRequest) -> Result<Holding> {
        let inv = &book.inventory;
        match request {
            HoldRequest::Seats(ids) => {
                if ids.is_empty() {
                    return Err(ShardError::BadRequest(
                        "invalid_request",
                        "seats is empty".into(),
                    ));
                }
                if ids.len() > self.show.max_per_hold as usize {
                    return Err(ShardError::Limit(format!(
                        "at most {} seats per hold",
                        self.show.max_per_hold
                    )));
                }
                let mut seats = Vec::with_capacity(ids.len());
                let mut unknown = Vec::new();
                for raw in ids {
                    match raw
                        .parse::<SeatId>()
                        .ok()
                        .and_then(|id| inv.seat_index(&id))
                    {
                        Some(i) => seats.push(i),
                        None => unknown.push(raw.chars().take(64).collect::<String>()),
                    }
                }
                if !unknown.is_empty() {
                    return Err(ShardError::BadRequest(
                        "unknown_seat",
                        format!("no such seats: {}", unknown.join(", ")),
                    ));
                }
                let mut sorted = seats.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.len() != seats.len() {
                    return Err(ShardError::BadRequest(
                        "duplicate_seat",
                        "a seat appears more than once".into(),
                    ));
                }
                Ok(Holding::Seats(seats))
            }
            HoldRequest::Best {
                quantity,
                section,
                category,
            } => {
                if *quantity == 0 || *quantity > self.show.max_per_hold {
                    return Err(ShardError::BadRequest(
                        "invalid_quantity",
                        format!("quantity must be 1 to {}", self.show.max_per_hold),
                    ));
                }
                if let Some(s) = section
                    && !inv.sections().iter().any(|x| &x.name == s)
                {
                    return Err(ShardError::BadRequest(
                        "unknown_section",
                        format!("no section {s}"),
                    ));
                }
                if let Some(c) = category
                    && !self.show.prices.contains_key(c)
                {
                    return Err(ShardError::BadRequest(
                        "unknown_category",
                        format!("no category {c}"),
                    ));
                }
                inv.best_available(section.as_deref(), category.as_deref(), *quantity)
                    .map(Holding::Seats)
                    .ok_or_else(|| ShardError::SeatsUnavailable(Vec::new()))
            }
            HoldRequest::General { area, quantity } => {
                let a = inv.area_index(area).ok_or_else(|| {
                    ShardError::BadRequest(
                        "unknown_area",
                        format!("no general-admission area {area}"),
                    )
                })?;
                if *quantity == 0 || *quantity > u64::from(self.show.max_per_hold) {
                    return Err(ShardError::BadRequest(
                        "invalid_quantity",
                        format!("quantity must be 1 to {}", self.show.max_per_hold),
                    ));
                }
                Ok(Holding::General {
                    area: a,
                    quantity: *quantity,
                })
            }
        }
    }

    /// A hold of `user` (staff may see any).
    pub fn get_hold(&self, user: &str, staff: bool, id: &str) -> Result<HoldView> {
        let l = self.leadership()?;
        let book = self.book(&l);
        match book.entry(id) {
            Some((_, e)) if staff || e.record.user == user => Ok(self.view(&book, e)),
            _ => Err(ShardError::NotFound),
        }
    }

    /// Releases a hold early.
    pub async fn release(&self, user: &str, staff: bool, id: &str) -> Result<()> {
        let l = self.leadership()?;
        let record = {
            let mut book = self.book(&l);
            let entry = book.entry_mut(id).ok_or(ShardError::NotFound)?;
            if !staff && entry.record.user != user {
                return Err(ShardError::NotFound);
            }
            if entry.state != HoldState::Live {
                return Err(ShardError::Conflict("the hold is busy; retry".into()));
            }
            entry.state = HoldState::Ending;
            entry.record.clone()
        };
        self.end_holds(&l, vec![record], "released").await
    }

    /// Extends a live hold by the show's hold TTL from now. A hold lives at most three
    /// TTLs in all, so seats cannot be kept off sale indefinitely.
    pub async fn extend(&self, user: &str, staff: bool, id: &str) -> Result<HoldView> {
        let l = self.leadership()?;
        let ttl = self.show.hold_ttl;
        let record = {
            let mut book = self.book(&l);
            let entry = book.entry_mut(id).ok_or(ShardError::NotFound)?;
            if !staff && entry.record.user != user {
                return Err(ShardError::NotFound);
            }
            match entry.state {
                HoldState::Live => {}
                HoldState::Ending => return Err(ShardError::Expired),
                _ => return Err(ShardError::Conflict("the hold is busy; retry".into())),
            }
            let now = now_ms();
            let limit = entry.record.created_at_ms + 3 * ttl.as_millis() as i64;
            let expires_at_ms = (now + ttl.as_millis() as i64).min(limit);
            if entry.record.created_at_ms > 0 && expires_at_ms <= entry.record.expires_at_ms {
                return Err(ShardError::Limit(format!(
                    "a hold lives at most {}s in all",
                    3 * ttl.as_secs()
                )));
            }
            // Pending: the expirer leaves it alone while the new lease is written.
            entry.state = HoldState::Pending;
            HoldRecord {
                expires_at_ms,
                ..entry.record.clone()
            }
        };
        let written = async {
            let lease = self.coord.hold_lease(record.expires_at_ms).await?;
            self.coord.extend_hold(l.epoch, &record, lease).await
        }
        .await;
        match written {
            Ok(()) => {
                let mut book = self.book(&l);
                let entry = book.entry_mut(id).ok_or(ShardError::NotFound)?;
                entry.deadline += Duration::from_millis(
                    (record.expires_at_ms - entry.record.expires_at_ms).max(0) as u64,
                );
                entry.record = record;
                entry.state = HoldState::Live;
                let book = &*book;
                let (_, entry) = book.entry(id).ok_or(ShardError::NotFound)?;
                Ok(self.view(book, entry))
            }
            Err(CoordError::HoldGone) => {
                if let Some(e) = self.book(&l).entry_mut(id) {
                    e.state = HoldState::Ending;
                }
                let _ = self.end_holds(&l, vec![record], "expired").await;
                Err(ShardError::Expired)
            }
            Err(CoordError::Fenced) => {
                self.step_down(&l, "fenced by etcd on extend");
                Err(ShardError::NotLeader(None))
            }
            Err(e) => {
                self.step_down(&l, &format!("extending a hold failed: {e}"));
                Err(ShardError::Unknown)
            }
        }
    }

    /// Deletes holds from etcd, then returns their seats to sale in memory.
    async fn end_holds(
        &self,
        l: &Leadership,
        records: Vec<HoldRecord>,
        kind: &'static str,
    ) -> Result<()> {
        let refs: Vec<&HoldRecord> = records.iter().collect();
        if let Err(e) = self.coord.delete_holds(l.epoch, &refs).await {
            self.step_down(l, &format!("deleting holds failed: {e}"));
            return Err(ShardError::NotLeader(None));
        }
        let mut events = Vec::with_capacity(records.len());
        {
            let mut book = self.book(l);
            for r in &records {
                if let Some(entry) = book.remove(&r.id, false) {
                    events.push(self.event(&book, kind, &entry.holding, Some(&r.id), None));
                }
            }
        }
        for ev in events {
            if kind == "expired" {
                bump(&self.stats.expired);
            }
            self.publish(ev);
        }
        Ok(())
    }

    async fn expire_loop(self: Arc<Self>, l: Arc<Leadership>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut ticks = 0u64;
        while !l.lost.is_cancelled() {
            tick.tick().await;
            ticks += 1;
            if ticks % 20 == 1 {
                // The operator closes a withdrawn show in PostgreSQL; notice within ~2 s.
                if let Ok(closed) = self.store.is_closed().await {
                    self.closed
                        .store(closed, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let due: Vec<HoldRecord> = {
                let mut book = self.book(&l);
                let now = Instant::now();
                let ids: Vec<String> = book
                    .slots
                    .iter()
                    .flatten()
                    .filter(|e| e.state == HoldState::Live && e.deadline <= now)
                    .map(|e| e.record.id.clone())
                    .collect();
                ids.iter()
                    .filter_map(|id| {
                        let e = book.entry_mut(id)?;
                        e.state = HoldState::Ending;
                        Some(e.record.clone())
                    })
                    .collect()
            };
            if !due.is_empty() {
                let _ = self.end_holds(&l, due, "expired").await;
            }
        }
    }

    /// Confirms a hold into a booking. Confirming the same hold again returns the
    /// first booking (`false`: not newly created).
    pub async fn confirm(
        &self,
        user: &str,
        hold_id: &str,
        payment_reference: &str,
    ) -> Result<(Booking, bool)> {
        let l = self.leadership()?;
        let planned = {
            let mut book = self.book(&l);
            match book.entry(hold_id) {
                None => None,
                Some((_, entry)) => {
                    if entry.record.user != user {
                        return Err(ShardError::NotFound);
                    }
                    match entry.state {
                        HoldState::Live => {}
                        HoldState::Ending => return Err(ShardError::Expired),
                        _ => return Err(ShardError::Conflict("the hold is busy; retry".into())),
                    }
                    if entry.deadline <= Instant::now() {
                        return Err(ShardError::Expired);
                    }
                    let (amount, currency) = self.price_of(&book, &entry.holding);
                    let (record, holding) = (entry.record.clone(), entry.holding.clone());
                    if let Some(e) = book.entry_mut(hold_id) {
                        e.state = HoldState::Confirming;
                    }
                    Some((record, holding, amount, currency))
                }
            }
        };
        let Some((record, holding, amount_minor, currency)) = planned else {
            // Not a live hold: already confirmed (by this or an earlier leader)?
            return match self.store.booking_for_hold(hold_id).await {
                Ok(Some(b)) if b.user == user => Ok((b, false)),
                Ok(_) => Err(ShardError::NotFound),
                Err(e) => Err(self.store_error(&l, e)),
            };
        };
        let restore = |state: HoldState| {
            if let Some(e) = self.book(&l).entry_mut(hold_id) {
                e.state = state;
            }
        };

        match self.coord.check_hold(l.epoch, hold_id).await {
            Ok(()) => {}
            Err(CoordError::HoldGone) => {
                restore(HoldState::Live);
                return Err(ShardError::Expired);
            }
            Err(CoordError::Fenced) => {
                self.step_down(&l, "fenced by etcd on confirm");
                return Err(ShardError::NotLeader(None));
            }
            Err(e) => {
                restore(HoldState::Live);
                warn!(error = %e, "checking a hold in etcd failed");
                return Err(ShardError::Unknown);
            }
        }

        let new = NewBooking {
            user: user.to_string(),
            hold_id: hold_id.to_string(),
            payment_reference: payment_reference.to_string(),
            amount_minor,
            currency,
            seats: record.seats.clone(),
            general: record
                .area
                .clone()
                .map(|area| GeneralTickets {
                    area,
                    quantity: record.quantity as i64,
                })
                .into_iter()
                .collect(),
        };
        self.fault_pause().await;
        match self.store.confirm(l.epoch, &new).await {
            Ok((booking, created)) => {
                bump(&self.stats.confirms);
                let ev = {
                    let mut book = self.book(&l);
                    book.remove(hold_id, true);
                    self.event(
                        &book,
                        "sold",
                        &holding,
                        Some(hold_id),
                        Some(&booking.reference),
                    )
                };
                self.publish(ev);
                if let Err(e) = self.coord.delete_holds(l.epoch, &[&record]).await {
                    // The booking is durable; the locks expire with their lease.
                    warn!(error = %e, "clearing a confirmed hold's locks failed");
                }
                Ok((booking, created))
            }
            Err(e) => {
                restore(HoldState::Live);
                Err(self.store_error(&l, e))
            }
        }
    }

    fn store_error(&self, l: &Leadership, e: StoreError) -> ShardError {
        match e {
            StoreError::Fenced => {
                self.step_down(l, "fenced by PostgreSQL");
                ShardError::NotLeader(None)
            }
            StoreError::SeatsTaken(seats) => {
                error!(?seats, "PostgreSQL refused a double sale; memory was stale");
                self.step_down(l, "PostgreSQL has sales memory did not know");
                ShardError::SeatsUnavailable(seats)
            }
            StoreError::OverCapacity(area) => {
                self.step_down(l, "PostgreSQL refused to oversell an area");
                ShardError::SoldOut { area, available: 0 }
            }
            StoreError::NotFound => ShardError::NotFound,
            StoreError::Conflict(m) => ShardError::Conflict(m),
            StoreError::Db(e) => {
                warn!(error = %e, "database error");
                ShardError::Unknown
            }
        }
    }

    /// Cancels a booking; its seats return to sale.
    pub async fn cancel(&self, user: &str, staff: bool, reference: &str) -> Result<Booking> {
        let l = self.leadership()?;
        let existing = self
            .store
            .booking(reference)
            .await
            .map_err(|e| self.store_error(&l, e))?
            .ok_or(ShardError::NotFound)?;
        if !staff && existing.user != user {
            return Err(ShardError::NotFound);
        }
        let (booking, changed) = self
            .store
            .cancel(l.epoch, reference)
            .await
            .map_err(|e| self.store_error(&l, e))?;
        if changed {
            let ev = {
                let mut book = self.book(&l);
                let holding = self.holding_of_booking(&book.inventory, &booking);
                book.inventory.unsell(&holding);
                if let Some(n) = book.per_user.get_mut(&booking.user) {
                    *n = n.saturating_sub(holding.quantity());
                }
                self.event(&book, "returned", &holding, None, Some(&booking.reference))
            };
            self.publish(ev);
        }
        Ok(booking)
    }

    fn holding_of_booking(&self, inv: &Inventory, b: &Booking) -> Holding {
        if let Some(g) = b.general.first()
            && let Some(area) = inv.area_index(&g.area)
        {
            return Holding::General {
                area,
                quantity: g.quantity as u64,
            };
        }
        Holding::Seats(
            b.seats
                .iter()
                .filter_map(|s| s.parse::<SeatId>().ok().and_then(|id| inv.seat_index(&id)))
                .collect::<Vec<SeatIndex>>(),
        )
    }

    /// Checks a booking in (staff).
    pub async fn check_in(
        &self,
        reference: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Booking> {
        let l = self.leadership()?;
        self.store
            .check_in(l.epoch, reference, idempotency_key)
            .await
            .map_err(|e| self.store_error(&l, e))
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

#[cfg(test)]
mod tests {
    use super::price_minor;

    #[test]
    fn prices_in_minor_units() {
        assert_eq!(price_minor("49.50"), 4950);
        assert_eq!(price_minor("49.5"), 4950);
        assert_eq!(price_minor("25"), 2500);
        assert_eq!(price_minor("0.05"), 5);
    }
}
