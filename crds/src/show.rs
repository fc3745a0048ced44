//! The `Show` custom resource (`boxoffice.dev/v1alpha1`).
//!
//! Validation lives in the schema so that the API server rejects a bad Show at
//! `kubectl apply` with a message naming the field: OpenAPI bounds and patterns for
//! single fields, CEL rules (`x-kubernetes-validations`) for everything that spans
//! fields, and list-map keys for unique names. [`crate::validate`] repeats the same rules
//! in Rust for manifests that never pass through an API server (the shard's `--show`).

// kube's `printcolumn(...)` entries repeat `type_ = ...` by design; clippy reads them as
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::rules;

/// A show whose seats are sold by one booking shard.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "boxoffice.dev",
    version = "v1alpha1",
    kind = "Show",
    plural = "shows",
    shortname = "show",
    category = "boxoffice",
    namespaced,
    status = "ShowStatus",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.leader"),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.inventory.available"
    ),
    printcolumn(name = "Sold", type_ = "integer", json_path = ".status.inventory.sold"),
    printcolumn(
        name = "Routed",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Routed\")].status"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".status.url",
        priority = 1
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        priority = 1
    ),
    printcolumn(
        name = "Title",
        type_ = "string",
        json_path = ".spec.title",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(rules::SECTION_CATEGORIES_EXIST)
        .message("seating.sections[].category must name an entry of spec.categories")
        .field_path(".seating.sections"),
    validation = Rule::new(rules::GA_CATEGORIES_EXIST)
        .message("seating.generalAdmission[].category must name an entry of spec.categories")
        .field_path(".seating.generalAdmission"),
)]
pub struct ShowSpec {
    /// Human-readable title shown to buyers.
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// When the show starts (RFC 3339).
    #[schemars(length(max = 64), extend("format" = "date-time"))]
    pub starts_at: String,
    /// When sales open and close. Without it, sales are open while the Show exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales: Option<SalesWindow>,
    /// The venue: reserved-seating sections and general-admission areas.
    pub seating: Seating,
    /// Price categories that sections and areas refer to by name.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub categories: Vec<PriceCategory>,
    /// How holds behave.
    #[serde(default)]
    pub holds: HoldPolicy,
    /// How the booking shard runs.
    #[serde(default)]
    pub shard: ShardSpec,
    /// How bookings are paid for and confirmed; unset: free events (the user confirms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payments: Option<crate::payments::PaymentPolicy>,
    /// How the show is reached from outside the cluster; unset: the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<crate::route::RouteSpec>,
    /// Where the show's booking events go besides the operator's default sinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<crate::events::EventSinks>,
}

/// The sales window.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(rules::SALES_WINDOW_ORDER)
    .message("sales.closesAt must be after sales.opensAt")
    .field_path(".closesAt"))]
pub struct SalesWindow {
    /// Sales open at this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), extend("format" = "date-time"))]
    pub opens_at: Option<String>,
    /// Sales close at this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), extend("format" = "date-time"))]
    pub closes_at: Option<String>,
}

/// Sections of reserved seats and general-admission areas.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(rules::SEATING_NOT_EMPTY)
        .message("seating needs at least one section or generalAdmission area"),
    validation = Rule::new(rules::SEATING_NAMES_DISJOINT)
        .message("a generalAdmission area may not share its name with a section")
        .field_path(".generalAdmission"),
)]
pub struct Seating {
    /// Reserved-seating sections; names are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub sections: Vec<Section>,
    /// General-admission (count-based) areas; names are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub general_admission: Vec<GeneralAdmission>,
}

/// A reserved-seating section: rows of numbered seats.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Section {
    /// Section name, the first part of a seat id (`orchestra:C:12`).
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The price category of every seat in the section.
    #[schemars(length(min = 1, max = 32))]
    pub category: String,
    /// Rows; each row name (after range expansion) appears once. At most 32 entries (a
    /// range counts as one), which keeps the API server's uniqueness check within budget.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(
        merge_strategy = ListMerge::Atomic,
        validation = Rule::new(rules::rows_unique())
            .message("row names must be unique within a section (ranges may not overlap)")
    )]
    pub rows: Vec<RowSpec>,
}

