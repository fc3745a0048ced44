//! A deterministic simulation for the property test: the engine driven the way the
//! shard drives it, against a model of what etcd and PostgreSQL store (with their
//! guards: etcd refuses a locked seat, PostgreSQL a seat sold twice). Writes can fail
//! in every way the adapters report; a failure that ends the leadership starts a new
//! leader that loads from the stores.

mod bookings;
mod world;

pub(crate) use world::{Op, Outcome, SEATS, Want, World, layout, rules};

use std::time::{Duration, Instant};

use boxoffice_contract::HoldRecord;

use super::{
    Booking, BookingAction, BookingState, BookingStatus, ConfirmDecision, Effect, Engine, Failure,
    HoldCommand, HoldDecision, Now, Reaction, SeatChange, Sold, Transition,
};

/// The engine, the stores, and the clock.
pub(crate) struct Sim {
    pub engine: Engine,
    pub world: World,
    pub now: Now,
    ids: usize,
    /// A deliberately broken leader change that forgets what was sold (the negative
    /// control of the invariant check).
    pub broken_load: bool,
}

impl Sim {
    pub(crate) fn new() -> Self {
        let now = Now {
            wall_ms: 1_700_000_000_000,
            mono: Instant::now(),
        };
        Self {
            engine: Engine::new(rules(), &layout()),
            world: World::default(),
            now,
            ids: 0,
            broken_load: false,
        }
    }

    fn next_id(&mut self) -> String {
        self.ids += 1;
        format!("h{}", self.ids)
    }

    fn user(n: u8) -> String {
        format!("u{}", n % 3)
    }

    /// Live hold ids, in a stable order.
    fn holds(&self) -> Vec<(String, String)> {
        let mut ids: Vec<(String, String)> = self
            .engine
            .book
            .slots
            .iter()
            .flatten()
            .map(|e| (e.record.id.clone(), e.record.user.clone()))
            .collect();
        ids.sort();
        ids
    }

    /// A live hold by `pick`, and who asks about it: its owner for an even `user`,
    /// else one of the users (maybe another).
    fn pick(&self, user: u8, pick: usize) -> Option<(String, String)> {
        let holds = self.holds();
        let (id, owner) = holds.get(pick % holds.len().max(1))?.clone();
        let asker = if user.is_multiple_of(2) {
            owner
        } else {
            Self::user(user)
        };
        Some((id, asker))
    }

    /// Holds seats (indices into [`SEATS`]) for `user`, written at once.
    pub(crate) fn hold_seats(&mut self, user: u8, seats: &[usize]) {
        let op = Op::Hold {
            user,
            want: Want::Seats(seats.to_vec()),
            key: None,
            outcome: Outcome::Ok,
        };
        self.step(&op).expect("a hold");
    }

    /// Confirms the first live hold (by its owner).
    pub(crate) fn confirm_first(&mut self) {
        let op = Op::Confirm {
            user: 1,
            pick: 0,
            outcome: Outcome::Ok,
        };
        self.step(&op).expect("a confirm");
    }

    /// The first live hold.
    pub(crate) fn first_hold(&self) -> Option<&super::HoldEntry> {
        self.engine.book.slots.iter().flatten().next()
    }

    pub(crate) fn leader_change(&mut self) {
        // While nobody leads, hold leases run out (two seconds after the expiry).
        let now = self.now.wall_ms;
        let gone: Vec<HoldRecord> = self
            .world
            .holds
            .values()
            .filter(|r| r.expires_at_ms + 2_000 <= now)
            .cloned()
            .collect();
        for r in &gone {
            self.world.delete_hold(r);
        }
        let sold = if self.broken_load {
            Sold::default()
        } else {
            self.world.sold()
        };
        let holds = self.world.holds.values().cloned().collect();
        let locks = self
            .world
            .locks
            .iter()
            .map(|(s, h)| (s.clone(), h.clone()))
            .collect();
        let loaded = Engine::load(rules(), &layout(), &sold, holds, locks, self.now);
        for effect in loaded.effects {
            match effect {
                Effect::DeleteHolds(records, _) => {
                    records.iter().for_each(|r| self.world.delete_hold(r))
                }
                Effect::DeleteSeatLocks(seats) => seats.iter().for_each(|s| {
                    self.world.locks.remove(s);
                }),
                other => panic!("unexpected load effect {other:?}"),
            }
        }
        self.engine = loaded.engine;
    }

    /// Deletes holds in etcd and tells the engine.
    fn delete(&mut self, records: Vec<HoldRecord>, why: SeatChange) {
        records.iter().for_each(|r| self.world.delete_hold(r));
        self.engine.holds_deleted(&records, why);
    }

    fn react(&mut self, reaction: Reaction) {
        if reaction.step_down.is_some() {
            self.leader_change();
            return;
        }
        for effect in reaction.effects {
            if let Effect::DeleteHolds(records, why) = effect {
                self.delete(records, why);
            }
        }
    }

    fn hold(&mut self, user: u8, want: &Want, key: Option<u8>) -> Option<HoldRecord> {
        let request = want.request();
        let command = HoldCommand {
            user: &Self::user(user),
            request: &request,
            idempotency_key: key.map(|k| format!("k{k}")),
            id: self.next_id(),
            closed: false,
            now: self.now,
        };
        match self.engine.hold(command) {
            Ok(HoldDecision::Write(record)) => Some(record),
            _ => None,
        }
    }

