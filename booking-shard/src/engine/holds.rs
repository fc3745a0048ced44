//! Hold commands: hold, extend, release, expire, and the outcomes of their writes.

use std::time::Duration;

use boxoffice_contract::HoldRecord;

use super::{
    Effect, Engine, Event, Failure, HoldEntry, HoldFacts, HoldPhase, HoldRequest, Now, Reaction,
    Result, SeatChange, ShardError,
};
use crate::inventory::{Holding, Unavailable};

/// A request to hold seats.
#[derive(Debug, Clone)]
pub struct HoldCommand<'a> {
    pub user: &'a str,
    pub request: &'a HoldRequest,
    pub idempotency_key: Option<String>,
    /// The id the new hold gets (the adapters draw it at random).
    pub id: String,
    /// The show was withdrawn.
    pub closed: bool,
    pub now: Now,
}

/// What a hold command decided.
#[derive(Debug)]
pub enum HoldDecision {
    /// A retry with the same Idempotency-Key: the first hold, nothing to write.
    Existing(HoldFacts),
    /// Reserved in memory (pending): persist [`Effect::CreateHold`] with this record,
    /// then report [`Engine::hold_written`] or [`Engine::hold_failed`].
    Write(HoldRecord),
}

impl Engine {
    /// Decides a hold: idempotency, limits, seat choice and the conflict check, then
    /// the reservation in memory.
    pub fn hold(&mut self, cmd: HoldCommand<'_>) -> Result<HoldDecision> {
        self.rules.sales_open(cmd.now.wall_ms, cmd.closed)?;
        let digest = if cmd.idempotency_key.is_some() {
            cmd.request.digest()
        } else {
            String::new()
        };
        if let Some(key) = &cmd.idempotency_key
            && let Some(id) = self
                .book
                .idempotent
                .get(&(cmd.user.to_string(), key.clone()))
            && let Some((_, entry)) = self.book.entry(id)
        {
            // The first request's etcd write may still fail: answer only once the hold
            // is live.
            if entry.phase == HoldPhase::Pending {
                return Err(ShardError::Conflict(
                    "the first request with this Idempotency-Key is still in flight; retry".into(),
                ));
            }
            if !entry.record.request_digest.is_empty() && entry.record.request_digest != digest {
                return Err(ShardError::IdempotencyMismatch);
            }
            return Ok(HoldDecision::Existing(self.facts(entry)));
        }
        let holding = self.rules.plan(&self.book.inventory, cmd.request)?;
        let quantity = holding.quantity();
        let owned = self.book.per_user.get(cmd.user).copied().unwrap_or(0);
        self.rules.within_limits(quantity, owned)?;
        let book = &mut self.book;
        let slot = book.next_slot();
        let taken = match &holding {
            Holding::Seats(seats) => book.inventory.hold_seats(slot, seats),
            Holding::General { area, quantity } => book.inventory.hold_general(*area, *quantity),
        };
        if let Err(e) = taken {
            book.free.push(slot);
            return Err(match e {
                Unavailable::Seats(bad) => ShardError::SeatsUnavailable(
                    bad.iter()
                        .map(|&i| book.inventory.seat_id(i).to_string())
                        .collect(),
                ),
                Unavailable::General { area, available } => ShardError::SoldOut { area, available },
            });
        }
        let ttl = self.rules.hold_ttl;
        let record = HoldRecord {
            id: cmd.id,
            user: cmd.user.to_string(),
            seats: match &holding {
                Holding::Seats(s) => s
                    .iter()
                    .map(|&i| book.inventory.seat_id(i).to_string())
                    .collect(),
                Holding::General { .. } => Vec::new(),
            },
            area: match &holding {
                Holding::General { area, .. } => Some(book.inventory.areas()[*area].name.clone()),
                Holding::Seats(_) => None,
            },
            quantity,
            expires_at_ms: cmd.now.wall_ms + ttl.as_millis() as i64,
            idempotency_key: cmd.idempotency_key,
            created_at_ms: cmd.now.wall_ms,
            request_digest: digest,
            payment_intent: None,
        };
        let entry = HoldEntry::new(
            record.clone(),
            holding,
            cmd.now.mono + ttl,
            HoldPhase::Pending,
        );
        book.insert(slot, entry);
        Ok(HoldDecision::Write(record))
    }

    /// The hold's etcd write succeeded: it is live.
    pub fn hold_written(&mut self, id: &str) -> Result<(HoldFacts, Event)> {
        let entry = self.book.entry_mut(id).ok_or(ShardError::Unknown)?;
        entry.phase = HoldPhase::Live;
        let (_, entry) = self.book.entry(id).ok_or(ShardError::Unknown)?;
        let facts = self.facts(entry);
        let event = self.event(SeatChange::Held, &entry.holding, Some(id), None);
        Ok((facts, event))
    }

    /// The hold's etcd write failed: the reservation is undone.
    pub fn hold_failed(&mut self, record: &HoldRecord, failure: Failure) -> Reaction {
        self.book.remove(&record.id, false);
        match failure {
            // etcd has the hold's key already: memory is stale.
            Failure::Refused => Reaction::step_down(
                ShardError::SeatsUnavailable(record.seats.clone()),
                "etcd has a hold memory did not know",
            ),
            Failure::Fenced => {
                Reaction::step_down(ShardError::NotLeader(None), "fenced by etcd on hold")
            }
            // etcd wrote nothing and memory is right: the leader goes on serving.
            Failure::NoSpace => Reaction::answer(ShardError::StorageFull),
            // The record may exist: the next leader loads what etcd really has.
            Failure::Unknown => {
                Reaction::step_down(ShardError::Unknown, "a hold's etcd write failed")
            }
        }
    }

