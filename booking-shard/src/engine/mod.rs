//! The booking engine: the rules of the book as plain data and functions. No I/O, no
//! async, no clock: a command goes in with its time ([`Now`]); out come the answer,
//! the effects to persist ([`Effect`]: etcd and PostgreSQL writes the adapters in
//! `shard/` execute) and the seat changes to publish ([`Event`]). The adapters report
//! each effect's outcome back (`*_written`, `*_failed`), and the engine decides what
//! that means ([`Reaction`]: the client's answer, and whether to step down).
//!
//! The rules, one row each (docs/architecture.md has the same table):
//!
//! | command | refused when | effects | events |
//! |---|---|---|---|
//! | hold | sales closed; bad input; over per-hold or per-user limit; seats taken or area sold out | create the hold in etcd (its record, on a lease) | `held` once written |
//! | hold, same Idempotency-Key | the first is still pending (conflict); another request (mismatch) | none: the first hold | none |
//! | extend | not live (busy, expired); three TTLs reached | move the hold to a later lease | none |
//! | release | not the user's (not found); not live (busy) | delete the hold | `released` |
//! | expire | (deadline passed and live) | delete the holds | `expired` |
//! | confirm | expired; not the user's; busy | write the booking in PostgreSQL (fenced); then, off the answer's path, delete the hold's record | `sold` |
//! | confirm, no live hold | (a retry) | look up the hold's booking | none |
//! | checkout, payment, cancel, refund, check in | see [`lifecycle`] | the booking's new state in PostgreSQL | `returned` (cancel) |
//! | leader change | PostgreSQL has a newer epoch | delete stale holds, and seat locks of the earlier layout | none |
//!
//! Invariants (checked after every step by the property test): per section and area
//! `available + held + sold == total`; no seat in two holds; no seat sold twice; what
//! memory calls sold is what PostgreSQL has booked; no acknowledged booking is lost.

pub mod book;
pub mod booking;
mod confirm;
pub mod error;
mod holds;
pub mod lifecycle;
mod load;
mod payments;
pub mod rules;

#[cfg(test)]
mod check;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use book::{Book, HoldEntry, HoldPhase};
pub use booking::{Booking, BookingStatus, GeneralTickets, NewBooking, Sold};
pub use confirm::{ConfirmDecision, Confirmer};
pub use error::{BadInput, Result, ShardError};
pub use holds::{HoldCommand, HoldDecision};
pub use lifecycle::{
    AuditRow, BookingAction, BookingState, IllegalTransition, PaymentMode, Transition,
};
pub use load::Loaded;
pub use payments::{CheckoutDecision, Intent};
pub use rules::{HoldRequest, Now, PaymentRules, Rules};

use boxoffice_contract::HoldRecord;
use boxoffice_crds::{InventoryCounts, VenueLayout};

use crate::inventory::{Holding, Inventory};

/// What happened to seats, as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatChange {
    Held,
    Released,
    Expired,
    Sold,
    Returned,
}

impl SeatChange {
    pub fn as_str(self) -> &'static str {
        match self {
            SeatChange::Held => "held",
            SeatChange::Released => "released",
            SeatChange::Expired => "expired",
            SeatChange::Sold => "sold",
            SeatChange::Returned => "returned",
        }
    }
}

/// A change of seats to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: SeatChange,
    pub seats: Vec<String>,
    pub area: Option<String>,
    pub quantity: u64,
    pub hold: Option<String>,
    pub booking: Option<String>,
    /// The show's counts after the change.
    pub counts: InventoryCounts,
}

/// A write the adapters persist.
#[derive(Debug, Clone)]
pub enum Effect {
    /// etcd: store the record (seats included), on a lease ending at its expiry.
    CreateHold(HoldRecord),
    /// etcd: move the hold to a lease ending at its new expiry.
    ExtendHold(HoldRecord),
    /// PostgreSQL: the booking for a hold.
    WriteBooking(NewBooking),
    /// etcd: delete the holds' records, then report `holds_deleted`.
    DeleteHolds(Vec<HoldRecord>, SeatChange),
    /// etcd: delete seat locks (keys of the earlier layout, one per held seat).
    DeleteSeatLocks(Vec<String>),
}

/// How a write failed, as the adapters report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A compare failed while we still lead (the hold exists already, or is gone).
    Refused,
    /// A newer leader exists.
    Fenced,
    /// etcd is out of space: nothing was written.
    NoSpace,
    /// The outcome is unknown (timeout, connection lost).
    Unknown,
}

/// The engine's answer to a failed write: what the client is told, whether this
/// leader must step down (its memory can no longer be trusted), and what to do next.
#[derive(Debug)]
pub struct Reaction {
    pub error: ShardError,
    pub step_down: Option<&'static str>,
    pub effects: Vec<Effect>,
}

impl Reaction {
    fn answer(error: ShardError) -> Self {
        Self {
            error,
            step_down: None,
            effects: Vec::new(),
        }
    }

    fn step_down(error: ShardError, why: &'static str) -> Self {
        Self {
            error,
            step_down: Some(why),
            effects: Vec::new(),
        }
    }
}

/// A hold as the engine knows it (the API shows it as a `HoldView`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldFacts {
    pub record: HoldRecord,
    pub phase: HoldPhase,
    pub amount_minor: i64,
    pub currency: String,
}

/// One leader's book and the show's rules.
pub struct Engine {
    rules: Rules,
    pub(crate) book: Book,
}

impl Engine {
    /// An empty book (every seat available).
    pub fn new(rules: Rules, layout: &VenueLayout) -> Self {
        Self {
            rules,
            book: Book::new(layout),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn inventory(&self) -> &Inventory {
        &self.book.inventory
    }

    /// Live holds, by id.
    pub fn hold_count(&self) -> usize {
        self.book.by_id.len()
    }

    fn event(
        &self,
        kind: SeatChange,
        holding: &Holding,
        hold: Option<&str>,
        booking: Option<&str>,
    ) -> Event {
        let inv = &self.book.inventory;
        let (seats, area) = match holding {
            Holding::Seats(s) => (
                s.iter().map(|&i| inv.seat_id(i).to_string()).collect(),
                None,
            ),
            Holding::General { area, .. } => (Vec::new(), Some(inv.areas()[*area].name.clone())),
        };
        Event {
            kind,
            seats,
            area,
            quantity: holding.quantity(),
            hold: hold.map(str::to_string),
            booking: booking.map(str::to_string),
            counts: inv.counts(),
        }
    }

    fn facts(&self, entry: &HoldEntry) -> HoldFacts {
        let (amount_minor, currency) = self.rules.price_of(&self.book.inventory, &entry.holding);
        HoldFacts {
            record: entry.record.clone(),
            phase: entry.phase,
            amount_minor,
            currency,
        }
    }
}
