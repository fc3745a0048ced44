//! Payments: what a provider's callback must prove before the engine believes it.
//! Pure (no I/O): the signature of a callback ([`signature`]) and what a verified one
//! says ([`Callback`]).

pub mod signature;

pub use signature::{SignatureError, sign, verify};

/// What a provider reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackKind {
    Paid,
    Failed,
    Refunded,
}

impl CallbackKind {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "payment.succeeded" => Some(CallbackKind::Paid),
            "payment.failed" => Some(CallbackKind::Failed),
            "refund.succeeded" => Some(CallbackKind::Refunded),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallbackKind::Paid => "payment.succeeded",
            CallbackKind::Failed => "payment.failed",
            CallbackKind::Refunded => "refund.succeeded",
        }
    }
}

/// A provider callback whose signature was verified.
#[derive(Debug, Clone)]
pub struct Callback {
    /// The provider's event id: answered once.
    pub id: String,
    pub kind: CallbackKind,
    pub intent: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The provider's payment id (the booking's payment reference).
    pub payment: String,
}
