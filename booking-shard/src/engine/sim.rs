//! A deterministic simulation for the property test: the engine driven the way the
//! shard drives it, against a model of what etcd and PostgreSQL store (with their
//! guards: etcd refuses a locked seat, PostgreSQL a seat sold twice). Writes can fail
//! in every way the adapters report; a failure that ends the leadership starts a new
//! leader that loads from the stores.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use boxoffice_contract::HoldRecord;
use boxoffice_crds::VenueLayout;
use boxoffice_crds::seating::{AreaLayout, RowLayout, SectionLayout};

use super::{
    Booking, BookingAction, BookingState, BookingStatus, ConfirmDecision, Effect, Engine, Failure,
    GeneralTickets, HoldCommand, HoldDecision, HoldRequest, NewBooking, Now, Reaction, Rules,
    SeatChange, Sold, Transition,
};

/// A booking as the model of PostgreSQL stores it.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub reference: String,
    pub hold: String,
    pub user: String,
    pub seats: Vec<String>,
    pub general: Option<(String, u64)>,
    pub cancelled: bool,
    pub checked_in: bool,
}

/// What etcd and PostgreSQL hold, and what clients were told.
#[derive(Debug, Default)]
pub(crate) struct World {
    pub holds: BTreeMap<String, HoldRecord>,
    pub locks: BTreeMap<String, String>,
    pub bookings: Vec<Stored>,
    /// References of bookings a client was answered with.
    pub acked: Vec<String>,
}

impl World {
    fn put_hold(&mut self, r: &HoldRecord) -> bool {
        if r.seats.iter().any(|s| self.locks.contains_key(s)) {
            return false;
        }
        for s in &r.seats {
            self.locks.insert(s.clone(), r.id.clone());
        }
        self.holds.insert(r.id.clone(), r.clone());
        true
    }

    fn delete_hold(&mut self, r: &HoldRecord) {
        for s in &r.seats {
            self.locks.remove(s);
        }
        self.holds.remove(&r.id);
    }

    /// PostgreSQL's confirm: the same hold again is the first booking; a seat sold
    /// twice is refused (the unique index).
    fn book(&mut self, new: &NewBooking, n: usize) -> Result<Stored, String> {
        if let Some(b) = self.bookings.iter().find(|b| b.hold == new.hold_id) {
            return Ok(b.clone());
        }
        let taken = self
            .bookings
            .iter()
            .filter(|b| !b.cancelled)
            .any(|b| b.seats.iter().any(|s| new.seats.contains(s)));
        if taken {
            return Err(format!(
                "PostgreSQL refused a double sale of {:?}",
                new.seats
            ));
        }
        let stored = Stored {
            reference: format!("B{n}"),
            hold: new.hold_id.clone(),
            user: new.user.clone(),
            seats: new.seats.clone(),
            general: new
                .general
                .first()
                .map(|g| (g.area.clone(), g.quantity as u64)),
            cancelled: false,
            checked_in: false,
        };
        self.bookings.push(stored.clone());
        Ok(stored)
    }

    fn sold(&self) -> Sold {
        let mut sold = Sold::default();
        for b in &self.bookings {
            sold.confirmed_holds.push(b.hold.clone());
            if b.cancelled {
                continue;
            }
            sold.seats.extend(b.seats.iter().cloned());
            let mut n = b.seats.len() as i64;
            if let Some((area, q)) = &b.general {
                *sold.general.entry(area.clone()).or_default() += *q as i64;
                n += *q as i64;
            }
            *sold.per_user.entry(b.user.clone()).or_default() += n;
        }
        sold
    }
}

/// The venue: a section of two rows (4 and 5 seats) and a standing area of 6.
pub(crate) fn layout() -> VenueLayout {
    let row = |name: &str, seats| RowLayout {
        name: name.into(),
        seats,
    };
    VenueLayout {
        sections: vec![SectionLayout {
            name: "main".into(),
            category: "std".into(),
            rows: vec![row("A", 4), row("B", 5)],
        }],
        areas: vec![AreaLayout {
            name: "pit".into(),
            category: "std".into(),
            capacity: 6,
        }],
    }
}

pub(crate) fn rules() -> Rules {
    Rules {
        prices: [("std".to_string(), (2500, "EUR".to_string()))].into(),
        hold_ttl: Duration::from_secs(60),
        max_per_hold: 4,
        max_per_user: 6,
        opens_at_ms: None,
        closes_at_ms: None,
    }
}

pub(crate) const SEATS: [&str; 9] = [
    "main:A:1", "main:A:2", "main:A:3", "main:A:4", "main:B:1", "main:B:2", "main:B:3", "main:B:4",
    "main:B:5",
];

/// How a write turns out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    NoSpace,
    Fenced,
    /// The outcome is unknown to the leader; `applied` says what really happened.
    Unknown {
        applied: bool,
    },
}

/// What a client asks for.
#[derive(Debug, Clone)]
pub(crate) enum Want {
    Seats(Vec<usize>),
    Best(u32),
    General(u64),
}

