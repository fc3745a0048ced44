//! Bookings: reading them, cancelling and checking in (fenced).

use sqlx::{Postgres, Row, Transaction};

use super::{Booking, GeneralTickets, Result, Store, StoreError};
use crate::engine::{BookingAction, BookingState, BookingStatus, IllegalTransition, Transition};

/// A transition the booking's state refuses, as the store reports it.
fn illegal(e: IllegalTransition) -> StoreError {
    StoreError::Conflict(e.to_string())
}

const BOOKING_COLUMNS: &str = "id, reference, show, user_id, status, hold_id, payment_reference, \
     amount_minor, currency, refund_status, \
     to_char(checked_in_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS checked_in_at, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at";

impl Store {
    pub(super) async fn booking_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        column: &str,
        value: &str,
    ) -> Result<Option<Booking>> {
        let sql =
            format!("SELECT {BOOKING_COLUMNS} FROM bookings WHERE show = $1 AND {column} = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.show)
            .bind(value)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut booking = Booking {
            id: row.get("id"),
            reference: row.get("reference"),
            show: row.get("show"),
            user: row.get("user_id"),
            status: BookingStatus::parse(row.get("status")),
            hold_id: row.get("hold_id"),
            payment_reference: row.get("payment_reference"),
            amount_minor: row.get("amount_minor"),
            currency: row.get("currency"),
            seats: Vec::new(),
            general: Vec::new(),
            refund_status: row.get("refund_status"),
            checked_in_at: row.get("checked_in_at"),
            created_at: row.get("created_at"),
        };
        booking.seats = sqlx::query_scalar(
            "SELECT seat FROM booking_seats WHERE booking_id = $1 ORDER BY seat COLLATE \"C\"",
        )
        .bind(&booking.id)
        .fetch_all(&mut **tx)
        .await?;
        let general = sqlx::query(
            "SELECT area, quantity FROM booking_general WHERE booking_id = $1 ORDER BY area COLLATE \"C\"",
        )
        .bind(&booking.id)
        .fetch_all(&mut **tx)
        .await?;
        booking.general = general
            .into_iter()
            .map(|r| GeneralTickets {
                area: r.get(0),
                quantity: i64::from(r.get::<i32, _>(1)),
            })
            .collect();
        Ok(Some(booking))
    }

    pub(super) async fn which_sold(&self, seats: &[String]) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT seat FROM booking_seats WHERE show = $1 AND status = 'confirmed' \
             AND seat = ANY($2::text[]) ORDER BY seat",
        )
        .bind(&self.show)
        .bind(seats)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A booking by reference.
    pub async fn booking(&self, reference: &str) -> Result<Option<Booking>> {
        let mut tx = self.pool.begin().await?;
        let b = self.booking_in(&mut tx, "reference", reference).await?;
        tx.commit().await?;
        Ok(b)
    }

    /// A booking by the hold it came from.
    pub async fn booking_for_hold(&self, hold_id: &str) -> Result<Option<Booking>> {
        let mut tx = self.pool.begin().await?;
        let b = self.booking_in(&mut tx, "hold_id", hold_id).await?;
        tx.commit().await?;
        Ok(b)
    }

    /// A user's bookings for the show, newest first.
    /// A page of `user`'s bookings, newest first: at most `limit`, after the booking
    /// `after` (a reference from the previous page). The second value is the cursor
    /// of the next page, if there is one.
    pub async fn bookings_of(
        &self,
        user: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Booking>, Option<String>)> {
        // PostgreSQL refuses a NUL in text; no reference has one.
        if after.is_some_and(|a| a.contains('\0')) {
            return Ok((Vec::new(), None));
        }
        let refs: Vec<String> = sqlx::query_scalar(
            "SELECT b.reference FROM bookings b WHERE b.show = $1 AND b.user_id = $2 \
             AND ($3::text IS NULL OR (b.created_at, b.reference) < \
                  (SELECT c.created_at, c.reference FROM bookings c \
                   WHERE c.show = $1 AND c.user_id = $2 AND c.reference = $3)) \
             ORDER BY b.created_at DESC, b.reference DESC LIMIT $4",
        )
        .bind(&self.show)
        .bind(user)
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let more = refs.len() > limit as usize;
        let mut out = Vec::with_capacity(refs.len().min(limit as usize));
        for r in refs.iter().take(limit as usize) {
            if let Some(b) = self.booking(r).await? {
                out.push(b);
            }
        }
        let next = if more {
            out.last().map(|b| b.reference.clone())
        } else {
            None
        };
        Ok((out, next))
    }

    /// A write transaction fenced by `epoch`, and the booking `reference` read in it.
    async fn fenced_booking(
        &self,
        epoch: i64,
        reference: &str,
    ) -> Result<(Transaction<'static, Postgres>, Booking)> {
        let mut tx = self.pool.begin().await?;
        self.check_epoch(&mut tx, epoch).await?;
        let booking = self
            .booking_in(&mut tx, "reference", reference)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((tx, booking))
    }

    /// Cancels a booking (seats return to sale; a refund is recorded as pending).
    /// Cancelling a cancelled booking returns it unchanged.
    pub async fn cancel(&self, epoch: i64, reference: &str) -> Result<(Booking, bool)> {
        let (mut tx, booking) = self.fenced_booking(epoch, reference).await?;
        match booking
            .state()
            .apply(BookingAction::Cancel)
            .map_err(illegal)?
        {
            Transition::Unchanged => {
                tx.commit().await?;
                return Ok((booking, false));
            }
            Transition::To(_) => {}
        }
        sqlx::query(
            "UPDATE bookings SET status = 'cancelled', refund_status = 'pending', updated_at = now() \
             WHERE id = $1",
        )
        .bind(&booking.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE booking_seats SET status = 'cancelled' WHERE booking_id = $1")
            .bind(&booking.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE booking_general SET status = 'cancelled' WHERE booking_id = $1")
            .bind(&booking.id)
            .execute(&mut *tx)
            .await?;
        for g in &booking.general {
            sqlx::query("UPDATE general_sold SET sold = sold - $3 WHERE show = $1 AND area = $2")
                .bind(&self.show)
                .bind(&g.area)
                .bind(g.quantity)
                .execute(&mut *tx)
                .await?;
        }
        let booking = self.finish(tx, &booking.id, "cancelled", epoch).await?;
        Ok((booking, true))
    }

    /// Checks a booking in at the door; a second check-in is refused, except a retry
    /// carrying the first request's idempotency key, which gets the first answer.
    pub async fn check_in(
        &self,
        epoch: i64,
        reference: &str,
        key: Option<&str>,
    ) -> Result<Booking> {
        let (mut tx, booking) = self.fenced_booking(epoch, reference).await?;
        let state = booking.state();
        // The first check-in's key matters only for a booking checked in already.
        let first_key: Option<String> = if state == BookingState::CheckedIn {
            sqlx::query_scalar("SELECT check_in_key FROM bookings WHERE id = $1")
                .bind(&booking.id)
                .fetch_one(&mut *tx)
                .await?
        } else {
            None
        };
        let action = BookingAction::CheckIn {
            key,
            first_key: first_key.as_deref(),
        };
        if state.apply(action).map_err(illegal)? == Transition::Unchanged {
            tx.commit().await?;
            return Ok(booking);
        }
        sqlx::query(
            "UPDATE bookings SET checked_in_at = now(), check_in_key = $2, updated_at = now() \
             WHERE id = $1",
        )
        .bind(&booking.id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
        let booking = self.finish(tx, &booking.id, "checked_in", epoch).await?;
        Ok(booking)
    }
}
