//! The show: what a new leader loads, its general-admission areas, its closed flag.

use sqlx::Row;

use super::{Result, Sold, Store};

impl Store {
    /// Records general-admission capacities (idempotent; capacity follows the spec).
    pub async fn ensure_areas(&self, areas: &[(String, i64)]) -> Result<()> {
        for (area, capacity) in areas {
            sqlx::query(
                "INSERT INTO general_sold (show, area, capacity) VALUES ($1, $2, $3) \
                 ON CONFLICT (show, area) DO UPDATE SET capacity = GREATEST(EXCLUDED.capacity, general_sold.sold)",
            )
            .bind(&self.show)
            .bind(area)
            .bind(capacity)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Everything sold for the show.
    pub async fn load_sold(&self) -> Result<Sold> {
        let mut sold = Sold::default();
        let rows = sqlx::query(
            "SELECT s.seat, b.user_id FROM booking_seats s \
             JOIN bookings b ON b.id = s.booking_id AND b.show = s.show \
             WHERE s.show = $1 AND s.status = 'confirmed'",
        )
        .bind(&self.show)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            sold.seats.push(row.get(0));
            *sold.per_user.entry(row.get(1)).or_default() += 1;
        }
        let rows = sqlx::query(
            "SELECT g.area, g.quantity, b.user_id FROM booking_general g \
             JOIN bookings b ON b.id = g.booking_id AND b.show = g.show \
             WHERE g.show = $1 AND g.status = 'confirmed'",
        )
        .bind(&self.show)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let quantity: i32 = row.get(1);
            *sold.general.entry(row.get(0)).or_default() += i64::from(quantity);
            *sold.per_user.entry(row.get(2)).or_default() += i64::from(quantity);
        }
        let rows = sqlx::query("SELECT hold_id FROM bookings WHERE show = $1")
            .bind(&self.show)
            .fetch_all(&self.pool)
            .await?;
        sold.confirmed_holds = rows.into_iter().map(|r| r.get(0)).collect();
        Ok(sold)
    }

    /// Marks the show closed (the operator's finalizer); bookings stay.
    pub async fn close(&self) -> Result<()> {
        sqlx::query("UPDATE shows SET closed_at = COALESCE(closed_at, now()) WHERE show = $1")
            .bind(&self.show)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether the show was closed.
    pub async fn is_closed(&self) -> Result<bool> {
        let closed: Option<bool> =
            sqlx::query_scalar("SELECT closed_at IS NOT NULL FROM shows WHERE show = $1")
                .bind(&self.show)
                .fetch_optional(&self.pool)
                .await?;
        Ok(closed.unwrap_or(false))
    }
}