    /// A hold of `user` (staff may see any).
    pub fn get_hold(&self, user: &str, staff: bool, id: &str) -> Result<HoldFacts> {
        match self.book.entry(id) {
            Some((_, e)) if staff || e.record.user == user => Ok(self.facts(e)),
            _ => Err(ShardError::NotFound),
        }
    }

    /// Releases a live hold early: persist [`Effect::DeleteHolds`] (released).
    pub fn release(&mut self, user: &str, staff: bool, id: &str) -> Result<Effect> {
        let entry = self.book.entry_mut(id).ok_or(ShardError::NotFound)?;
        if !staff && entry.record.user != user {
            return Err(ShardError::NotFound);
        }
        if entry.phase != HoldPhase::Live {
            return Err(ShardError::busy());
        }
        entry
            .state()
            .apply(super::BookingAction::Release)
            .map_err(ShardError::Illegal)?;
        entry.phase = HoldPhase::Ending;
        Ok(Effect::DeleteHolds(
            vec![entry.record.clone()],
            SeatChange::Released,
        ))
    }

    /// Extends a live hold by the TTL from now, three TTLs in all at most: persist
    /// [`Effect::ExtendHold`] with the returned record, then report
    /// [`Engine::extended`] or [`Engine::extend_failed`].
    pub fn extend(&mut self, user: &str, staff: bool, id: &str, now: Now) -> Result<HoldRecord> {
        if self.book.entry(id).is_none() && self.book.expired_for(id, user) {
            return Err(ShardError::Expired);
        }
        let entry = self.book.entry_mut(id).ok_or(ShardError::NotFound)?;
        if !staff && entry.record.user != user {
            return Err(ShardError::NotFound);
        }
        entry.usable()?;
        let expires_at_ms = self.rules.extended_expiry(
            now.wall_ms,
            entry.record.created_at_ms,
            entry.record.expires_at_ms,
        )?;
        // Pending: expiry leaves it alone while the new lease is written.
        entry.phase = HoldPhase::Pending;
        Ok(HoldRecord {
            expires_at_ms,
            ..entry.record.clone()
        })
    }

    /// The extension is written: the hold is live with its new expiry.
    pub fn extended(&mut self, record: HoldRecord) -> Result<HoldFacts> {
        let id = record.id.clone();
        let (_, entry) = self.book.entry(&id).ok_or(ShardError::NotFound)?;
        let later = (record.expires_at_ms - entry.record.expires_at_ms).max(0) as u64;
        let deadline = entry.deadline() + Duration::from_millis(later);
        self.book.set_deadline(&id, deadline);
        let entry = self.book.entry_mut(&id).ok_or(ShardError::NotFound)?;
        entry.record = record;
        entry.phase = HoldPhase::Live;
        let (_, entry) = self.book.entry(&id).ok_or(ShardError::NotFound)?;
        Ok(self.facts(entry))
    }

    /// The extension's write failed.
    pub fn extend_failed(&mut self, record: &HoldRecord, failure: Failure) -> Reaction {
        match failure {
            // The hold is gone from etcd (its lease ran out): it expired.
            Failure::Refused => {
                let mut reaction = Reaction::answer(ShardError::Expired);
                if let Some(e) = self.book.entry_mut(&record.id) {
                    e.phase = HoldPhase::Ending;
                    reaction.effects = vec![Effect::DeleteHolds(
                        vec![e.record.clone()],
                        SeatChange::Expired,
                    )];
                }
                reaction
            }
            Failure::Fenced => {
                Reaction::step_down(ShardError::NotLeader(None), "fenced by etcd on extend")
            }
            // Nothing was written: the hold keeps its old expiry.
            Failure::NoSpace => {
                self.set_phase(&record.id, HoldPhase::Live);
                Reaction::answer(ShardError::StorageFull)
            }
            Failure::Unknown => Reaction::step_down(ShardError::Unknown, "extending a hold failed"),
        }
    }

    /// Marks the live holds whose deadline has passed as ending: persist
    /// [`Effect::DeleteHolds`] (expired) when there are any.
    pub fn expire(&mut self, now: Now) -> Option<Effect> {
        let due = self.book.take_due(now.mono);
        (!due.is_empty()).then_some(Effect::DeleteHolds(due, SeatChange::Expired))
    }

    /// Holds were deleted from etcd: their seats return to sale.
    pub fn holds_deleted(&mut self, records: &[HoldRecord], why: SeatChange) -> Vec<Event> {
        let mut events = Vec::with_capacity(records.len());
        for r in records {
            if let Some(entry) = self.book.remove(&r.id, false) {
                if why == SeatChange::Expired {
                    self.book.remember_expired(&r.id, &r.user);
                }
                events.push(self.event(why, &entry.holding, Some(&r.id), None));
            }
        }
        events
    }

    /// Deleting holds failed: memory and etcd may disagree now.
    pub fn holds_delete_failed(&self) -> Reaction {
        Reaction::step_down(ShardError::NotLeader(None), "deleting holds failed")
    }

    pub(super) fn set_phase(&mut self, id: &str, phase: HoldPhase) {
        if let Some(e) = self.book.entry_mut(id) {
            e.phase = phase;
        }
    }
}
