//! Transport Secrets (TLS material, etcd credentials) mounted into shard pods.

use boxoffice_crds::SecretKeyRef;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{KeyToPath, SecretVolumeSource, Volume, VolumeMount};

use super::deployment::{env, secret_env, shard_volumes_and_container};
use crate::config::Config;
use boxoffice_transport::env as transport_env;

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
pub(super) fn mount_transport_files(deployment: &mut Deployment, config: &Config) {
    let Some((volumes, container)) = shard_volumes_and_container(deployment) else {
        return;
    };
    for s in transport_secrets(config) {
        volumes.get_or_insert_default().push(Volume {
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
