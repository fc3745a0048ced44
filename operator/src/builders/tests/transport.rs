use super::*;

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
    assert!(
        env_of(c)
            .keys()
            .all(|k| !k.starts_with("BOXOFFICE_ETCD_") && !k.starts_with("BOXOFFICE_DATABASE_"))
    );
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
