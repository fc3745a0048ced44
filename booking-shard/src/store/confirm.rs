//! Confirms: a booking for a hold, fenced by the epoch, through a group commit.

use std::collections::HashMap;

use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use super::{
    Booking, NewBooking, Result, Store, StoreError, is_check_violation, is_unique_violation,
    new_id, new_reference,
};

/// A confirm waiting for the group commit.
pub(super) struct ConfirmJob {
    epoch: i64,
    new: NewBooking,
    done: oneshot::Sender<Result<(Booking, bool)>>,
}

/// Confirm transactions in flight at once, and confirms per transaction at most.
const CONFIRMS_IN_FLIGHT: usize = 2;

const MAX_CONFIRMS_PER_TXN: usize = 64;

/// Why a group of confirms was not written as one.
enum GroupError {
    /// One of them is refused by a constraint: write each on its own for its answer.
    OneByOne,
    /// The whole group failed.
    Failed(StoreError),
}

impl From<sqlx::Error> for GroupError {
    fn from(e: sqlx::Error) -> Self {
        GroupError::Failed(e.into())
    }
}

impl Store {
    /// Writes a booking for a hold, fenced by `epoch`. Confirming the same hold again
    /// returns the first booking (`false` in the second field: not newly created).
    ///
    /// Confirms go through a group commit: those queued while earlier groups are being
    /// written share one transaction (one epoch check, one statement per table), so
    /// under load a confirm costs a fraction of a transaction. A group refused by a
    /// constraint is written again one confirm at a time, so each gets its own answer.
    pub async fn confirm(&self, epoch: i64, new: &NewBooking) -> Result<(Booking, bool)> {
        let Some(queue) = &self.confirms else {
            return self.confirm_one(epoch, new).await;
        };
        let (done, answer) = oneshot::channel();
        let job = ConfirmJob {
            epoch,
            new: new.clone(),
            done,
        };
        if queue.send(job).is_err() {
            return Err(StoreError::Unavailable("the confirm writer stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the confirm writer stopped".into())))
    }

    /// Writes one group of confirms (all of one epoch) and answers each.
    async fn commit_confirms(&self, group: Vec<ConfirmJob>) {
        let epoch = group[0].epoch;
        let news: Vec<&NewBooking> = group.iter().map(|j| &j.new).collect();
        let written = if news.len() == 1 {
            Err(GroupError::OneByOne)
        } else {
            self.confirm_group(epoch, &news).await
        };
        match written {
            Ok(bookings) => {
                for (job, booking) in group.into_iter().zip(bookings) {
                    let answer = match booking {
                        Some(b) => Ok((b, true)),
                        // Not inserted: this hold is booked already (a retry), or the
                        // reference collided. The one-by-one path sorts out which.
                        None => self.confirm_one(epoch, &job.new).await,
                    };
                    let _ = job.done.send(answer);
                }
            }
            Err(GroupError::OneByOne) => {
                for job in group {
                    let answer = self.confirm_one(epoch, &job.new).await;
                    let _ = job.done.send(answer);
                }
            }
            Err(GroupError::Failed(e)) => {
                let fenced = matches!(e, StoreError::Fenced);
                let message = e.to_string();
                for job in group {
                    let _ = job.done.send(Err(if fenced {
                        StoreError::Fenced
                    } else {
                        StoreError::Unavailable(message.clone())
                    }));
                }
            }
        }
    }

