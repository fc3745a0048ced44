//! etcd: leader election and seat locks.
//!
//! Layout under `/boxoffice/<namespace>/<show>/`:
//! - `leader` — the election key, put with the leader's lease; its create revision is
//!   the leader's fencing epoch;
//! - `seats/<seat-id>` → hold id, with a hold lease;
//! - `holds/<hold-id>` → [`HoldRecord`] JSON, with the same lease.
//!
//! Every write is one transaction whose first compare is "the leader key still has my
//! create revision": a deposed leader's writes fail, whatever it believes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use boxoffice_transport::{EtcdAccess, explain_etcd_error};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use serde::{Deserialize, Serialize};

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// etcd's default limit of operations in one transaction.
pub const MAX_TXN_OPS: usize = 128;

/// Why an etcd operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    #[error("no longer the leader (fenced by etcd)")]
    Fenced,
    #[error("seat already locked in etcd")]
    SeatTaken,
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

/// Who leads, as stored in the election key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    pub pod: String,
    /// Base URL of the leader's API, e.g. `http://127.0.0.5:8080`.
    pub address: String,
    /// The peers' signature of `pod` and `address` ([`crate::keys::ShardKeys`]):
    /// standbys forward users' requests only to a leader record that carries it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sig: String,
}

/// A hold as stored in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldRecord {
    pub id: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub quantity: u64,
    /// Wall-clock expiry (Unix ms); leaders turn it into a monotonic deadline.
    pub expires_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Wall-clock creation (Unix ms); extensions are bounded from it.
    #[serde(default)]
    pub created_at_ms: i64,
    /// A digest of the request that made the hold: a retry with the same
    /// Idempotency-Key and another request is refused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_digest: String,
}

/// The keys of one show.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(namespace: &str, show: &str) -> Self {
        Self {
            prefix: format!("/boxoffice/{namespace}/{show}/"),
        }
    }
    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }
    pub fn seat(&self, seat: &str) -> String {
        format!("{}seats/{seat}", self.prefix)
    }
    pub fn hold(&self, hold: &str) -> String {
        format!("{}holds/{hold}", self.prefix)
    }
    pub fn holds_prefix(&self) -> String {
        format!("{}holds/", self.prefix)
    }
    pub fn seats_prefix(&self) -> String {
        format!("{}seats/", self.prefix)
    }
    pub fn show_prefix(&self) -> &str {
        &self.prefix
    }
}

/// Hold records and seat locks as stored in etcd: what a new leader loads.
#[derive(Debug, Default, PartialEq)]
pub struct StoredBook {
    pub holds: Vec<HoldRecord>,
    /// Seat id → hold id.
    pub locks: Vec<(String, String)>,
}

/// The key/value pairs under `holds/` and `seats/`, in key order.
pub struct RawBook {
    pub holds: Vec<(Vec<u8>, Vec<u8>)>,
    pub seats: Vec<(Vec<u8>, Vec<u8>)>,
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

/// Why a guarded write was refused while we still lead.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    SeatTaken,
    HoldGone,
}

impl Refusal {
    fn error(self) -> CoordError {
        match self {
            Refusal::SeatTaken => CoordError::SeatTaken,
            Refusal::HoldGone => CoordError::HoldGone,
        }
    }
}

/// One guarded write waiting for the group commit.
struct Write {
    epoch: i64,
    compares: Vec<Compare>,
    ops: Vec<TxnOp>,
    /// Whether `ops` put anything (etcd refuses such writes while it is out of space;
    /// deletes and checks go through).
    takes_space: bool,
    refused: Refusal,
    done: oneshot::Sender<Result<()>>,
}

