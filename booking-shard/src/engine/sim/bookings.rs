//! Confirms and bookings in the simulation.

use boxoffice_contract::HoldRecord;

use super::super::{Booking, BookingStatus, ConfirmDecision, GeneralTickets, NewBooking};
use super::{Outcome, Sim};

impl Sim {
    pub(super) fn confirm(
        &mut self,
        user: &str,
        hold: &str,
        outcome: Outcome,
    ) -> Result<(), String> {
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

    pub(super) fn finish_confirm(
        &mut self,
        record: HoldRecord,
        new: Box<NewBooking>,
        outcome: Outcome,
    ) -> Result<(), String> {
        let hold = record.id.clone();
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
            Outcome::NoSpace => {
                if let Some(reaction) = self.engine.confirm_write_failed(&hold, false) {
                    self.react(reaction);
                }
            }
            // A newer epoch in PostgreSQL: nothing written, and the shard steps down.
            Outcome::Fenced => {
                if let Some(reaction) = self.engine.confirm_write_failed(&hold, false) {
                    self.react(reaction);
                }
                self.leader_change();
            }
        }
        Ok(())
    }

    pub(super) fn booking(&self, i: usize) -> Option<Booking> {
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
}