    /// Several bookings in one fenced transaction: BEGIN; the epoch check; the booking
    /// rows; their seats, tickets, area counts and outbox events in one statement;
    /// COMMIT. `None` for a booking row not inserted (its hold is booked already, or
    /// its reference collided).
    async fn confirm_group(
        &self,
        epoch: i64,
        news: &[&NewBooking],
    ) -> std::result::Result<Vec<Option<Booking>>, GroupError> {
        let mut tx = self.pool.begin().await?;
        self.check_epoch(&mut tx, epoch)
            .await
            .map_err(GroupError::Failed)?;
        let ids: Vec<String> = news.iter().map(|_| new_id()).collect();
        let references: Vec<String> = news.iter().map(|_| new_reference()).collect();
        let column = |f: fn(&NewBooking) -> String| news.iter().map(|n| f(n)).collect::<Vec<_>>();
        let rows = sqlx::query(
            "INSERT INTO bookings (id, reference, show, user_id, status, hold_id, \
             payment_reference, amount_minor, currency, epoch) \
             SELECT b.id, b.reference, $1, b.user_id, 'confirmed', b.hold_id, \
                    b.payment_reference, b.amount_minor, b.currency, $2 \
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                         $8::bigint[], $9::text[]) \
                  AS b(id, reference, user_id, hold_id, payment_reference, amount_minor, currency) \
             ON CONFLICT DO NOTHING \
             RETURNING id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
        )
        .bind(&self.show)
        .bind(epoch)
        .bind(&ids)
        .bind(&references)
        .bind(column(|n| n.user.clone()))
        .bind(column(|n| n.hold_id.clone()))
        .bind(column(|n| n.payment_reference.clone()))
        .bind(news.iter().map(|n| n.amount_minor).collect::<Vec<i64>>())
        .bind(column(|n| n.currency.clone()))
        .fetch_all(&mut *tx)
        .await?;
        let mut created: HashMap<String, String> =
            rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        let bookings: Vec<Option<Booking>> = news
            .iter()
            .zip(ids.into_iter().zip(references))
            .map(|(new, (id, reference))| {
                let created_at = created.remove(&id)?;
                Some(self.booking_of(new, id, reference, created_at))
            })
            .collect();

        let (mut seat_bookings, mut seats) = (Vec::new(), Vec::new());
        let (mut ticket_bookings, mut areas, mut quantities) = (Vec::new(), Vec::new(), Vec::new());
        let (mut event_bookings, mut payloads) = (Vec::new(), Vec::new());
        let mut audit: [Vec<String>; 7] = Default::default();
        for (new, b) in news.iter().zip(&bookings) {
            if b.is_none() {
                continue;
            }
            let a = &new.audit;
            for (column, value) in audit.iter_mut().zip([
                &new.hold_id,
                &a.actor,
                &a.role,
                &a.from.as_str().to_string(),
                &a.to.as_str().to_string(),
                &a.action,
                &a.reason,
            ]) {
                column.push(value.clone());
            }
        }
        for b in bookings.iter().flatten() {
            for seat in &b.seats {
                seat_bookings.push(b.id.clone());
                seats.push(seat.clone());
            }
            for g in &b.general {
                ticket_bookings.push(b.id.clone());
                areas.push(g.area.clone());
                quantities.push(i32::try_from(g.quantity).unwrap_or(i32::MAX));
            }
            event_bookings.push(b.id.clone());
            payloads.push(serde_json::to_value(b).unwrap_or_default());
        }
        let distinct_areas = areas
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        // The partial unique index refuses a seat confirmed twice and the area CHECK a
        // sale beyond capacity; either refuses the whole group.
        let counted = sqlx::query_scalar::<_, i64>(
            "WITH seats AS (INSERT INTO booking_seats (booking_id, show, seat, status) \
                 SELECT x.b, $1, x.s, 'confirmed' FROM unnest($2::text[], $3::text[]) AS x(b, s)), \
             tickets AS (INSERT INTO booking_general (booking_id, show, area, quantity, status) \
                 SELECT x.b, $1, x.a, x.q, 'confirmed' \
                 FROM unnest($4::text[], $5::text[], $6::int[]) AS x(b, a, q)), \
             areas AS (UPDATE general_sold g SET sold = g.sold + d.q \
                 FROM (SELECT y.a, sum(y.q)::bigint AS q FROM unnest($5::text[], $6::int[]) AS y(a, q) \
                       GROUP BY y.a) d \
                 WHERE g.show = $1 AND g.area = d.a RETURNING g.area), \
             audit AS (INSERT INTO booking_audit \
                 (show, hold_id, actor, role, from_state, to_state, action, reason, epoch) \
                 SELECT $1, x.h, x.a, x.r, x.f, x.t, x.c, x.w, $7 \
                 FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
                             $13::text[], $14::text[]) AS x(h, a, r, f, t, c, w)) \
             SELECT count(*) FROM areas",
        )
        .bind(&self.show)
        .bind(&seat_bookings)
        .bind(&seats)
        .bind(&ticket_bookings)
        .bind(&areas)
        .bind(&quantities)
        .bind(epoch)
        .bind(&audit[0])
        .bind(&audit[1])
        .bind(&audit[2])
        .bind(&audit[3])
        .bind(&audit[4])
        .bind(&audit[5])
        .bind(&audit[6])
        .fetch_one(&mut *tx)
        .await;
        match counted {
            Ok(n) if n == distinct_areas as i64 => {}
            // An area without its row: the one-by-one path names it.
            Ok(_) => return Err(GroupError::OneByOne),
            Err(e) if is_unique_violation(&e, "booking_seats_confirmed_once") => {
                return Err(GroupError::OneByOne);
            }
            Err(e) if is_check_violation(&e) => return Err(GroupError::OneByOne),
            Err(e) => return Err(e.into()),
        }
        // Numbered last, once the seats are in: the counter row's lock is held only
        // from here to the commit, and never while waiting on a seat.
        self.append_events(&mut tx, "confirmed", &event_bookings, &payloads, epoch)
            .await
            .map_err(GroupError::Failed)?;
        tx.commit().await?;
        Ok(bookings)
    }

    /// A booking as a confirm writes it (seats and areas in storage order).
    fn booking_of(
        &self,
        new: &NewBooking,
        id: String,
        reference: String,
        created_at: String,
    ) -> Booking {
        let mut seats = new.seats.clone();
        seats.sort();
        let mut general = new.general.clone();
        general.sort_by(|a, b| a.area.cmp(&b.area));
        Booking {
            id,
            reference,
            show: self.show.clone(),
            user: new.user.clone(),
            status: crate::engine::BookingStatus::Confirmed,
            hold_id: new.hold_id.clone(),
            payment_reference: new.payment_reference.clone(),
            amount_minor: new.amount_minor,
            currency: new.currency.clone(),
            seats,
            general,
            refund_status: None,
            checked_in_at: None,
            created_at,
        }
    }

    /// One confirm in its own transaction. Five round trips for a reserved-seat booking: BEGIN; the epoch check; the booking
    /// row (RETURNING its timestamp; a conflict means the hold is already booked, or,
    /// rarely, the reference was taken); its seats and the outbox event in one
    /// statement; COMMIT. The booking is built from what was written, not re-read.
    async fn confirm_one(&self, epoch: i64, new: &NewBooking) -> Result<(Booking, bool)> {
        let mut tx = self.pool.begin().await?;
        self.check_epoch(&mut tx, epoch).await?;
        let id = new_id();
        let mut reference = new_reference();
        let mut attempt = 0;
        let created_at: String = loop {
            let row = sqlx::query(
                "INSERT INTO bookings (id, reference, show, user_id, status, hold_id, \
                 payment_reference, amount_minor, currency, epoch) \
                 VALUES ($1, $2, $3, $4, 'confirmed', $5, $6, $7, $8, $9) \
                 ON CONFLICT DO NOTHING \
                 RETURNING to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
            )
            .bind(&id)
            .bind(&reference)
            .bind(&self.show)
            .bind(&new.user)
            .bind(&new.hold_id)
            .bind(&new.payment_reference)
            .bind(new.amount_minor)
            .bind(&new.currency)
            .bind(epoch)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = row {
                break row.get(0);
            }
            // Not inserted: this hold's booking exists (a retry), or the reference
            // collided with another booking's.
            if let Some(existing) = self.booking_in(&mut tx, "hold_id", &new.hold_id).await? {
                tx.commit().await?;
                return Ok((existing, false));
            }
            attempt += 1;
            if attempt == 5 {
                return Err(StoreError::Conflict(
                    "could not allocate a booking reference".into(),
                ));
            }
            reference = new_reference();
        };
        let booking = self.booking_of(new, id.clone(), reference, created_at);
        for g in &new.general {
            sqlx::query(
                "INSERT INTO booking_general (booking_id, show, area, quantity, status) \
                 VALUES ($1, $2, $3, $4, 'confirmed')",
            )
            .bind(&id)
            .bind(&self.show)
            .bind(&g.area)
            .bind(i32::try_from(g.quantity).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await?;
            let updated = sqlx::query(
                "UPDATE general_sold SET sold = sold + $3 WHERE show = $1 AND area = $2",
            )
            .bind(&self.show)
            .bind(&g.area)
            .bind(g.quantity)
            .execute(&mut *tx)
            .await;
            match updated {
                Ok(r) if r.rows_affected() == 1 => {}
                Ok(_) => return Err(StoreError::OverCapacity(g.area.clone())),
                Err(e) if is_check_violation(&e) => {
                    return Err(StoreError::OverCapacity(g.area.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // The seats (the partial unique index refuses a seat confirmed twice) and the
        // audit row in one statement; then the numbered outbox event.
        let result = sqlx::query(
            "WITH seats AS (INSERT INTO booking_seats (booking_id, show, seat, status) \
                 SELECT $1, $2, unnest($3::text[]), 'confirmed') \
             INSERT INTO booking_audit \
                 (show, hold_id, actor, role, from_state, to_state, action, reason, epoch) \
                 VALUES ($2, $5, $6, $7, $8, $9, $10, $11, $4)",
        )
        .bind(&id)
        .bind(&self.show)
        .bind(&new.seats)
        .bind(epoch)
        .bind(&new.hold_id)
        .bind(&new.audit.actor)
        .bind(&new.audit.role)
        .bind(new.audit.from.as_str())
        .bind(new.audit.to.as_str())
        .bind(&new.audit.action)
        .bind(&new.audit.reason)
        .execute(&mut *tx)
        .await;
        if let Err(e) = result {
            if is_unique_violation(&e, "booking_seats_confirmed_once") {
                drop(tx);
                return Err(StoreError::SeatsTaken(self.which_sold(&new.seats).await?));
            }
            return Err(e.into());
        }
        self.event(&mut tx, &booking, "confirmed", epoch).await?;
        tx.commit().await?;
        Ok((booking, true))
    }
}

/// The group commit of confirms (see [`crate::batch`]).
pub(super) async fn confirm_group_commit(
    writer: Store,
    queue: mpsc::UnboundedReceiver<ConfirmJob>,
) {
    let admits = |group: &[ConfirmJob], next: &ConfirmJob| {
        next.epoch == group[0].epoch && group.len() < MAX_CONFIRMS_PER_TXN
    };
    crate::batch::run(
        queue,
        CONFIRMS_IN_FLIGHT,
        admits,
        |group: Vec<ConfirmJob>| {
            let writer = writer.clone();
            async move { writer.commit_confirms(group).await }
        },
    )
    .await;
}
