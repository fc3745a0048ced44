//! The designs boxoffice is measured against, driven directly (no HTTP in front of
//! them, which flatters them):
//!
//! - `postgres`: the common design — a seats table; a hold locks the requested rows
//!   with `SELECT … FOR UPDATE`, checks them and marks them held; best available takes
//!   free rows with `FOR UPDATE SKIP LOCKED`; a confirm locks the hold's rows, checks
//!   expiry, marks them sold and inserts the booking, in one transaction.
//! - `redis`: `SET seat hold NX EX ttl` per seat (pipelined; the seats taken are
//!   deleted again when one is refused); a confirm checks the keys, inserts the booking
//!   into PostgreSQL and makes the keys permanent.

use std::time::Duration;

use anyhow::{Context, Result};
use redis::AsyncCommands;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};

/// What one operation came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    Held { id: String, seats: Vec<String> },
    Ok,
    Conflict,
    Error,
}

pub struct Postgres {
    pool: PgPool,
    show: String,
    ttl_secs: i64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bl_seats (
    show TEXT NOT NULL, seat TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'available',
    hold_id TEXT, user_id TEXT, expires_at TIMESTAMPTZ,
    PRIMARY KEY (show, seat));
CREATE INDEX IF NOT EXISTS bl_seats_hold ON bl_seats (hold_id);
CREATE TABLE IF NOT EXISTS bl_bookings (
    id BIGSERIAL PRIMARY KEY, show TEXT NOT NULL, hold_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now());
";

pub async fn pg_pool(url: &str, size: u32) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await
        .context("connecting to PostgreSQL")
}

impl Postgres {
    /// Creates the tables and the show's seats (all available).
    pub async fn setup(pool: PgPool, show: &str, seats: &[String], ttl_secs: i64) -> Result<Self> {
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        sqlx::query("DELETE FROM bl_bookings WHERE show = $1")
            .bind(show)
            .execute(&pool)
            .await?;
        sqlx::query("DELETE FROM bl_seats WHERE show = $1")
            .bind(show)
            .execute(&pool)
            .await?;
        for chunk in seats.chunks(10_000) {
            sqlx::query("INSERT INTO bl_seats (show, seat) SELECT $1, unnest($2::text[])")
                .bind(show)
                .bind(chunk)
                .execute(&pool)
                .await?;
        }
        // Fresh statistics, or the planner scans the whole table for every hold.
        sqlx::query("ANALYZE bl_seats").execute(&pool).await?;
        Ok(Self {
            pool,
            show: show.to_string(),
            ttl_secs,
        })
    }

    pub async fn hold(&self, user: &str, seats: &[String], id: &str) -> Outcome {
        self.hold_inner(user, seats, id)
            .await
            .unwrap_or(Outcome::Error)
    }

    async fn hold_inner(&self, user: &str, seats: &[String], id: &str) -> Result<Outcome> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT seat, status, expires_at < now() AS lapsed FROM bl_seats \
             WHERE show = $1 AND seat = ANY($2) ORDER BY seat FOR UPDATE",
        )
        .bind(&self.show)
        .bind(seats)
        .fetch_all(&mut *tx)
        .await?;
        let free = rows.len() == seats.len()
            && rows.iter().all(|r| {
                let status: String = r.get(1);
                let lapsed: Option<bool> = r.get(2);
                status == "available" || (status == "held" && lapsed == Some(true))
            });
        if !free {
            tx.rollback().await?;
            return Ok(Outcome::Conflict);
        }
        self.mark_held(tx, seats.to_vec(), user, id).await
    }

    /// Marks the locked `seats` held by hold `id` and commits.
    async fn mark_held(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        seats: Vec<String>,
        user: &str,
        id: &str,
    ) -> Result<Outcome> {
        sqlx::query(
            "UPDATE bl_seats SET status = 'held', hold_id = $3, user_id = $4, \
             expires_at = now() + make_interval(secs => $5) WHERE show = $1 AND seat = ANY($2)",
        )
        .bind(&self.show)
        .bind(&seats)
        .bind(id)
        .bind(user)
        .bind(self.ttl_secs as f64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Outcome::Held {
            id: id.to_string(),
            seats,
        })
    }

    pub async fn best(&self, user: &str, quantity: i64, id: &str) -> Outcome {
        self.best_inner(user, quantity, id)
            .await
            .unwrap_or(Outcome::Error)
    }

    async fn best_inner(&self, user: &str, quantity: i64, id: &str) -> Result<Outcome> {
        let mut tx = self.pool.begin().await?;
        let seats: Vec<String> = sqlx::query_scalar(
            "SELECT seat FROM bl_seats WHERE show = $1 AND status = 'available' \
             ORDER BY seat LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(&self.show)
        .bind(quantity)
        .fetch_all(&mut *tx)
        .await?;
        if seats.len() as i64 != quantity {
            tx.rollback().await?;
            return Ok(Outcome::Conflict);
        }
        self.mark_held(tx, seats, user, id).await
    }

    pub async fn confirm(&self, user: &str, hold: &str) -> Outcome {
        self.confirm_inner(user, hold)
            .await
            .unwrap_or(Outcome::Error)
    }

    async fn confirm_inner(&self, user: &str, hold: &str) -> Result<Outcome> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT seat FROM bl_seats WHERE show = $1 AND hold_id = $2 AND status = 'held' \
             AND expires_at > now() FOR UPDATE",
        )
        .bind(&self.show)
        .bind(hold)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(Outcome::Conflict);
        }
        sqlx::query("UPDATE bl_seats SET status = 'sold' WHERE show = $1 AND hold_id = $2")
            .bind(&self.show)
            .bind(hold)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO bl_bookings (show, hold_id, user_id) VALUES ($1, $2, $3)")
            .bind(&self.show)
            .bind(hold)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Outcome::Ok)
    }

    pub async fn seat_map(&self) -> Outcome {
        match sqlx::query("SELECT seat, status FROM bl_seats WHERE show = $1")
            .bind(&self.show)
            .fetch_all(&self.pool)
            .await
        {
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::Error,
        }
    }

    /// Bookings recorded for the show.
    pub async fn bookings(&self) -> Result<i64> {
        count_bookings(&self.pool, &self.show).await
    }
}

