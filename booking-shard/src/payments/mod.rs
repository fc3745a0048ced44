//! Payments: what a provider's callback must prove before the engine believes it.
//! Pure (no I/O): the signature of a callback ([`signature`]).

pub mod signature;

pub use signature::{SignatureError, sign, verify};
