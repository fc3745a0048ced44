//! The outbox: every change to a booking writes an event in the same transaction,
//! numbered from the show's counter row (gapless: the number is taken under the row's
//! lock in the fenced transaction, so a rolled-back write gives its number back).
//! The relay reads it in order and keeps a cursor per sink; retention prunes it.

use serde::Serialize;
use sqlx::{Postgres, Row, Transaction};

use super::{Booking, Result, Store, StoreError};

/// One outbox row as the relay and the feed read it.
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub event_id: String,
    pub kind: String,
    pub booking_id: String,
    pub epoch: i64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub payload: serde_json::Value,
}

/// A feed page: the events after a cursor, or why there are none to give.
#[derive(Debug)]
pub enum Page {
    Events(Vec<EventRow>),
    /// The cursor is older than retention: events after it were pruned.
    Expired {
        pruned: i64,
    },
}

/// A dead letter: an event a sink refused for longer than its retry window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: i64,
    pub sink: String,
    pub seq: i64,
    pub event_id: String,
    pub attempts: i32,
    pub last_error: String,
    /// When it was replayed successfully (RFC 3339), if it was.
    pub replayed_at: Option<String>,
    pub created_at: String,
}

const TIME: &str = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";

impl Store {
    /// Appends `kind` events for the given (booking id, payload) pairs, numbered in
    /// order. Takes the show's counter row lock until the transaction ends.
    pub(super) async fn append_events(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        kind: &str,
        bookings: &[String],
        payloads: &[serde_json::Value],
        epoch: i64,
    ) -> Result<()> {
        if bookings.is_empty() {
            return Ok(());
        }
        let n = bookings.len() as i64;
        let written = sqlx::query(
            "WITH seq AS (UPDATE event_sequences SET last = last + $2 WHERE show = $1 \
                 RETURNING last) \
             INSERT INTO booking_events (show, booking_id, kind, payload, epoch, seq) \
             SELECT $1, x.b, $3, x.p, $4, seq.last - $2 + x.n \
             FROM seq, unnest($5::text[], $6::jsonb[]) WITH ORDINALITY AS x(b, p, n)",
        )
        .bind(&self.show)
        .bind(n)
        .bind(kind)
        .bind(epoch)
        .bind(bookings)
        .bind(payloads)
        .execute(&mut **tx)
        .await?;
        if written.rows_affected() != n as u64 {
            // The counter row is made at connect; without it no event may be lost quietly.
            return Err(StoreError::Unavailable(
                "the show's event counter is missing".into(),
            ));
        }
        Ok(())
    }

    pub(super) async fn event(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        booking: &Booking,
        kind: &str,
        epoch: i64,
    ) -> Result<()> {
        let payload = serde_json::to_value(booking).unwrap_or_default();
        self.append_events(
            tx,
            kind,
            std::slice::from_ref(&booking.id),
            &[payload],
            epoch,
        )
        .await
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

    /// Up to `limit` events after sequence number `after`, in order; or `Expired` when
    /// events after `after` were pruned.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Page> {
        let pruned: i64 = sqlx::query_scalar("SELECT pruned FROM event_sequences WHERE show = $1")
            .bind(&self.show)
            .fetch_optional(&self.pool)
            .await?
            .unwrap_or(0);
        if after < pruned {
            return Ok(Page::Expired { pruned });
        }
        let sql = format!(
            "SELECT seq, event_id, kind, booking_id, epoch, {TIME} AS time, payload \
             FROM booking_events WHERE show = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.show)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(Page::Events(rows.iter().map(event_row).collect()))
    }

    /// The last sequence number handed out (0: none yet).
    pub async fn last_seq(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT last FROM event_sequences WHERE show = $1")
                .bind(&self.show)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    /// A sink's cursor: the last sequence number it acknowledged (0: none).
    pub async fn cursor(&self, sink: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT seq FROM event_cursors WHERE show = $1 AND sink = $2")
                .bind(&self.show)
                .bind(sink)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    /// Moves a sink's cursor forward to `seq` (never back), fenced by `epoch`.
    pub async fn advance_cursor(&self, epoch: i64, sink: &str, seq: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.check_epoch(&mut tx, epoch).await?;
        self.advance_in(&mut tx, sink, seq).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn advance_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        sink: &str,
        seq: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO event_cursors (show, sink, seq) VALUES ($1, $2, $3) \
             ON CONFLICT (show, sink) DO UPDATE SET seq = GREATEST(event_cursors.seq, EXCLUDED.seq), \
             updated_at = now()",
        )
        .bind(&self.show)
        .bind(sink)
        .bind(seq)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records a dead letter for `event` at `sink` and moves the sink's cursor past it,
    /// in one fenced transaction.
    pub async fn dead_letter(
        &self,
        epoch: i64,
        sink: &str,
        event: &EventRow,
        attempts: u32,
        error: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.check_epoch(&mut tx, epoch).await?;
        sqlx::query(
            "INSERT INTO event_dead_letters (show, sink, seq, event_id, attempts, last_error) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (show, sink, seq) DO NOTHING",
        )
        .bind(&self.show)
        .bind(sink)
        .bind(event.seq)
        .bind(&event.event_id)
        .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
        .bind(error)
        .execute(&mut *tx)
        .await?;
        self.advance_in(&mut tx, sink, event.seq).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Dead letters, oldest first: all, or only those not replayed yet.
    pub async fn dead_letters(&self, pending_only: bool, limit: i64) -> Result<Vec<DeadLetter>> {
        self.dead_letters_where(None, pending_only, limit).await
    }

    /// Dead letters of the show, `only` one id or all, oldest first.
    async fn dead_letters_where(
        &self,
        only: Option<i64>,
        pending_only: bool,
        limit: i64,
    ) -> Result<Vec<DeadLetter>> {
        let sql = format!(
            "SELECT id, sink, seq, event_id, attempts, last_error, \
             to_char(replayed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS replayed, \
             {TIME} AS created FROM event_dead_letters \
             WHERE show = $1 AND (NOT $2 OR replayed_at IS NULL) AND ($4::bigint IS NULL OR id = $4) \
             ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.show)
            .bind(pending_only)
            .bind(limit)
            .bind(only)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| DeadLetter {
                id: r.get("id"),
                sink: r.get("sink"),
                seq: r.get("seq"),
                event_id: r.get("event_id"),
                attempts: r.get("attempts"),
                last_error: r.get("last_error"),
                replayed_at: r.get("replayed"),
                created_at: r.get("created"),
            })
            .collect())
    }

    /// One dead letter and its event (None when there is no such dead letter).
    /// Retention keeps the event of a dead letter not yet replayed.
    pub async fn dead_letter_event(&self, id: i64) -> Result<Option<(DeadLetter, EventRow)>> {
        let Some(letter) = self
            .dead_letters_where(Some(id), false, 1)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT seq, event_id, kind, booking_id, epoch, {TIME} AS time, payload \
             FROM booking_events WHERE show = $1 AND seq = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.show)
            .bind(letter.seq)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (letter, event_row(&r))))
    }

