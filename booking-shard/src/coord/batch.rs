//! The group commit of fenced writes (see [`crate::batch`]) and the one transaction
//! shape they share: the leader guard, the write's compares, its operations.

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use tokio::sync::{mpsc, oneshot};

use super::{CoordError, Coordinator, Keys, MAX_TXN_OPS, Result};

/// Why a guarded write was refused while we still lead.
#[derive(Debug, Clone, Copy)]
pub(super) enum Refusal {
    HoldExists,
    HoldGone,
}

impl Refusal {
    fn error(self) -> CoordError {
        match self {
            Refusal::HoldExists => CoordError::HoldExists,
            Refusal::HoldGone => CoordError::HoldGone,
        }
    }
}

/// One guarded write waiting for the group commit.
pub(super) struct Write {
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
    /// A guarded write through the group commit: it shares one etcd transaction with
    /// the writes queued meanwhile (see [`group_commit`]).
    pub(super) async fn grouped(
        &self,
        epoch: i64,
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
        takes_space: bool,
        refused: Refusal,
    ) -> Result<()> {
        let answer = self.queue(epoch, compares, ops, takes_space, refused);
        answer.await.unwrap_or_else(|_| Err(writer_stopped()))
    }

    /// Queues a guarded write for the group commit; its answer arrives on the receiver
    /// (dropping it leaves the write to run unwatched).
    pub(super) fn queue(
        &self,
        epoch: i64,
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
        takes_space: bool,
        refused: Refusal,
    ) -> oneshot::Receiver<Result<()>> {
        let (done, answer) = oneshot::channel();
        let write = Write {
            epoch,
            compares,
            ops,
            takes_space,
            refused,
            done,
        };
        if let Err(mpsc::error::SendError(write)) = self.writes.send(write) {
            let _ = write.done.send(Err(writer_stopped()));
        }
        answer
    }
}

/// The answer of a write the group commit will never run (its task ended).
fn writer_stopped() -> CoordError {
    CoordError::Unavailable("the etcd writer stopped".into())
}

pub(super) enum Guarded {
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
pub(super) async fn guarded_txn(
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
pub(super) async fn group_commit(
    client: Client,
    keys: Keys,
    queue: mpsc::UnboundedReceiver<Write>,
) {
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
