//! The leader's in-memory book: the inventory plus the holds on it, with the indexes
//! the rules need (by id, by deadline, per user, per idempotency key).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use boxoffice_contract::HoldRecord;
use boxoffice_crds::VenueLayout;

use crate::inventory::{Holding, Inventory};

/// Where a hold is in its life. Only a `Live` hold may be extended, released,
/// confirmed or expired; the others have a write in flight.
///
/// ```text
/// Pending --written--> Live --confirm--> Confirming --booked--> (sold, gone)
///    |                  |  ^                  |
///    +--write failed--> gone  +--extend/abort-+  (confirm failed: back to Live)
///                       |
///                       +--release/expire--> Ending --deleted--> gone
/// ```
///
/// The payment states (a checkout in flight) fit between `Live` and `Confirming`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldPhase {
    /// Reserved in memory; its etcd write (or an extension's) is in flight.
    Pending,
    Live,
    /// A confirm is in flight: expiry must not release it.
    Confirming,
    /// Being deleted (expiry or release).
    Ending,
}

#[derive(Debug)]
pub struct HoldEntry {
    pub(crate) record: HoldRecord,
    pub(crate) holding: Holding,
    /// When the leader expires the hold (monotonic). Private: the book keeps an index
    /// of deadlines, so it changes only through [`Book::set_deadline`].
    deadline: Instant,
    pub(crate) phase: HoldPhase,
}

impl HoldEntry {
    pub(crate) fn new(
        record: HoldRecord,
        holding: Holding,
        deadline: Instant,
        phase: HoldPhase,
    ) -> Self {
        Self {
            record,
            holding,
            deadline,
            phase,
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether a command may act on the hold: only a live one. An ending hold is
    /// expired; one with a write in flight is busy (retry).
    pub(crate) fn usable(&self) -> Result<(), super::ShardError> {
        match self.phase {
            HoldPhase::Live => Ok(()),
            HoldPhase::Ending => Err(super::ShardError::Expired),
            _ => Err(super::ShardError::busy()),
        }
    }

    /// [`Self::usable`], and not past its deadline at `now` (the expiry loop may not
    /// have reached it yet).
    pub(crate) fn usable_at(&self, now: Instant) -> Result<(), super::ShardError> {
        self.usable()?;
        if self.deadline <= now {
            return Err(super::ShardError::Expired);
        }
        Ok(())
    }

    /// Where the hold is in a booking's life: waiting for its payment after a
    /// checkout, else held.
    pub fn state(&self) -> super::BookingState {
        if self.record.payment_intent.is_some() {
            super::BookingState::PaymentPending
        } else {
            super::BookingState::Held
        }
    }

    /// A copy (tests build corrupted books from one).
    #[cfg(test)]
    pub(crate) fn clone_for_test(&self) -> Self {
        Self {
            record: self.record.clone(),
            holding: self.holding.clone(),
            deadline: self.deadline,
            phase: self.phase,
        }
    }
}

/// The leader's in-memory book: inventory plus holds.
pub struct Book {
    pub(crate) inventory: Inventory,
    pub(crate) slots: Vec<Option<HoldEntry>>,
    pub(crate) free: Vec<u32>,
    pub(crate) by_id: HashMap<String, u32>,
    /// Every hold's (deadline, slot), in deadline order: expiry visits only what is due
    /// instead of scanning every live hold.
    deadlines: BTreeSet<(Instant, u32)>,
    /// Seats and tickets each user holds or owns.
    pub(crate) per_user: HashMap<String, u64>,
    /// (user, Idempotency-Key) → hold id.
    pub(crate) idempotent: HashMap<(String, String), String>,
    /// Holds that expired lately (id → user), so a late confirm or extend is told
    /// `hold_expired` (410) rather than "not found". Bounded: the oldest are forgotten.
    expired: HashMap<String, String>,
    expired_order: VecDeque<String>,
}

/// How many expired holds the book remembers.
const REMEMBER_EXPIRED: usize = 100_000;

impl Book {
    pub(crate) fn new(layout: &VenueLayout) -> Self {
        Self {
            inventory: Inventory::new(layout),
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            deadlines: BTreeSet::new(),
            per_user: HashMap::new(),
            idempotent: HashMap::new(),
            expired: HashMap::new(),
            expired_order: VecDeque::new(),
        }
    }

    /// Remembers that hold `id` of `user` expired.
    pub(crate) fn remember_expired(&mut self, id: &str, user: &str) {
        if self.expired_order.len() >= REMEMBER_EXPIRED
            && let Some(old) = self.expired_order.pop_front()
        {
            self.expired.remove(&old);
        }
        self.expired.insert(id.to_string(), user.to_string());
        self.expired_order.push_back(id.to_string());
    }

    /// Whether hold `id` of `user` expired lately.
    pub(crate) fn expired_for(&self, id: &str, user: &str) -> bool {
        self.expired.get(id).is_some_and(|u| u == user)
    }

    pub(crate) fn next_slot(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            (self.slots.len() - 1) as u32
        })
    }

    pub(crate) fn insert(&mut self, slot: u32, entry: HoldEntry) {
        self.by_id.insert(entry.record.id.clone(), slot);
        if let Some(key) = &entry.record.idempotency_key {
            self.idempotent.insert(
                (entry.record.user.clone(), key.clone()),
                entry.record.id.clone(),
            );
        }
        *self.per_user.entry(entry.record.user.clone()).or_default() += entry.holding.quantity();
        self.deadlines.insert((entry.deadline, slot));
        self.slots[slot as usize] = Some(entry);
    }

