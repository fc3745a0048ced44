//! booking-shard: the per-show booking service. The elected leader owns the show's seat
//! inventory in memory, locks seats in etcd with leased keys, and persists confirmed
//! bookings to PostgreSQL.

pub mod inventory;