/// Transactions of grouped writes in flight at once.
const WRITES_IN_FLIGHT: usize = 4;

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

    /// A guarded write through the group commit: it shares one etcd transaction with
    /// the writes queued meanwhile (see [`group_commit`]).
    async fn grouped(
        &self,
        epoch: i64,
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
        takes_space: bool,
        refused: Refusal,
    ) -> Result<()> {
        let (done, answer) = oneshot::channel();
        let write = Write {
            epoch,
            compares,
            ops,
            takes_space,
            refused,
            done,
        };
        if self.writes.send(write).is_err() {
            return Err(CoordError::Unavailable("the etcd writer stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(CoordError::Unavailable("the etcd writer stopped".into())))
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// One round: try to create the leader key with a fresh lease.
    pub async fn campaign(&self, me: &LeaderInfo, ttl_secs: i64) -> Result<Campaign> {
        let mut c = self.client();
        let lease = c.lease_grant(ttl_secs, None).await?.id();
        let key = self.keys.leader();
        let value = serde_json::to_vec(me).unwrap_or_default();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = c.txn(txn).await?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        if resp.succeeded() {
            return Ok(Campaign::Won {
                lease,
                epoch: revision,
            });
        }
        let _ = c.lease_revoke(lease).await;
        let leader = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(g) => g
                .kvs()
                .first()
                .and_then(|kv| serde_json::from_slice(kv.value()).ok()),
            _ => None,
        });
        Ok(Campaign::Lost { leader, revision })
    }

    /// The current leader, if any.
    pub async fn leader(&self) -> Result<Option<LeaderInfo>> {
        let resp = self.client().get(self.keys.leader(), None).await?;
        Ok(resp
            .kvs()
            .first()
            .and_then(|kv| serde_json::from_slice(kv.value()).ok()))
    }

    /// Returns when the leader key is deleted (or the watch breaks), watching from
    /// `revision + 1`; `on_leader` is told of leader changes seen meanwhile.
    pub async fn wait_for_vacancy(
        &self,
        revision: i64,
        cancel: &CancellationToken,
        mut on_leader: impl FnMut(Option<LeaderInfo>),
    ) -> Result<()> {
        let mut c = self.client();
        let mut stream = c
            .watch(
                self.keys.leader(),
                Some(WatchOptions::new().with_start_revision(revision + 1)),
            )
            .await?;
        loop {
            let msg = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                m = stream.message() => m?,
            };
            let Some(msg) = msg else { return Ok(()) };
            if msg.canceled() {
                return Ok(());
            }
            for ev in msg.events() {
                match ev.event_type() {
                    EventType::Delete => {
                        on_leader(None);
                        return Ok(());
                    }
                    EventType::Put => on_leader(
                        ev.kv()
                            .and_then(|kv| serde_json::from_slice(kv.value()).ok()),
                    ),
                }
            }
        }
    }

    /// Keeps the leader lease alive until `lost` is cancelled. Any keep-alive error, a
    /// closed stream, `ttl <= 0`, or no successful renewal within the TTL cancels
    /// `lost`: the caller must stop serving writes at once.
    pub fn spawn_keep_alive(&self, lease: i64, ttl_secs: i64, lost: CancellationToken) {
        let mut c = self.client();
        tokio::spawn(async move {
            let ttl = Duration::from_secs(ttl_secs.max(1) as u64);
            let interval = ttl / 3;
            let mut deadline = Instant::now() + ttl;
            let result: Result<()> = async {
                let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
                loop {
                    keeper.keep_alive().await?;
                    let resp = tokio::select! {
                        _ = lost.cancelled() => return Ok(()),
                        _ = tokio::time::sleep_until(deadline.into()) => {
                            warn!("leader lease not renewed within its TTL");
                            return Ok(());
                        }
                        r = stream.message() => r?,
                    };
                    let Some(resp) = resp else {
                        warn!("leader lease keep-alive stream closed");
                        return Ok(());
                    };
                    if resp.ttl() <= 0 {
                        warn!("leader lease expired");
                        return Ok(());
                    }
                    // The lease now lasts `ttl` from when the request was sent; be
                    // conservative and count from the response.
                    deadline = Instant::now() + Duration::from_secs(resp.ttl() as u64)
                        - Duration::from_millis(500).min(ttl / 4);
                    tokio::select! {
                        _ = lost.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(interval) => {}
                    }
                }
            }
            .await;
            if let Err(e) = result {
                warn!(error = %e, "leader lease keep-alive failed");
            }
            lost.cancel();
        });
    }

    /// Gives up leadership: revoking the lease deletes the leader key at once.
    pub async fn resign(&self, lease: i64) {
        if let Err(e) = self.client().lease_revoke(lease).await {
            warn!(error = %e, "revoking the leader lease failed");
        } else {
            info!("resigned leadership");
        }
    }

    /// The shared lease for holds expiring at `expires_at_ms`. The lease outlives the
    /// hold by at most two seconds; the leader deletes expired holds itself and the
    /// lease is the backstop when no leader is there to do it.
    pub async fn hold_lease(&self, expires_at_ms: i64) -> Result<i64> {
        let bucket = expires_at_ms.div_euclid(1000) + 1;
        let mut leases = self.leases.lock().await;
        if let Some(id) = leases.get(&bucket) {
            return Ok(*id);
        }
        let now_s = now_ms().div_euclid(1000);
        let ttl = (bucket - now_s + 1).max(2);
        let id = self.client().lease_grant(ttl, None).await?.id();
        leases.insert(bucket, id);
        // Forget buckets that are over.
        let stale: Vec<i64> = leases.range(..now_s).map(|(k, _)| *k).collect();
        for k in stale {
            leases.remove(&k);
        }
        Ok(id)
    }

    /// One transaction: if the leader key still has our create revision and every
    /// `compare` holds, run `ops`. A refusal means `refused` while we still lead, and
    /// `Fenced` when a newer leader exists.
    async fn guarded(
        &self,
        epoch: i64,
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
        refused: CoordError,
    ) -> Result<()> {
        match guarded_txn(&self.client, &self.keys, epoch, compares, ops).await? {
            Guarded::Done => Ok(()),
            Guarded::Refused => Err(refused),
            Guarded::Fenced => Err(CoordError::Fenced),
        }
    }

    /// Puts of a hold's seat locks and record, all on `lease`.
    fn hold_puts(&self, record: &HoldRecord, lease: i64) -> Vec<TxnOp> {
        let put = || Some(PutOptions::new().with_lease(lease));
        let mut ops: Vec<TxnOp> = record
            .seats
            .iter()
            .map(|seat| TxnOp::put(self.keys.seat(seat), record.id.clone(), put()))
            .collect();
        ops.push(TxnOp::put(
            self.keys.hold(&record.id),
            serde_json::to_vec(record).unwrap_or_default(),
            put(),
        ));
        ops
    }

    /// Locks a hold's seats and stores its record, in one transaction guarded by the
    /// leader key and by every seat key (and the hold key) being absent.
    pub async fn create_hold(&self, epoch: i64, record: &HoldRecord, lease: i64) -> Result<()> {
        let absent = |key: String| Compare::create_revision(key, CompareOp::Equal, 0);
        let mut compares: Vec<Compare> = record
            .seats
            .iter()
            .map(|s| absent(self.keys.seat(s)))
            .collect();
        compares.push(absent(self.keys.hold(&record.id)));
        let written = self
            .grouped(
                epoch,
                compares,
                self.hold_puts(record, lease),
                true,
                Refusal::SeatTaken,
            )
            .await;
        match written {
            Err(CoordError::NoSpace) => self.settle_no_space(record).await,
            other => other,
        }
    }

    /// Settles etcd's "space exceeded" answer to a hold's write: the write that took
    /// etcd over its quota was applied all the same (see [`is_no_space`]). One
    /// transaction writes the record and the seat locks together, so a linearizable
    /// read of the record says which: `Ok` when it holds exactly `record` (written),
    /// `NoSpace` when not (nothing was written). A read that fails leaves the outcome
    /// unknown.
    async fn settle_no_space(&self, record: &HoldRecord) -> Result<()> {
        let stored = self.client().get(self.keys.hold(&record.id), None).await?;
        let written = stored.kvs().first().is_some_and(|kv| {
            serde_json::from_slice::<HoldRecord>(kv.value())
                .ok()
                .as_ref()
                == Some(record)
        });
        if written {
            warn!(hold = %record.id, "etcd said it was out of space but wrote the hold");
            Ok(())
        } else {
            Err(CoordError::NoSpace)
        }
    }

    /// Moves a live hold (its record and seat locks) onto a later lease, guarded by the
    /// leader key and by the hold still existing.
    pub async fn extend_hold(&self, epoch: i64, record: &HoldRecord, lease: i64) -> Result<()> {
        let exists = Compare::create_revision(self.keys.hold(&record.id), CompareOp::Greater, 0);
        let written = self
            .guarded(
                epoch,
                vec![exists],
                self.hold_puts(record, lease),
                CoordError::HoldGone,
            )
            .await;
        match written {
            Err(CoordError::NoSpace) => self.settle_no_space(record).await,
            other => other,
        }
    }

    /// Checks, under the leader guard, that a hold is still in etcd (not expired).
    pub async fn check_hold(&self, epoch: i64, hold_id: &str) -> Result<()> {
        let exists = Compare::create_revision(self.keys.hold(hold_id), CompareOp::Greater, 0);
        self.grouped(epoch, vec![exists], Vec::new(), false, Refusal::HoldGone)
            .await
    }

    /// Deletes holds' keys (released, expired, or confirmed), guarded by the leader key.
    /// Batched within etcd's operations-per-transaction limit, never splitting one hold
    /// across transactions (its seats and its record go together).
    pub async fn delete_holds(&self, epoch: i64, records: &[&HoldRecord]) -> Result<()> {
        let mut batch: Vec<TxnOp> = Vec::new();
        for r in records {
            let mut ops: Vec<TxnOp> = r
                .seats
                .iter()
                .map(|seat| TxnOp::delete(self.keys.seat(seat), None))
                .collect();
            ops.push(TxnOp::delete(self.keys.hold(&r.id), None));
            if !batch.is_empty() && batch.len() + ops.len() > MAX_TXN_OPS {
                self.delete_batch(epoch, std::mem::take(&mut batch)).await?;
            }
            batch.extend(ops);
        }
        if !batch.is_empty() {
            self.delete_batch(epoch, batch).await?;
        }
        Ok(())
    }

    /// Deletes seat locks by seat id (orphans found at load), guarded by the leader key.
    pub async fn delete_seat_locks(&self, epoch: i64, seats: &[String]) -> Result<()> {
        for chunk in seats.chunks(MAX_TXN_OPS) {
            let ops = chunk
                .iter()
                .map(|s| TxnOp::delete(self.keys.seat(s), None))
                .collect();
            self.delete_batch(epoch, ops).await?;
        }
        Ok(())
    }

    async fn delete_batch(&self, epoch: i64, ops: Vec<TxnOp>) -> Result<()> {
        // No compare besides the leader guard: a refusal can only mean fenced.
        self.grouped(epoch, Vec::new(), ops, false, Refusal::HoldGone)
            .await
            .map_err(|e| match e {
                CoordError::HoldGone => CoordError::Fenced,
                other => other,
            })
    }

    /// Every live hold record, and the seat locks (seat id → hold id), read page by
    /// page at one revision: a show with tens of thousands of live holds is far beyond
    /// gRPC's 4 MiB message limit in one response, and a new leader that cannot load
    /// cannot lead.
    pub async fn load(&self) -> Result<StoredBook> {
        let (raw, _) = self.read_book().await?;
        self.parse_book(raw)
    }

    /// The raw hold and seat-lock pairs at one revision (returned with them).
    pub async fn read_book(&self) -> Result<(RawBook, i64)> {
        // One revision for both reads, which then run side by side.
        let revision = self
            .client()
            .get(self.keys.leader(), None)
            .await?
            .header()
            .map(|h| h.revision())
            .unwrap_or(0);
        let (holds_prefix, seats_prefix) = (self.keys.holds_prefix(), self.keys.seats_prefix());
        let (holds, seats) = tokio::join!(
            self.scan(&holds_prefix, revision),
            self.scan(&seats_prefix, revision)
        );
        let (holds, _) = holds?;
        let (seats, _) = seats?;
        Ok((RawBook { holds, seats }, revision))
    }

    /// Hold records and seat locks from their raw pairs.
    pub fn parse_book(&self, raw: RawBook) -> Result<StoredBook> {
        let mut holds = Vec::with_capacity(raw.holds.len());
        for (_, value) in raw.holds {
            let record: HoldRecord =
                serde_json::from_slice(&value).map_err(|e| CoordError::Corrupt(e.to_string()))?;
            holds.push(record);
        }
        let prefix = self.keys.seats_prefix();
        let locks = raw
            .seats
            .into_iter()
            .map(|(key, value)| {
                let key = String::from_utf8_lossy(&key);
                (
                    key.strip_prefix(&prefix).unwrap_or(&key).to_string(),
                    String::from_utf8_lossy(&value).into_owned(),
                )
            })
            .collect();
        Ok(StoredBook { holds, locks })
    }

    /// Every key under `prefix`, in pages of [`SCAN_PAGE`], at `revision` (0: now);
    /// returns the pairs and the revision read.
    async fn scan(&self, prefix: &str, revision: i64) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, i64)> {
        let mut c = self.client();
        let end = prefix_end(prefix.as_bytes());
        let mut start = prefix.as_bytes().to_vec();
        let mut revision = revision;
        let mut out = Vec::new();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(SCAN_PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let resp = c.get(start.clone(), Some(options)).await?;
            if revision == 0 {
                revision = resp.header().map(|h| h.revision()).unwrap_or(0);
            }
            let Some(last) = resp.kvs().last() else { break };
            start = last.key().to_vec();
            start.push(0);
            out.extend(
                resp.kvs()
                    .iter()
                    .map(|kv| (kv.key().to_vec(), kv.value().to_vec())),
            );
            if !resp.more() {
                break;
            }
        }
        Ok((out, revision))
    }
}

