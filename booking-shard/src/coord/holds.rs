//! Hold writes: the shared hold leases, and the fenced transactions that lock a hold's
//! seats with its record, move it to a later lease, check it, and delete it.

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
}
