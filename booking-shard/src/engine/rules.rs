//! The show's rules as data ([`Rules`]), and the pure decisions made from them alone:
//! whether sales are open, which seats a request means, what a holding costs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use boxoffice_crds::SeatId;

use super::error::{BadInput, Result, ShardError};
use crate::inventory::{Holding, Inventory};

/// The show's rules.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Category → (price in minor units, currency).
    pub prices: HashMap<String, (i64, String)>,
    pub hold_ttl: Duration,
    pub max_per_hold: u32,
    /// Seats one user may hold and own at once.
    pub max_per_user: u32,
    /// Sales window in Unix ms.
    pub opens_at_ms: Option<i64>,
    pub closes_at_ms: Option<i64>,
}

/// The time a command happens at: the wall clock (what is stored: expiry times) and
/// the monotonic clock (when the leader expires a hold). The engine reads no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub wall_ms: i64,
    pub mono: Instant,
}

impl Now {
    /// The clocks now (for the adapters; the engine is given its time).
    pub fn read() -> Self {
        Self {
            wall_ms: crate::coord::now_ms(),
            mono: Instant::now(),
        }
    }

    /// `d` later on both clocks.
    pub fn after(self, d: Duration) -> Self {
        Self {
            wall_ms: self.wall_ms + d.as_millis() as i64,
            mono: self.mono + d,
        }
    }
}

/// A hold request.
#[derive(Debug, Clone)]
pub enum HoldRequest {
    Seats(Vec<String>),
    Best {
        quantity: u32,
        section: Option<String>,
        category: Option<String>,
    },
    General {
        area: String,
        quantity: u64,
    },
}

