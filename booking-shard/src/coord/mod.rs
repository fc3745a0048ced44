//! etcd: leader election and hold records, one job a file:
//! - [`election`]: campaigning, the leader lease, watching for a vacancy;
//! - [`holds`]: the hold leases and the fenced hold writes (create, extend, delete);
//! - [`batch`]: the group commit every fenced write goes through;
//! - [`load`]: a new leader's paged read of the hold records (and of any seat locks
//!   the earlier layout left).
//!
//! The key layout and the records are the contract with the operator
//! ([`boxoffice_contract`]): under `/boxoffice/<namespace>/<show>/`, `leader` (its
//! create revision is the leader's fencing epoch) and `holds/<hold-id>` →
//! [`HoldRecord`] JSON on the hold's lease: one key per hold.
//!
//! Every write is one transaction whose first compare is "the leader key still has my
//! create revision": a deposed leader's writes fail, whatever it believes.

mod batch;
mod election;
mod holds;
mod load;

use std::collections::BTreeMap;
use std::time::Duration;

use boxoffice_transport::{EtcdAccess, explain_etcd_error};
use etcd_client::{Client, ConnectOptions, GetOptions};
use tokio::sync::{Mutex, mpsc};

pub use boxoffice_contract::{HoldRecord, LeaderInfo, ShowKeys as Keys};

use batch::{Write, group_commit};

/// etcd's default limit of operations in one transaction.
pub const MAX_TXN_OPS: usize = 128;

/// Why an etcd operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    #[error("no longer the leader (fenced by etcd)")]
    Fenced,
    /// A hold's key existed already: memory and etcd disagree.
    #[error("the hold is in etcd already")]
    HoldExists,
    #[error("hold not found in etcd")]
    HoldGone,
    /// etcd's database is at its quota (the NOSPACE alarm): it refuses anything that
    /// would take space — puts, transactions with puts, lease grants; deletes and
    /// reads still work. From [`Coordinator::create_hold`] and
    /// [`Coordinator::extend_hold`] it means the hold was not written (see
    /// [`Coordinator::settle_no_space`]). Not a sign of a stale or deposed leader:
    /// space comes back with compaction, defragmentation and disarming the alarm
    /// ([`crate::maintenance`]).
    #[error("etcd is out of space (its database reached the quota)")]
    NoSpace,
    #[error("etcd: {0}")]
    Etcd(etcd_client::Error),
    /// TLS, credentials or permissions were refused at start, or are misconfigured.
    #[error("connecting to etcd: {0}")]
    Connect(String),
    #[error("bad record in etcd: {0}")]
    Corrupt(String),
    /// A grouped write failed in etcd; its outcome is unknown.
    #[error("etcd: {0}")]
    Unavailable(String),
}

pub type Result<T, E = CoordError> = std::result::Result<T, E>;

impl From<etcd_client::Error> for CoordError {
    fn from(e: etcd_client::Error) -> Self {
        if is_no_space(&e) {
            CoordError::NoSpace
        } else {
            CoordError::Etcd(e)
        }
    }
}

/// Whether etcd answered that its database is full (`etcdserver: mvcc: database space
/// exceeded`, gRPC RESOURCE_EXHAUSTED). The answer is not always a refusal: etcd checks
/// the quota before it proposes a request (refused), when it applies one under the
/// alarm (refused), and when it applies one while the alarm is not raised yet — then
/// it applies the request, raises the alarm and still answers "space exceeded".
pub fn is_no_space(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("database space exceeded"))
}

/// Hold records as stored in etcd, and seat locks of the earlier layout: what a new
/// leader loads.
#[derive(Debug, Default, PartialEq)]
pub struct StoredBook {
    pub holds: Vec<HoldRecord>,
    /// Seat id → hold id.
    pub locks: Vec<(String, String)>,
    /// The etcd revision the book is as of.
    pub revision: i64,
}

/// The key/value pairs under `holds/` and `seats/`, in key order.
pub struct RawBook {
    pub holds: Vec<(Vec<u8>, Vec<u8>)>,
    pub seats: Vec<(Vec<u8>, Vec<u8>)>,
    /// The etcd revision they are as of.
    pub revision: i64,
}

/// The outcome of one campaign round.
pub enum Campaign {
    /// We lead: our lease and the epoch (leader key create revision).
    Won { lease: i64, epoch: i64 },
    /// Someone else leads; watch from `revision` for the key to go.
    Lost {
        leader: Option<LeaderInfo>,
        revision: i64,
    },
}

/// etcd access for one show.
pub struct Coordinator {
    client: Client,
    keys: Keys,
    /// Hold leases by expiry second (Unix seconds): holds that expire in the same second
    /// share one lease, so the lease count stays bounded.
    leases: Mutex<BTreeMap<i64, i64>>,
    /// Group commit: guarded writes queue here and go to etcd several per transaction.
    writes: mpsc::UnboundedSender<Write>,
}

impl Coordinator {
    /// Connects over plain TCP without credentials.
    pub async fn connect(endpoints: &[String], keys: Keys) -> Result<Self> {
        Self::connect_with(endpoints, &EtcdAccess::default(), keys).await
    }

    /// Connects with TLS and credentials as `access` says. With either configured, one
    /// read of the show's leader key proves them (certificates, password, and the
    /// user's permission on the show's prefix) before the shard starts; a refusal ends
    /// the start with etcd's reason.
    pub async fn connect_with(
        endpoints: &[String],
        access: &EtcdAccess,
        keys: Keys,
    ) -> Result<Self> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(5))
            // etcd answers pings more frequent than its --grpc-keepalive-min-time
            // (5 s by default) on an idle connection with GOAWAY (too_many_pings), which
            // broke standbys' watches every few seconds. Leaders do not rely on pings:
            // their lease deadline ends leadership on its own.
            .with_keep_alive(Duration::from_secs(6), Duration::from_secs(3));
        let options = access
            .apply(endpoints, options)
            .map_err(|e| CoordError::Connect(e.to_string()))?;
        let refused = |e: etcd_client::Error| {
            CoordError::Connect(format!(
                "{}: {}",
                endpoints.join(","),
                explain_etcd_error(&e)
            ))
        };
        // With a user, connecting signs in (a wrong password fails here).
        let mut client = Client::connect(endpoints, Some(options))
            .await
            .map_err(refused)?;
        if access.is_secured() {
            client
                .get(keys.leader(), Some(GetOptions::new().with_keys_only()))
                .await
                .map_err(refused)?;
        }
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(group_commit(client.clone(), keys.clone(), queue));
        Ok(Self {
            client,
            keys,
            leases: Mutex::new(BTreeMap::new()),
            writes,
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }
}

/// Wall-clock now in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