/// Keys per page when a new leader reads holds and seat locks. A hold record is at
/// most about 500 bytes (a 128-character idempotency key, a few seat ids), so a page
/// stays well under gRPC's 4 MiB message limit.
const SCAN_PAGE: i64 = 4_000;

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

enum Guarded {
    Done,
    /// A compare failed while we still lead.
    Refused,
    Fenced,
}

fn leader_guard(keys: &Keys, epoch: i64) -> Compare {
    Compare::create_revision(keys.leader(), CompareOp::Equal, epoch)
}

/// One transaction guarded by the leader key (unless the test-only switch turned
/// fencing off) and `compares`.
async fn guarded_txn(
    client: &Client,
    keys: &Keys,
    epoch: i64,
    compares: Vec<Compare>,
    ops: Vec<TxnOp>,
) -> Result<Guarded> {
    let mut when = Vec::with_capacity(compares.len() + 1);
    if crate::fencing::enabled() {
        when.push(leader_guard(keys, epoch));
    }
    when.extend(compares);
    let txn = Txn::new()
        .when(when)
        .and_then(ops)
        .or_else([TxnOp::get(keys.leader(), None)]);
    let resp = client.clone().txn(txn).await?;
    if resp.succeeded() {
        return Ok(Guarded::Done);
    }
    let still_leader = resp.op_responses().into_iter().any(|op| match op {
        TxnOpResponse::Get(g) => g
            .kvs()
            .first()
            .is_some_and(|kv| kv.create_revision() == epoch),
        _ => false,
    });
    Ok(if still_leader {
        Guarded::Refused
    } else {
        Guarded::Fenced
    })
}