impl HoldRequest {
    /// A short digest of what is asked for, stored with an idempotent hold.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let text = match self {
            HoldRequest::Seats(seats) => format!("seats\n{}", seats.join("\n")),
            HoldRequest::Best {
                quantity,
                section,
                category,
            } => format!(
                "best\n{quantity}\n{}\n{}",
                section.as_deref().unwrap_or(""),
                category.as_deref().unwrap_or("")
            ),
            HoldRequest::General { area, quantity } => format!("general\n{area}\n{quantity}"),
        };
        let hash = sha2::Sha256::digest(text.as_bytes());
        hash[..12].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Rules {
    /// Whether new holds may be taken at `now_ms`; `closed`: the show was withdrawn.
    pub fn sales_open(&self, now_ms: i64, closed: bool) -> Result<()> {
        if closed {
            return Err(ShardError::Closed(
                "sales are closed: the show was withdrawn".into(),
            ));
        }
        if self.opens_at_ms.is_some_and(|t| now_ms < t) {
            return Err(ShardError::Closed("sales have not opened yet".into()));
        }
        if self.closes_at_ms.is_some_and(|t| now_ms >= t) {
            return Err(ShardError::Closed("sales have closed".into()));
        }
        Ok(())
    }

    fn per_hold(&self) -> ShardError {
        ShardError::Limit(format!("at most {} seats per hold", self.max_per_hold))
    }

    fn bad_quantity(&self) -> ShardError {
        ShardError::BadRequest(
            BadInput::Quantity,
            format!("quantity must be 1 to {}", self.max_per_hold),
        )
    }

    /// Which seats or tickets a request wants (not yet whether they are free).
    pub fn plan(&self, inv: &Inventory, request: &HoldRequest) -> Result<Holding> {
        match request {
            HoldRequest::Seats(ids) => self.plan_seats(inv, ids),
            HoldRequest::Best {
                quantity,
                section,
                category,
            } => {
                if *quantity == 0 || *quantity > self.max_per_hold {
                    return Err(self.bad_quantity());
                }
                if let Some(s) = section
                    && !inv.sections().iter().any(|x| &x.name == s)
                {
                    return Err(ShardError::BadRequest(
                        BadInput::UnknownSection,
                        format!("no section {s}"),
                    ));
                }
                if let Some(c) = category
                    && !self.prices.contains_key(c)
                {
                    return Err(ShardError::BadRequest(
                        BadInput::UnknownCategory,
                        format!("no category {c}"),
                    ));
                }
                inv.best_available(section.as_deref(), category.as_deref(), *quantity)
                    .map(Holding::Seats)
                    .ok_or_else(|| ShardError::SeatsUnavailable(Vec::new()))
            }
            HoldRequest::General { area, quantity } => {
                let a = inv.area_index(area).ok_or_else(|| {
                    ShardError::BadRequest(
                        BadInput::UnknownArea,
                        format!("no general-admission area {area}"),
                    )
                })?;
                if *quantity == 0 || *quantity > u64::from(self.max_per_hold) {
                    return Err(self.bad_quantity());
                }
                Ok(Holding::General {
                    area: a,
                    quantity: *quantity,
                })
            }
        }
    }

    fn plan_seats(&self, inv: &Inventory, ids: &[String]) -> Result<Holding> {
        if ids.is_empty() {
            return Err(ShardError::BadRequest(
                BadInput::Request,
                "seats is empty".into(),
            ));
        }
        if ids.len() > self.max_per_hold as usize {
            return Err(self.per_hold());
        }
        let mut seats = Vec::with_capacity(ids.len());
        let mut unknown = Vec::new();
        for raw in ids {
            match raw
                .parse::<SeatId>()
                .ok()
                .and_then(|id| inv.seat_index(&id))
            {
                Some(i) => seats.push(i),
                None => unknown.push(raw.chars().take(64).collect::<String>()),
            }
        }
        if !unknown.is_empty() {
            return Err(ShardError::BadRequest(
                BadInput::UnknownSeat,
                format!("no such seats: {}", unknown.join(", ")),
            ));
        }
        let mut sorted = seats.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != seats.len() {
            return Err(ShardError::BadRequest(
                BadInput::DuplicateSeat,
                "a seat appears more than once".into(),
            ));
        }
        Ok(Holding::Seats(seats))
    }

    /// The per-hold and per-user limits for `user`, who holds or owns `owned` already.
    pub fn within_limits(&self, quantity: u64, owned: u64) -> Result<()> {
        if quantity > u64::from(self.max_per_hold) {
            return Err(self.per_hold());
        }
        let max = self.max_per_user;
        if owned + quantity > u64::from(max) {
            return Err(ShardError::Limit(format!(
                "at most {max} seats per user for this show ({owned} held or bought)"
            )));
        }
        Ok(())
    }

    /// The wall-clock expiry of an extension asked at `now_ms` of a hold created at
    /// `created_at_ms` that expires at `expires_at_ms`: one TTL from now, at most three
    /// TTLs from creation; refused when that is no later than now.
    pub fn extended_expiry(
        &self,
        now_ms: i64,
        created_at_ms: i64,
        expires_at_ms: i64,
    ) -> Result<i64> {
        let ttl = self.hold_ttl.as_millis() as i64;
        let expiry = (now_ms + ttl).min(created_at_ms + 3 * ttl);
        if created_at_ms > 0 && expiry <= expires_at_ms {
            return Err(ShardError::Limit(format!(
                "a hold lives at most {}s in all",
                3 * self.hold_ttl.as_secs()
            )));
        }
        Ok(expiry)
    }

    /// What a holding costs: (minor units, currency).
    pub fn price_of(&self, inv: &Inventory, holding: &Holding) -> (i64, String) {
        let mut total = 0;
        let mut currency = String::new();
        let mut add = |category: &str, n: u64| {
            if let Some((minor, cur)) = self.prices.get(category) {
                total += minor * n as i64;
                currency.clone_from(cur);
            }
        };
        match holding {
            Holding::Seats(seats) => {
                for &s in seats {
                    add(inv.category_of(s), 1);
                }
            }
            Holding::General { area, quantity } => add(&inv.areas()[*area].category, *quantity),
        }
        (total, currency)
    }
}
