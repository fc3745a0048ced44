//! The contract between the booking shard and the operator: what one writes and the
//! other reads. Defined once here so a change on one side cannot silently break the
//! other.
//!
//! - [`keys`]: the etcd key layout of a show;
//! - [`leader`]: the leader record stored in the election key;
//! - [`hold`]: the hold record stored next to the seat locks;
//! - [`availability`]: the counts the shard serves at `/v1/shows/{show}/availability`.

pub mod availability;
pub mod hold;
pub mod keys;
pub mod leader;

pub use availability::{AreaCounts, Availability, Counts, SectionCounts};
pub use hold::HoldRecord;
pub use keys::ShowKeys;
pub use leader::LeaderInfo;
