//! The shard Service and the in-cluster URL it gives.

use boxoffice_crds::Show;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{meta, selector, service_name};

pub fn service(show: &Show) -> Service {
    Service {
        metadata: meta(show, service_name(show)),
        spec: Some(ServiceSpec {
            selector: Some(selector(show)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: super::SERVICE_PORT,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The URL clients use inside the cluster.
pub fn endpoint(show: &Show) -> String {
    format!(
        "http://{}.{}.svc/v1/shows/{}",
        service_name(show),
        show.namespace().unwrap_or_else(|| "default".into()),
        show.name_any()
    )
}
