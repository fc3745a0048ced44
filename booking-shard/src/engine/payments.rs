//! Checkout: a live hold starts waiting for its payment. The server prices it from the
//! held seats' categories (the client never sends an amount), records a payment intent,
//! and moves the hold to a lease ending with the payment window.

use boxoffice_contract::HoldRecord;

use super::{
    BookingAction, Engine, HoldEntry, HoldFacts, HoldPhase, Now, Result, ShardError, Transition,
};

/// What a provider is asked to collect for a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// `pi_<hold id>`: one intent per hold, so a retried checkout names the same one.
    pub id: String,
    pub hold_id: String,
    pub user: String,
    pub amount_minor: i64,
    pub currency: String,
    pub seats: Vec<String>,
    pub area: Option<String>,
    pub quantity: u64,
    /// The hold's expiry at checkout: the end of the payment window.
    pub expires_at_ms: i64,
}

/// What a checkout decided.
#[derive(Debug)]
pub enum CheckoutDecision {
    /// The hold waits for its payment already: the same intent (record it again, it
    /// is idempotent).
    Existing(HoldFacts, Intent),
    /// Persist the record on a lease ending at its new expiry (as an extension:
    /// report [`Engine::extended`] or [`Engine::extend_failed`]), then record the
    /// intent.
    Write(HoldRecord, Intent),
}

/// The intent id of a hold.
pub fn intent_id(hold_id: &str) -> String {
    format!("pi_{hold_id}")
}

impl Engine {
    /// Starts paying for a live hold of `user`.
    pub fn checkout(&mut self, user: &str, hold_id: &str, now: Now) -> Result<CheckoutDecision> {
        let Some((_, entry)) = self.book.entry(hold_id) else {
            if self.book.expired_for(hold_id, user) {
                return Err(ShardError::Expired);
            }
            return Err(ShardError::NotFound);
        };
        if entry.record.user != user {
            return Err(ShardError::NotFound);
        }
        entry.usable_at(now.mono)?;
        let mode = self.rules.payments.mode;
        let transition = entry
            .state()
            .apply(BookingAction::Checkout { mode })
            .map_err(ShardError::Illegal)?;
        let window_end = now.wall_ms + self.rules.payments.window.as_millis() as i64;
        let expires_at_ms = entry.record.expires_at_ms.max(window_end);
        match transition {
            Transition::Unchanged => {
                let intent = self.intent(entry, entry.record.expires_at_ms);
                Ok(CheckoutDecision::Existing(self.facts(entry), intent))
            }
            Transition::To(_) => {
                let intent = self.intent(entry, expires_at_ms);
                let record = HoldRecord {
                    expires_at_ms,
                    payment_intent: Some(intent.id.clone()),
                    ..entry.record.clone()
                };
                // Pending: expiry leaves it alone while the new lease is written.
                self.set_phase(hold_id, HoldPhase::Pending);
                Ok(CheckoutDecision::Write(record, intent))
            }
        }
    }

    fn intent(&self, entry: &HoldEntry, expires_at_ms: i64) -> Intent {
        let (amount_minor, currency) = self.rules.price_of(&self.book.inventory, &entry.holding);
        let r = &entry.record;
        Intent {
            id: intent_id(&r.id),
            hold_id: r.id.clone(),
            user: r.user.clone(),
            amount_minor,
            currency,
            seats: r.seats.clone(),
            area: r.area.clone(),
            quantity: r.quantity,
            expires_at_ms,
        }
    }
}

impl Engine {
    /// A verified "payment failed" for a hold: a live hold waiting for its payment
    /// returns to held (the same expiry; persist the record as an extension). `None`:
    /// nothing to write (not waiting for a payment, or not live here).
    pub fn payment_failed(&mut self, hold_id: &str) -> Result<Option<HoldRecord>> {
        let Some(entry) = self.book.entry_mut(hold_id) else {
            return Ok(None);
        };
        if entry.phase != HoldPhase::Live {
            return Err(ShardError::busy());
        }
        match entry
            .state()
            .apply(BookingAction::PaymentFailed)
            .map_err(ShardError::Illegal)?
        {
            Transition::Unchanged => Ok(None),
            Transition::To(_) => {
                entry.phase = HoldPhase::Pending;
                Ok(Some(HoldRecord {
                    payment_intent: None,
                    ..entry.record.clone()
                }))
            }
        }
    }
}
