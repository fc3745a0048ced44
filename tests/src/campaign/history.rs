//! The history of a campaign: every client operation with its invoke and complete times
//! and its outcome, and every fault the nemesis injected.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// A hold; `request` is the JSON body sent.
    Hold {
        request: String,
    },
    Confirm {
        hold: String,
    },
    Release {
        hold: String,
    },
}

/// How an operation ended, as the client knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged (2xx).
    Ok,
    /// Definitely refused (an answer that says nothing happened, e.g. 409, 410).
    Fail(String),
    /// No definite answer (timeout, reset, 5xx): it may or may not have happened.
    Unknown(String),
}

/// A granted hold, from the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldGrant {
    pub id: String,
    pub seats: Vec<String>,
    pub area: Option<String>,
    pub quantity: u64,
    /// Milliseconds since the campaign's start (converted from the answer's wall clock).
    pub expires_at: i64,
}

/// One client operation. Times are milliseconds since the campaign's start, from a
/// monotonic clock.
#[derive(Debug, Clone)]
pub struct Op {
    pub client: u32,
    pub kind: OpKind,
    pub invoke: i64,
    pub complete: i64,
    pub outcome: Outcome,
    /// Set for acknowledged holds.
    pub grant: Option<HoldGrant>,
    /// Set for acknowledged confirms: the booking reference.
    pub reference: Option<String>,
    /// How many attempts (retries of unknown outcomes with the same idempotency key).
    pub attempts: u32,
}

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: &'static str,
    pub target: String,
    pub start: i64,
    pub end: i64,
}

/// The shared, append-only history.
pub struct History {
    start: Instant,
    start_wall_ms: i64,
    ops: Mutex<Vec<Op>>,
    faults: Mutex<Vec<Fault>>,
}

pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            start_wall_ms: wall_ms(),
            ops: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
        }
    }

    /// Milliseconds since the start (monotonic).
    pub fn now(&self) -> i64 {
        self.start.elapsed().as_millis() as i64
    }

    /// A wall-clock time (Unix ms, as servers answer) on the history's time line.
    pub fn from_wall(&self, unix_ms: i64) -> i64 {
        unix_ms - self.start_wall_ms
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn record(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    pub fn fault(&self, fault: Fault) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fault);
    }

    pub fn ops(&self) -> Vec<Op> {
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone();
        ops.sort_by_key(|o| (o.invoke, o.complete));
        ops
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            OpKind::Hold { request } => format!("hold {request}"),
            OpKind::Confirm { hold } => format!("confirm {hold}"),
            OpKind::Release { hold } => format!("release {hold}"),
        };
        let outcome = match &self.outcome {
            Outcome::Ok => "ok".to_string(),
            Outcome::Fail(why) => format!("fail {why}"),
            Outcome::Unknown(why) => format!("unknown {why}"),
        };
        write!(
            f,
            "{:>7} {:>7} c{:<3} {what} -> {outcome}",
            self.invoke, self.complete, self.client
        )?;
        if let Some(g) = &self.grant {
            write!(f, " [{} {:?}", g.id, g.seats)?;
            if let Some(area) = &g.area {
                write!(f, " {area}x{}", g.quantity)?;
            }
            write!(f, " until {}]", g.expires_at)?;
        }
        if let Some(r) = &self.reference {
            write!(f, " booking {r}")?;
        }
        if self.attempts > 1 {
            write!(f, " ({} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>7} {:>7} NEMESIS {} {}",
            self.start, self.end, self.kind, self.target
        )
    }
}

/// The whole history, ops and faults merged in time order, one line each.
pub fn render(ops: &[Op], faults: &[Fault]) -> String {
    let mut lines: Vec<(i64, String)> = ops
        .iter()
        .map(|o| (o.invoke, o.to_string()))
        .chain(faults.iter().map(|f| (f.start, f.to_string())))
        .collect();
    lines.sort_by_key(|(t, _)| *t);
    let mut out = String::from("invoke complete client operation -> outcome\n");
    for (_, l) in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}
