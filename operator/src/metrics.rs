//! Operator metrics (prometheus-client), served by the admin server.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

const BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The label of a failed reconcile: the error's kind (a closed set, from
/// `Error::metric_label`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    durations: Histogram,
    /// 1 while this replica runs the controllers.
    pub leading: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("boxoffice_operator");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations = Histogram::new(BUCKETS);
        let leading = Gauge::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by error",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            durations.clone(),
        );
        registry.register(
            "leader",
            "Whether this replica runs the controller",
            leading.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            durations,
            leading,
        }
    }
}

impl Metrics {
    pub fn error(&self, label: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { error: label })
            .inc();
    }

    pub fn observe_duration(&self, d: Duration) {
        self.durations.observe(d.as_secs_f64());
    }

    /// The text exposition (OpenMetrics).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_errors_histogram_and_leader() {
        let m = Metrics::default();
        m.reconciles.inc();
        m.reconciles.inc();
        m.error("kube");
        m.observe_duration(Duration::from_millis(30));
        m.leading.set(1);
        let text = m.render();
        for line in [
            "boxoffice_operator_reconciles_total 2",
            "boxoffice_operator_reconcile_errors_total{error=\"kube\"} 1",
            "boxoffice_operator_reconcile_duration_seconds_count 1",
            "boxoffice_operator_reconcile_duration_seconds_bucket{le=\"0.05\"} 1",
            "boxoffice_operator_leader 1",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }
}