/// Group commit of guarded writes (see [`crate::batch`]): writes of the same epoch
/// share one transaction, within etcd's operations-per-transaction limit. When the
/// combined transaction is refused while we still lead (one seat was locked after all,
/// or one hold is gone), each write is retried on its own so each gets its own answer.
async fn group_commit(client: Client, keys: Keys, queue: mpsc::UnboundedReceiver<Write>) {
    let admits = |group: &[Write], next: &Write| {
        let compares: usize = group.iter().map(|w| w.compares.len()).sum::<usize>() + 1;
        let ops: usize = group.iter().map(|w| w.ops.len()).sum();
        next.epoch == group[0].epoch
            && compares + next.compares.len() <= MAX_TXN_OPS
            && ops + next.ops.len() <= MAX_TXN_OPS
    };
    crate::batch::run(queue, WRITES_IN_FLIGHT, admits, |group: Vec<Write>| {
        let (client, keys) = (client.clone(), keys.clone());
        async move {
            let epoch = group[0].epoch;
            commit_batch(&client, &keys, epoch, group).await;
        }
    })
    .await;
}

async fn commit_batch(client: &Client, keys: &Keys, epoch: i64, batch: Vec<Write>) {
    let single = batch.len() == 1;
    let compares: Vec<Compare> = batch.iter().flat_map(|w| w.compares.clone()).collect();
    let ops: Vec<TxnOp> = batch.iter().flat_map(|w| w.ops.clone()).collect();
    match guarded_txn(client, keys, epoch, compares, ops).await {
        Ok(Guarded::Done) => {
            for w in batch {
                let _ = w.done.send(Ok(()));
            }
        }
        Ok(Guarded::Fenced) => {
            for w in batch {
                let _ = w.done.send(Err(CoordError::Fenced));
            }
        }
        Ok(Guarded::Refused) if single => {
            for w in batch {
                let _ = w.done.send(Err(w.refused.error()));
            }
        }
        Ok(Guarded::Refused) => {
            // Someone in the batch was refused: find out who, one by one.
            for w in batch {
                let answer = commit_alone(client, keys, epoch, w.compares, w.ops, w.refused).await;
                let _ = w.done.send(answer);
            }
        }
        Err(CoordError::NoSpace) => {
            // etcd is out of space (the alarm is raised now) and refuses every write
            // that puts: each hold settles its own outcome (the transaction may have
            // been the one etcd applied as it went over). Deletes and checks take no
            // space, so expiry, releases and confirms go on: retry those on their own
            // (a delete applied already is a no-op the second time).
            for w in batch {
                let answer = if w.takes_space || single {
                    Err(CoordError::NoSpace)
                } else {
                    commit_alone(client, keys, epoch, w.compares, w.ops, w.refused).await
                };
                let _ = w.done.send(answer);
            }
        }
        Err(e) => {
            let message = e.to_string();
            for w in batch {
                let _ = w.done.send(Err(CoordError::Unavailable(message.clone())));
            }
        }
    }
}

/// One write in a transaction of its own, with its own answer.
async fn commit_alone(
    client: &Client,
    keys: &Keys,
    epoch: i64,
    compares: Vec<Compare>,
    ops: Vec<TxnOp>,
    refused: Refusal,
) -> Result<()> {
    match guarded_txn(client, keys, epoch, compares, ops).await {
        Ok(Guarded::Done) => Ok(()),
        Ok(Guarded::Refused) => Err(refused.error()),
        Ok(Guarded::Fenced) => Err(CoordError::Fenced),
        Err(e) => Err(e),
    }
}

/// Wall-clock now in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
