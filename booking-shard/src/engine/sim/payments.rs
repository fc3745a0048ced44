//! A model of a show's payments for the lifecycle's property test: bookings move only
//! through [`BookingState::apply`], callbacks are signed and verified with the real
//! signature code, provider event ids are remembered (a replay gets the first answer),
//! and each transition writes an audit row next to the state (as PostgreSQL does, in one
//! transaction). `seats` is the leader's memory of who holds or owns each seat; a
//! leader change rebuilds it from the stored states.

use std::collections::HashMap;

use super::super::lifecycle::{BookingAction, BookingState, PaymentMode, Transition};
use crate::payments::{sign, verify};

pub(crate) const SEATS: usize = 4;
const SECRET: &[u8] = b"whsec_show";
const TOLERANCE_S: i64 = 300;
const HOLD_S: i64 = 60;
const WINDOW_S: i64 = 120;

/// An action as recorded in the audit trail (owned, so it replays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    Checkout,
    Confirm { trusted: bool },
    Paid { seats_free: bool },
    PaymentFailed,
    Release,
    Expire,
    Cancel { paid: bool },
    Refunded,
}

impl Recorded {
    pub(crate) fn action(self, mode: PaymentMode) -> BookingAction<'static> {
        match self {
            Recorded::Checkout => BookingAction::Checkout { mode },
            Recorded::Confirm { trusted } => BookingAction::Confirm { mode, trusted },
            Recorded::Paid { seats_free } => BookingAction::Paid { seats_free },
            Recorded::PaymentFailed => BookingAction::PaymentFailed,
            Recorded::Release => BookingAction::Release,
            Recorded::Expire => BookingAction::Expire,
            Recorded::Cancel { paid } => BookingAction::Cancel { paid },
            Recorded::Refunded => BookingAction::Refunded,
        }
    }
}

/// One audit row: what moved the booking, from where to where, and the provider event
/// that did it (when a callback did).
#[derive(Debug, Clone)]
pub(crate) struct Audit {
    pub action: Recorded,
    pub from: BookingState,
    pub to: BookingState,
    pub event: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub seats: Vec<usize>,
    pub state: BookingState,
    pub deadline_s: i64,
    pub audit: Vec<Audit>,
}

/// What a provider reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Paid,
    Failed,
    Refunded,
}

/// How a callback is forged (or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forgery {
    None,
    WrongSecret,
    Stale,
    Tampered,
}

#[derive(Debug, Clone)]
pub(crate) enum PayOp {
    Hold {
        seats: Vec<usize>,
    },
    Checkout {
        pick: usize,
    },
    Confirm {
        pick: usize,
        trusted: bool,
    },
    Callback {
        pick: usize,
        kind: Kind,
        event: u8,
        forgery: Forgery,
    },
    Release {
        pick: usize,
    },
    Cancel {
        pick: usize,
    },
    Advance {
        secs: i64,
    },
    LeaderChange,
}

pub(crate) struct Desk {
    pub mode: PaymentMode,
    pub now_s: i64,
    /// The leader's memory: which entry holds or owns each seat.
    pub seats: [Option<usize>; SEATS],
    pub entries: Vec<Entry>,
    /// Provider event id → the first answer (the entry's state after it).
    pub events: HashMap<String, (usize, BookingState)>,
    /// Negative control: a late payment confirms without asking whether its seats are
    /// still free.
    pub broken_late_payment: bool,
    /// Negative control: a user's confirm ignores the show's payment mode.
    pub broken_confirm: bool,
}

impl Desk {
    pub(crate) fn new(mode: PaymentMode) -> Self {
        Self {
            mode,
            now_s: 1_700_000_000,
            seats: [None; SEATS],
            entries: Vec::new(),
            events: HashMap::new(),
            broken_late_payment: false,
            broken_confirm: false,
        }
    }

    fn pick(&self, pick: usize) -> Option<usize> {
        (!self.entries.is_empty()).then(|| pick % self.entries.len())
    }

    /// Applies `what` to entry `i` through the transition function; on a move, writes
    /// the state and its audit row together and updates the seats in memory.
    fn apply(&mut self, i: usize, what: Recorded, mode: PaymentMode, event: Option<String>) {
        let from = self.entries[i].state;
        let Ok(Transition::To(to)) = from.apply(what.action(mode)) else {
            return;
        };
        let e = &mut self.entries[i];
        e.state = to;
        e.audit.push(Audit {
            action: what,
            from,
            to,
            event,
        });
        for &s in &e.seats.clone() {
            if to.holds_seats() || to.owns_seats() {
                self.seats[s] = Some(i);
            } else if self.seats[s] == Some(i) {
                self.seats[s] = None;
            }
        }
        if to == BookingState::PaymentPending {
            self.entries[i].deadline_s = self.now_s + WINDOW_S;
        }
    }

