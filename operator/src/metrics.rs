//! Operator metrics, rendered as Prometheus text by the admin server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
pub struct Metrics {
    pub reconciles: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    durations: Mutex<([u64; BUCKETS.len()], u64, f64)>,
    pub leading: AtomicU64,
}

impl Metrics {
    pub fn error(&self, label: &'static str) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(label)
            .or_default() += 1;
    }

    pub fn observe_duration(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let mut h = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.0[i] += 1;
            }
        }
        h.1 += 1;
        h.2 += secs;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP boxoffice_operator_reconciles_total Reconciles run.\n# TYPE boxoffice_operator_reconciles_total counter\nboxoffice_operator_reconciles_total {}",
            self.reconciles.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP boxoffice_operator_reconcile_errors_total Failed reconciles by error.\n# TYPE boxoffice_operator_reconcile_errors_total counter"
        );
        for (label, n) in self.errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "boxoffice_operator_reconcile_errors_total{{error=\"{label}\"}} {n}"
            );
        }
        let h = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP boxoffice_operator_reconcile_duration_seconds Reconcile duration.\n# TYPE boxoffice_operator_reconcile_duration_seconds histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "boxoffice_operator_reconcile_duration_seconds_bucket{{le=\"{b}\"}} {}",
                h.0[i]
            );
        }
        let _ = writeln!(
            out,
            "boxoffice_operator_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}\nboxoffice_operator_reconcile_duration_seconds_sum {}\nboxoffice_operator_reconcile_duration_seconds_count {}",
            h.1, h.2, h.1
        );
        let _ = writeln!(
            out,
            "# HELP boxoffice_operator_leader Whether this replica runs the controller.\n# TYPE boxoffice_operator_leader gauge\nboxoffice_operator_leader {}",
            self.leading.load(Ordering::Relaxed)
        );
        out
    }
}
