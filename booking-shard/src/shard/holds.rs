//! Holds: taking seats (memory first, then one fenced etcd transaction), releasing,
//! extending, and expiring them.

use super::*;

impl Shard {
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
        let digest = if idempotency_key.is_some() {
            request.digest()
        } else {
            String::new()
        };
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
                if !entry.record.request_digest.is_empty() && entry.record.request_digest != digest
                {
                    return Err(ShardError::IdempotencyMismatch);
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
            let max = self.show.max_per_user;
            let owned = book.per_user.get(user).copied().unwrap_or(0);
            if owned + quantity > u64::from(max) {
                return Err(ShardError::Limit(format!(
                    "at most {max} seats per user for this show ({owned} held or bought)"
                )));
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
                request_digest: digest,
            };
            book.insert(
                slot,
                HoldEntry::new(
                    record.clone(),
                    holding.clone(),
                    Instant::now() + ttl,
                    HoldState::Pending,
                ),
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
                // A seat map (or a stream's snapshot) taken while the reservation was
                // pending shows its seats held: a numbered change undoes that (and
                // makes the next read of the cached map rebuild it).
                let ev = self.event(&book, "released", &holding, None, None);
                drop(book);
                self.publish(ev);
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
                    // etcd wrote nothing and memory is right: the reservation is
                    // undone above, and this leader goes on serving.
                    CoordError::NoSpace => Err(ShardError::StorageFull),
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
    pub(super) fn plan(&self, book: &Book, request: &HoldRequest) -> Result<Holding> {
        let inv = &book.inventory;
        match request {
            HoldRequest::Seats(ids) => {
                if ids.is_empty() {
                    return Err(ShardError::BadRequest(
                        BadInput::Request,
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
                        BadInput::UnknownSeat,
                        format!("no such seats: {}", unknown.join(", ")),
                    ));
                }
                let mut sorted = seats.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.len() != seats.len() {
                    return Err(ShardError::BadRequest(
                        BadInput::DuplicateSeat,
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
                        BadInput::Quantity,
                        format!("quantity must be 1 to {}", self.show.max_per_hold),
                    ));
                }
                if let Some(s) = section
                    && !inv.sections().iter().any(|x| &x.name == s)
                {
                    return Err(ShardError::BadRequest(
                        BadInput::UnknownSection,
                        format!("no section {s}"),
                    ));
                }
                if let Some(c) = category
                    && !self.show.prices.contains_key(c)
                {
                    return Err(ShardError::BadRequest(
                        BadInput::UnknownCategory,
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
                        BadInput::UnknownArea,
                        format!("no general-admission area {area}"),
                    )
                })?;
                if *quantity == 0 || *quantity > u64::from(self.show.max_per_hold) {
                    return Err(ShardError::BadRequest(
                        BadInput::Quantity,
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
            if book.entry(id).is_none() && book.expired_for(id, user) {
                return Err(ShardError::Expired);
            }
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
                let (_, entry) = book.entry(id).ok_or(ShardError::NotFound)?;
                let deadline = entry.deadline()
                    + Duration::from_millis(
                        (record.expires_at_ms - entry.record.expires_at_ms).max(0) as u64,
                    );
                book.set_deadline(id, deadline);
                let entry = book.entry_mut(id).ok_or(ShardError::NotFound)?;
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
            Err(CoordError::NoSpace) => {
                // Nothing was written: the hold keeps its old expiry.
                if let Some(e) = self.book(&l).entry_mut(id) {
                    e.state = HoldState::Live;
                }
                Err(ShardError::StorageFull)
            }
            Err(e) => {
                self.step_down(&l, &format!("extending a hold failed: {e}"));
                Err(ShardError::Unknown)
            }
        }
    }

    /// Deletes holds from etcd, then returns their seats to sale in memory.
    pub(super) async fn end_holds(
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
                    if kind == "expired" {
                        book.remember_expired(&r.id, &r.user);
                    }
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

    pub(super) async fn expire_loop(self: Arc<Self>, l: Arc<Leadership>) {
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
            let due = self.book(&l).take_due(Instant::now());
            if !due.is_empty() {
                let _ = self.end_holds(&l, due, "expired").await;
            }
        }
    }
}
