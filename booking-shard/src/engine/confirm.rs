//! Booking commands: confirm a hold, and what a cancelled booking gives back.

use boxoffice_contract::HoldRecord;
use boxoffice_crds::SeatId;

use super::{
    AuditRow, Booking, BookingAction, BookingState, Engine, Event, GeneralTickets, HoldPhase,
    NewBooking, Now, Reaction, Result, SeatChange, ShardError,
};
use crate::inventory::{Holding, Inventory, SeatIndex};

/// Who confirms a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmer<'a> {
    /// The hold's user.
    User(&'a str),
    /// A service with the `payments` role (trustedService mode).
    Service,
    /// A provider callback whose signature was verified (provider mode).
    Provider,
}

/// What a confirm decided.
#[derive(Debug)]
pub enum ConfirmDecision {
    /// No live hold by that id: it may have been confirmed already (by this or an
    /// earlier leader). Look up the hold's booking; the user's is the answer.
    LookUp,
    /// The hold is confirming: persist [`Effect::WriteBooking`] with `booking` (the
    /// write's epoch check is the fence: no etcd round trip first); report
    /// [`Engine::confirmed`] or a failure.
    Write {
        record: HoldRecord,
        booking: Box<NewBooking>,
    },
}

impl Engine {
    /// Decides a confirm of `hold_id` by its `user` (the show's payment mode decides
    /// whether a user may confirm at all).
    pub fn confirm(
        &mut self,
        user: &str,
        hold_id: &str,
        payment_reference: &str,
        now: Now,
    ) -> Result<ConfirmDecision> {
        self.confirm_by(Confirmer::User(user), hold_id, payment_reference, now)
    }

    /// Decides a confirm of `hold_id` by `by`: its user, a trusted service, or a
    /// verified provider callback (the lifecycle table's confirm and paid columns).
    pub fn confirm_by(
        &mut self,
        by: Confirmer<'_>,
        hold_id: &str,
        payment_reference: &str,
        now: Now,
    ) -> Result<ConfirmDecision> {
        let owner = match by {
            Confirmer::User(user) => Some(user),
            Confirmer::Service | Confirmer::Provider => None,
        };
        let Some((_, entry)) = self.book.entry(hold_id) else {
            if let Some(user) = owner
                && self.book.expired_for(hold_id, user)
            {
                return Err(ShardError::Expired);
            }
            return Ok(ConfirmDecision::LookUp);
        };
        if owner.is_some_and(|user| entry.record.user != user) {
            return Err(ShardError::NotFound);
        }
        entry.usable_at(now.mono)?;
        let mode = self.rules.payments.mode;
        let action = match by {
            Confirmer::User(_) => BookingAction::Confirm {
                mode,
                trusted: false,
            },
            Confirmer::Service => BookingAction::Confirm {
                mode,
                trusted: true,
            },
            Confirmer::Provider => BookingAction::Paid { seats_free: true },
        };
        entry.state().apply(action).map_err(ShardError::Illegal)?;
        let user = entry.record.user.clone();
        let (amount_minor, currency) = self.rules.price_of(&self.book.inventory, &entry.holding);
        let record = entry.record.clone();
        let audit = AuditRow {
            actor: user.clone(),
            role: "user".into(),
            from: entry.state(),
            to: BookingState::Confirmed,
            action: action.as_str().into(),
            reason: String::new(),
        };
        let booking = NewBooking {
            audit,
            user,
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

    /// The booking is written: the hold's seats are sold. Then delete its record, off
    /// the answer's path (best effort: it expires with its lease, and a new leader
    /// skips a booked hold).
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
