//! The show's event feed, and the staff's view of dead letters.

use super::{Result, Shard, ShardError};
use crate::relay::CloudEvent;
use crate::store::{DeadLetter, Page};

/// A feed page, already in the envelope the sinks get.
pub enum FeedPage {
    Events(Vec<CloudEvent>),
    Expired { pruned: i64 },
}

impl Shard {
    /// Up to `limit` events after sequence number `after`.
    pub async fn event_feed(&self, after: i64, limit: i64) -> Result<FeedPage> {
        let l = self.leadership()?;
        let page = self
            .store
            .events_after(after, limit)
            .await
            .map_err(|e| self.store_error(&l, e))?;
        let source = CloudEvent::source_of(&self.show.key());
        Ok(match page {
            Page::Events(rows) => {
                FeedPage::Events(rows.iter().map(|r| CloudEvent::of(&source, r)).collect())
            }
            Page::Expired { pruned } => FeedPage::Expired { pruned },
        })
    }

    /// Dead letters, oldest first.
    pub async fn dead_letters(&self, pending_only: bool, limit: i64) -> Result<Vec<DeadLetter>> {
        let l = self.leadership()?;
        self.store
            .dead_letters(pending_only, limit)
            .await
            .map_err(|e| self.store_error(&l, e))
    }

    /// Delivers a dead letter again; false when the sink refused it this time.
    pub async fn replay_dead_letter(&self, id: i64) -> Result<bool> {
        let l = self.leadership()?;
        let Some(relay) = self.relay.get() else {
            return Err(ShardError::NotFound);
        };
        match relay.replay(&self.store, l.epoch, id).await {
            Ok(Some(ok)) => Ok(ok),
            Ok(None) => Err(ShardError::NotFound),
            Err(e) => Err(self.store_error(&l, e)),
        }
    }
}
