//! The leader's in-memory seat inventory: the source of truth for reads and conflict
//! checks while this replica leads (etcd and PostgreSQL are the durable truth it is
//! loaded from and written through to).
//!
//! Compact by design: one `u32` per reserved seat (available, sold, or the slot of the
//! hold that has it), rows as ranges of seat indices, holds in a slab.

use std::collections::HashMap;

use boxoffice_crds::{InventoryCounts, SeatId, VenueLayout};

/// A seat's index in the inventory.
pub type SeatIndex = u32;

const AVAILABLE: u32 = 0;
const SOLD: u32 = u32::MAX;

/// A row: its name and the seat indices `first .. first + seats`.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub first: SeatIndex,
    pub seats: u32,
    available: u32,
}

/// A section: its rows and counters.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub category: String,
    pub rows: Vec<Row>,
    row_by_name: HashMap<String, usize>,
    counts: InventoryCounts,
}

/// A general-admission area.
#[derive(Debug, Clone)]
pub struct Area {
    pub name: String,
    pub category: String,
    pub capacity: u64,
    pub held: u64,
    pub sold: u64,
}

impl Area {
    pub fn available(&self) -> u64 {
        self.capacity - self.held - self.sold
    }
}

/// What a hold has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    Seats(Vec<SeatIndex>),
    General { area: usize, quantity: u64 },
}

impl Holding {
    /// Seats or tickets held.
    pub fn quantity(&self) -> u64 {
        match self {
            Holding::Seats(s) => s.len() as u64,
            Holding::General { quantity, .. } => *quantity,
        }
    }
}

/// Why seats could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("seats unavailable")]
    Seats(Vec<SeatIndex>),
    #[error("only {available} left in {area}")]
    General { area: String, available: u64 },
}

/// The inventory of one show.
#[derive(Debug)]
pub struct Inventory {
    sections: Vec<Section>,
    section_by_name: HashMap<String, usize>,
    /// Per seat: `AVAILABLE`, `SOLD`, or a hold slot + 1.
    seats: Vec<u32>,
    /// Which section each seat belongs to is found by binary search over section starts.
    section_starts: Vec<SeatIndex>,
    areas: Vec<Area>,
    area_by_name: HashMap<String, usize>,
}

