//! The relay's series, one label `sink` (a configured sink's name: a closed set).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
}

/// Per-sink deliveries, retries, dead letters and lag.
#[derive(Clone)]
pub struct RelayMetrics {
    pub delivered: Family<SinkLabel, Counter>,
    pub retries: Family<SinkLabel, Counter>,
    pub dead_letters: Family<SinkLabel, Counter>,
    pub lag_events: Family<SinkLabel, Gauge>,
    pub lag_seconds: Family<SinkLabel, Gauge<f64, AtomicU64>>,
    /// Seconds from an event's commit to the sink's acknowledgement.
    pub delivery_lag: Family<SinkLabel, Histogram, fn() -> Histogram>,
}

/// 1 ms to about 65 s, doubling.
fn lag_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Default for RelayMetrics {
    fn default() -> Self {
        Self {
            delivered: Family::default(),
            retries: Family::default(),
            dead_letters: Family::default(),
            lag_events: Family::default(),
            lag_seconds: Family::default(),
            delivery_lag: Family::new_with_constructor(lag_histogram),
        }
    }
}

impl RelayMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "event_deliveries",
            "Events a sink acknowledged",
            self.delivered.clone(),
        );
        registry.register(
            "event_delivery_retries",
            "Failed deliveries retried after a backoff",
            self.retries.clone(),
        );
        registry.register(
            "event_dead_letters",
            "Events dead-lettered after the retry window",
            self.dead_letters.clone(),
        );
        registry.register(
            "event_sink_lag_events",
            "Events committed but not yet acknowledged by the sink (leader only)",
            self.lag_events.clone(),
        );
        registry.register(
            "event_sink_lag_seconds",
            "Age of the oldest event the sink has not acknowledged (leader only)",
            self.lag_seconds.clone(),
        );
        registry.register(
            "event_delivery_lag_seconds",
            "Seconds from an event's commit to the sink's acknowledgement",
            self.delivery_lag.clone(),
        );
    }
}
