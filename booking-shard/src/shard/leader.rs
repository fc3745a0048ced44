//! Campaigning, leading, and a new leader's load from PostgreSQL and etcd.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{LOAD_TIMEOUT, Leadership, Role, Shard, bump};
use crate::coord::{Campaign, HoldRecord};
use crate::engine::{Effect, Engine, Now};
use crate::mirror::Mirror;

/// How long a new leader waits for its mirror to prove it is current before reading
/// etcd instead (a current mirror answers in milliseconds).
const MIRROR_WAIT: Duration = Duration::from_millis(500);

impl Shard {
    /// Campaigns until `shutdown`; leads while it can. On shutdown a leader resigns so a
    /// standby takes over at once.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // While standing by, a warm copy of the book in etcd (see [`Mirror`]).
        let mut mirror: Option<Mirror> = None;
        while !shutdown.is_cancelled() {
            match self.coord.campaign(&self.me, self.lease_ttl_secs).await {
                Err(e) => {
                    warn!(error = %e, "campaign failed; retrying");
                    self.set_role(Role::Candidate);
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Ok(Campaign::Lost { leader, revision }) => {
                    self.set_role(Role::Follower(leader));
                    if mirror.is_none() {
                        mirror = Some(Mirror::start(self.coord.clone()));
                    }
                    let watched = self
                        .coord
                        .wait_for_vacancy(revision, &shutdown, |l| {
                            self.set_role(Role::Follower(l));
                        })
                        .await;
                    if let Err(e) = watched {
                        warn!(error = %e, "watching the leader failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                Ok(Campaign::Won { lease, epoch }) => {
                    self.lead(lease, epoch, &shutdown, mirror.take()).await;
                }
            }
        }
        self.set_role(Role::Candidate);
    }

    pub(super) async fn lead(
        self: &Arc<Self>,
        lease: i64,
        epoch: i64,
        shutdown: &CancellationToken,
        mirror: Option<Mirror>,
    ) {
        let lost = shutdown.child_token();
        self.coord
            .spawn_keep_alive(lease, self.lease_ttl_secs, lost.clone());
        info!(epoch, "won the election; loading");
        // A leader that cannot reach PostgreSQL or etcd must not sit on the key.
        let loaded = tokio::time::timeout(LOAD_TIMEOUT, self.load(epoch, lost.clone(), mirror))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("loading took longer than {LOAD_TIMEOUT:?}")));
        match loaded {
            Ok(leadership) => {
                bump(&self.stats.leader_terms);
                let leadership = Arc::new(leadership);
                self.events.new_term(epoch);
                self.set_role(Role::Leader(leadership.clone()));
                info!(epoch, "leading");
                let expirer = tokio::spawn(self.clone().expire_loop(leadership.clone()));
                // The relay stops with the leadership (`lost`); every cursor write is
                // fenced by this epoch besides.
                let relay =
                    self.relay.get().cloned().map(|relay| {
                        tokio::spawn(relay.run(self.store.clone(), epoch, lost.clone()))
                    });
                lost.cancelled().await;
                // Stop serving writes first, then let go of the key.
                self.set_role(Role::Candidate);
                expirer.abort();
                if let Some(relay) = relay {
                    let _ = relay.await;
                }
                info!(epoch, "leadership ended");
            }
            Err(e) => {
                error!(error = %e, epoch, "could not take over; stepping down");
                lost.cancel();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        self.coord.resign(lease).await;
    }

    /// A new leader's load: raise the fencing epoch and read sold seats from
    /// PostgreSQL; meanwhile take live holds and seat locks from the standby's mirror
    /// when it proves current, else read them from etcd.
    pub(super) async fn load(
        &self,
        epoch: i64,
        lost: CancellationToken,
        mirror: Option<Mirror>,
    ) -> anyhow::Result<Leadership> {
        let started = Instant::now();
        let postgres = async {
            if !self.store.raise_epoch(epoch, &self.me.pod).await? {
                anyhow::bail!("PostgreSQL already has a newer epoch than {epoch}");
            }
            let areas: Vec<(String, i64)> = self
                .show
                .layout
                .areas
                .iter()
                .map(|a| (a.name.clone(), a.capacity as i64))
                .collect();
            self.store.ensure_areas(&areas).await?;
            let sold = self.store.load_sold().await?;
            anyhow::Ok((sold, started.elapsed().as_millis() as u64))
        };
        let etcd = async {
            let mirrored = match mirror {
                Some(m) => m.book_at_least(epoch, MIRROR_WAIT).await,
                None => None,
            };
            // etcd does not look at seats, so a copy that missed a record could grant
            // its seats again: one count-only read at the copy's revision checks it.
            let checked = match mirrored {
                Some(book) => match self.coord.hold_count_at(book.revision).await {
                    Ok(n) if n == book.holds.len() as i64 => Some(book),
                    counted => {
                        warn!(
                            mirrored = book.holds.len(),
                            ?counted,
                            revision = book.revision,
                            "the book mirror disagrees with etcd's count; reading etcd"
                        );
                        None
                    }
                },
                None => None,
            };
            let (source, stored) = match checked {
                Some(book) => ("mirror", book),
                None => ("etcd", self.coord.load().await?),
            };
            anyhow::Ok((source, stored, started.elapsed().as_millis() as u64))
        };
        let (postgres, etcd) = tokio::join!(postgres, etcd);
        let (sold, postgres_ms) = postgres?;
        let (source, stored, etcd_ms) = etcd?;
        let loaded = Engine::load(
            self.show.rules.clone(),
            &self.show.layout,
            &sold,
            stored.holds,
            stored.locks,
            Now::read(),
        );
        for effect in loaded.effects {
            match effect {
                Effect::DeleteHolds(stale, _) => {
                    let refs: Vec<&HoldRecord> = stale.iter().collect();
                    self.coord.delete_holds(epoch, &refs).await?;
                }
                Effect::DeleteSeatLocks(orphans) => {
                    warn!(count = orphans.len(), "removing orphaned seat locks");
                    self.coord.delete_seat_locks(epoch, &orphans).await?;
                }
                _ => {}
            }
        }
        let engine = loaded.engine;
        info!(
            epoch,
            sold = sold.seats.len(),
            holds = engine.hold_count(),
            postgres_ms,
            etcd_ms,
            source,
            total_ms = started.elapsed().as_millis() as u64,
            "loaded the book"
        );
        Ok(Leadership {
            epoch,
            lost,
            engine: Mutex::new(engine),
        })
    }
}