impl Inventory {
    /// An inventory with every seat available.
    pub fn new(layout: &VenueLayout) -> Self {
        let mut seats_total = 0u32;
        let mut sections = Vec::with_capacity(layout.sections.len());
        let mut section_starts = Vec::with_capacity(layout.sections.len());
        for s in &layout.sections {
            section_starts.push(seats_total);
            let mut rows = Vec::with_capacity(s.rows.len());
            let mut row_by_name = HashMap::with_capacity(s.rows.len());
            for r in &s.rows {
                row_by_name.insert(r.name.clone(), rows.len());
                rows.push(Row {
                    name: r.name.clone(),
                    first: seats_total,
                    seats: r.seats,
                    available: r.seats,
                });
                seats_total += r.seats;
            }
            let total = i64::from(rows.iter().map(|r| r.seats).sum::<u32>());
            sections.push(Section {
                name: s.name.clone(),
                category: s.category.clone(),
                rows,
                row_by_name,
                counts: InventoryCounts {
                    total,
                    available: total,
                    held: 0,
                    sold: 0,
                },
            });
        }
        let section_by_name = sections
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let areas: Vec<Area> = layout
            .areas
            .iter()
            .map(|a| Area {
                name: a.name.clone(),
                category: a.category.clone(),
                capacity: a.capacity,
                held: 0,
                sold: 0,
            })
            .collect();
        let area_by_name = areas
            .iter()
            .enumerate()
            .map(|(i, a)| (a.name.clone(), i))
            .collect();
        Self {
            sections,
            section_by_name,
            seats: vec![AVAILABLE; seats_total as usize],
            section_starts,
            areas,
            area_by_name,
        }
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    pub fn areas(&self) -> &[Area] {
        &self.areas
    }

    pub fn area_index(&self, name: &str) -> Option<usize> {
        self.area_by_name.get(name).copied()
    }

    pub fn seat_count(&self) -> usize {
        self.seats.len()
    }

    /// The index of a seat id, if the venue has that seat.
    pub fn seat_index(&self, id: &SeatId) -> Option<SeatIndex> {
        let section = &self.sections[*self.section_by_name.get(&id.section)?];
        let row = &section.rows[*section.row_by_name.get(&id.row)?];
        (id.number >= 1 && id.number <= row.seats).then(|| row.first + id.number - 1)
    }

    fn locate(&self, seat: SeatIndex) -> (usize, usize) {
        let s = self.section_starts.partition_point(|&start| start <= seat) - 1;
        let rows = &self.sections[s].rows;
        let r = rows.partition_point(|row| row.first <= seat) - 1;
        (s, r)
    }

    /// The price category of a seat.
    pub fn category_of(&self, seat: SeatIndex) -> &str {
        &self.sections[self.locate(seat).0].category
    }

    /// The seat id of an index.
    pub fn seat_id(&self, seat: SeatIndex) -> SeatId {
        let (s, r) = self.locate(seat);
        let section = &self.sections[s];
        let row = &section.rows[r];
        SeatId::new(&section.name, &row.name, seat - row.first + 1)
    }

    /// The state of one seat.
    pub fn state(&self, seat: SeatIndex) -> SeatState {
        match self.seats[seat as usize] {
            AVAILABLE => SeatState::Available,
            SOLD => SeatState::Sold,
            slot => SeatState::Held(slot - 1),
        }
    }

    /// Seats among `seats` that are not available (or repeated).
    pub fn unavailable(&self, seats: &[SeatIndex]) -> Vec<SeatIndex> {
        let mut bad: Vec<SeatIndex> = seats
            .iter()
            .copied()
            .filter(|&s| self.seats[s as usize] != AVAILABLE)
            .collect();
        bad.sort_unstable();
        bad.dedup();
        bad
    }

    fn set(&mut self, seat: SeatIndex, value: u32) {
        let old = self.seats[seat as usize];
        if old == value {
            return;
        }
        let (s, r) = self.locate(seat);
        let section = &mut self.sections[s];
        let counts = &mut section.counts;
        let row = &mut section.rows[r];
        match old {
            AVAILABLE => {
                counts.available -= 1;
                row.available -= 1;
            }
            SOLD => counts.sold -= 1,
            _ => counts.held -= 1,
        }
        match value {
            AVAILABLE => {
                counts.available += 1;
                row.available += 1;
            }
            SOLD => counts.sold += 1,
            _ => counts.held += 1,
        }
        self.seats[seat as usize] = value;
    }

    /// Marks `seats` held by hold slot `slot`; fails without change if any is taken.
    pub fn hold_seats(&mut self, slot: u32, seats: &[SeatIndex]) -> Result<(), Unavailable> {
        let bad = self.unavailable(seats);
        let mut sorted = seats.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if !bad.is_empty() || sorted.len() != seats.len() {
            return Err(Unavailable::Seats(bad));
        }
        for &s in seats {
            self.set(s, slot + 1);
        }
        Ok(())
    }

    /// Takes `quantity` of a general-admission area for a hold.
    pub fn hold_general(&mut self, area: usize, quantity: u64) -> Result<(), Unavailable> {
        let a = &mut self.areas[area];
        if quantity > a.available() {
            return Err(Unavailable::General {
                area: a.name.clone(),
                available: a.available(),
            });
        }
        a.held += quantity;
        Ok(())
    }

    /// Returns a holding's seats (held by `slot`) or tickets to sale.
    pub fn release(&mut self, slot: u32, holding: &Holding) {
        match holding {
            Holding::Seats(seats) => {
                for &s in seats {
                    if self.seats[s as usize] == slot + 1 {
                        self.set(s, AVAILABLE);
                    }
                }
            }
            Holding::General { area, quantity } => {
                let a = &mut self.areas[*area];
                a.held = a.held.saturating_sub(*quantity);
            }
        }
    }

    /// Turns a holding into sold seats or tickets.
    pub fn sell(&mut self, holding: &Holding) {
        match holding {
            Holding::Seats(seats) => seats.iter().for_each(|&s| self.set(s, SOLD)),
            Holding::General { area, quantity } => {
                let a = &mut self.areas[*area];
                a.held = a.held.saturating_sub(*quantity);
                a.sold += quantity;
            }
        }
    }

    /// Marks sold what PostgreSQL says is sold (at leader start), without a hold.
    pub fn load_sold(&mut self, holding: &Holding) {
        match holding {
            Holding::Seats(seats) => seats.iter().for_each(|&s| self.set(s, SOLD)),
            Holding::General { area, quantity } => self.areas[*area].sold += quantity,
        }
    }

    /// Returns sold seats or tickets to sale (a cancelled booking).
    pub fn unsell(&mut self, holding: &Holding) {
        match holding {
            Holding::Seats(seats) => {
                for &s in seats {
                    if self.seats[s as usize] == SOLD {
                        self.set(s, AVAILABLE);
                    }
                }
            }
            Holding::General { area, quantity } => {
                let a = &mut self.areas[*area];
                a.sold = a.sold.saturating_sub(*quantity);
            }
        }
    }

    /// Counts for one section.
    pub fn section_counts(&self, section: usize) -> InventoryCounts {
        self.sections[section].counts
    }

    /// Counts over every section and area: `available + held + sold == total`.
    pub fn counts(&self) -> InventoryCounts {
        let mut c = InventoryCounts::default();
        for s in &self.sections {
            c.total += s.counts.total;
            c.available += s.counts.available;
            c.held += s.counts.held;
            c.sold += s.counts.sold;
        }
        for a in &self.areas {
            c.total += a.capacity as i64;
            c.available += a.available() as i64;
            c.held += a.held as i64;
            c.sold += a.sold as i64;
        }
        c
    }

    /// Bytes used by the seat table and rows (for the memory benchmark).
    pub fn approx_bytes(&self) -> usize {
        self.seats.capacity() * 4
            + self
                .sections
                .iter()
                .map(|s| s.rows.len() * (std::mem::size_of::<Row>() + 16) * 2)
                .sum::<usize>()
    }
}

/// A seat's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatState {
    Available,
    Held(u32),
    Sold,
}

mod best;
#[cfg(test)]
mod tests;
