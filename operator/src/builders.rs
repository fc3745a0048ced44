//! Pure functions from a Show (and the operator's defaults) to the objects it owns:
//! a ConfigMap with the normalized show, the shard Deployment, a Service, a
//! PodDisruptionBudget and a NetworkPolicy. No cluster needed to test them.

use std::collections::BTreeMap;

use boxoffice_crds::{SecretKeyRef, Show, ShowConfig};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec,
    TopologySpreadConstraint, Volume, VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::config::Config;
use boxoffice_transport::env as transport_env;

/// The field manager for every server-side apply.
pub const MANAGER: &str = "boxoffice-operator";
/// Pod-template annotation whose change rolls the shard.
pub const CONFIG_HASH: &str = "boxoffice.dev/config-hash";
/// Where the ConfigMap is mounted in shard pods.
pub const CONFIG_DIR: &str = "/etc/boxoffice";
/// Where the JWT Secret's one key is mounted in shard pods (a file, not an env var:
/// env vars leak into crash dumps, `/proc/<pid>/environ` and child processes).
pub const SECRETS_DIR: &str = "/var/run/secrets/boxoffice";
/// The file, under [`SECRETS_DIR`], holding the JWT secret.
pub const JWT_FILE: &str = "jwt";
/// The shard's HTTP API port (container port `http`).
pub const HTTP_PORT: i32 = 8080;
/// The shard's metrics port (container port `metrics`), apart from the API so a
/// NetworkPolicy can admit scrapers without admitting API callers.
pub const METRICS_PORT: i32 = 9090;
/// The shard pods' user and group; the group reads the mounted Secret.
const SHARD_UID: i64 = 65532;

/// Names of a Show's objects.
pub fn shard_name(show: &Show) -> String {
    format!("{}-shard", show.name_any())
}

pub fn config_name(show: &Show) -> String {
    format!("{}-shard-config", show.name_any())
}

/// The Service is named after the Show: clients reach `http://<show>.<ns>.svc/v1/shows/<show>`.
pub fn service_name(show: &Show) -> String {
    show.name_any()
}

/// Labels every owned object carries; the first three select the shard pods.
pub fn labels(show: &Show) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "booking-shard".into()),
        ("app.kubernetes.io/instance".into(), show.name_any()),
        ("boxoffice.dev/show".into(), show.name_any()),
        ("app.kubernetes.io/managed-by".into(), MANAGER.into()),
        ("app.kubernetes.io/part-of".into(), "boxoffice".into()),
    ])
}

pub fn selector(show: &Show) -> BTreeMap<String, String> {
    labels(show)
        .into_iter()
        .filter(|(k, _)| k != "app.kubernetes.io/managed-by" && k != "app.kubernetes.io/part-of")
        .collect()
}

fn owner(show: &Show) -> Vec<OwnerReference> {
    show.controller_owner_ref(&()).into_iter().collect()
}

fn meta(show: &Show, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: show.namespace(),
        labels: Some(labels(show)),
        owner_references: Some(owner(show)),
        ..Default::default()
    }
}

/// The normalized show the shard reads.
pub fn show_config(show: &Show) -> ShowConfig {
    ShowConfig {
        namespace: show.namespace().unwrap_or_else(|| "default".into()),
        name: show.name_any(),
        spec: show.spec.clone(),
    }
}