    fn write_hold(&mut self, record: HoldRecord, outcome: Outcome) {
        let failure = match outcome {
            Outcome::Ok if self.world.put_hold(&record) => None,
            Outcome::Ok => Some(Failure::Refused),
            Outcome::NoSpace => Some(Failure::NoSpace),
            Outcome::Fenced => Some(Failure::Fenced),
            Outcome::Unknown { applied } => {
                if applied {
                    self.world.put_hold(&record);
                }
                Some(Failure::Unknown)
            }
        };
        match failure {
            None => {
                let _ = self.engine.hold_written(&record.id);
            }
            Some(f) => {
                let reaction = self.engine.hold_failed(&record, f);
                self.react(reaction);
            }
        }
    }

    /// Runs one step the way the shard would.
    pub(crate) fn step(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Hold {
                user,
                want,
                key,
                outcome,
            } => {
                if let Some(record) = self.hold(*user, want, *key) {
                    self.write_hold(record, *outcome);
                }
            }
            Op::Race { a, b } => {
                let first = self.hold(a.0, &a.1, None);
                let second = self.hold(b.0, &b.1, None);
                for record in [first, second].into_iter().flatten() {
                    self.write_hold(record, Outcome::Ok);
                }
            }
            Op::Release { user, pick } => {
                if let Some((id, user)) = self.pick(*user, *pick)
                    && let Ok(Effect::DeleteHolds(records, why)) =
                        self.engine.release(&user, false, &id)
                {
                    self.delete(records, why);
                }
            }
            Op::Extend {
                user,
                pick,
                outcome,
            } => {
                if let Some((id, user)) = self.pick(*user, *pick)
                    && let Ok(record) = self.engine.extend(&user, false, &id, self.now)
                {
                    self.extend(record, *outcome);
                }
            }
            Op::Confirm {
                user,
                pick,
                outcome,
            } => {
                let holds = self.holds();
                if let Some((id, owner)) = holds.get(pick % holds.len().max(1)).cloned() {
                    let user = if user % 3 != 0 {
                        owner
                    } else {
                        Self::user(*user)
                    };
                    self.confirm(&user, &id, *outcome)?;
                } else if let Some(b) = self
                    .world
                    .bookings
                    .get(*pick % self.world.bookings.len().max(1))
                    .cloned()
                {
                    // A retry of a confirm that went through.
                    self.confirm(&b.user, &b.hold, *outcome)?;
                }
            }
            Op::ConfirmAtExpiry { pick } => {
                let holds = self.holds();
                if let Some((id, owner)) = holds.get(pick % holds.len().max(1)).cloned()
                    && let Ok(ConfirmDecision::Write { record, booking }) =
                        self.engine.confirm(&owner, &id, "pay", self.now)
                {
                    self.now = self.now.after(Duration::from_secs(120));
                    if let Some(Effect::DeleteHolds(records, why)) = self.engine.expire(self.now) {
                        if records.iter().any(|r| r.id == id) {
                            return Err(format!("expiry took hold {id} while it was confirming"));
                        }
                        self.delete(records, why);
                    }
                    self.finish_confirm(record, booking, Outcome::Ok)?;
                }
            }
            Op::Cancel { pick } => {
                let i = pick % self.world.bookings.len().max(1);
                if let Some(b) = self.booking(i)
                    && b.state().apply(BookingAction::Cancel)
                        == Ok(Transition::To(BookingState::Cancelled))
                {
                    self.world.bookings[i].cancelled = true;
                    let cancelled = Booking {
                        status: BookingStatus::Cancelled,
                        ..b
                    };
                    self.engine.returned(&cancelled);
                }
            }
            Op::CheckIn { pick } => {
                let i = pick % self.world.bookings.len().max(1);
                if let Some(b) = self.booking(i) {
                    let action = BookingAction::CheckIn {
                        key: None,
                        first_key: None,
                    };
                    if let Ok(Transition::To(_)) = b.state().apply(action) {
                        self.world.bookings[i].checked_in = true;
                    }
                }
            }
            Op::Advance { secs } => {
                self.now = self.now.after(Duration::from_secs(*secs));
                if let Some(Effect::DeleteHolds(records, why)) = self.engine.expire(self.now) {
                    self.delete(records, why);
                }
            }
            Op::LeaderChange => self.leader_change(),
        }
        Ok(())
    }

    fn extend(&mut self, record: HoldRecord, outcome: Outcome) {
        let exists = self.world.holds.contains_key(&record.id);
        let failure = match outcome {
            Outcome::Ok if exists => None,
            Outcome::Ok => Some(Failure::Refused),
            Outcome::NoSpace => Some(Failure::NoSpace),
            Outcome::Fenced => Some(Failure::Fenced),
            Outcome::Unknown { applied } => {
                if applied && exists {
                    self.world.holds.insert(record.id.clone(), record.clone());
                }
                Some(Failure::Unknown)
            }
        };
        match failure {
            None => {
                self.world.holds.insert(record.id.clone(), record.clone());
                let _ = self.engine.extended(record);
            }
            Some(f) => {
                let reaction = self.engine.extend_failed(&record, f);
                self.react(reaction);
            }
        }
    }
}
