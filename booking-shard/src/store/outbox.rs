//! The outbox: every change to a booking writes an event in the same transaction.

use sqlx::{Postgres, Transaction};

use super::{Booking, Result, Store, StoreError};

impl Store {
    pub(super) async fn event(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        booking: &Booking,
        kind: &str,
        epoch: i64,
    ) -> Result<()> {
        let payload = serde_json::to_value(booking).unwrap_or_default();
        sqlx::query(
            "INSERT INTO booking_events (show, booking_id, kind, payload, epoch) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&self.show)
        .bind(&booking.id)
        .bind(kind)
        .bind(payload)
        .bind(epoch)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Ends a write transaction: re-reads the booking as written, records the outbox
    /// event, commits.
    pub(super) async fn finish(
        &self,
        mut tx: Transaction<'_, Postgres>,
        id: &str,
        kind: &str,
        epoch: i64,
    ) -> Result<Booking> {
        let booking = self
            .booking_in(&mut tx, "id", id)
            .await?
            .ok_or(StoreError::NotFound)?;
        self.event(&mut tx, &booking, kind, epoch).await?;
        tx.commit().await?;
        Ok(booking)
    }
}
