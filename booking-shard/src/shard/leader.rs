//! Campaigning, leading, and a new leader's load from PostgreSQL and etcd.

use super::*;
use crate::mirror::Mirror;

/// How long a new leader waits for its mirror to prove it is current before reading
/// etcd instead (a current mirror answers in milliseconds).
const MIRROR_WAIT: Duration = Duration::from_millis(500);

impl Shard {
    /// Campaigns until `shutdown`; leads while it can. On shutdown a leader resigns so a
    /// standby takes over at once.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // While standing by, a warm copy of the book in etcd (see [`Mirror`]).
        let mut mirror: Option<Mirror> = None;
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
                    if mirror.is_none() {
                        mirror = Some(Mirror::start(self.coord.clone()));
                    }
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
                    self.lead(lease, epoch, &shutdown, mirror.take()).await;
                }
            }
        }
        self.set_role(Role::Candidate);
    }

    pub(super) async fn lead(
        self: &Arc<Self>,
        lease: i64,
        epoch: i64,
        shutdown: &CancellationToken,
        mirror: Option<Mirror>,
    ) {
        let lost = shutdown.child_token();
        self.coord
            .spawn_keep_alive(lease, self.lease_ttl_secs, lost.clone());
        info!(epoch, "won the election; loading");
        // A leader that cannot reach PostgreSQL or etcd must not sit on the key.
        let loaded = tokio::time::timeout(LOAD_TIMEOUT, self.load(epoch, lost.clone(), mirror))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("loading took longer than {LOAD_TIMEOUT:?}")));
        match loaded {
            Ok(leadership) => {
                bump(&self.stats.leader_terms);
                let leadership = Arc::new(leadership);
                self.events.new_term(epoch);
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

    /// A new leader's load: raise the fencing epoch and read sold seats from
    /// PostgreSQL; meanwhile take live holds and seat locks from the standby's mirror
    /// when it proves current, else read them from etcd.
    pub(super) async fn load(
        &self,
        epoch: i64,
        lost: CancellationToken,
        mirror: Option<Mirror>,
    ) -> anyhow::Result<Leadership> {
        let started = Instant::now();
        let postgres = async {
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
            anyhow::Ok((sold, started.elapsed().as_millis() as u64))
        };
        let etcd = async {
            let mirrored = match mirror {
                Some(m) => m.book_at_least(epoch, MIRROR_WAIT).await,
                None => None,
            };
            let (source, stored) = match mirrored {
                Some(book) => ("mirror", book),
                None => ("etcd", self.coord.load().await?),
            };
            anyhow::Ok((source, stored, started.elapsed().as_millis() as u64))
        };
        let (postgres, etcd) = tokio::join!(postgres, etcd);
        let (sold, postgres_ms) = postgres?;
        let (source, stored, etcd_ms) = etcd?;
        let (holds, locks) = (stored.holds, stored.locks);

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
                HoldEntry::new(record, holding, now + remaining, HoldState::Live),
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
            postgres_ms,
            etcd_ms,
            source,
            total_ms = started.elapsed().as_millis() as u64,
            "loaded the book"
        );
        Ok(Leadership {
            epoch,
            lost,
            book: Mutex::new(book),
        })
    }

    pub(super) fn holding_of(&self, inventory: &Inventory, record: &HoldRecord) -> Option<Holding> {
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
}
