//! The shard Deployment.

use std::collections::BTreeMap;

use boxoffice_crds::{SecretKeyRef, Show};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecretVolumeSource, SecurityContext, TopologySpreadConstraint, Volume,
    VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::config_hash;
use super::transport::mount_transport_files;
use super::{
    CONFIG_DIR, CONFIG_HASH, HTTP_PORT, JWT_FILE, METRICS_PORT, SECRETS_DIR, SHARD_UID,
    config_name, labels, meta, selector, shard_name,
};
use crate::config::Config;

pub(super) fn secret_env(name: &str, r: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// The Secret keys a Show's shard needs: (database, JWT).
pub fn secret_refs(show: &Show, config: &Config) -> (SecretKeyRef, SecretKeyRef) {
    (
        show.spec
            .shard
            .database_secret_ref
            .clone()
            .unwrap_or_else(|| config.database_ref()),
        show.spec
            .shard
            .jwt_secret_ref
            .clone()
            .unwrap_or_else(|| config.jwt_ref()),
    )
}

/// The etcd endpoints the shard uses.
pub fn etcd_endpoints(show: &Show, config: &Config) -> Vec<String> {
    if show.spec.shard.etcd_endpoints.is_empty() {
        config.etcd.clone()
    } else {
        show.spec.shard.etcd_endpoints.clone()
    }
}

/// The shard's readiness probe: ready while it serves, or within 15 s of serving.
pub const READINESS_PATH: &str = "/readyz?grace=15";

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity("250m".into())),
            ("memory".into(), Quantity("128Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".into(),
            Quantity("512Mi".into()),
        )])),
        ..Default::default()
    }
}

