//! The book's invariants, recomputed from raw state (seat by seat, hold by hold), not
//! read from the counters they are meant to check. Used after every step of the
//! property test; each check has a negative control in `tests.rs`.

use std::collections::{HashMap, HashSet};

use super::Engine;
use super::sim::World;
use crate::inventory::{Holding, SeatState};

/// Memory alone: counts add up per section and area, and every held seat belongs to
/// exactly one hold.
pub(crate) fn book(engine: &Engine) -> Result<(), String> {
    let inv = engine.inventory();
    for (i, s) in inv.sections().iter().enumerate() {
        let (mut available, mut held, mut sold) = (0i64, 0i64, 0i64);
        for row in &s.rows {
            for seat in row.first..row.first + row.seats {
                match inv.state(seat) {
                    SeatState::Available => available += 1,
                    SeatState::Held(_) => held += 1,
                    SeatState::Sold => sold += 1,
                }
            }
        }
        let c = inv.section_counts(i);
        if (c.available, c.held, c.sold) != (available, held, sold) {
            return Err(format!(
                "section {}: counters {c:?} but seats say {available}/{held}/{sold}",
                s.name
            ));
        }
        if c.available + c.held + c.sold != c.total {
            return Err(format!("section {}: {c:?} does not add up", s.name));
        }
    }
    // Holds: every seat of a hold is held by that hold's slot, no seat in two holds,
    // and the held tickets of each area are exactly its holds'.
    let mut seen: HashSet<u32> = HashSet::new();
    let mut area_held: HashMap<usize, u64> = HashMap::new();
    for (slot, entry) in engine.book.slots.iter().enumerate() {
        let Some(entry) = entry else { continue };
        if engine.book.by_id.get(&entry.record.id) != Some(&(slot as u32)) {
            return Err(format!(
                "hold {} is not indexed at its slot",
                entry.record.id
            ));
        }
        match &entry.holding {
            Holding::Seats(seats) => {
                for &seat in seats {
                    if !seen.insert(seat) {
                        return Err(format!("seat {} is in two holds", inv.seat_id(seat)));
                    }
                    if inv.state(seat) != SeatState::Held(slot as u32) {
                        return Err(format!(
                            "seat {} of hold {} is {:?}",
                            inv.seat_id(seat),
                            entry.record.id,
                            inv.state(seat)
                        ));
                    }
                }
            }
            Holding::General { area, quantity } => *area_held.entry(*area).or_default() += quantity,
        }
    }
    let held_seats = inv
        .sections()
        .iter()
        .enumerate()
        .map(|(i, _)| inv.section_counts(i).held)
        .sum::<i64>();
    if held_seats != seen.len() as i64 {
        return Err(format!(
            "{held_seats} seats held but holds have {}",
            seen.len()
        ));
    }
    for (i, a) in inv.areas().iter().enumerate() {
        if a.held + a.sold > a.capacity {
            return Err(format!(
                "area {}: {} held + {} sold > {}",
                a.name, a.held, a.sold, a.capacity
            ));
        }
        if a.held != area_held.get(&i).copied().unwrap_or(0) {
            return Err(format!(
                "area {}: {} held but holds have {:?}",
                a.name,
                a.held,
                area_held.get(&i)
            ));
        }
    }
    let c = inv.counts();
    if c.available + c.held + c.sold != c.total {
        return Err(format!("show counts {c:?} do not add up"));
    }
    Ok(())
}

/// Memory against the durable stores: no seat sold twice, memory's sales are the
/// stored ones, every acknowledged booking is stored, every live hold is in etcd, no
/// seat in two unbooked hold records.
pub(crate) fn world(engine: &Engine, world: &World) -> Result<(), String> {
    let inv = engine.inventory();
    let mut sold_seats: HashSet<&str> = HashSet::new();
    let mut sold_general: HashMap<&str, u64> = HashMap::new();
    for b in world.bookings.iter().filter(|b| !b.cancelled) {
        for seat in &b.seats {
            if !sold_seats.insert(seat) {
                return Err(format!("seat {seat} sold twice"));
            }
        }
        if let Some((area, q)) = &b.general {
            *sold_general.entry(area).or_default() += q;
        }
    }
    for a in inv.areas() {
        let stored = sold_general.get(a.name.as_str()).copied().unwrap_or(0);
        if stored > a.capacity {
            return Err(format!(
                "area {} oversold: {stored} > {}",
                a.name, a.capacity
            ));
        }
        if stored != a.sold {
            return Err(format!(
                "area {}: memory sold {} but stored {stored}",
                a.name, a.sold
            ));
        }
    }
    for seat in 0..inv.seat_count() as u32 {
        let id = inv.seat_id(seat).to_string();
        let stored = sold_seats.contains(id.as_str());
        if stored != (inv.state(seat) == SeatState::Sold) {
            return Err(format!(
                "seat {id}: memory {:?}, stored sold: {stored}",
                inv.state(seat)
            ));
        }
    }
    if world.provider_mode
        && let Some(b) = world
            .bookings
            .iter()
            .find(|b| b.confirmed_by.0 != "provider")
    {
        return Err(format!(
            "booking {} confirmed without a verified payment: {:?}",
            b.reference, b.confirmed_by
        ));
    }
    for reference in &world.acked {
        if !world.bookings.iter().any(|b| &b.reference == reference) {
            return Err(format!("acknowledged booking {reference} is lost"));
        }
    }
    for entry in engine.book.slots.iter().flatten() {
        let r = &entry.record;
        if world.holds.get(&r.id) != Some(r) {
            return Err(format!(
                "live hold {} is not in etcd as memory has it",
                r.id
            ));
        }
    }
    // etcd's records of unbooked holds never hold a seat twice: etcd itself does not
    // look at seats, the leader's memory and its fencing must see to it. (A booked
    // hold's record may linger until its lease ends; a new leader skips it.)
    let booked: HashSet<&str> = world.bookings.iter().map(|b| b.hold.as_str()).collect();
    let mut held = HashMap::new();
    for r in world
        .holds
        .values()
        .filter(|r| !booked.contains(r.id.as_str()))
    {
        for seat in &r.seats {
            if let Some(other) = held.insert(seat, &r.id) {
                return Err(format!(
                    "seat {seat} is in two hold records in etcd: {other} and {}",
                    r.id
                ));
            }
        }
    }
    Ok(())
}
