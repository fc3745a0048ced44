//! The shard PodDisruptionBudget.

use boxoffice_crds::Show;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{meta, selector, shard_name};

/// At most one shard pod voluntarily disrupted at a time.
pub fn pdb(show: &Show) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(show, shard_name(show)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector(show)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