/// A hash of what the shard process needs from the spec. Display-only fields (title,
/// startsAt) and the shard's own deployment settings are left out, so changing them
/// does not restart shards; seating, prices, holds and sales do.
pub fn config_hash(show: &Show) -> String {
    let spec = &show.spec;
    let relevant = serde_json::json!({
        "namespace": show.namespace(),
        "name": show.name_any(),
        "seating": spec.seating,
        "categories": spec.categories,
        "holds": spec.holds,
        "sales": spec.sales,
    });
    let digest = Sha256::digest(relevant.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub fn config_map(show: &Show) -> ConfigMap {
    ConfigMap {
        metadata: meta(show, config_name(show)),
        data: Some(BTreeMap::from([(
            "show.json".into(),
            show_config(show).to_json(),
        )])),
        ..Default::default()
    }
}

fn secret_env(name: &str, r: &SecretKeyRef) -> EnvVar {
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

fn env(name: &str, value: impl Into<String>) -> EnvVar {
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
        readiness_probe: Some(http_probe("/readyz", 2, 2)),
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
                        Volume {
                            name: "jwt".into(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(jwt.name.clone()),
                                items: Some(vec![KeyToPath {
                                    key: jwt.key.clone(),
                                    path: JWT_FILE.into(),
                                    ..Default::default()
                                }]),
                                default_mode: Some(0o440),
                                optional: Some(false),
                            }),
                            ..Default::default()
                        },
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
    deployment
}

pub fn service(show: &Show) -> Service {
    Service {
        metadata: meta(show, service_name(show)),
        spec: Some(ServiceSpec {
            selector: Some(selector(show)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Where shard pods find their TLS material and etcd credentials (Secrets, read-only).
pub const ETCD_TLS_DIR: &str = "/var/run/secrets/boxoffice/etcd-tls";
pub const ETCD_AUTH_DIR: &str = "/var/run/secrets/boxoffice/etcd-auth";
pub const DATABASE_TLS_DIR: &str = "/var/run/secrets/boxoffice/database-tls";

/// Keys of the transport Secrets (cert-manager's and kubernetes.io/basic-auth's names).
pub const CA_KEY: &str = "ca.crt";
pub const CERT_KEY: &str = "tls.crt";
pub const PRIVATE_KEY_KEY: &str = "tls.key";
pub const USERNAME_KEY: &str = "username";
pub const PASSWORD_KEY: &str = "password";

/// One Secret mounted as files, and the env vars (flag, file name) pointing at them.
struct SecretFiles {
    /// What it holds, for the missing-Secret message.
    what: &'static str,
    volume: &'static str,
    secret: String,
    dir: &'static str,
    files: Vec<(&'static str, &'static str)>,
    /// Also hands the shard the etcd user name from the Secret's `username`.
    username: bool,
}

/// The Secrets that hand shard pods TLS material and etcd credentials, as the operator's
/// configuration names them (an empty name counts as unset).
fn transport_secrets(config: &Config) -> Vec<SecretFiles> {
    let t = &config.shard_transport;
    let named = |n: &Option<String>| n.clone().filter(|n| !n.is_empty());
    let tls = |client_cert: bool, ca: &'static str, cert: &'static str, key: &'static str| {
        let mut files = vec![(ca, CA_KEY)];
        if client_cert {
            files.extend([(cert, CERT_KEY), (key, PRIVATE_KEY_KEY)]);
        }
        files
    };
    let mut secrets = Vec::new();
    if let Some(secret) = named(&t.shard_etcd_tls_secret) {
        secrets.push(SecretFiles {
            what: "etcd TLS",
            volume: "etcd-tls",
            secret,
            dir: ETCD_TLS_DIR,
            files: tls(
                t.shard_etcd_client_cert,
                transport_env::ETCD_CA_FILE,
                transport_env::ETCD_CERT_FILE,
                transport_env::ETCD_KEY_FILE,
            ),
            username: false,
        });
    }
    if let Some(secret) = named(&t.shard_etcd_auth_secret) {
        secrets.push(SecretFiles {
            what: "etcd credentials",
            volume: "etcd-auth",
            secret,
            dir: ETCD_AUTH_DIR,
            files: vec![(transport_env::ETCD_PASSWORD_FILE, PASSWORD_KEY)],
            username: true,
        });
    }
    if let Some(secret) = named(&t.shard_database_tls_secret) {
        secrets.push(SecretFiles {
            what: "database TLS",
            volume: "database-tls",
            secret,
            dir: DATABASE_TLS_DIR,
            files: tls(
                t.shard_database_client_cert,
                transport_env::DATABASE_CA_FILE,
                transport_env::DATABASE_CERT_FILE,
                transport_env::DATABASE_KEY_FILE,
            ),
            username: false,
        });
    }
    secrets
}

/// Every Secret key the shard's transport needs, for the missing-Secret check.
pub fn transport_secret_refs(config: &Config) -> Vec<(&'static str, SecretKeyRef)> {
    let mut refs = Vec::new();
    for s in transport_secrets(config) {
        let mut keys: Vec<&str> = s.files.iter().map(|(_, key)| *key).collect();
        if s.username {
            keys.push(USERNAME_KEY);
        }
        refs.extend(keys.into_iter().map(|key| {
            (
                s.what,
                SecretKeyRef {
                    name: s.secret.clone(),
                    key: key.into(),
                },
            )
        }));
    }
    refs
}

/// Mounts the transport Secrets read-only in the shard container and points the shard's
/// flags at the files; the etcd user name comes from the auth Secret as an env var.
fn mount_transport_files(deployment: &mut Deployment, config: &Config) {
    let Some(pod) = deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
    else {
        return;
    };
    let Some(container) = pod.containers.iter_mut().find(|c| c.name == "shard") else {
        return;
    };
    for s in transport_secrets(config) {
        pod.volumes.get_or_insert_default().push(Volume {
            name: s.volume.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(s.secret.clone()),
                items: Some(
                    s.files
                        .iter()
                        .map(|(_, key)| KeyToPath {
                            key: (*key).into(),
                            path: (*key).into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                optional: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        });
        container
            .volume_mounts
            .get_or_insert_default()
            .push(VolumeMount {
                name: s.volume.into(),
                mount_path: s.dir.into(),
                read_only: Some(true),
                ..Default::default()
            });
        let envs = container.env.get_or_insert_default();
        for (var, key) in &s.files {
            envs.push(env(var, format!("{}/{key}", s.dir)));
        }
        if s.username {
            envs.push(secret_env(
                transport_env::ETCD_USER,
                &SecretKeyRef {
                    name: s.secret,
                    key: USERNAME_KEY.into(),
                },
            ));
        }
    }
}

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

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn namespaces_labelled(labels: BTreeMap<String, String>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(labels),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Ingress to the shard pods: the API port from the show's own pods (standbys forward
/// to the leader), the operator's namespace (it polls the leader) and the namespaces
/// labelled for API access (the gateway); the metrics port from the namespaces labelled
/// for scraping. Nothing else, and nothing at all from an empty label set (an empty
/// namespace selector would mean every namespace). Egress is not restricted.
pub fn network_policy(show: &Show, config: &Config) -> NetworkPolicy {
    let same_show = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(selector(show)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let operator = namespaces_labelled(BTreeMap::from([(
        "kubernetes.io/metadata.name".to_string(),
        config.lease_namespace.clone(),
    )]));
    let mut api_from = vec![same_show, operator];
    let gateway = config.api_from_labels();
    if !gateway.is_empty() {
        api_from.push(namespaces_labelled(gateway));
    }
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: Some(api_from),
        ports: Some(vec![tcp(HTTP_PORT)]),
    }];
    let monitoring = config.metrics_from_labels();
    if !monitoring.is_empty() {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(vec![namespaces_labelled(monitoring)]),
            ports: Some(vec![tcp(METRICS_PORT)]),
        });
    }
    NetworkPolicy {
        metadata: meta(show, shard_name(show)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector(show)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            egress: None,
        }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn theatre() -> Show {
        let text = include_str!("../../examples/shows/theatre.yaml");
        let mut show: Show = serde_yaml_from(text);
        show.metadata.namespace = Some("arts".into());
        show.metadata.uid = Some("1234".into());
        show
    }

    fn serde_yaml_from(text: &str) -> Show {
        let config = boxoffice_crds::ShowConfig::parse(text).expect("theatre parses");
        Show::new(&config.name, config.spec)
    }

    /// A container's env vars by name.
    fn env_of(c: &Container) -> BTreeMap<String, EnvVar> {
        c.env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.clone()))
            .collect()
    }

    fn config() -> Config {
        Config::parse_from([
            "boxoffice-operator",
            "--etcd",
            "http://etcd-a:2379,http://etcd-b:2379",
        ])
    }

    #[test]
    fn objects_are_owned_and_labelled() {
        let show = theatre();
        let d = deployment(&show, &config());
        let owner = &d.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.kind, "Show");
        assert_eq!(owner.name, "hamlet-opening");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(d.metadata.name.as_deref(), Some("hamlet-opening-shard"));
        for labels in [
            &d.metadata.labels,
            &service(&show).metadata.labels,
            &pdb(&show).metadata.labels,
            &config_map(&show).metadata.labels,
        ] {
            assert_eq!(
                labels.as_ref().expect("labels")["boxoffice.dev/show"],
                "hamlet-opening"
            );
        }
        assert_eq!(
            service(&show).spec.expect("spec").selector,
            Some(selector(&show))
        );
    }

    #[test]
    fn deployment_wires_config_secrets_and_probes() {
        let show = theatre();
        let d = deployment(&show, &config());
        let spec = d.spec.expect("spec");
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.expect("pod");
        let c = &pod.containers[0];
        let env = env_of(c);
        assert_eq!(
            env["BOXOFFICE_ETCD"].value.as_deref(),
            Some("http://etcd-a:2379,http://etcd-b:2379")
        );
        let db = env["DATABASE_URL"]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("db secret");
        assert_eq!(
            (db.name.as_str(), db.key.as_str()),
            ("boxoffice-database", "url")
        );
        assert_eq!(
            env["BOXOFFICE_METRICS_LISTEN"].value.as_deref(),
            Some("0.0.0.0:9090")
        );
        let ports: Vec<(Option<&str>, i32)> = c
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref(), p.container_port))
            .collect();
        assert_eq!(ports, [(Some("http"), 8080), (Some("metrics"), 9090)]);
        assert_eq!(
            env["BOXOFFICE_SHOW"].value.as_deref(),
            Some("/etc/boxoffice/show.json")
        );
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.as_deref()),
            Some("/readyz")
        );
        assert_eq!(
            c.liveness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.as_deref()),
            Some("/healthz")
        );
        let sc = c.security_context.as_ref().expect("security context");
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(
            pod.security_context
                .as_ref()
                .and_then(|s| s.run_as_non_root),
            Some(true)
        );
        assert!(pod.termination_grace_period_seconds >= Some(10));
        assert!(pod.topology_spread_constraints.is_some());
        let hash = spec
            .template
            .metadata
            .and_then(|m| m.annotations)
            .expect("annotations")[CONFIG_HASH]
            .clone();
        assert_eq!(hash, config_hash(&show));
    }

    #[test]
    fn the_jwt_secret_is_a_read_only_file_with_only_its_key() {
        let mut show = theatre();
        show.spec.shard.jwt_secret_ref = Some(SecretKeyRef {
            name: "arts-keys".into(),
            key: "hs256".into(),
        });
        let d = deployment(&show, &config());
        let pod = d.spec.expect("spec").template.spec.expect("pod");
        let c = &pod.containers[0];
        let env = env_of(c);
        assert!(
            !env.contains_key("BOXOFFICE_JWT_SECRET"),
            "the JWT secret must not be an env var"
        );
        assert!(
            env.values().all(|e| e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .is_none_or(|r| r.name != "arts-keys")),
            "no env var may come from the JWT Secret"
        );
        assert_eq!(
            env["BOXOFFICE_JWT_SECRET_FILE"].value.as_deref(),
            Some("/var/run/secrets/boxoffice/jwt")
        );
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == SECRETS_DIR)
            .expect("mount");
        assert_eq!(mount.read_only, Some(true));
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .expect("volume");
        let secret = volume.secret.as_ref().expect("a Secret volume");
        assert_eq!(secret.secret_name.as_deref(), Some("arts-keys"));
        let items: Vec<(&str, &str)> = secret
            .items
            .iter()
            .flatten()
            .map(|i| (i.key.as_str(), i.path.as_str()))
            .collect();
        assert_eq!(items, [("hs256", "jwt")], "only the JWT key is projected");
        assert_eq!(secret.default_mode, Some(0o440));
        // The pod's group owns the file, so the non-root shard can read it.
        let psc = pod.security_context.as_ref().expect("pod security context");
        assert_eq!(psc.fs_group, psc.run_as_group);
    }

    #[test]
    fn per_show_overrides_win() {
        let mut show = theatre();
        show.spec.shard.etcd_endpoints = vec!["http://other:2379".into()];
        show.spec.shard.database_secret_ref = Some(SecretKeyRef {
            name: "arts-db".into(),
            key: "dsn".into(),
        });
        show.spec.shard.image = Some("registry.example/shard:dev".into());
        let d = deployment(&show, &config());
        let pod = d.spec.expect("spec").template.spec.expect("pod");
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("registry.example/shard:dev"));
        let env = env_of(c);
        assert_eq!(
            env["BOXOFFICE_ETCD"].value.as_deref(),
            Some("http://other:2379")
        );
        let db = env["DATABASE_URL"]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("db");
        assert_eq!(db.name, "arts-db");
    }

    #[test]
    fn config_hash_follows_seating_not_title() {
        let show = theatre();
        let mut retitled = show.clone();
        retitled.spec.title = "Hamlet — Second Night".into();
        assert_eq!(config_hash(&show), config_hash(&retitled));
        let mut rescaled = show.clone();
        rescaled.spec.shard.replicas = 3;
        assert_eq!(config_hash(&show), config_hash(&rescaled));
        let mut reseated = show.clone();
        reseated.spec.seating.sections[0].rows[0].seats = 30;
        assert_ne!(config_hash(&show), config_hash(&reseated));
        let mut repriced = show;
        repriced.spec.categories[0].price = "99.00".into();
        assert_ne!(config_hash(&retitled), config_hash(&repriced));
    }

    /// A peer as (namespace labels, pod labels).
    type Peer = (
        Option<BTreeMap<String, String>>,
        Option<BTreeMap<String, String>>,
    );

    fn peers_of(rule: &NetworkPolicyIngressRule) -> Vec<Peer> {
        rule.from
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.namespace_selector.clone().map(|s| {
                        assert!(s.match_expressions.is_none());
                        s.match_labels.expect("namespace labels")
                    }),
                    p.pod_selector
                        .clone()
                        .map(|s| s.match_labels.expect("pod labels")),
                )
            })
            .collect()
    }

    fn ports_of(rule: &NetworkPolicyIngressRule) -> Vec<IntOrString> {
        rule.ports
            .iter()
            .flatten()
            .map(|p| {
                assert_eq!(p.protocol.as_deref(), Some("TCP"));
                p.port.clone().expect("port")
            })
            .collect()
    }

    fn labels_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn network_policy_admits_peers_gateway_operator_and_scrapers_only() {
        let show = theatre();
        let c = Config::parse_from([
            "boxoffice-operator",
            "--lease-namespace",
            "boxoffice-system",
            "--network-policy-api-from",
            "boxoffice.dev/api-access=true",
            "--network-policy-metrics-from",
            "kubernetes.io/metadata.name=monitoring",
        ]);
        let np = network_policy(&show, &c);
        assert_eq!(np.metadata.name.as_deref(), Some("hamlet-opening-shard"));
        assert_eq!(np.metadata.namespace.as_deref(), Some("arts"));
        assert_eq!(
            np.metadata.owner_references.as_ref().expect("owner")[0].kind,
            "Show"
        );
        let spec = np.spec.expect("spec");
        // It selects exactly the show's shard pods, as the Deployment does.
        let d = deployment(&show, &c).spec.expect("deployment spec");
        assert_eq!(spec.pod_selector, Some(d.selector.clone()));
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
        assert!(spec.egress.is_none());
        let rules = spec.ingress.expect("ingress");
        assert_eq!(rules.len(), 2);

        assert_eq!(ports_of(&rules[0]), [IntOrString::Int(8080)]);
        assert_eq!(
            peers_of(&rules[0]),
            [
                (None, Some(selector(&show))),
                (
                    Some(labels_of(&[(
                        "kubernetes.io/metadata.name",
                        "boxoffice-system"
                    )])),
                    None
                ),
                (
                    Some(labels_of(&[("boxoffice.dev/api-access", "true")])),
                    None
                ),
            ]
        );
        assert_eq!(ports_of(&rules[1]), [IntOrString::Int(9090)]);
        assert_eq!(
            peers_of(&rules[1]),
            [(
                Some(labels_of(&[("kubernetes.io/metadata.name", "monitoring")])),
                None
            )]
        );
        // The ports are the container's.
        let container_ports: Vec<i32> = d.template.spec.expect("pod").containers[0]
            .ports
            .iter()
            .flatten()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(container_ports, [8080, 9090]);
    }

    #[test]
    fn network_policy_without_selectors_never_opens_to_every_namespace() {
        let show = theatre();
        let np = network_policy(&show, &config());
        let rules = np.spec.expect("spec").ingress.expect("ingress");
        // Only the API rule: no scrapers configured, so no metrics rule at all.
        assert_eq!(rules.len(), 1);
        let peers = peers_of(&rules[0]);
        assert_eq!(peers.len(), 2, "{peers:?}");
        for (ns, pods) in peers {
            assert!(
                ns.is_none_or(|l| !l.is_empty()) && pods.is_none_or(|l| !l.is_empty()),
                "an empty selector would admit everything"
            );
        }
    }

    #[test]
    fn config_map_holds_the_normalized_show() {
        let show = theatre();
        let cm = config_map(&show);
        let json = &cm.data.expect("data")["show.json"];
        let parsed = ShowConfig::parse(json).expect("the shard can read it");
        assert_eq!(parsed.name, "hamlet-opening");
        assert_eq!(parsed.namespace, "arts");
        assert_eq!(parsed.spec, show.spec);
    }

    fn secured_config() -> Config {
        Config::parse_from([
            "boxoffice-operator",
            "--etcd",
            "https://etcd-a:2379",
            "--shard-etcd-tls-secret",
            "etcd-client",
            "--shard-etcd-auth-secret",
            "etcd-user",
            "--shard-database-tls-secret",
            "pg-client",
            "--shard-database-client-cert=false",
        ])
    }

    #[test]
    fn transport_secrets_are_mounted_read_only_and_the_flags_point_at_them() {
        let d = deployment(&theatre(), &secured_config());
        let pod = d.spec.expect("spec").template.spec.expect("pod");
        let c = &pod.containers[0];
        let env = env_of(c);
        let value = |name: &str| env[name].value.clone().unwrap_or_default();
        assert_eq!(
            value("BOXOFFICE_ETCD_CA_FILE"),
            "/var/run/secrets/boxoffice/etcd-tls/ca.crt"
        );
        assert_eq!(
            value("BOXOFFICE_ETCD_CERT_FILE"),
            "/var/run/secrets/boxoffice/etcd-tls/tls.crt"
        );
        assert_eq!(
            value("BOXOFFICE_ETCD_KEY_FILE"),
            "/var/run/secrets/boxoffice/etcd-tls/tls.key"
        );
        assert_eq!(
            value("BOXOFFICE_ETCD_PASSWORD_FILE"),
            "/var/run/secrets/boxoffice/etcd-auth/password"
        );
        assert_eq!(
            value("BOXOFFICE_DATABASE_CA_FILE"),
            "/var/run/secrets/boxoffice/database-tls/ca.crt"
        );
        // --shard-database-client-cert=false: the CA only.
        assert!(!env.contains_key("BOXOFFICE_DATABASE_CERT_FILE"));
        assert!(!env.contains_key("BOXOFFICE_DATABASE_KEY_FILE"));
        // The user name is no secret, but it lives beside the password; the password
        // itself never becomes an env var.
        let user = env["BOXOFFICE_ETCD_USER"]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("user from the Secret");
        assert_eq!(
            (user.name.as_str(), user.key.as_str()),
            ("etcd-user", "username")
        );
        assert!(env.values().all(|e| {
            e.value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .is_none_or(|r| r.key != "password")
        }));

        let mounts: BTreeMap<String, VolumeMount> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.clone(), m.clone()))
            .collect();
        for (name, dir) in [
            ("etcd-tls", ETCD_TLS_DIR),
            ("etcd-auth", ETCD_AUTH_DIR),
            ("database-tls", DATABASE_TLS_DIR),
        ] {
            assert_eq!(mounts[name].mount_path, dir);
            assert_eq!(mounts[name].read_only, Some(true), "{name}");
        }
        assert_eq!(mounts["show"].mount_path, CONFIG_DIR);
        let volumes: BTreeMap<String, Volume> = pod
            .volumes
            .iter()
            .flatten()
            .map(|v| (v.name.clone(), v.clone()))
            .collect();
        let items = |name: &str| -> (Option<String>, Vec<String>) {
            let secret = volumes[name].secret.clone().expect("a Secret volume");
            (
                secret.secret_name,
                secret
                    .items
                    .iter()
                    .flatten()
                    .map(|i| i.key.clone())
                    .collect(),
            )
        };
        assert_eq!(
            items("etcd-tls"),
            (
                Some("etcd-client".into()),
                vec!["ca.crt".into(), "tls.crt".into(), "tls.key".into()]
            )
        );
        assert_eq!(
            items("etcd-auth"),
            (Some("etcd-user".into()), vec!["password".into()])
        );
        assert_eq!(
            items("database-tls"),
            (Some("pg-client".into()), vec!["ca.crt".into()])
        );
        assert!(volumes.contains_key("show"));
    }

    #[test]
    fn without_transport_secrets_shards_get_no_tls_mounts_or_env() {
        let d = deployment(&theatre(), &config());
        let pod = d.spec.expect("spec").template.spec.expect("pod");
        let c = &pod.containers[0];
        assert!(env_of(c).keys().all(|k| !k.starts_with("BOXOFFICE_ETCD_")
            && !k.starts_with("BOXOFFICE_DATABASE_")));
        // Only the show's config and the JWT key are mounted.
        let mounts: Vec<&str> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(mounts, ["show", "jwt"]);
        let volumes: Vec<&str> = pod
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(volumes, ["show", "jwt"]);
        assert!(transport_secret_refs(&config()).is_empty());
        // An empty name (a chart value left "") counts as unset.
        let blank = Config::parse_from(["boxoffice-operator", "--shard-etcd-tls-secret="]);
        assert!(transport_secret_refs(&blank).is_empty());
    }

    #[test]
    fn the_missing_secret_check_covers_every_transport_key() {
        let refs: Vec<(String, String)> = transport_secret_refs(&secured_config())
            .into_iter()
            .map(|(_, r)| (r.name, r.key))
            .collect();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            refs,
            vec![
                pair("etcd-client", "ca.crt"),
                pair("etcd-client", "tls.crt"),
                pair("etcd-client", "tls.key"),
                pair("etcd-user", "password"),
                pair("etcd-user", "username"),
                pair("pg-client", "ca.crt"),
            ]
        );
    }
}
