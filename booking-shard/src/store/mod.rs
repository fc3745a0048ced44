//! PostgreSQL: confirmed bookings, the outbox, and the fencing epoch, one job a file:
//! - [`fencing`]: the epoch a new leader raises and every write checks;
//! - [`confirm`]: writing bookings for holds (the group commit of confirms);
//! - [`bookings`]: reading bookings, cancelling and checking in;
//! - [`outbox`]: the event written with every change, in its transaction;
//! - [`show`]: what a new leader loads, the show's areas and its closed flag.
//!
//! Every write transaction first reads `show_leaders.epoch` FOR SHARE and aborts unless
//! it is the writer's own epoch. A new leader's `raise_epoch` UPDATE needs the row
//! exclusively, so it waits for in-flight writes of the old leader to finish, and every
//! write that starts after it sees the new epoch and aborts: a deposed leader cannot
//! write, however long it was paused.

mod bookings;
mod confirm;
mod fencing;
mod outbox;
mod payments;
mod show;

use std::time::Duration;

use rand::Rng;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::mpsc;

use confirm::{ConfirmJob, confirm_group_commit};

pub use crate::engine::{Booking, GeneralTickets, NewBooking, Sold};
pub use bookings::Who;
pub use outbox::{DeadLetter, EventRow, Page};
pub use payments::{EventAnswer, HistoryEntry};

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
    /// The booking's state does not allow the action.
    #[error("{0}")]
    Illegal(crate::engine::IllegalTransition),
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

/// The bookings of one show.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    show: String,
    /// The group commit of confirms; `None` in the writer's own copy.
    confirms: Option<mpsc::UnboundedSender<ConfirmJob>>,
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
        sqlx::query("INSERT INTO event_sequences (show) VALUES ($1) ON CONFLICT DO NOTHING")
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
