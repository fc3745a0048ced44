//! The model of the stores and of what a run does: etcd's hold records (and seat locks
//! of the earlier layout),
//! PostgreSQL's bookings, the venue, and the steps.

use std::collections::BTreeMap;
use std::time::Duration;

use boxoffice_contract::HoldRecord;
use boxoffice_crds::VenueLayout;
use boxoffice_crds::seating::{AreaLayout, RowLayout, SectionLayout};

use super::super::{HoldRequest, NewBooking, Rules, Sold};

/// A booking as the model of PostgreSQL stores it.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub reference: String,
    pub hold: String,
    pub user: String,
    pub seats: Vec<String>,
    pub general: Option<(String, u64)>,
    pub cancelled: bool,
    pub checked_in: bool,
    /// The audit row written with it: (role, reason), e.g. ("provider", event id).
    pub confirmed_by: (String, String),
}

/// What etcd and PostgreSQL hold, and what clients were told.
#[derive(Debug, Default)]
pub(crate) struct World {
    pub holds: BTreeMap<String, HoldRecord>,
    /// Seat locks of the earlier layout (seat → hold): only a run that starts from them
    /// has any; a new leader must delete them.
    pub locks: BTreeMap<String, String>,
    pub bookings: Vec<Stored>,
    /// References of bookings a client was answered with.
    pub acked: Vec<String>,
    /// The show's payments come from a provider: only its verified callbacks confirm.
    pub provider_mode: bool,
}

impl World {
    /// etcd's hold transaction: refused only when the hold's key exists (etcd does not
    /// look at seats: the leader's memory rules conflicts out).
    pub(crate) fn put_hold(&mut self, r: &HoldRecord) -> bool {
        if self.holds.contains_key(&r.id) {
            return false;
        }
        self.holds.insert(r.id.clone(), r.clone());
        true
    }

    pub(crate) fn delete_hold(&mut self, r: &HoldRecord) {
        self.holds.remove(&r.id);
    }

    /// PostgreSQL's confirm: the same hold again is the first booking; a seat sold
    /// twice is refused (the unique index).
    pub(crate) fn book(&mut self, new: &NewBooking, n: usize) -> Result<Stored, String> {
        if let Some(b) = self.bookings.iter().find(|b| b.hold == new.hold_id) {
            return Ok(b.clone());
        }
        let taken = self
            .bookings
            .iter()
            .filter(|b| !b.cancelled)
            .any(|b| b.seats.iter().any(|s| new.seats.contains(s)));
        if taken {
            return Err(format!(
                "PostgreSQL refused a double sale of {:?}",
                new.seats
            ));
        }
        let stored = Stored {
            reference: format!("B{n}"),
            hold: new.hold_id.clone(),
            user: new.user.clone(),
            seats: new.seats.clone(),
            general: new
                .general
                .first()
                .map(|g| (g.area.clone(), g.quantity as u64)),
            cancelled: false,
            checked_in: false,
            confirmed_by: (new.audit.role.clone(), new.audit.reason.clone()),
        };
        self.bookings.push(stored.clone());
        Ok(stored)
    }

    pub(crate) fn sold(&self) -> Sold {
        let mut sold = Sold::default();
        for b in &self.bookings {
            sold.confirmed_holds.push(b.hold.clone());
            if b.cancelled {
                continue;
            }
            sold.seats.extend(b.seats.iter().cloned());
            let mut n = b.seats.len() as i64;
            if let Some((area, q)) = &b.general {
                *sold.general.entry(area.clone()).or_default() += *q as i64;
                n += *q as i64;
            }
            *sold.per_user.entry(b.user.clone()).or_default() += n;
        }
        sold
    }
}

/// The venue: a section of two rows (4 and 5 seats) and a standing area of 6.
pub(crate) fn layout() -> VenueLayout {
    let row = |name: &str, seats| RowLayout {
        name: name.into(),
        seats,
    };
    VenueLayout {
        sections: vec![SectionLayout {
            name: "main".into(),
            category: "std".into(),
            rows: vec![row("A", 4), row("B", 5)],
        }],
        areas: vec![AreaLayout {
            name: "pit".into(),
            category: "std".into(),
            capacity: 6,
        }],
    }
}

pub(crate) fn rules() -> Rules {
    rules_for(Default::default())
}

pub(crate) fn rules_for(mode: super::super::PaymentMode) -> Rules {
    Rules {
        prices: [("std".to_string(), (2500, "EUR".to_string()))].into(),
        hold_ttl: Duration::from_secs(60),
        max_per_hold: 4,
        max_per_user: 6,
        opens_at_ms: None,
        closes_at_ms: None,
        payments: super::super::PaymentRules {
            mode,
            ..Default::default()
        },
    }
}

pub(crate) const SEATS: [&str; 9] = [
    "main:A:1", "main:A:2", "main:A:3", "main:A:4", "main:B:1", "main:B:2", "main:B:3", "main:B:4",
    "main:B:5",
];

/// How a write turns out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    NoSpace,
    Fenced,
    /// The outcome is unknown to the leader; `applied` says what really happened.
    Unknown {
        applied: bool,
    },
}

/// What a client asks for.
#[derive(Debug, Clone)]
pub(crate) enum Want {
    Seats(Vec<usize>),
    Best(u32),
    General(u64),
}

impl Want {
    pub(crate) fn request(&self) -> HoldRequest {
        match self {
            Want::Seats(s) => {
                HoldRequest::Seats(s.iter().map(|&i| SEATS[i % 9].to_string()).collect())
            }
            Want::Best(q) => HoldRequest::Best {
                quantity: *q,
                section: None,
                category: None,
            },
            Want::General(q) => HoldRequest::General {
                area: "pit".into(),
                quantity: *q,
            },
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Hold {
        user: u8,
        want: Want,
        key: Option<u8>,
        outcome: Outcome,
    },
    /// Two holds decided before either is written (in flight together).
    Race {
        a: (u8, Want),
        b: (u8, Want),
    },
    Release {
        user: u8,
        pick: usize,
    },
    Extend {
        user: u8,
        pick: usize,
        outcome: Outcome,
    },
    Confirm {
        user: u8,
        pick: usize,
        outcome: Outcome,
    },
    /// A confirm in flight while its deadline passes and expiry runs.
    ConfirmAtExpiry {
        pick: usize,
    },
    Cancel {
        pick: usize,
    },
    CheckIn {
        pick: usize,
    },
    Advance {
        secs: u64,
    },
    LeaderChange,
    /// The owner starts paying for a hold (written like an extension).
    Checkout {
        pick: usize,
        outcome: Outcome,
    },
    /// The provider's verified callback: the payment succeeded.
    Paid {
        pick: usize,
        outcome: Outcome,
    },
    /// The provider's verified callback: the payment failed.
    PaymentFailed {
        pick: usize,
    },
}
