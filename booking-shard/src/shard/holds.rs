//! Holds: the engine decides, then one fenced etcd transaction persists (take, extend,
//! release, expire).

use std::sync::Arc;
use std::time::Duration;

use boxoffice_contract::HoldRecord;

use super::{Leadership, Result, Shard, ShardError, bump, failure};
use crate::engine::{Effect, Event, HoldCommand, HoldDecision, HoldRequest, Now, SeatChange};
use crate::shard::HoldView;
use crate::store::new_id;

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
        let now = Now::read();
        self.show.rules.sales_open(now.wall_ms, self.closed())?;
        if !self.limiter.allow(user) {
            return Err(ShardError::RateLimited);
        }
        let command = HoldCommand {
            user,
            request: &request,
            idempotency_key,
            id: new_id(),
            closed: self.closed(),
            now,
        };
        let decided = self.engine(&l).hold(command);
        let record = match decided {
            Ok(HoldDecision::Write(record)) => record,
            Ok(HoldDecision::Existing(facts)) => return Ok((facts.into(), false)),
            Err(e) => {
                if e.is_conflict() {
                    bump(&self.stats.hold_conflicts);
                }
                return Err(e);
            }
        };

        self.fault_pause().await;
        let written = async {
            let lease = self.coord.hold_lease(record.expires_at_ms).await?;
            self.coord.create_hold(l.epoch, &record, lease).await
        }
        .await;
        match written {
            Ok(()) => {
                bump(&self.stats.holds);
                let (facts, event) = self.engine(&l).hold_written(&record.id)?;
                self.publish(event);
                Ok((facts.into(), true))
            }
            Err(e) => {
                let (reaction, counts) = {
                    let mut engine = self.engine(&l);
                    let reaction = engine.hold_failed(&record, failure(&e));
                    (reaction, engine.inventory().counts())
                };
                // A seat map (or a stream's snapshot) taken while the reservation was
                // pending shows its seats held: a numbered change undoes that (and
                // makes the next read of the cached map rebuild it).
                self.publish(Event {
                    kind: SeatChange::Released,
                    seats: record.seats.clone(),
                    area: record.area.clone(),
                    quantity: record.quantity,
                    hold: None,
                    booking: None,
                    counts,
                });
                Err(self.react(&l, reaction).await)
            }
        }
    }

    /// A hold of `user` (staff may see any).
    pub fn get_hold(&self, user: &str, staff: bool, id: &str) -> Result<HoldView> {
        let l = self.leadership()?;
        let facts = self.engine(&l).get_hold(user, staff, id)?;
        Ok(facts.into())
    }

    /// Releases a hold early.
    pub async fn release(&self, user: &str, staff: bool, id: &str) -> Result<()> {
        let l = self.leadership()?;
        let effect = self.engine(&l).release(user, staff, id)?;
        self.delete(&l, effect).await
    }

    /// Extends a live hold by the show's hold TTL from now. A hold lives at most three
    /// TTLs in all, so seats cannot be kept off sale indefinitely.
    pub async fn extend(&self, user: &str, staff: bool, id: &str) -> Result<HoldView> {
        let l = self.leadership()?;
        let record = self.engine(&l).extend(user, staff, id, Now::read())?;
        let written = async {
            let lease = self.coord.hold_lease(record.expires_at_ms).await?;
            self.coord.extend_hold(l.epoch, &record, lease).await
        }
        .await;
        match written {
            Ok(()) => Ok(self.engine(&l).extended(record)?.into()),
            Err(e) => {
                let reaction = self.engine(&l).extend_failed(&record, failure(&e));
                Err(self.react(&l, reaction).await)
            }
        }
    }

    /// Persists a delete the engine decided (holds, or orphaned seat locks).
    pub(super) async fn delete(&self, l: &Leadership, effect: Effect) -> Result<()> {
        match effect {
            Effect::DeleteHolds(records, why) => self.end_holds(l, records, why).await,
            Effect::DeleteSeatLocks(seats) => {
                if let Err(e) = self.coord.delete_seat_locks(l.epoch, &seats).await {
                    tracing::warn!(error = %e, "deleting seat locks failed");
                    self.step_down(l, "deleting seat locks failed");
                    return Err(ShardError::NotLeader(None));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Deletes holds from etcd, then returns their seats to sale in memory.
    pub(super) async fn end_holds(
        &self,
        l: &Leadership,
        records: Vec<HoldRecord>,
        why: SeatChange,
    ) -> Result<()> {
        let refs: Vec<&HoldRecord> = records.iter().collect();
        if let Err(e) = self.coord.delete_holds(l.epoch, &refs).await {
            tracing::warn!(error = %e, "deleting holds failed");
            let reaction = self.engine(l).holds_delete_failed();
            if let Some(why) = reaction.step_down {
                self.step_down(l, why);
            }
            return Err(reaction.error);
        }
        let events = self.engine(l).holds_deleted(&records, why);
        for event in events {
            if why == SeatChange::Expired {
                bump(&self.stats.expired);
            }
            self.publish(event);
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
            let due = self.engine(&l).expire(Now::read());
            if let Some(effect) = due {
                let _ = self.delete(&l, effect).await;
            }
        }
    }
}