pub fn deployment(show: &Show, config: &Config) -> Deployment {
    let (database, jwt) = secret_refs(show, config);
    let mut pod_labels = labels(show);
    pod_labels.insert("boxoffice.dev/role".into(), "shard".into());
    let mut envs = vec![
        env("BOXOFFICE_SHOW", format!("{CONFIG_DIR}/show.json")),
        env("BOXOFFICE_ETCD", etcd_endpoints(show, config).join(",")),
        env("BOXOFFICE_LISTEN", format!("0.0.0.0:{HTTP_PORT}")),
        env(
            "BOXOFFICE_METRICS_LISTEN",
            format!("0.0.0.0:{METRICS_PORT}"),
        ),
        env("BOXOFFICE_LOG_FORMAT", "json"),
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_IP", "status.podIP"),
        secret_env("DATABASE_URL", &database),
        env(
            "BOXOFFICE_JWT_SECRET_FILE",
            format!("{SECRETS_DIR}/{JWT_FILE}"),
        ),
    ];
    if let Some(otlp) = &config.otlp_endpoint {
        envs.push(env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.clone()));
    }
    let container = Container {
        name: "shard".into(),
        image: Some(
            show.spec
                .shard
                .image
                .clone()
                .unwrap_or_else(|| config.shard_image.clone()),
        ),
        args: Some(vec![]),
        env: Some(envs),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: HTTP_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some("metrics".into()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        // The failover grace keeps the pods in the Service through an election, answering
        // 503 + Retry-After themselves (see the shard's `/readyz`).
        readiness_probe: Some(http_probe(READINESS_PATH, 2, 2)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        resources: Some(
            show.spec
                .shard
                .resources
                .clone()
                .unwrap_or_else(default_resources),
        ),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "show".into(),
                mount_path: CONFIG_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "jwt".into(),
                mount_path: SECRETS_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let selector_labels = selector(show);
    let mut deployment = Deployment {
        metadata: meta(show, shard_name(show)),
        spec: Some(DeploymentSpec {
            replicas: Some(show.spec.shard.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels.clone()),
                ..Default::default()
            },
            // Surge first: a new pod becomes a Ready standby before an old one goes.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(CONFIG_HASH.into(), config_hash(show))])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // Enough for the leader to resign and in-flight requests to finish.
                    termination_grace_period_seconds: Some(30),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(SHARD_UID),
                        run_as_group: Some(SHARD_UID),
                        // The Secret volume's files belong to this group (mode 0440).
                        fs_group: Some(SHARD_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    topology_spread_constraints: Some(vec![TopologySpreadConstraint {
                        max_skew: 1,
                        topology_key: "kubernetes.io/hostname".into(),
                        when_unsatisfiable: "ScheduleAnyway".into(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector_labels.clone()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    affinity: Some(Affinity {
                        pod_anti_affinity: Some(PodAntiAffinity {
                            preferred_during_scheduling_ignored_during_execution: Some(vec![
                                WeightedPodAffinityTerm {
                                    weight: 100,
                                    pod_affinity_term: PodAffinityTerm {
                                        topology_key: "kubernetes.io/hostname".into(),
                                        label_selector: Some(LabelSelector {
                                            match_labels: Some(selector_labels),
                                            ..Default::default()
                                        }),
                                        ..Default::default()
                                    },
                                },
                            ]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    volumes: Some(vec![
                        Volume {
                            name: "show".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: config_name(show),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        // Only the JWT key of its Secret, whatever else the Secret holds.
                        secret_key_volume("jwt", &jwt, JWT_FILE),
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    mount_transport_files(&mut deployment, config);
    crate::payments::mount_payment_secret(&mut deployment, show);
    crate::events::mount_event_sinks(&mut deployment, show, config);
    deployment
}

/// The shard pod's volumes and its `shard` container: where a Secret mounted as files
/// goes (transport credentials, the payment provider's secret).
pub fn shard_volumes_and_container(
    deployment: &mut Deployment,
) -> Option<(&mut Option<Vec<Volume>>, &mut Container)> {
    let pod = deployment.spec.as_mut()?.template.spec.as_mut()?;
    let container = pod.containers.iter_mut().find(|c| c.name == "shard")?;
    Some((&mut pod.volumes, container))
}

/// A Secret volume named `name` holding only `secret`'s key, as the file `file`
/// (whatever else the Secret holds), mode 0440 for the pod's `fsGroup`.
fn secret_key_volume(name: &str, secret: &SecretKeyRef, file: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.name.clone()),
            items: Some(vec![KeyToPath {
                key: secret.key.clone(),
                path: file.into(),
                ..Default::default()
            }]),
            default_mode: Some(0o440),
            optional: Some(false),
        }),
        ..Default::default()
    }
}

/// Mounts one key of a Secret read-only as `<dir>/<file>` in the shard container: a
/// Secret volume named `volume` with only that key (whatever else the Secret holds),
/// mode 0440 for the pod's `fsGroup`; a file, never an env var.
pub fn mount_secret_key(
    deployment: &mut Deployment,
    volume: &str,
    secret: &SecretKeyRef,
    dir: &str,
    file: &str,
) {
    let Some((volumes, container)) = shard_volumes_and_container(deployment) else {
        return;
    };
    volumes
        .get_or_insert_default()
        .push(secret_key_volume(volume, secret, file));
    container
        .volume_mounts
        .get_or_insert_default()
        .push(VolumeMount {
            name: volume.into(),
            mount_path: dir.into(),
            read_only: Some(true),
            ..Default::default()
        });
}

/// The Secret volume mounted at `dir` in the pod's first container (asserting the mount
/// is read-only): what [`mount_secret_key`] made, for the builders' tests.
#[cfg(test)]
pub fn mounted_secret<'a>(
    pod: &'a k8s_openapi::api::core::v1::PodSpec,
    dir: &str,
) -> &'a SecretVolumeSource {
    let mount = pod.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == dir)
        .unwrap_or_else(|| panic!("no mount at {dir}"));
    assert_eq!(mount.read_only, Some(true), "{dir} is mounted read-only");
    pod.volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.secret.as_ref())
        .unwrap_or_else(|| panic!("no Secret volume for {dir}"))
}
