//! The leader's in-memory book: the inventory plus the holds on it.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HoldState {
    /// Written to memory, etcd write in flight.
    Pending,
    Live,
    /// A confirm is in flight: expiry must not release it.
    Confirming,
    /// Being deleted (expiry or release).
    Ending,
}

#[derive(Debug)]
pub(super) struct HoldEntry {
    pub(super) record: HoldRecord,
    pub(super) holding: Holding,
    pub(super) deadline: Instant,
    pub(super) state: HoldState,
}

/// The leader's in-memory book: inventory plus holds.
pub(super) struct Book {
    pub(super) inventory: Inventory,
    pub(super) slots: Vec<Option<HoldEntry>>,
    pub(super) free: Vec<u32>,
    pub(super) by_id: HashMap<String, u32>,
    /// Seats and tickets each user holds or owns.
    pub(super) per_user: HashMap<String, u64>,
    /// (user, Idempotency-Key) → hold id.
    pub(super) idempotent: HashMap<(String, String), String>,
    /// Holds that expired lately (id → user), so a late confirm or extend is told
    /// `hold_expired` (410) rather than "not found". Bounded: the oldest are forgotten.
    expired: HashMap<String, String>,
    expired_order: std::collections::VecDeque<String>,
}

/// How many expired holds the book remembers.
const REMEMBER_EXPIRED: usize = 100_000;

impl Book {
    pub(super) fn new(layout: &VenueLayout) -> Self {
        Self {
            inventory: Inventory::new(layout),
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            per_user: HashMap::new(),
            idempotent: HashMap::new(),
            expired: HashMap::new(),
            expired_order: std::collections::VecDeque::new(),
        }
    }

    /// Remembers that hold `id` of `user` expired.
    pub(super) fn remember_expired(&mut self, id: &str, user: &str) {
        if self.expired_order.len() >= REMEMBER_EXPIRED
            && let Some(old) = self.expired_order.pop_front()
        {
            self.expired.remove(&old);
        }
        self.expired.insert(id.to_string(), user.to_string());
        self.expired_order.push_back(id.to_string());
    }

    /// Whether hold `id` of `user` expired lately.
    pub(super) fn expired_for(&self, id: &str, user: &str) -> bool {
        self.expired.get(id).is_some_and(|u| u == user)
    }

    pub(super) fn next_slot(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            (self.slots.len() - 1) as u32
        })
    }

    pub(super) fn insert(&mut self, slot: u32, entry: HoldEntry) {
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

    pub(super) fn entry(&self, id: &str) -> Option<(u32, &HoldEntry)> {
        let slot = *self.by_id.get(id)?;
        self.slots[slot as usize].as_ref().map(|e| (slot, e))
    }

    pub(super) fn entry_mut(&mut self, id: &str) -> Option<&mut HoldEntry> {
        let slot = *self.by_id.get(id)?;
        self.slots[slot as usize].as_mut()
    }

    /// Removes a hold; `sold` turns its seats into sold ones instead of releasing them.
    pub(super) fn remove(&mut self, id: &str, sold: bool) -> Option<HoldEntry> {
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