impl Want {
    fn request(&self) -> HoldRequest {
        match self {
            Want::Seats(s) => {
                HoldRequest::Seats(s.iter().map(|&i| SEATS[i % 9].to_string()).collect())
            }
            Want::Best(q) => HoldRequest::Best {
                quantity: *q,
                section: None,
                category: None,
            },
            Want::General(q) => HoldRequest::General {
                area: "pit".into(),
                quantity: *q,
            },
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Hold {
        user: u8,
        want: Want,
        key: Option<u8>,
        outcome: Outcome,
    },
    /// Two holds decided before either is written (in flight together).
    Race {
        a: (u8, Want),
        b: (u8, Want),
    },
    Release {
        user: u8,
        pick: usize,
    },
    Extend {
        user: u8,
        pick: usize,
        outcome: Outcome,
    },
    Confirm {
        user: u8,
        pick: usize,
        outcome: Outcome,
    },
    /// A confirm in flight while its deadline passes and expiry runs.
    ConfirmAtExpiry {
        pick: usize,
    },
    Cancel {
        pick: usize,
    },
    CheckIn {
        pick: usize,
    },
    Advance {
        secs: u64,
    },
    LeaderChange,
}

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

    fn confirm(&mut self, user: &str, hold: &str, outcome: Outcome) -> Result<(), String> {
        let decided = self.engine.confirm(user, hold, "pay", self.now);
        let (record, new) = match decided {
            Ok(ConfirmDecision::Write { record, booking }) => (record, booking),
            Ok(ConfirmDecision::LookUp) => {
                let found = self
                    .world
                    .bookings
                    .iter()
                    .find(|b| b.hold == hold && b.user == user);
                if let Some(b) = found {
                    self.world.acked.push(b.reference.clone());
                }
                return Ok(());
            }
            Err(_) => return Ok(()),
        };
        self.finish_confirm(record, new, outcome)
    }

    fn finish_confirm(
        &mut self,
        record: HoldRecord,
        new: Box<NewBooking>,
        outcome: Outcome,
    ) -> Result<(), String> {
        let hold = record.id.clone();
        if !self.world.holds.contains_key(&hold) {
            let reaction = self.engine.confirm_check_failed(&hold, Failure::Refused);
            self.react(reaction);
            return Ok(());
        }
        if outcome == Outcome::Fenced {
            let reaction = self.engine.confirm_check_failed(&hold, Failure::Fenced);
            self.react(reaction);
            return Ok(());
        }
        let n = self.world.bookings.len();
        match outcome {
            Outcome::Ok => {
                let booking = self.world.book(&new, n)?;
                self.world.acked.push(booking.reference.clone());
                self.engine.confirmed(&hold, &booking.reference);
                self.world.delete_hold(&record);
            }
            Outcome::Unknown { applied } => {
                if applied {
                    self.world.book(&new, n)?;
                }
                if let Some(reaction) = self.engine.confirm_write_failed(&hold, true) {
                    self.react(reaction);
                }
            }
            // A refusal PostgreSQL answers for sure (nothing written).
            Outcome::NoSpace | Outcome::Fenced => {
                if let Some(reaction) = self.engine.confirm_write_failed(&hold, false) {
                    self.react(reaction);
                }
            }
        }
        Ok(())
    }

    fn booking(&self, i: usize) -> Option<Booking> {
        let b = self.world.bookings.get(i)?;
        Some(Booking {
            id: b.reference.clone(),
            reference: b.reference.clone(),
            show: "ns/show".into(),
            user: b.user.clone(),
            status: if b.cancelled {
                BookingStatus::Cancelled
            } else {
                BookingStatus::Confirmed
            },
            hold_id: b.hold.clone(),
            payment_reference: "pay".into(),
            amount_minor: 0,
            currency: "EUR".into(),
            seats: b.seats.clone(),
            general: b
                .general
                .iter()
                .map(|(area, q)| GeneralTickets {
                    area: area.clone(),
                    quantity: *q as i64,
                })
                .collect(),
            refund_status: None,
            checked_in_at: b.checked_in.then(|| "now".to_string()),
            created_at: "now".into(),
        })
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
                let holds = self.holds();
                if let Some((id, owner)) = holds.get(pick % holds.len().max(1)) {
                    let user = if user % 2 == 0 {
                        owner.clone()
                    } else {
                        Self::user(*user)
                    };
                    if let Ok(Effect::DeleteHolds(records, why)) =
                        self.engine.release(&user, false, id)
                    {
                        self.delete(records, why);
                    }
                }
            }
            Op::Extend {
                user,
                pick,
                outcome,
            } => {
                let holds = self.holds();
                if let Some((id, owner)) = holds.get(pick % holds.len().max(1)) {
                    let user = if user % 2 == 0 {
                        owner.clone()
                    } else {
                        Self::user(*user)
                    };
                    if let Ok(record) = self.engine.extend(&user, false, id, self.now) {
                        self.extend(record, *outcome);
                    }
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