/// One row (`name`) or a range of rows with the same seat count (`names: "A-Z"`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(rules::ROW_NAME_XOR_NAMES)
        .message("a row needs exactly one of name or names"),
    validation = Rule::new(rules::ROW_RANGE_ORDER)
        .message("names must be a range FIRST-LAST with FIRST not after LAST, e.g. A-Z, AA-AD or 1-40")
        .field_path(".names"),
)]
pub struct RowSpec {
    /// A single row name: 1 to 3 capital letters or digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 3),
        regex(pattern = r"^([A-Z]{1,3}|[1-9][0-9]{0,2})$")
    )]
    pub name: Option<String>,
    /// A range of rows: letters (`A-Z`, `AA-AD`) or numbers (`1-40`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 3, max = 7),
        regex(pattern = r"^([A-Z]{1,3}-[A-Z]{1,3}|[1-9][0-9]{0,2}-[1-9][0-9]{0,2})$")
    )]
    pub names: Option<String>,
    /// Seats per row, numbered from 1.
    #[schemars(range(min = 1, max = 500))]
    pub seats: u32,
}

/// A general-admission area sold by quantity.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GeneralAdmission {
    /// Area name.
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// How many tickets the area holds.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub capacity: i64,
    /// The price category of the area.
    #[schemars(length(min = 1, max = 32))]
    pub category: String,
}

/// A price category.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PriceCategory {
    /// Category name referenced by sections and areas.
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Price as a decimal string with at most two decimals, e.g. "49.50".
    #[schemars(
        length(min = 1, max = 10),
        regex(pattern = r"^[0-9]{1,7}(\.[0-9]{1,2})?$")
    )]
    pub price: String,
    /// ISO 4217 currency code, e.g. "EUR".
    #[schemars(length(min = 3, max = 3), regex(pattern = r"^[A-Z]{3}$"))]
    pub currency: String,
}

/// How holds behave.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HoldPolicy {
    /// How long a hold keeps its seats (Go duration, 1m to 2h).
    #[serde(default = "default_ttl")]
    #[schemars(
        length(min = 2, max = 16),
        regex(pattern = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$")
    )]
    #[x_kube(validation = Rule::new(rules::TTL_BOUNDS).message("holds.ttl must be between 1m and 2h"))]
    pub ttl: String,
    /// Most seats (or GA tickets) one hold may take.
    #[serde(default = "default_max_seats_per_hold")]
    #[schemars(range(min = 1, max = 100))]
    pub max_seats_per_hold: u32,
    /// Most seats one user may hold or own for this show; twice `maxSeatsPerHold` when
    /// unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub max_seats_per_user: Option<u32>,
}

impl Default for HoldPolicy {
    fn default() -> Self {
        Self {
            ttl: default_ttl(),
            max_seats_per_hold: default_max_seats_per_hold(),
            max_seats_per_user: None,
        }
    }
}

fn default_ttl() -> String {
    "10m".into()
}

fn default_max_seats_per_hold() -> u32 {
    10
}

/// How the booking shard runs. Unset fields fall back to the operator's configuration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShardSpec {
    /// Shard replicas; one leads, the others stand by.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// Shard container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Container resources of a shard pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// etcd endpoints for this show, overriding the operator's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 9))]
    pub etcd_endpoints: Vec<String>,
    /// Secret key holding the PostgreSQL URL, overriding the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the JWT verification key, overriding the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret_ref: Option<SecretKeyRef>,
}

impl Default for ShardSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            image: None,
            resources: None,
            etcd_endpoints: Vec::new(),
            database_secret_ref: None,
            jwt_secret_ref: None,
        }
    }
}

fn default_replicas() -> i32 {
    2
}

/// A key of a Secret in the Show's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// What the operator observed of a Show.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ShowStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, Degraded and Routed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Pending, Provisioning, OnSale, SoldOut, Closed or Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The pod that leads the shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Where clients reach the show's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The show's public base URL (through the gateway or ingress), when it is routed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The leader's fencing epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// Seat counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<InventoryCounts>,
}

/// Seat counts: `available + held + sold == total`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InventoryCounts {
    pub total: i64,
    pub available: i64,
    pub held: i64,
    pub sold: i64,
}
