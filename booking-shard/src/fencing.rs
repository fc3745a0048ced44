//! The test-only switch that turns fencing off.
//!
//! `BOXOFFICE_UNSAFE_DISABLE_FENCING=1` drops the two fences: the leader-key compare in
//! every etcd transaction and the epoch check in every PostgreSQL write. It exists only
//! so the fault campaign can show that its checker sees the double sales a build
//! without fencing makes. Never set it anywhere else; the shard logs an error at start
//! when it is set.

use std::sync::OnceLock;

/// The environment variable of the switch.
pub const DISABLE_FENCING_ENV: &str = "BOXOFFICE_UNSAFE_DISABLE_FENCING";

/// True when fencing is on (always, unless the test-only switch is set).
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::env::var(DISABLE_FENCING_ENV)
            .map(|v| v != "1")
            .unwrap_or(true)
    })
}