pub struct Redis {
    conn: redis::aio::MultiplexedConnection,
    pg: PgPool,
    show: String,
    ttl_secs: u64,
}

impl Redis {
    pub async fn setup(url: &str, pg: PgPool, show: &str, ttl_secs: u64) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .context("connecting to Redis")?;
        let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await?;
        sqlx::raw_sql(SCHEMA).execute(&pg).await?;
        sqlx::query("DELETE FROM bl_bookings WHERE show = $1")
            .bind(show)
            .execute(&pg)
            .await?;
        Ok(Self {
            conn,
            pg,
            show: show.to_string(),
            ttl_secs,
        })
    }

    fn key(&self, seat: &str) -> String {
        format!("seat:{}:{seat}", self.show)
    }

    pub async fn hold(&self, seats: &[String], id: &str) -> Outcome {
        self.hold_inner(seats, id).await.unwrap_or(Outcome::Error)
    }

    async fn hold_inner(&self, seats: &[String], id: &str) -> Result<Outcome> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for s in seats {
            pipe.cmd("SET")
                .arg(self.key(s))
                .arg(id)
                .arg("NX")
                .arg("EX")
                .arg(self.ttl_secs);
        }
        let answers: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        let taken: Vec<&String> = seats
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_some())
            .map(|(s, _)| s)
            .collect();
        if taken.len() == seats.len() {
            return Ok(Outcome::Held {
                id: id.to_string(),
                seats: seats.to_vec(),
            });
        }
        // Give back what we got (only if still ours).
        for s in taken {
            let key = self.key(s);
            let owner: Option<String> = conn.get(&key).await?;
            if owner.as_deref() == Some(id) {
                let _: () = conn.del(&key).await?;
            }
        }
        Ok(Outcome::Conflict)
    }

    pub async fn confirm(&self, user: &str, hold: &str, seats: &[String]) -> Outcome {
        self.confirm_inner(user, hold, seats)
            .await
            .unwrap_or(Outcome::Error)
    }

    async fn confirm_inner(&self, user: &str, hold: &str, seats: &[String]) -> Result<Outcome> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = seats.iter().map(|s| self.key(s)).collect();
        let owners: Vec<Option<String>> = conn.mget(&keys).await?;
        if owners.iter().any(|o| o.as_deref() != Some(hold)) {
            return Ok(Outcome::Conflict);
        }
        sqlx::query("INSERT INTO bl_bookings (show, hold_id, user_id) VALUES ($1, $2, $3)")
            .bind(&self.show)
            .bind(hold)
            .bind(user)
            .execute(&self.pg)
            .await?;
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("PERSIST").arg(k).ignore();
        }
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(Outcome::Ok)
    }

    pub async fn seat_map(&self, seats: &[String]) -> Outcome {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = seats.iter().map(|s| self.key(s)).collect();
        let r: redis::RedisResult<Vec<Option<String>>> = conn.mget(&keys).await;
        match r {
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::Error,
        }
    }

    pub async fn bookings(&self) -> Result<i64> {
        count_bookings(&self.pg, &self.show).await
    }
}

/// Bookings a baseline recorded for `show`.
async fn count_bookings(pool: &PgPool, show: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM bl_bookings WHERE show = $1")
            .bind(show)
            .fetch_one(pool)
            .await?,
    )
}
