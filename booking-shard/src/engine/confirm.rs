//! Booking commands: confirm a hold, and what a cancelled booking gives back.

use boxoffice_contract::HoldRecord;
use boxoffice_crds::SeatId;

use super::{
    Booking, Engine, Event, Failure, GeneralTickets, HoldPhase, NewBooking, Now, Reaction, Result,
    SeatChange, ShardError,
};
use crate::inventory::{Holding, Inventory, SeatIndex};

/// What a confirm decided.
#[derive(Debug)]
pub enum ConfirmDecision {
    /// No live hold by that id: it may have been confirmed already (by this or an
    /// earlier leader). Look up the hold's booking; the user's is the answer.
    LookUp,
    /// The hold is confirming: persist [`Effect::CheckHold`], then
    /// [`Effect::WriteBooking`] with `booking`; report [`Engine::confirmed`] or a
    /// failure.
    Write {
        record: HoldRecord,
        booking: Box<NewBooking>,
    },
}

impl Engine {
    /// Decides a confirm of `hold_id` by `user`.
    pub fn confirm(
        &mut self,
        user: &str,
        hold_id: &str,
        payment_reference: &str,
        now: Now,
    ) -> Result<ConfirmDecision> {
        let Some((_, entry)) = self.book.entry(hold_id) else {
            if self.book.expired_for(hold_id, user) {
                return Err(ShardError::Expired);
            }
            return Ok(ConfirmDecision::LookUp);
        };
        if entry.record.user != user {
            return Err(ShardError::NotFound);
        }
        match entry.phase {
            HoldPhase::Live => {}
            HoldPhase::Ending => return Err(ShardError::Expired),
            _ => return Err(ShardError::busy()),
        }
        if entry.deadline() <= now.mono {
            return Err(ShardError::Expired);
        }
        let (amount_minor, currency) = self.rules.price_of(&self.book.inventory, &entry.holding);
        let record = entry.record.clone();
        let booking = NewBooking {
            user: user.to_string(),
            hold_id: hold_id.to_string(),
            payment_reference: payment_reference.to_string(),
            amount_minor,
            currency,
            seats: record.seats.clone(),
            general: record
                .area
                .clone()
                .map(|area| GeneralTickets {
                    area,
                    quantity: record.quantity as i64,
                })
                .into_iter()
                .collect(),
        };
        self.set_phase(hold_id, HoldPhase::Confirming);
        Ok(ConfirmDecision::Write {
            record,
            booking: Box::new(booking),
        })
    }

    /// The etcd check of a confirming hold failed: nothing was written.
    pub fn confirm_check_failed(&mut self, hold_id: &str, failure: Failure) -> Reaction {
        match failure {
            Failure::Fenced => {
                Reaction::step_down(ShardError::NotLeader(None), "fenced by etcd on confirm")
            }
            Failure::Refused => {
                self.set_phase(hold_id, HoldPhase::Live);
                Reaction::answer(ShardError::Expired)
            }
            Failure::NoSpace | Failure::Unknown => {
                self.set_phase(hold_id, HoldPhase::Live);
                Reaction::answer(ShardError::Unknown)
            }
        }
    }

    /// The booking's write failed. When its outcome is unknown the booking may exist:
    /// this leader must not put the seats back on sale on its own word, so it steps
    /// down and the next leader loads the truth (a booked hold is sold, else still
    /// held). Otherwise the hold is live again.
    pub fn confirm_write_failed(
        &mut self,
        hold_id: &str,
        outcome_unknown: bool,
    ) -> Option<Reaction> {
        if outcome_unknown {
            return Some(Reaction::step_down(
                ShardError::Unknown,
                "a confirm's outcome in PostgreSQL is unknown",
            ));
        }
        self.set_phase(hold_id, HoldPhase::Live);
        None
    }

    /// The booking is written: the hold's seats are sold. Then persist
    /// [`Effect::DeleteHolds`] for its locks (best effort: they expire with their lease).
    pub fn confirmed(&mut self, hold_id: &str, reference: &str) -> Option<Event> {
        let entry = self.book.remove(hold_id, true)?;
        Some(self.event(
            SeatChange::Sold,
            &entry.holding,
            Some(hold_id),
            Some(reference),
        ))
    }

    /// A booking was cancelled: its seats or tickets return to sale and stop counting
    /// against its user's limit.
    pub fn returned(&mut self, booking: &Booking) -> Event {
        let holding = holding_of_booking(&self.book.inventory, booking);
        self.book.inventory.unsell(&holding);
        if let Some(n) = self.book.per_user.get_mut(&booking.user) {
            *n = n.saturating_sub(holding.quantity());
        }
        self.event(
            SeatChange::Returned,
            &holding,
            None,
            Some(&booking.reference),
        )
    }
}

/// What a booking holds, in the inventory's terms.
pub(super) fn holding_of_booking(inv: &Inventory, b: &Booking) -> Holding {
    if let Some(g) = b.general.first()
        && let Some(area) = inv.area_index(&g.area)
    {
        return Holding::General {
            area,
            quantity: g.quantity as u64,
        };
    }
    Holding::Seats(
        b.seats
            .iter()
            .filter_map(|s| s.parse::<SeatId>().ok().and_then(|id| inv.seat_index(&id)))
            .collect::<Vec<SeatIndex>>(),
    )
}