    pub(crate) fn step(&mut self, op: &PayOp) {
        match op {
            PayOp::Hold { seats } => {
                let mut seats = seats.clone();
                seats.sort_unstable();
                seats.dedup();
                if seats.iter().all(|&s| self.seats[s].is_none()) {
                    let i = self.entries.len();
                    seats.iter().for_each(|&s| self.seats[s] = Some(i));
                    self.entries.push(Entry {
                        seats,
                        state: BookingState::Held,
                        deadline_s: self.now_s + HOLD_S,
                        audit: Vec::new(),
                    });
                }
            }
            PayOp::Checkout { pick } => {
                if let Some(i) = self.pick(*pick) {
                    self.apply(i, Recorded::Checkout, self.mode, None);
                }
            }
            PayOp::Confirm { pick, trusted } => {
                if let Some(i) = self.pick(*pick) {
                    let mode = if self.broken_confirm {
                        PaymentMode::None
                    } else {
                        self.mode
                    };
                    let what = Recorded::Confirm { trusted: *trusted };
                    self.apply(i, what, mode, None);
                }
            }
            PayOp::Callback {
                pick,
                kind,
                event,
                forgery,
            } => {
                if let Some(i) = self.pick(*pick) {
                    self.callback(i, *kind, *event, *forgery);
                }
            }
            PayOp::Release { pick } => {
                if let Some(i) = self.pick(*pick) {
                    self.apply(i, Recorded::Release, self.mode, None);
                }
            }
            PayOp::Cancel { pick } => {
                if let Some(i) = self.pick(*pick) {
                    let paid = self.mode != PaymentMode::None;
                    self.apply(i, Recorded::Cancel { paid }, self.mode, None);
                }
            }
            PayOp::Advance { secs } => {
                self.now_s += secs;
                for i in 0..self.entries.len() {
                    if self.entries[i].deadline_s <= self.now_s {
                        self.apply(i, Recorded::Expire, self.mode, None);
                    }
                }
            }
            PayOp::LeaderChange => self.seats = self.stored_seats(),
        }
    }

    /// A provider callback, through the adapter's steps: verify the signature, answer a
    /// known event id with its first answer, then apply.
    fn callback(&mut self, i: usize, kind: Kind, event: u8, forgery: Forgery) {
        let id = format!("evt_{event}");
        let kind_name = match kind {
            Kind::Paid => "payment.succeeded",
            Kind::Failed => "payment.failed",
            Kind::Refunded => "refund.succeeded",
        };
        let body = format!(r#"{{"id":"{id}","type":"{kind_name}","intent":"pi_{i}"}}"#);
        let (secret, t): (&[u8], i64) = match forgery {
            Forgery::WrongSecret => (b"whsec_guess", self.now_s),
            Forgery::Stale => (SECRET, self.now_s - TOLERANCE_S - 1),
            _ => (SECRET, self.now_s),
        };
        let header = sign(secret, t, body.as_bytes());
        let received = if forgery == Forgery::Tampered {
            body.replace("pi_", "pi_9")
        } else {
            body
        };
        if verify(
            SECRET,
            &header,
            received.as_bytes(),
            self.now_s,
            TOLERANCE_S,
        )
        .is_err()
        {
            return; // 401: nothing changes
        }
        if self.events.contains_key(&id) {
            return; // a replay: the first answer
        }
        let what = match kind {
            Kind::Paid => {
                let e = &self.entries[i];
                let free = e.seats.iter().all(|&s| self.seats[s].is_none());
                Recorded::Paid {
                    seats_free: free || self.broken_late_payment,
                }
            }
            Kind::Failed => Recorded::PaymentFailed,
            Kind::Refunded => Recorded::Refunded,
        };
        self.apply(i, what, self.mode, Some(id.clone()));
        self.events.insert(id, (i, self.entries[i].state));
    }

    /// Who holds or owns each seat, from the stored states alone.
    pub(crate) fn stored_seats(&self) -> [Option<usize>; SEATS] {
        let mut seats = [None; SEATS];
        for (i, e) in self.entries.iter().enumerate() {
            if e.state.holds_seats() || e.state.owns_seats() {
                e.seats.iter().for_each(|&s| seats[s] = Some(i));
            }
        }
        seats
    }
}
