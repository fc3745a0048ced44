//! Counts the shard serves at `GET /v1/shows/{show}/availability` (and inside the show
//! summary and the seat map); the operator reads them into the Show's status.

use boxoffice_crds::InventoryCounts;
use serde::{Deserialize, Serialize};

/// Seat counts: `available + held + sold == total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counts {
    pub total: i64,
    pub available: i64,
    pub held: i64,
    pub sold: i64,
}

impl From<InventoryCounts> for Counts {
    fn from(c: InventoryCounts) -> Self {
        Self {
            total: c.total,
            available: c.available,
            held: c.held,
            sold: c.sold,
        }
    }
}

impl From<Counts> for InventoryCounts {
    fn from(c: Counts) -> Self {
        Self {
            total: c.total,
            available: c.available,
            held: c.held,
            sold: c.sold,
        }
    }
}

/// A general-admission area and its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AreaCounts {
    pub name: String,
    pub category: String,
    pub inventory: Counts,
}

/// Counts of a section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SectionCounts {
    pub name: String,
    pub category: String,
    pub inventory: Counts,
}

/// Counts per section and general-admission area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    pub sections: Vec<SectionCounts>,
    pub general_admission: Vec<AreaCounts>,
    pub inventory: Counts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_reads_back_into_the_show_status_counts() {
        let counts = Counts {
            total: 50,
            available: 38,
            held: 2,
            sold: 10,
        };
        let a = Availability {
            sections: vec![SectionCounts {
                name: "main".into(),
                category: "std".into(),
                inventory: counts,
            }],
            general_admission: Vec::new(),
            inventory: counts,
        };
        let json = serde_json::to_value(&a).unwrap_or_default();
        // The field names the operator has always read.
        assert_eq!(json["generalAdmission"], serde_json::json!([]));
        assert_eq!(json["inventory"]["available"], 38);
        let back: Availability = serde_json::from_value(json.clone()).expect("parses");
        assert_eq!(back, a);
        let status: InventoryCounts =
            serde_json::from_value(json["inventory"].clone()).expect("status counts");
        assert_eq!(Counts::from(status), counts);
    }
}
