//! PostgreSQL: confirmed bookings, the outbox, and the fencing epoch.
//!
//! Every write transaction first reads `show_leaders.epoch` FOR SHARE and aborts unless
//! it is the writer's own epoch. A new leader's `raise_epoch` UPDATE needs the row
//! exclusively, so it waits for in-flight writes of the old leader to finish, and every
//! write that starts after it sees the new epoch and aborts: a deposed leader cannot
//! write, however long it was paused.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a newer leader owns this show (fenced)")]
    Fenced,
    #[error("seats already sold: {0:?}")]
    SeatsTaken(Vec<String>),
    #[error("general admission area {0} would exceed its capacity")]
    OverCapacity(String),
    #[error("booking not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("PostgreSQL did not answer in time")]
    Timeout,
    /// A grouped confirm failed in PostgreSQL; its outcome is unknown.
    #[error("database: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// True when the write may or may not have been committed.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            StoreError::Db(_) | StoreError::Timeout | StoreError::Unavailable(_)
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// General-admission tickets in a booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneralTickets {
    pub area: String,
    pub quantity: i64,
}

/// A booking as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    pub id: String,
    pub reference: String,
    pub show: String,
    pub user: String,
    pub status: String,
    pub hold_id: String,
    pub payment_reference: String,
    pub amount_minor: i64,
    pub currency: String,
    pub seats: Vec<String>,
    pub general: Vec<GeneralTickets>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_in_at: Option<String>,
    pub created_at: String,
}

/// What a confirm writes.
#[derive(Debug, Clone)]
pub struct NewBooking {
    pub user: String,
    pub hold_id: String,
    pub payment_reference: String,
    pub amount_minor: i64,
    pub currency: String,
    pub seats: Vec<String>,
    pub general: Vec<GeneralTickets>,
}

/// What PostgreSQL says is sold, loaded by a new leader.
#[derive(Debug, Default)]
pub struct Sold {
    pub seats: Vec<String>,
    pub general: HashMap<String, i64>,
    /// Seats and tickets each user owns (for `maxSeatsPerUser`).
    pub per_user: HashMap<String, i64>,
    /// Hold ids already confirmed (their etcd keys may still be there).
    pub confirmed_holds: Vec<String>,
}

/// Unambiguous characters for booking references: no 0/O, 1/I/L.
const REFERENCE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// A short, human-friendly booking reference such as `K7QX-4M2P`.
pub fn new_reference() -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(9);
    for i in 0..8 {
        if i == 4 {
            s.push('-');
        }
        s.push(REFERENCE_ALPHABET[rng.random_range(0..REFERENCE_ALPHABET.len())] as char);
    }
    s
}

/// A random id (128 bits, hex).
pub fn new_id() -> String {
    let v: u128 = rand::rng().random();
    format!("{v:032x}")
}

const BOOKING_COLUMNS: &str = "id, reference, show, user_id, status, hold_id, payment_reference, \
     amount_minor, currency, refund_status, \
     to_char(checked_in_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS checked_in_at, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at";

/// The bookings of one show.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    show: String,
    /// The group commit of confirms; `None` in the writer's own copy.
    confirms: Option<mpsc::UnboundedSender<ConfirmJob>>,
}

/// A confirm waiting for the group commit.
struct ConfirmJob {
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
    /// Connects, runs the embedded migrations, and registers the show.
    pub async fn connect(url: &str, show: &str, max_connections: u32) -> Result<Self> {
        Self::connect_with(url.parse()?, show, max_connections).await
    }

