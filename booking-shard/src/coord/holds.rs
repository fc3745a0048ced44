//! Hold writes: the shared hold leases, and the fenced transactions that store a hold's
//! record, move it to a later lease, and delete it.
//!
//! A hold is one key, `holds/<id>` → its record (seats included), on the hold's lease.
//! There are no per-seat keys: the leader rules out conflicts in memory, and what keeps
//! that memory exact across leader changes is the fencing (every write guarded by the
//! leader key's create revision) and a new leader's load at a revision after its
//! election (see docs/architecture.md, "One key per hold"). Seat locks under `seats/`
//! are from the earlier layout: a new leader deletes any it finds.

use boxoffice_contract::HoldRecord;
use etcd_client::{Compare, CompareOp, PutOptions, TxnOp};
use tracing::warn;

use super::batch::{Guarded, Refusal, guarded_txn};
use super::{CoordError, Coordinator, MAX_TXN_OPS, Result, now_ms};

impl Coordinator {
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

    /// The put of a hold's record on `lease`.
    fn hold_put(&self, record: &HoldRecord, lease: i64) -> TxnOp {
        TxnOp::put(
            self.keys.hold(&record.id),
            serde_json::to_vec(record).unwrap_or_default(),
            Some(PutOptions::new().with_lease(lease)),
        )
    }

    /// Stores a hold's record, in one transaction guarded by the leader key and by the
    /// hold key being absent (hold ids are random: a refusal means memory and etcd
    /// disagree, and the leader steps down).
    pub async fn create_hold(&self, epoch: i64, record: &HoldRecord, lease: i64) -> Result<()> {
        let absent = Compare::create_revision(self.keys.hold(&record.id), CompareOp::Equal, 0);
        let written = self
            .grouped(
                epoch,
                vec![absent],
                vec![self.hold_put(record, lease)],
                true,
                Refusal::HoldExists,
            )
            .await;
        match written {
            Err(CoordError::NoSpace) => self.settle_no_space(record).await,
            other => other,
        }
    }

    /// Settles etcd's "space exceeded" answer to a hold's write: the write that took
    /// etcd over its quota was applied all the same (see [`is_no_space`]). A
    /// linearizable read of the record says which: `Ok` when it holds exactly `record` (written),
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

    /// Moves a live hold's record onto a later lease, guarded by the
    /// leader key and by the hold still existing.
    pub async fn extend_hold(&self, epoch: i64, record: &HoldRecord, lease: i64) -> Result<()> {
        let exists = Compare::create_revision(self.keys.hold(&record.id), CompareOp::Greater, 0);
        let written = self
            .guarded(
                epoch,
                vec![exists],
                vec![self.hold_put(record, lease)],
                CoordError::HoldGone,
            )
            .await;
        match written {
            Err(CoordError::NoSpace) => self.settle_no_space(record).await,
            other => other,
        }
    }

    /// Deletes holds' records (released, expired, or confirmed), guarded by the leader
    /// key, within etcd's operations-per-transaction limit.
    pub async fn delete_holds(&self, epoch: i64, records: &[&HoldRecord]) -> Result<()> {
        for chunk in records.chunks(MAX_TXN_OPS) {
            let ops = chunk
                .iter()
                .map(|r| TxnOp::delete(self.keys.hold(&r.id), None))
                .collect();
            self.delete_batch(epoch, ops).await?;
        }
        Ok(())
    }

    /// Queues the delete of a confirmed hold's record and returns at once: the booking
    /// is durable and memory has sold its seats, so nothing waits on it. It shares the
    /// next group-committed transaction; if it fails, the record expires with its lease
    /// and a new leader skips it (PostgreSQL has its booking).
    pub fn forget_hold(&self, epoch: i64, record: &HoldRecord) {
        let ops = vec![TxnOp::delete(self.keys.hold(&record.id), None)];
        self.queue(epoch, Vec::new(), ops, false, Refusal::HoldGone);
    }

    /// Deletes seat locks by seat id (the earlier layout's, found at load), guarded by
    /// the leader key.
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
}
