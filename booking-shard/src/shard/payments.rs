//! Checkout and provider callbacks: the engine decides, etcd and PostgreSQL persist,
//! every transition with its audit row.

use serde_json::json;
use tracing::warn;

use super::bookings::AuditAs;
use super::{Leadership, Result, Shard, ShardError, failure};
use crate::engine::{
    AuditRow, BookingState, Confirmer, HoldCommand, HoldDecision, HoldRequest, Intent, Now,
};
use crate::payments::{Callback, CallbackKind};
use crate::shard::HoldView;
use crate::store::{EventAnswer, HistoryEntry};

fn row(actor: &str, role: &str, from: BookingState, to: BookingState, action: &str) -> AuditRow {
    AuditRow {
        actor: actor.to_string(),
        role: role.to_string(),
        from,
        to,
        action: action.to_string(),
        reason: String::new(),
    }
}

fn answer(status: u16, body: serde_json::Value) -> EventAnswer {
    EventAnswer { status, body }
}

impl Shard {
    /// Starts paying for a hold: payment pending, to the end of the payment window,
    /// with an intent priced by the server.
    pub async fn checkout(&self, user: &str, hold_id: &str) -> Result<(HoldView, Intent)> {
        let l = self.leadership()?;
        let decided = self.engine(&l).checkout(user, hold_id, Now::read())?;
        let (facts, intent, moved) = match decided {
            crate::engine::CheckoutDecision::Existing(facts, intent) => (facts, intent, false),
            crate::engine::CheckoutDecision::Write(record, intent) => {
                let written = async {
                    let lease = self.coord.hold_lease(record.expires_at_ms).await?;
                    self.coord.extend_hold(l.epoch, &record, lease).await
                }
                .await;
                match written {
                    Ok(()) => (self.engine(&l).extended(record)?, intent, true),
                    Err(e) => {
                        let reaction = self.engine(&l).extend_failed(&record, failure(&e));
                        return Err(self.react(&l, reaction).await);
                    }
                }
            }
        };
        let mut audit = row(
            user,
            "user",
            BookingState::Held,
            BookingState::PaymentPending,
            "checkout",
        );
        audit.reason = intent.id.clone();
        self.store
            .record_intent(l.epoch, &intent, &audit, moved)
            .await
            .map_err(|e| self.store_error(&l, e))?;
        Ok((facts.into(), intent))
    }

    /// A verified provider callback. A known event id gets its first answer; an
    /// amount or currency that differs from the intent is refused and logged.
    /// Transient failures (no leader, a busy hold, an unknown outcome) are errors and
    /// not remembered: the provider retries.
    pub async fn payment_callback(&self, provider: &str, cb: &Callback) -> Result<EventAnswer> {
        let l = self.leadership()?;
        let store_err = |e| self.store_error(&l, e);
        if let Some(first) = self
            .store
            .payment_event(provider, &cb.id)
            .await
            .map_err(store_err)?
        {
            return Ok(first);
        }
        let intent = self
            .store
            .intent(&cb.intent)
            .await
            .map_err(store_err)?
            .ok_or(ShardError::NotFound)?;
        let answered = if intent.amount_minor != cb.amount_minor || intent.currency != cb.currency {
            warn!(
                provider,
                event = %cb.id,
                intent = %intent.id,
                expected = %format!("{} {}", intent.amount_minor, intent.currency),
                got = %format!("{} {}", cb.amount_minor, cb.currency),
                "payment callback refused: amount or currency does not match the intent"
            );
            answer(
                422,
                json!({"error": {"code": "payment_mismatch",
                    "message": "the amount or currency does not match the payment intent"}}),
            )
        } else {
            let actor = format!("provider:{provider}");
            let handled = match cb.kind {
                CallbackKind::Paid => self.paid(&l, &actor, &intent, cb).await,
                CallbackKind::Failed => self.payment_failed(&l, &actor, &intent, cb).await,
                CallbackKind::Refunded => self.refund_done(&l, &actor, &intent, cb).await,
            };
            match handled {
                Ok(answer) => answer,
                // A definite refusal is the event's answer for good (remembered).
                Err(ShardError::Illegal(e)) => {
                    warn!(provider, event = %cb.id, intent = %intent.id, refused = %e,
                        "payment callback refused by the booking's state");
                    answer(
                        409,
                        json!({"error": {"code": "illegal_transition", "message": e.to_string()}}),
                    )
                }
                Err(e) => return Err(e),
            }
        };
        self.store
            .remember_event(provider, &cb.id, &intent.id, cb.kind.as_str(), &answered)
            .await
            .map_err(store_err)
    }

