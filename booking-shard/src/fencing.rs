//! The test-only switch that turns fencing off.
//!
//! `BOXOFFICE_UNSAFE_DISABLE_FENCING=1` drops the two fences: the leader-key compare in
//! every etcd transaction and the epoch check in every PostgreSQL write. It exists only
//! so the fault campaign can show that its checker sees the double sales a build
//! without fencing makes. It works only in a build with the `test-switches` cargo
//! feature (the test suite's; a release build of the shard ignores it), and the shard
//! logs an error at start when it is on.

use std::sync::OnceLock;

/// The environment variable of the switch.
pub const DISABLE_FENCING_ENV: &str = "BOXOFFICE_UNSAFE_DISABLE_FENCING";

/// True when fencing is on: always, unless this is a `test-switches` build and the
/// switch is set.
pub fn enabled() -> bool {
    if !cfg!(feature = "test-switches") {
        return true;
    }
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::env::var(DISABLE_FENCING_ENV)
            .map(|v| v != "1")
            .unwrap_or(true)
    })
}
