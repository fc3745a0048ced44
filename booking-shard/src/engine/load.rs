//! A leader change: the new leader's book from what PostgreSQL has sold and what etcd
//! holds, and the clean-up that makes etcd agree with it.

use std::collections::HashSet;
use std::time::Duration;

use boxoffice_contract::HoldRecord;
use boxoffice_crds::{SeatId, VenueLayout};

use super::{Book, Effect, Engine, HoldEntry, HoldPhase, Now, Rules, Sold};
use crate::inventory::{Holding, Inventory};

/// A new leader's engine and the clean-up to persist before it serves.
pub struct Loaded {
    pub engine: Engine,
    /// Delete stale holds (expired, already confirmed, unknown seats, or in conflict
    /// with a sale), then the seat locks of the earlier layout.
    pub effects: Vec<Effect>,
}

impl Engine {
    /// The book a new leader serves from: sold seats and tickets from `sold`, then every
    /// hold in `holds` that is live, not confirmed and still fits.
    pub fn load(
        rules: Rules,
        layout: &VenueLayout,
        sold: &Sold,
        holds: Vec<HoldRecord>,
        locks: Vec<(String, String)>,
        now: Now,
    ) -> Loaded {
        let mut book = Book::new(layout);
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
        let confirmed: HashSet<&String> = sold.confirmed_holds.iter().collect();
        let mut stale = Vec::new();
        for record in holds {
            if confirmed.contains(&record.id) || record.expires_at_ms <= now.wall_ms {
                stale.push(record);
                continue;
            }
            let Some(holding) = holding_of(&book.inventory, &record) else {
                stale.push(record);
                continue;
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
            let remaining = Duration::from_millis((record.expires_at_ms - now.wall_ms) as u64);
            let entry = HoldEntry::new(record, holding, now.mono + remaining, HoldPhase::Live);
            book.insert(slot, entry);
        }
        // Seat locks are the earlier layout's (a key per held seat beside the record):
        // nothing reads or compares them any more, so they all go. (A leader of that
        // layout, during a rolling upgrade, would have refused a hold on a seat whose
        // lock was left behind.)
        let orphans: Vec<String> = locks.into_iter().map(|(seat, _)| seat).collect();
        let mut effects = Vec::new();
        if !stale.is_empty() {
            effects.push(Effect::DeleteHolds(stale, super::SeatChange::Expired));
        }
        if !orphans.is_empty() {
            effects.push(Effect::DeleteSeatLocks(orphans));
        }
        Loaded {
            engine: Engine { rules, book },
            effects,
        }
    }
}

/// What a stored hold holds, if the venue still has it.
fn holding_of(inventory: &Inventory, record: &HoldRecord) -> Option<Holding> {
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
