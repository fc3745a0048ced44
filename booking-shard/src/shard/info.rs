//! The show as the shard serves it, and the shapes of requests, holds and events.

use boxoffice_crds::{InventoryCounts, ShowConfig, VenueLayout};
use serde::Serialize;

use crate::engine::{Event, HoldFacts, HoldPhase, PaymentMode, PaymentRules, Rules};

/// The show as the shard serves it.
pub struct ShowInfo {
    pub config: ShowConfig,
    pub layout: VenueLayout,
    /// Prices, hold TTL, limits and the sales window, as the engine applies them.
    /// `maxSeatsPerUser` unset is twice the per-hold limit, so one user cannot sweep
    /// a show.
    pub rules: Rules,
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
        let rules = Rules {
            opens_at_ms: rfc3339_ms(&sales.opens_at)?,
            closes_at_ms: rfc3339_ms(&sales.closes_at)?,
            max_per_hold: config.spec.holds.max_seats_per_hold,
            max_per_user: config
                .spec
                .holds
                .max_seats_per_user
                .unwrap_or(config.spec.holds.max_seats_per_hold.saturating_mul(2)),
            prices,
            hold_ttl,
            payments: payment_rules(config.spec.payments.as_ref())?,
        };
        Ok(Self {
            config,
            layout,
            rules,
        })
    }

    /// `namespace/name`, the show's key in PostgreSQL.
    pub fn key(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }
}

/// `spec.payments` (unset: free events).
fn payment_rules(p: Option<&boxoffice_crds::PaymentPolicy>) -> anyhow::Result<PaymentRules> {
    use boxoffice_crds::PaymentMode as Crd;
    let Some(p) = p else {
        return Ok(PaymentRules::default());
    };
    let duration = |text: &str, what: &str| {
        boxoffice_crds::validate::parse_duration(text)
            .ok_or_else(|| anyhow::anyhow!("bad payments.{what}"))
    };
    Ok(PaymentRules {
        mode: match p.mode {
            Crd::None => PaymentMode::None,
            Crd::Provider => PaymentMode::Provider,
            Crd::TrustedService => PaymentMode::TrustedService,
        },
        window: duration(&p.window, "window")?,
        tolerance: duration(&p.tolerance, "tolerance")?,
    })
}

/// "49.50" → 4950.
fn price_minor(price: &str) -> i64 {
    let (whole, frac) = price.split_once('.').unwrap_or((price, ""));
    let whole: i64 = whole.parse().unwrap_or(0);
    let frac: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
    whole * 100 + frac
}

/// Where a hold is.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HoldStatus {
    /// Holding seats until it expires, is released or confirmed.
    Held,
    /// Checked out: waiting for the payment provider until the payment window ends
    /// (a failed payment returns it to `held`).
    #[serde(rename = "payment_pending")]
    PaymentPending,
    /// A confirm is in flight.
    Confirming,
}

/// A hold as clients see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
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
    pub status: HoldStatus,
    /// After a checkout: the payment intent the hold waits for (`payment_pending`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<String>,
}

/// A change of seats, for Server-Sent Events.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    #[schema(value_type = crate::api::schema::Counts)]
    pub counts: InventoryCounts,
}

/// A seat change as the public stream carries it: no hold id, no booking reference.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicSeatEvent<'a> {
    /// held, released, expired, sold, returned.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub seats: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub area: Option<&'a str>,
    pub quantity: u64,
    #[schema(value_type = crate::api::schema::Counts)]
    pub counts: InventoryCounts,
}

impl From<HoldFacts> for HoldView {
    fn from(f: HoldFacts) -> Self {
        HoldView {
            id: f.record.id,
            user: f.record.user,
            seats: f.record.seats,
            area: f.record.area,
            quantity: f.record.quantity,
            expires_at_ms: f.record.expires_at_ms,
            amount_minor: f.amount_minor,
            currency: f.currency,
            status: match f.phase {
                HoldPhase::Confirming => HoldStatus::Confirming,
                _ if f.record.payment_intent.is_some() => HoldStatus::PaymentPending,
                _ => HoldStatus::Held,
            },
            payment_intent: f.record.payment_intent,
        }
    }
}

impl From<Event> for SeatEvent {
    fn from(e: Event) -> Self {
        SeatEvent {
            kind: e.kind.as_str(),
            seats: e.seats,
            area: e.area,
            quantity: e.quantity,
            hold: e.hold,
            booking: e.booking,
            counts: e.counts,
        }
    }
}

impl SeatEvent {
    /// What anyone may see of this change.
    pub fn public(&self) -> PublicSeatEvent<'_> {
        PublicSeatEvent {
            kind: self.kind,
            seats: &self.seats,
            area: self.area.as_deref(),
            quantity: self.quantity,
            counts: self.counts,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{PaymentMode, PaymentRules, payment_rules, price_minor};

    #[test]
    fn payments_from_the_spec_and_free_events_without_it() {
        assert_eq!(payment_rules(None).expect("none"), PaymentRules::default());
        let spec = boxoffice_crds::PaymentPolicy {
            mode: boxoffice_crds::PaymentMode::Provider,
            window: "2m".into(),
            tolerance: "30s".into(),
            ..Default::default()
        };
        let rules = payment_rules(Some(&spec)).expect("provider");
        assert_eq!(
            rules,
            PaymentRules {
                mode: PaymentMode::Provider,
                window: Duration::from_secs(120),
                tolerance: Duration::from_secs(30),
            }
        );
        let bad = boxoffice_crds::PaymentPolicy {
            window: "soon".into(),
            ..spec
        };
        assert!(payment_rules(Some(&bad)).is_err());
    }

    #[test]
    fn prices_in_minor_units() {
        assert_eq!(price_minor("49.50"), 4950);
        assert_eq!(price_minor("49.5"), 4950);
        assert_eq!(price_minor("25"), 2500);
        assert_eq!(price_minor("0.05"), 5);
    }
}
