//! Payments in PostgreSQL: intents, provider events answered once, the audit trail,
//! and refunds (fenced like every write).

use serde::Serialize;
use sqlx::{Postgres, Row, Transaction};

use super::{Booking, Result, Store, StoreError};
use crate::engine::{AuditRow, BookingAction, BookingState, Intent, Transition};

/// One row of a booking's history, as staff read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub actor: String,
    pub role: String,
    pub from: String,
    pub to: String,
    pub action: String,
    pub reason: String,
    pub epoch: i64,
    pub at: String,
}

/// A provider event's first answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventAnswer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Store {
    /// Writes an audit row in `tx`.
    pub(super) async fn audit(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        hold_id: &str,
        row: &AuditRow,
        epoch: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO booking_audit \
             (show, hold_id, actor, role, from_state, to_state, action, reason, epoch) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&self.show)
        .bind(hold_id)
        .bind(&row.actor)
        .bind(&row.role)
        .bind(row.from.as_str())
        .bind(row.to.as_str())
        .bind(&row.action)
        .bind(&row.reason)
        .bind(epoch)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records a checkout's intent (once per hold) and its audit row (held → payment
    /// pending) when `moved` (this checkout changed the hold) or the intent is new (a
    /// retry after the row's first write failed); a plain retry records nothing.
    pub async fn record_intent(
        &self,
        epoch: i64,
        intent: &Intent,
        row: &AuditRow,
        moved: bool,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.check_epoch(&mut tx, epoch).await?;
        let inserted = sqlx::query(
            "INSERT INTO payment_intents (id, show, hold_id, user_id, amount_minor, currency, \
             seats, area, quantity, expires_at, epoch) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, to_timestamp($10::double precision / 1000), $11) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&intent.id)
        .bind(&self.show)
        .bind(&intent.hold_id)
        .bind(&intent.user)
        .bind(intent.amount_minor)
        .bind(&intent.currency)
        .bind(&intent.seats)
        .bind(&intent.area)
        .bind(intent.quantity as i64)
        .bind(intent.expires_at_ms as f64)
        .bind(epoch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 || moved {
            self.audit(&mut tx, &intent.hold_id, row, epoch).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// An intent of this show by id.
    pub async fn intent(&self, id: &str) -> Result<Option<Intent>> {
        let row = sqlx::query(
            "SELECT id, hold_id, user_id, amount_minor, currency, seats, area, quantity, \
             (extract(epoch FROM expires_at) * 1000)::bigint AS expires_at_ms \
             FROM payment_intents WHERE show = $1 AND id = $2",
        )
        .bind(&self.show)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Intent {
            id: r.get("id"),
            hold_id: r.get("hold_id"),
            user: r.get("user_id"),
            amount_minor: r.get("amount_minor"),
            currency: r.get("currency"),
            seats: r.get("seats"),
            area: r.get("area"),
            quantity: r.get::<i64, _>("quantity") as u64,
            expires_at_ms: r.get("expires_at_ms"),
        }))
    }

    /// The first answer to a provider event, if it was answered.
    pub async fn payment_event(
        &self,
        provider: &str,
        event_id: &str,
    ) -> Result<Option<EventAnswer>> {
        let row = sqlx::query(
            "SELECT status, answer FROM payment_events \
             WHERE show = $1 AND provider = $2 AND event_id = $3",
        )
        .bind(&self.show)
        .bind(provider)
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| EventAnswer {
            status: r.get::<i32, _>("status") as u16,
            body: r.get("answer"),
        }))
    }

    /// Remembers a provider event's answer; when another copy answered first, that
    /// first answer is returned instead.
    pub async fn remember_event(
        &self,
        provider: &str,
        event_id: &str,
        intent_id: &str,
        kind: &str,
        answer: &EventAnswer,
    ) -> Result<EventAnswer> {
        let inserted = sqlx::query(
            "INSERT INTO payment_events (show, provider, event_id, intent_id, kind, status, answer) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&self.show)
        .bind(provider)
        .bind(event_id)
        .bind(intent_id)
        .bind(kind)
        .bind(i32::from(answer.status))
        .bind(&answer.body)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(answer.clone());
        }
        Ok(self
            .payment_event(provider, event_id)
            .await?
            .unwrap_or_else(|| answer.clone()))
    }

    /// The state a hold's trail ends in (its last audit row), if it has one.
    pub async fn trail_state(&self, hold_id: &str) -> Result<Option<BookingState>> {
        let to: Option<String> = sqlx::query_scalar(
            "SELECT to_state FROM booking_audit WHERE show = $1 AND hold_id = $2 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(&self.show)
        .bind(hold_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(to.as_deref().and_then(BookingState::parse))
    }

    /// Writes a transition that has no booking row (a hold's expiry after checkout, a
    /// late payment that failed, its refund), fenced.
    pub async fn record_transition(&self, epoch: i64, hold_id: &str, row: &AuditRow) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.check_epoch(&mut tx, epoch).await?;
        self.audit(&mut tx, hold_id, row, epoch).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The provider's refund callback: refund pending → refunded (a refund already
    /// recorded is unchanged).
    pub async fn refunded(&self, epoch: i64, hold_id: &str, mut row: AuditRow) -> Result<Booking> {
        let mut tx = self.pool.begin().await?;
        self.check_epoch(&mut tx, epoch).await?;
        let booking = self
            .booking_in(&mut tx, "hold_id", hold_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let from = booking.state();
        let Transition::To(to) = from
            .apply(BookingAction::Refunded)
            .map_err(StoreError::Illegal)?
        else {
            tx.commit().await?;
            return Ok(booking);
        };
        sqlx::query(
            "UPDATE bookings SET refund_status = 'refunded', updated_at = now() WHERE id = $1",
        )
        .bind(&booking.id)
        .execute(&mut *tx)
        .await?;
        (row.from, row.to) = (from, to);
        self.audit(&mut tx, hold_id, &row, epoch).await?;
        self.finish(tx, &booking.id, "refunded", epoch).await
    }

    /// A hold's audit trail, oldest first.
    pub async fn history(&self, hold_id: &str) -> Result<Vec<HistoryEntry>> {
        let rows = sqlx::query(
            "SELECT actor, role, from_state, to_state, action, reason, epoch, \
             to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at \
             FROM booking_audit WHERE show = $1 AND hold_id = $2 ORDER BY id",
        )
        .bind(&self.show)
        .bind(hold_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| HistoryEntry {
                actor: r.get("actor"),
                role: r.get("role"),
                from: r.get("from_state"),
                to: r.get("to_state"),
                action: r.get("action"),
                reason: r.get("reason"),
                epoch: r.get("epoch"),
                at: r.get("at"),
            })
            .collect())
    }
}
