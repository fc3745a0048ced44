//! Checkout and provider callbacks in the simulation, run the way `shard/payments.rs`
//! runs them (a checkout and a failed payment are written like extensions; a success
//! confirms through the same path as any confirm, its audit row naming the provider).

use super::super::{CheckoutDecision, ConfirmDecision, Confirmer};
use super::{Outcome, Sim};

impl Sim {
    /// A live hold by `pick`, by id.
    fn live(&self, pick: usize) -> Option<(String, String)> {
        let holds = self.holds();
        holds.get(pick % holds.len().max(1)).cloned()
    }

    pub(super) fn checkout(&mut self, pick: usize, outcome: Outcome) {
        if let Some((id, owner)) = self.live(pick)
            && let Ok(CheckoutDecision::Write(record, _)) =
                self.engine.checkout(&owner, &id, self.now)
        {
            self.extend(record, outcome);
        }
    }

    pub(super) fn paid(&mut self, pick: usize, outcome: Outcome) -> Result<(), String> {
        let Some((id, _)) = self.live(pick) else {
            return Ok(());
        };
        let event = format!("evt_{id}");
        match self
            .engine
            .confirm_by(Confirmer::Provider, &id, &event, self.now)
        {
            Ok(ConfirmDecision::Write {
                record,
                mut booking,
            }) => {
                booking.audit.role = "provider".into();
                booking.audit.reason = event;
                self.finish_confirm(record, booking, outcome)
            }
            _ => Ok(()),
        }
    }

    pub(super) fn payment_failed(&mut self, pick: usize) {
        if let Some((id, _)) = self.live(pick)
            && let Ok(Some(record)) = self.engine.payment_failed(&id)
        {
            self.extend(record, Outcome::Ok);
        }
    }
}
