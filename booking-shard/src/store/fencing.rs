//! The fencing epoch: raised by a new leader, checked first in every write.

use sqlx::{Postgres, Row, Transaction};

use super::{Result, Store, StoreError};

impl Store {
    /// Raises the show's epoch to `epoch` for `leader`. False when a newer (or equal)
    /// epoch is already recorded: another leader came after us.
    pub async fn raise_epoch(&self, epoch: i64, leader: &str) -> Result<bool> {
        let row = sqlx::query(
            "INSERT INTO show_leaders (show, epoch, leader) VALUES ($1, $2, $3) \
             ON CONFLICT (show) DO UPDATE SET epoch = EXCLUDED.epoch, leader = EXCLUDED.leader, \
             updated_at = now() WHERE show_leaders.epoch < EXCLUDED.epoch \
             RETURNING epoch",
        )
        .bind(&self.show)
        .bind(epoch)
        .bind(leader)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The recorded epoch, if any.
    pub async fn epoch(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT epoch FROM show_leaders WHERE show = $1")
            .bind(&self.show)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(super) async fn check_epoch(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        epoch: i64,
    ) -> Result<()> {
        let current: Option<i64> =
            sqlx::query_scalar("SELECT epoch FROM show_leaders WHERE show = $1 FOR SHARE")
                .bind(&self.show)
                .fetch_optional(&mut **tx)
                .await?;
        if current == Some(epoch) || !crate::fencing::enabled() {
            Ok(())
        } else {
            Err(StoreError::Fenced)
        }
    }
}
