//! Group commit: requests queued while earlier groups are being written share one
//! transaction. Used for etcd writes ([`crate::coord`]) and PostgreSQL confirms
//! ([`crate::store`]).
//!
//! The first queued request waits for one of `slots` transaction slots; every request
//! queued by then that the group admits joins it. Under load this turns thousands of
//! requests a second into a few hundred transactions, with no added wait when idle (a
//! lone request starts at once).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

/// Runs the group commit until every sender of `queue` is gone.
///
/// `admits(group, next)` says whether `next` may join `group` (which is never empty);
/// `commit(group)` writes one group and answers each of its requests.
pub async fn run<T, A, C, F>(
    mut queue: mpsc::UnboundedReceiver<T>,
    slots: usize,
    admits: A,
    commit: C,
) where
    T: Send + 'static,
    A: Fn(&[T], &T) -> bool,
    C: Fn(Vec<T>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(slots.max(1)));
    let mut carry: Option<T> = None;
    loop {
        let first = match carry.take() {
            Some(item) => item,
            None => match queue.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut group = vec![first];
        while let Ok(item) = queue.try_recv() {
            if !admits(&group, &item) {
                carry = Some(item);
                break;
            }
            group.push(item);
        }
        let write = commit(group);
        tokio::spawn(async move {
            write.await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn groups_what_queued_meanwhile_and_respects_admits() {
        let (tx, rx) = mpsc::unbounded_channel::<(u32, oneshot::Sender<usize>)>();
        let groups = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let seen = groups.clone();
        // One slot; groups of at most 3, never mixing odd and even.
        let runner = tokio::spawn(run(
            rx,
            1,
            |g: &[(u32, oneshot::Sender<usize>)], next: &(u32, _)| {
                g.len() < 3 && g[0].0 % 2 == next.0 % 2
            },
            move |g: Vec<(u32, oneshot::Sender<usize>)>| {
                let seen = seen.clone();
                async move {
                    let size = g.len();
                    seen.lock()
                        .unwrap()
                        .push(g.iter().map(|(n, _)| *n).collect());
                    for (_, done) in g {
                        let _ = done.send(size);
                    }
                }
            },
        ));
        let mut answers = Vec::new();
        for n in [2, 4, 6, 8, 1, 3] {
            let (done, answer) = oneshot::channel();
            tx.send((n, done)).unwrap();
            answers.push(answer);
        }
        let mut sizes = Vec::new();
        for a in answers {
            sizes.push(a.await.unwrap());
        }
        drop(tx);
        runner.await.unwrap();
        let groups = groups.lock().unwrap().clone();
        assert_eq!(groups, vec![vec![2, 4, 6], vec![8], vec![1, 3]]);
        assert_eq!(sizes, vec![3, 3, 3, 1, 2, 2]);
    }
}
