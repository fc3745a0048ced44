//! Confirming holds into bookings, cancelling and checking in: the engine decides,
//! PostgreSQL persists (fenced), then the hold's etcd record goes off the answer's path.

use tracing::{error, warn};

use super::{DB_TIMEOUT, Leadership, Result, Shard, ShardError, bump};
use crate::engine::{BookingState, ConfirmDecision, Confirmer, Now};

/// Who a confirm's audit row names, and why.
#[derive(Debug, Clone)]
pub struct AuditAs {
    pub actor: String,
    pub role: &'static str,
    pub reason: String,
    /// The state the trail is in when it differs from the hold's (a late payment
    /// confirms a hold that had expired).
    pub from: Option<BookingState>,
}
use crate::store::{Booking, StoreError, Who};

impl Shard {
    /// Confirms a hold into a booking. Confirming the same hold again returns the
    /// first booking (`false`: not newly created).
    pub async fn confirm(
        &self,
        user: &str,
        hold_id: &str,
        payment_reference: &str,
    ) -> Result<(Booking, bool)> {
        let audit = AuditAs {
            actor: user.to_string(),
            role: "user",
            reason: String::new(),
            from: None,
        };
        self.confirm_by(Confirmer::User(user), audit, hold_id, payment_reference)
            .await
    }

    /// Confirms a hold by `by` (its user, a trusted service, a verified provider
    /// callback), writing `audit`'s row with the booking.
    pub async fn confirm_by(
        &self,
        by: Confirmer<'_>,
        audit: AuditAs,
        hold_id: &str,
        payment_reference: &str,
    ) -> Result<(Booking, bool)> {
        let l = self.leadership()?;
        let decided = self
            .engine(&l)
            .confirm_by(by, hold_id, payment_reference, Now::read())?;
        let (record, mut new) = match decided {
            ConfirmDecision::Write { record, booking } => (record, booking),
            // Not a live hold: already confirmed (by this or an earlier leader)?
            ConfirmDecision::LookUp => {
                let owner = match by {
                    Confirmer::User(user) => Some(user),
                    _ => None,
                };
                return match self.store.booking_for_hold(hold_id).await {
                    Ok(Some(b)) if owner.is_none_or(|u| b.user == u) => Ok((b, false)),
                    Ok(_) => Err(ShardError::NotFound),
                    Err(e) => Err(self.store_error(&l, e)),
                };
            }
        };
        new.audit.actor = audit.actor;
        new.audit.role = audit.role.to_string();
        new.audit.reason = audit.reason;
        if let Some(from) = audit.from {
            new.audit.from = from;
        }
        self.fault_pause().await;
        let written = tokio::time::timeout(DB_TIMEOUT, self.store.confirm(l.epoch, &new))
            .await
            .unwrap_or(Err(StoreError::Timeout));
        match written {
            Ok((booking, created)) => {
                bump(&self.stats.confirms);
                let event = self.engine(&l).confirmed(hold_id, &booking.reference);
                if let Some(event) = event {
                    self.publish(event);
                }
                self.coord.forget_hold(l.epoch, &record);
                Ok((booking, created))
            }
            Err(e) => {
                let unknown = e.outcome_unknown();
                if unknown {
                    warn!(error = %e, hold = hold_id, "a confirm's outcome is unknown");
                }
                let reaction = self.engine(&l).confirm_write_failed(hold_id, unknown);
                match reaction {
                    Some(reaction) => Err(self.react(&l, reaction).await),
                    None => Err(self.store_error(&l, e)),
                }
            }
        }
    }

    /// A PostgreSQL error in the domain's terms; a sign of stale memory or a newer
    /// leader ends this leadership.
    pub(super) fn store_error(&self, l: &Leadership, e: StoreError) -> ShardError {
        match e {
            StoreError::Fenced => {
                self.step_down(l, "fenced by PostgreSQL");
                ShardError::NotLeader(None)
            }
            StoreError::SeatsTaken(seats) => {
                error!(?seats, "PostgreSQL refused a double sale; memory was stale");
                self.step_down(l, "PostgreSQL has sales memory did not know");
                ShardError::SeatsUnavailable(seats)
            }
            StoreError::OverCapacity(area) => {
                self.step_down(l, "PostgreSQL refused to oversell an area");
                ShardError::SoldOut { area, available: 0 }
            }
            StoreError::NotFound => ShardError::NotFound,
            StoreError::Conflict(m) => ShardError::Conflict(m),
            StoreError::Illegal(e) => ShardError::Illegal(e),
            StoreError::Db(e) => {
                warn!(error = %e, "database error");
                ShardError::Unknown
            }
            StoreError::Unavailable(e) => {
                warn!(error = %e, "database error");
                ShardError::Unknown
            }
            StoreError::Timeout => {
                warn!("PostgreSQL did not answer in time");
                ShardError::Unknown
            }
        }
    }

    /// Cancels a booking; its seats return to sale.
    pub async fn cancel(
        &self,
        user: &str,
        staff: bool,
        reference: &str,
        who: Who<'_>,
    ) -> Result<Booking> {
        let l = self.leadership()?;
        let existing = self
            .store
            .booking(reference)
            .await
            .map_err(|e| self.store_error(&l, e))?
            .ok_or(ShardError::NotFound)?;
        if !staff && existing.user != user {
            return Err(ShardError::NotFound);
        }
        let (booking, changed) = self
            .store
            .cancel(l.epoch, reference, who)
            .await
            .map_err(|e| self.store_error(&l, e))?;
        if changed {
            let event = self.engine(&l).returned(&booking);
            self.publish(event);
        }
        Ok(booking)
    }

    /// Checks a booking in (staff).
    pub async fn check_in(
        &self,
        reference: &str,
        idempotency_key: Option<&str>,
        who: Who<'_>,
    ) -> Result<Booking> {
        let l = self.leadership()?;
        self.store
            .check_in(l.epoch, reference, idempotency_key, who)
            .await
            .map_err(|e| self.store_error(&l, e))
    }
}
