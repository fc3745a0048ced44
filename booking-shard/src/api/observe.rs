//! Per-request span and request metrics, and the registry `/metrics` encodes.
//!
//! Every label value comes from a closed set — a known method or `other`, a route
//! template of the router (or `unmatched`), a status code — so no request can add
//! series: an attacker sending made-up methods and paths only moves existing counters.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing::Instrument;

use super::AppState;
use crate::shard::{Role, Shard};

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The label set of a request series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

/// The label of a seat-count series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeatLabels {
    state: &'static str,
}

/// A method's label: one of the methods the API knows, else `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

type LatencyFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn new_latency() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Everything `/metrics` shows.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    leader: Gauge,
    epoch: Gauge,
    seats: Family<SeatLabels, Gauge>,
    /// Connections refused because the server was at its connection cap.
    pub refused_connections: Counter,
    /// Connections open now.
    pub open_connections: Gauge,
    /// Event streams open now.
    pub open_streams: Gauge,
    /// Event streams refused (total or per-client cap).
    pub refused_streams: Counter,
}

impl Metrics {
    /// Registers the request series and the shard's counters.
    pub fn new(shard: &Shard) -> Arc<Self> {
        let mut registry = Registry::with_prefix("boxoffice");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: LatencyFamily = Family::new_with_constructor(new_latency);
        let s = &shard.stats;
        registry.register("holds", "Holds created", s.holds.clone());
        registry.register(
            "hold_conflicts",
            "Hold attempts refused because seats were taken",
            s.hold_conflicts.clone(),
        );
        registry.register("confirms", "Bookings confirmed", s.confirms.clone());
        registry.register("holds_expired", "Holds expired", s.expired.clone());
        registry.register(
            "fenced_writes",
            "Writes refused because a newer leader exists (or the outcome was unknown); each ends this replica's leadership",
            s.fenced_writes.clone(),
        );
        registry.register(
            "leader_terms",
            "Times this replica became leader",
            s.leader_terms.clone(),
        );
        let e = &s.etcd;
        registry.register(
            "etcd_db_size_bytes",
            "Size of etcd's database file (largest member), compared with its quota",
            e.db_size.clone(),
        );
        registry.register(
            "etcd_db_size_in_use_bytes",
            "Bytes of etcd's database in use (largest member); the rest is given back by defragmenting",
            e.db_size_in_use.clone(),
        );
        registry.register(
            "etcd_quota_bytes",
            "etcd's space quota (--quota-backend-bytes)",
            e.quota.clone(),
        );
        registry.register(
            "etcd_nospace_alarm",
            "1 while etcd's NOSPACE alarm is raised (holds are refused with storage_full)",
            e.nospace.clone(),
        );
        registry.register(
            "etcd_compactions",
            "etcd compactions run by this replica",
            e.compactions.clone(),
        );
        registry.register(
            "etcd_defragmentations",
            "etcd member defragmentations run by this replica",
            e.defragmentations.clone(),
        );
        registry.register(
            "etcd_alarms_disarmed",
            "NOSPACE alarms disarmed by this replica",
            e.alarms_disarmed.clone(),
        );
        if let Some(relay) = shard.relay.get() {
            relay.metrics.register(&mut registry);
        }
        let leader = Gauge::default();
        let epoch = Gauge::default();
        let seats = Family::<SeatLabels, Gauge>::default();
        registry.register("leader", "Whether this replica leads", leader.clone());
        registry.register(
            "epoch",
            "The fencing epoch of this replica's leadership",
            epoch.clone(),
        );
        registry.register("seats", "Seats by state (leader only)", seats.clone());
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        let refused_connections = Counter::default();
        let open_connections = Gauge::default();
        let open_streams = Gauge::default();
        let refused_streams = Counter::default();
        registry.register(
            "http_connections_refused",
            "Connections refused at the connection cap",
            refused_connections.clone(),
        );
        registry.register(
            "http_connections_open",
            "HTTP connections open",
            open_connections.clone(),
        );
        registry.register(
            "event_streams_open",
            "Server-Sent Event streams open",
            open_streams.clone(),
        );
        registry.register(
            "event_streams_refused",
            "Event streams refused at the total or per-client cap",
            refused_streams.clone(),
        );
        Arc::new(Self {
            registry,
            requests,
            latency,
            leader,
            epoch,
            seats,
            refused_connections,
            open_connections,
            open_streams,
            refused_streams,
        })
    }

    /// Records one answered request.
    pub fn record(&self, labels: RequestLabels, seconds: f64) {
        self.latency.get_or_create(&labels).observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }

    /// The Prometheus text exposition, with the shard's gauges read now.
    pub fn encode(&self, shard: &Shard) -> String {
        match shard.role() {
            Role::Leader(l) => {
                self.leader.set(1);
                self.epoch.set(l.epoch);
            }
            _ => {
                self.leader.set(0);
                self.epoch.set(0);
            }
        }
        match shard.counts() {
            Ok(c) => {
                for (state, v) in [
                    ("available", c.available),
                    ("held", c.held),
                    ("sold", c.sold),
                ] {
                    self.seats.get_or_create(&SeatLabels { state }).set(v);
                }
            }
            Err(_) => self.seats.clear(),
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Wraps every routed request in a span and records it.
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let span =
        tracing::info_span!("request", method, route = %route, status = tracing::field::Empty);
    let start = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("status", status);
    state.metrics.record(
        RequestLabels {
            method,
            route,
            status,
        },
        start.elapsed().as_secs_f64(),
    );
    response
}
