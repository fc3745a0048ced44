//! The show as the shard serves it, and the shapes of requests, holds and events.

use super::*;

/// The show as the shard serves it.
pub struct ShowInfo {
    pub config: ShowConfig,
    pub layout: VenueLayout,
    /// Category → (price in minor units, currency).
    pub prices: HashMap<String, (i64, String)>,
    pub hold_ttl: Duration,
    pub max_per_hold: u32,
    pub max_per_user: Option<u32>,
    /// Sales window in Unix ms (from `spec.sales`).
    pub opens_at_ms: Option<i64>,
    pub closes_at_ms: Option<i64>,
}

fn rfc3339_ms(s: &Option<String>) -> anyhow::Result<Option<i64>> {
    s.as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|e| anyhow::anyhow!("bad sales time {t:?}: {e}"))
        })
        .transpose()
}

impl ShowInfo {
    pub fn new(config: ShowConfig) -> anyhow::Result<Self> {
        let layout = VenueLayout::from_seating(&config.spec.seating)?;
        let prices = config
            .spec
            .categories
            .iter()
            .map(|c| (c.name.clone(), (price_minor(&c.price), c.currency.clone())))
            .collect();
        let hold_ttl = boxoffice_crds::validate::parse_duration(&config.spec.holds.ttl)
            .ok_or_else(|| anyhow::anyhow!("bad holds.ttl"))?;
        let sales = config.spec.sales.clone().unwrap_or_default();
        Ok(Self {
            opens_at_ms: rfc3339_ms(&sales.opens_at)?,
            closes_at_ms: rfc3339_ms(&sales.closes_at)?,
            max_per_hold: config.spec.holds.max_seats_per_hold,
            max_per_user: config.spec.holds.max_seats_per_user,
            config,
            layout,
            prices,
            hold_ttl,
        })
    }

    /// `namespace/name`, the show's key in PostgreSQL.
    pub fn key(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }
}

/// "49.50" → 4950.
fn price_minor(price: &str) -> i64 {
    let (whole, frac) = price.split_once('.').unwrap_or((price, ""));
    let whole: i64 = whole.parse().unwrap_or(0);
    let frac: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
    whole * 100 + frac
}

/// A hold request.
#[derive(Debug, Clone)]
pub enum HoldRequest {
    Seats(Vec<String>),
    Best {
        quantity: u32,
        section: Option<String>,
        category: Option<String>,
    },
    General {
        area: String,
        quantity: u64,
    },
}

/// A hold as clients see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HoldView {
    pub id: String,
    pub user: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub quantity: u64,
    pub expires_at_ms: i64,
    pub amount_minor: i64,
    pub currency: String,
    pub status: &'static str,
}

/// A change of seats, for Server-Sent Events.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatEvent {
    /// held, released, expired, sold, returned.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub quantity: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking: Option<String>,
    pub counts: InventoryCounts,
}

#[cfg(test)]
mod tests {
    use super::price_minor;

    #[test]
    fn prices_in_minor_units() {
        assert_eq!(price_minor("49.50"), 4950);
        assert_eq!(price_minor("49.5"), 4950);
        assert_eq!(price_minor("25"), 2500);
        assert_eq!(price_minor("0.05"), 5);
    }
}
