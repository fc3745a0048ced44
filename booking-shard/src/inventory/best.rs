//! Best-available seat choice: adjacent seats in one row, front rows first, avoiding
//! single stranded seats.

use super::{AVAILABLE, Inventory, SeatIndex};

impl Inventory {
    /// `quantity` adjacent available seats in one row, front rows first, in the named
    /// section or in any section of the named category. A placement that would leave a
    /// single seat stranded between taken seats (or an edge) is used only if no other
    /// placement exists.
    pub fn best_available(
        &self,
        section: Option<&str>,
        category: Option<&str>,
        quantity: u32,
    ) -> Option<Vec<SeatIndex>> {
        if quantity == 0 {
            return None;
        }
        let mut fallback: Option<(SeatIndex, u32)> = None;
        for s in &self.sections {
            if section.is_some_and(|n| n != s.name) || category.is_some_and(|c| c != s.category) {
                continue;
            }
            if s.counts.available < i64::from(quantity) {
                continue;
            }
            for row in &s.rows {
                if row.available < quantity {
                    continue;
                }
                let mut run_start = None;
                for i in 0..=row.seats {
                    let free = i < row.seats && self.seats[(row.first + i) as usize] == AVAILABLE;
                    match (free, run_start) {
                        (true, None) => run_start = Some(i),
                        (false, Some(start)) => {
                            let len = i - start;
                            if len >= quantity {
                                let first = row.first + start;
                                // Left-aligned leaves 0 on the left and len-q on the right;
                                // right-aligned the reverse. An orphan is a gap of exactly 1.
                                if len - quantity != 1 {
                                    return Some((first..first + quantity).collect());
                                }
                                fallback.get_or_insert((first, quantity));
                            }
                            run_start = None;
                        }
                        _ => {}
                    }
                }
            }
        }
        fallback.map(|(first, q)| (first..first + q).collect())
    }
}
