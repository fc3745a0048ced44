use super::*;

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
        Some("/readyz?grace=15")
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