    /// [`Self::connect`] with options built elsewhere (TLS, client certificates).
    pub async fn connect_with(
        options: PgConnectOptions,
        show: &str,
        max_connections: u32,
    ) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Db(e.into()))?;
        sqlx::query("INSERT INTO shows (show) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(show)
            .execute(&pool)
            .await?;
        let writer = Self {
            pool,
            show: show.to_string(),
            confirms: None,
        };
        let (confirms, queue) = mpsc::unbounded_channel();
        // Ends when the last Store with the sender is gone.
        tokio::spawn(confirm_group_commit(writer.clone(), queue));
        Ok(Self {
            confirms: Some(confirms),
            ..writer
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Raises the show's epoch to `epoch` for `leader`. False when a newer (or equal)
    /// epoch is already recorded: another leader came after us.
    pub async fn raise_epoch(&self, epoch: i64, leader: &str) -> Result<bool> {
        let row = sqlx::query(
            "INSERT INTO show_leaders (show, epoch, leader) VALUES ($1, $2, $3) \
             ON CONFLICT (show) DO UPDATE SET epoch = EXCLUDED.epoch, leader = EXCLUDED.leader, \
             updated_at = now() WHERE show_leaders.epoch < EXCLUDED.epoch \
             RETURNING epoch",
        )
        .bind(&self.show)
        .bind(epoch)
        .bind(leader)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The recorded epoch, if any.
    pub async fn epoch(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT epoch FROM show_leaders WHERE show = $1")
            .bind(&self.show)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Records general-admission capacities (idempotent; capacity follows the spec).
    pub async fn ensure_areas(&self, areas: &[(String, i64)]) -> Result<()> {
        for (area, capacity) in areas {
            sqlx::query(
                "INSERT INTO general_sold (show, area, capacity) VALUES ($1, $2, $3) \
                 ON CONFLICT (show, area) DO UPDATE SET capacity = GREATEST(EXCLUDED.capacity, general_sold.sold)",
            )
            .bind(&self.show)
            .bind(area)
            .bind(capacity)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Everything sold for the show.
    pub async fn load_sold(&self) -> Result<Sold> {
        let mut sold = Sold::default();
        let rows = sqlx::query(
            "SELECT s.seat, b.user_id FROM booking_seats s JOIN bookings b ON b.id = s.booking_id \
             WHERE s.show = $1 AND s.status = 'confirmed'",
        )
        .bind(&self.show)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            sold.seats.push(row.get(0));
            *sold.per_user.entry(row.get(1)).or_default() += 1;
        }
        let rows = sqlx::query(
            "SELECT g.area, g.quantity, b.user_id FROM booking_general g \
             JOIN bookings b ON b.id = g.booking_id WHERE g.show = $1 AND g.status = 'confirmed'",
        )
        .bind(&self.show)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let quantity: i32 = row.get(1);
            *sold.general.entry(row.get(0)).or_default() += i64::from(quantity);
            *sold.per_user.entry(row.get(2)).or_default() += i64::from(quantity);
        }
        let rows = sqlx::query("SELECT hold_id FROM bookings WHERE show = $1")
            .bind(&self.show)
            .fetch_all(&self.pool)
            .await?;
        sold.confirmed_holds = rows.into_iter().map(|r| r.get(0)).collect();
        Ok(sold)
    }

    async fn check_epoch(&self, tx: &mut Transaction<'_, Postgres>, epoch: i64) -> Result<()> {
        let current: Option<i64> =
            sqlx::query_scalar("SELECT epoch FROM show_leaders WHERE show = $1 FOR SHARE")
                .bind(&self.show)
                .fetch_optional(&mut **tx)
                .await?;
        if current == Some(epoch) || !crate::fencing::enabled() {
            Ok(())
        } else {
            Err(StoreError::Fenced)
        }
    }

    async fn booking_in(
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
            status: row.get("status"),
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

    async fn event(
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
    async fn finish(
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
             events AS (INSERT INTO booking_events (show, booking_id, kind, payload, epoch) \
                 SELECT $1, x.b, 'confirmed', x.p, $7 FROM unnest($8::text[], $9::jsonb[]) AS x(b, p)) \
             SELECT count(*) FROM areas",
        )
        .bind(&self.show)
        .bind(&seat_bookings)
        .bind(&seats)
        .bind(&ticket_bookings)
        .bind(&areas)
        .bind(&quantities)
        .bind(epoch)
        .bind(&event_bookings)
        .bind(&payloads)
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
            status: "confirmed".into(),
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
        // outbox event, in one statement.
        let payload = serde_json::to_value(&booking).unwrap_or_default();
        let result = sqlx::query(
            "WITH seats AS (INSERT INTO booking_seats (booking_id, show, seat, status) \
                 SELECT $1, $2, unnest($3::text[]), 'confirmed') \
             INSERT INTO booking_events (show, booking_id, kind, payload, epoch) \
             VALUES ($2, $1, 'confirmed', $4, $5)",
        )
        .bind(&id)
        .bind(&self.show)
        .bind(&new.seats)
        .bind(payload)
        .bind(epoch)
        .execute(&mut *tx)
        .await;
        if let Err(e) = result {
            if is_unique_violation(&e, "booking_seats_confirmed_once") {
                drop(tx);
                return Err(StoreError::SeatsTaken(self.which_sold(&new.seats).await?));
            }
            return Err(e.into());
        }
        tx.commit().await?;
        Ok((booking, true))
    }

    async fn which_sold(&self, seats: &[String]) -> Result<Vec<String>> {
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

    /// Cancels a booking (seats return to sale; a refund is recorded as pending).
    /// Cancelling a cancelled booking returns it unchanged.
    pub async fn cancel(&self, epoch: i64, reference: &str) -> Result<(Booking, bool)> {
        let mut tx = self.pool.begin().await?;
        self.check_epoch(&mut tx, epoch).await?;
        let booking = self
            .booking_in(&mut tx, "reference", reference)
            .await?
            .ok_or(StoreError::NotFound)?;
        if booking.status == "cancelled" {
            tx.commit().await?;
            return Ok((booking, false));
        }
        if booking.checked_in_at.is_some() {
            return Err(StoreError::Conflict(
                "a checked-in booking cannot be cancelled".into(),
            ));
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
        let mut tx = self.pool.begin().await?;
        self.check_epoch(&mut tx, epoch).await?;
        let booking = self
            .booking_in(&mut tx, "reference", reference)
            .await?
            .ok_or(StoreError::NotFound)?;
        if booking.status != "confirmed" {
            return Err(StoreError::Conflict("booking is cancelled".into()));
        }
        if booking.checked_in_at.is_some() {
            let first_key: Option<String> =
                sqlx::query_scalar("SELECT check_in_key FROM bookings WHERE id = $1")
                    .bind(&booking.id)
                    .fetch_one(&mut *tx)
                    .await?;
            if key.is_some() && first_key.as_deref() == key {
                tx.commit().await?;
                return Ok(booking);
            }
            return Err(StoreError::Conflict("booking is already checked in".into()));
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

    /// Marks the show closed (the operator's finalizer); bookings stay.
    pub async fn close(&self) -> Result<()> {
        sqlx::query("UPDATE shows SET closed_at = COALESCE(closed_at, now()) WHERE show = $1")
            .bind(&self.show)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether the show was closed.
    pub async fn is_closed(&self) -> Result<bool> {
        let closed: Option<bool> =
            sqlx::query_scalar("SELECT closed_at IS NOT NULL FROM shows WHERE show = $1")
                .bind(&self.show)
                .fetch_optional(&self.pool)
                .await?;
        Ok(closed.unwrap_or(false))
    }
}

/// The group commit of confirms (see [`crate::batch`]).
async fn confirm_group_commit(writer: Store, queue: mpsc::UnboundedReceiver<ConfirmJob>) {
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

fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.code().as_deref() == Some("23505") && d.constraint() == Some(constraint))
}

fn is_check_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.code().as_deref() == Some("23514"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_short_and_unambiguous() {
        for _ in 0..1000 {
            let r = new_reference();
            assert_eq!(r.len(), 9);
            assert_eq!(&r[4..5], "-");
            assert!(!r.contains(['0', 'O', '1', 'I', 'L']), "{r}");
        }
    }
}