    /// Marks a dead letter replayed (fenced).
    pub async fn mark_replayed(&self, epoch: i64, id: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.check_epoch(&mut tx, epoch).await?;
        sqlx::query(
            "UPDATE event_dead_letters SET replayed_at = now() WHERE show = $1 AND id = $2",
        )
        .bind(&self.show)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Prunes events every listed sink acknowledged and older than `retention`
    /// (fenced); records how far, so the feed can tell a too-old cursor. Returns how
    /// many rows went.
    pub async fn prune_events(
        &self,
        epoch: i64,
        sinks: &[String],
        retention: std::time::Duration,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        self.check_epoch(&mut tx, epoch).await?;
        // The lowest cursor of the sinks (a sink without a cursor has acknowledged none).
        let acked: i64 = sqlx::query_scalar(
            "SELECT COALESCE(min(COALESCE(c.seq, 0)), (SELECT last FROM event_sequences WHERE show = $1)) \
             FROM unnest($2::text[]) AS s(sink) \
             LEFT JOIN event_cursors c ON c.show = $1 AND c.sink = s.sink",
        )
        .bind(&self.show)
        .bind(sinks)
        .fetch_one(&mut *tx)
        .await?;
        let through: Option<i64> = sqlx::query_scalar(
            "SELECT max(seq) FROM booking_events WHERE show = $1 AND seq <= $2 \
             AND created_at < now() - make_interval(secs => $3)",
        )
        .bind(&self.show)
        .bind(acked)
        .bind(retention.as_secs_f64())
        .fetch_one(&mut *tx)
        .await?;
        let Some(through) = through else {
            tx.commit().await?;
            return Ok(0);
        };
        // A dead letter not yet replayed keeps its event (staff may replay it later);
        // the feed never shows it again, it is behind `pruned`.
        let gone = sqlx::query(
            "DELETE FROM booking_events e WHERE e.show = $1 AND e.seq <= $2 \
             AND NOT EXISTS (SELECT 1 FROM event_dead_letters d \
                 WHERE d.show = e.show AND d.seq = e.seq AND d.replayed_at IS NULL)",
        )
        .bind(&self.show)
        .bind(through)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE event_sequences SET pruned = GREATEST(pruned, $2) WHERE show = $1")
            .bind(&self.show)
            .bind(through)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(gone)
    }
}

fn event_row(r: &sqlx::postgres::PgRow) -> EventRow {
    EventRow {
        seq: r.get("seq"),
        event_id: r.get("event_id"),
        kind: r.get("kind"),
        booking_id: r.get("booking_id"),
        epoch: r.get("epoch"),
        time: r.get("time"),
        payload: r.get("payload"),
    }
}
