//! What went wrong, in the domain's terms: no HTTP here (the API maps each to a status
//! and a stable code once, in `api/error.rs`).

use boxoffice_contract::LeaderInfo;

/// What is wrong with a request's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadInput {
    Request,
    UnknownSeat,
    DuplicateSeat,
    Quantity,
    UnknownSection,
    UnknownCategory,
    UnknownArea,
}

/// Why a command was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("this replica does not lead the show")]
    NotLeader(Option<LeaderInfo>),
    #[error("{1}")]
    BadRequest(BadInput, String),
    #[error("seats are not available")]
    SeatsUnavailable(Vec<String>),
    #[error("only {available} tickets left in {area}")]
    SoldOut { area: String, available: u64 },
    #[error("{0}")]
    Limit(String),
    #[error("not found")]
    NotFound,
    #[error("the hold has expired")]
    Expired,
    #[error("{0}")]
    Conflict(String),
    #[error("the outcome is unknown; retry with the same Idempotency-Key")]
    Unknown,
    /// etcd refused the write for lack of space (its NOSPACE alarm): nothing was
    /// written, the leader keeps leading, and writes resume once space is reclaimed.
    #[error("seat storage is full; holds are paused until space is reclaimed, retry later")]
    StorageFull,
    #[error("{0}")]
    Closed(String),
    #[error("too many hold attempts; slow down")]
    RateLimited,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyMismatch,
}

impl ShardError {
    /// A hold or confirm that is in flight blocks this command.
    pub(crate) fn busy() -> Self {
        ShardError::Conflict("the hold is busy; retry".into())
    }

    /// Whether the seats or tickets asked for were taken (counted as a conflict).
    pub fn is_conflict(&self) -> bool {
        matches!(self, ShardError::SeatsUnavailable(s) if !s.is_empty())
            || matches!(self, ShardError::SoldOut { .. })
    }
}

pub type Result<T, E = ShardError> = std::result::Result<T, E>;