    async fn paid(
        &self,
        l: &Leadership,
        actor: &str,
        intent: &Intent,
        cb: &Callback,
    ) -> Result<EventAnswer> {
        let audit = |from| AuditAs {
            actor: actor.to_string(),
            role: "provider",
            reason: cb.id.clone(),
            from,
        };
        let confirmed = |b: crate::store::Booking| {
            answer(
                200,
                json!({"state": b.state().as_str(), "reference": b.reference}),
            )
        };
        match self
            .confirm_by(
                Confirmer::Provider,
                audit(None),
                &intent.hold_id,
                &cb.payment,
            )
            .await
        {
            Ok((booking, _)) => return Ok(confirmed(booking)),
            Err(ShardError::NotFound) => {}
            Err(e) => return Err(e),
        }
        // The hold ended before its payment came (or it was paid and refunded, or
        // failed, under another event id).
        let trail = self
            .store
            .trail_state(&intent.hold_id)
            .await
            .map_err(|e| self.store_error(l, e))?;
        if let Some(state @ (BookingState::Failed | BookingState::Refunded)) = trail {
            return Ok(answer(200, json!({"state": state.as_str()})));
        }
        let ended = row(
            "system",
            "system",
            trail.unwrap_or(BookingState::PaymentPending),
            BookingState::Expired,
            "expire",
        );
        self.store
            .record_transition(l.epoch, &intent.hold_id, &ended)
            .await
            .map_err(|e| self.store_error(l, e))?;
        // Take the same seats again, under the same hold id, if they are still free.
        match self.retake(l, intent).await {
            Ok(()) => {
                let (booking, _) = self
                    .confirm_by(
                        Confirmer::Provider,
                        audit(Some(BookingState::Expired)),
                        &intent.hold_id,
                        &cb.payment,
                    )
                    .await?;
                Ok(confirmed(booking))
            }
            Err(e) if e.is_conflict() => {
                warn!(intent = %intent.id, event = %cb.id,
                    "a late payment found its seats gone: the booking failed, a refund is requested");
                let mut failed = row(
                    actor,
                    "provider",
                    BookingState::Expired,
                    BookingState::Failed,
                    "paid",
                );
                failed.reason = format!("{}: seats gone, refund requested", cb.id);
                self.store
                    .record_transition(l.epoch, &intent.hold_id, &failed)
                    .await
                    .map_err(|e| self.store_error(l, e))?;
                Ok(answer(
                    200,
                    json!({"state": "failed", "refund": "requested"}),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Holds an ended intent's seats again for its user, under its hold id.
    async fn retake(&self, l: &Leadership, intent: &Intent) -> Result<()> {
        let request = match &intent.area {
            Some(area) => HoldRequest::General {
                area: area.clone(),
                quantity: intent.quantity,
            },
            None => HoldRequest::Seats(intent.seats.clone()),
        };
        let command = HoldCommand {
            user: &intent.user,
            request: &request,
            idempotency_key: None,
            id: intent.hold_id.clone(),
            closed: false,
            now: Now::read(),
        };
        let decided = self.engine(l).hold(command)?;
        let HoldDecision::Write(record) = decided else {
            return Ok(());
        };
        let written = async {
            let lease = self.coord.hold_lease(record.expires_at_ms).await?;
            self.coord.create_hold(l.epoch, &record, lease).await
        }
        .await;
        match written {
            Ok(()) => {
                let (_, event) = self.engine(l).hold_written(&record.id)?;
                self.publish(event);
                Ok(())
            }
            Err(e) => {
                let reaction = self.engine(l).hold_failed(&record, failure(&e));
                Err(self.react(l, reaction).await)
            }
        }
    }

    async fn payment_failed(
        &self,
        l: &Leadership,
        actor: &str,
        intent: &Intent,
        cb: &Callback,
    ) -> Result<EventAnswer> {
        let decided = self.engine(l).payment_failed(&intent.hold_id)?;
        let Some(record) = decided else {
            // Not waiting here: a booking refuses a failure after its success.
            let booked = self
                .store
                .booking_for_hold(&intent.hold_id)
                .await
                .map_err(|e| self.store_error(l, e))?;
            if let Some(b) = booked {
                b.state()
                    .apply(crate::engine::BookingAction::PaymentFailed)
                    .map_err(ShardError::Illegal)?;
            }
            return Ok(answer(200, json!({"state": "unchanged"})));
        };
        let written = async {
            let lease = self.coord.hold_lease(record.expires_at_ms).await?;
            self.coord.extend_hold(l.epoch, &record, lease).await
        }
        .await;
        if let Err(e) = written {
            let reaction = self.engine(l).extend_failed(&record, failure(&e));
            return Err(self.react(l, reaction).await);
        }
        self.engine(l).extended(record)?;
        let mut back = row(
            actor,
            "provider",
            BookingState::PaymentPending,
            BookingState::Held,
            "payment_failed",
        );
        back.reason = cb.id.clone();
        self.store
            .record_transition(l.epoch, &intent.hold_id, &back)
            .await
            .map_err(|e| self.store_error(l, e))?;
        Ok(answer(200, json!({"state": "held"})))
    }

    async fn refund_done(
        &self,
        l: &Leadership,
        actor: &str,
        intent: &Intent,
        cb: &Callback,
    ) -> Result<EventAnswer> {
        let mut done = row(
            actor,
            "provider",
            BookingState::RefundPending,
            BookingState::Refunded,
            "refunded",
        );
        done.reason = cb.id.clone();
        match self
            .store
            .refunded(l.epoch, &intent.hold_id, done.clone())
            .await
        {
            Ok(b) => Ok(answer(
                200,
                json!({"state": b.state().as_str(), "reference": b.reference}),
            )),
            // No booking: a failed late payment's refund.
            Err(crate::store::StoreError::NotFound) => {
                let trail = self
                    .store
                    .trail_state(&intent.hold_id)
                    .await
                    .map_err(|e| self.store_error(l, e))?;
                match trail {
                    Some(BookingState::Failed) => {
                        done.from = BookingState::Failed;
                        self.store
                            .record_transition(l.epoch, &intent.hold_id, &done)
                            .await
                            .map_err(|e| self.store_error(l, e))?;
                        Ok(answer(200, json!({"state": "refunded"})))
                    }
                    Some(BookingState::Refunded) => Ok(answer(200, json!({"state": "refunded"}))),
                    _ => Err(ShardError::Illegal(
                        crate::engine::IllegalTransition::NoRefundPending,
                    )),
                }
            }
            Err(e) => Err(self.store_error(l, e)),
        }
    }

    /// A booking's audit trail (staff), by its reference.
    pub async fn history(&self, reference: &str) -> Result<Vec<HistoryEntry>> {
        let l = self.leadership()?;
        let booking = self
            .store
            .booking(reference)
            .await
            .map_err(|e| self.store_error(&l, e))?
            .ok_or(ShardError::NotFound)?;
        self.store
            .history(&booking.hold_id)
            .await
            .map_err(|e| self.store_error(&l, e))
    }
}
