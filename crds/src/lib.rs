//! boxoffice-crds: the `Show` custom resource, its validation rules, and the seat model
//! (row ranges, seat ids, venue layout) that the operator and the booking shard share.

pub mod events;
pub mod manifest;
pub mod payments;
pub mod route;
pub mod rules;
pub mod seating;
pub mod show;
pub mod validate;

pub use events::{EventSinks, KafkaSink, WebhookSink};
pub use manifest::{ShowConfig, chart_crd_template, crd, crd_yaml};
pub use payments::{PaymentMode, PaymentPolicy};
pub use route::{RouteMode, RouteSpec};
pub use seating::{SeatId, SeatingError, VenueLayout};
pub use show::{
    GeneralAdmission, HoldPolicy, InventoryCounts, PriceCategory, RowSpec, SalesWindow, Seating,
    SecretKeyRef, Section, ShardSpec, Show, ShowSpec, ShowStatus,
};
pub use validate::{FieldError, InvalidShow, validate};

/// The API group of boxoffice resources.
pub const GROUP: &str = "boxoffice.dev";