    /// Moves a hold's deadline (an extension).
    pub(crate) fn set_deadline(&mut self, id: &str, deadline: Instant) {
        let Some(&slot) = self.by_id.get(id) else {
            return;
        };
        if let Some(entry) = self.slots[slot as usize].as_mut() {
            self.deadlines.remove(&(entry.deadline, slot));
            entry.deadline = deadline;
            self.deadlines.insert((deadline, slot));
        }
    }

    /// Marks the live holds whose deadline has passed as ending and returns their
    /// records. Visits only holds that are due (a busy one — pending, confirming,
    /// ending — stays due and is looked at again next time), never the whole book.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<HoldRecord> {
        let mut due = Vec::new();
        for &(_, slot) in self.deadlines.range(..=(now, u32::MAX)) {
            if let Some(entry) = self.slots[slot as usize].as_mut()
                && entry.phase == HoldPhase::Live
            {
                entry.phase = HoldPhase::Ending;
                due.push(entry.record.clone());
            }
        }
        due
    }

    pub(crate) fn entry(&self, id: &str) -> Option<(u32, &HoldEntry)> {
        let slot = *self.by_id.get(id)?;
        self.slots[slot as usize].as_ref().map(|e| (slot, e))
    }

    pub(crate) fn entry_mut(&mut self, id: &str) -> Option<&mut HoldEntry> {
        let slot = *self.by_id.get(id)?;
        self.slots[slot as usize].as_mut()
    }

    /// Removes a hold; `sold` turns its seats into sold ones instead of releasing them.
    pub(crate) fn remove(&mut self, id: &str, sold: bool) -> Option<HoldEntry> {
        let slot = self.by_id.remove(id)?;
        let entry = self.slots[slot as usize].take()?;
        self.free.push(slot);
        self.deadlines.remove(&(entry.deadline, slot));
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

#[cfg(test)]
mod tests {
    use super::*;
    use boxoffice_crds::seating::AreaLayout;
    use std::time::Duration;

    fn book() -> Book {
        Book::new(&VenueLayout {
            sections: Vec::new(),
            areas: vec![AreaLayout {
                name: "pit".into(),
                category: "std".into(),
                capacity: 1_000,
            }],
        })
    }

    /// Adds a one-ticket hold `id` due at `deadline`, in `phase`.
    fn add(book: &mut Book, id: &str, deadline: Instant, phase: HoldPhase) {
        let holding = Holding::General {
            area: 0,
            quantity: 1,
        };
        let slot = book.next_slot();
        book.inventory.hold_general(0, 1).expect("capacity");
        let record = HoldRecord {
            id: id.into(),
            user: "u".into(),
            seats: Vec::new(),
            area: Some("pit".into()),
            quantity: 1,
            expires_at_ms: 0,
            idempotency_key: None,
            created_at_ms: 0,
            request_digest: String::new(),
            payment_intent: None,
        };
        book.insert(slot, HoldEntry::new(record, holding, deadline, phase));
    }

    fn ids(records: Vec<HoldRecord>) -> Vec<String> {
        let mut ids: Vec<String> = records.into_iter().map(|r| r.id).collect();
        ids.sort();
        ids
    }

    #[test]
    fn only_live_holds_past_their_deadline_are_due() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let mut book = book();
        add(&mut book, "late", now - s, HoldPhase::Live);
        add(&mut book, "on-time", now, HoldPhase::Live);
        add(&mut book, "future", now + s, HoldPhase::Live);
        add(&mut book, "pending", now - s, HoldPhase::Pending);
        add(&mut book, "confirming", now - s, HoldPhase::Confirming);
        add(&mut book, "ending", now - s, HoldPhase::Ending);

        assert_eq!(ids(book.take_due(now)), ["late", "on-time"]);
        for id in ["late", "on-time"] {
            assert_eq!(
                book.entry(id).map(|(_, e)| e.phase),
                Some(HoldPhase::Ending)
            );
        }
        // Taken once: ending holds are not handed out again.
        assert!(book.take_due(now).is_empty());
        // A confirm that failed puts its hold back: it is due at the next look.
        if let Some(e) = book.entry_mut("confirming") {
            e.phase = HoldPhase::Live;
        }
        assert_eq!(ids(book.take_due(now)), ["confirming"]);
        assert_eq!(ids(book.take_due(now + 2 * s)), ["future"]);
    }

    #[test]
    fn an_extension_moves_the_deadline_and_removal_forgets_it() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let mut book = book();
        add(&mut book, "a", now, HoldPhase::Live);
        add(&mut book, "b", now, HoldPhase::Live);
        book.set_deadline("a", now + 10 * s);
        assert_eq!(
            book.entry("a").map(|(_, e)| e.deadline()),
            Some(now + 10 * s)
        );
        book.remove("b", false);
        assert!(book.take_due(now + 5 * s).is_empty(), "a moved, b is gone");
        assert_eq!(ids(book.take_due(now + 10 * s)), ["a"]);
        // A slot reused by a new hold carries only the new hold's deadline.
        add(&mut book, "c", now + 20 * s, HoldPhase::Live);
        assert!(book.take_due(now + 15 * s).is_empty());
        assert_eq!(book.deadlines.len(), 2);
        book.remove("a", false);
        book.remove("c", false);
        assert!(book.deadlines.is_empty());
    }
}
