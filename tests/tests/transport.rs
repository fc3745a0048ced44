//! The operator's own connections with TLS and etcd auth, against real servers: it reads
//! a shard's leader from etcd over mutual TLS as an etcd user, and closes sales in
//! PostgreSQL over verify-full TLS with a client certificate, both configured by its
//! flags; without them it is refused.

use boxoffice_e2e::{
    EtcdOptions, EtcdSecurity, EtcdServer, EtcdTls, EtcdUser, Pki, PostgresServer,
};
use boxoffice_operator::config::Config;
use boxoffice_operator::reconcile::{close_sales, etcd_client, read_leader};
use clap::Parser;
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_reads_leaders_over_mutual_tls_as_an_etcd_user() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = Pki::new(dir.path(), "etcd").expect("CA");
    let etcd = EtcdServer::start_secure(
        EtcdOptions {
            name: "operator-etcd".into(),
            unsafe_no_fsync: true,
            ..Default::default()
        },
        EtcdSecurity {
            tls: EtcdTls {
                ca_file: pki.ca_file.clone(),
                server: pki.server("etcd-server").expect("server cert"),
                admin: pki.client("harness").expect("admin cert"),
            },
            users: vec![EtcdUser {
                name: "operator".into(),
                password: "operator-pw".into(),
                prefix: "/boxoffice/".into(),
            }],
        },
    )
    .await
    .expect("secure etcd");
    let mut admin = etcd.admin_client().await.expect("admin");
    admin
        .put(
            "/boxoffice/arts/hamlet/leader",
            r#"{"pod":"hamlet-shard-0","address":"http://10.0.0.7:8080"}"#,
            None,
        )
        .await
        .expect("leader key");

    let client_cert = pki.client("boxoffice-operator").expect("client cert");
    let password = dir.path().join("password");
    std::fs::write(&password, "operator-pw\n").expect("password");
    let endpoints = vec![etcd.endpoint()];
    let path = |p: &std::path::Path| p.display().to_string();
    let config = Config::parse_from([
        "boxoffice-operator".to_string(),
        "--etcd-ca-file".into(),
        path(&pki.ca_file),
        "--etcd-cert-file".into(),
        path(&client_cert.cert),
        "--etcd-key-file".into(),
        path(&client_cert.key),
        "--etcd-user".into(),
        "operator".into(),
        "--etcd-password-file".into(),
        path(&password),
    ]);
    let mut client = etcd_client(&endpoints, &config.etcd_access)
        .await
        .expect("the operator connects");
    let leader = read_leader(&mut client, "arts", "hamlet")
        .await
        .expect("read");
    assert_eq!(
        leader,
        Some(("hamlet-shard-0".into(), "http://10.0.0.7:8080".into()))
    );

    // Without the operator's TLS flags: refused, with the reason.
    let bare = Config::parse_from([
        "boxoffice-operator",
        "--etcd-user",
        "operator",
        "--etcd-password-file",
        &path(&password),
    ]);
    let e = match etcd_client(&endpoints, &bare.etcd_access).await {
        Ok(_) => panic!("etcd accepted a client without the CA or a certificate"),
        Err(e) => e,
    };
    assert!(e.contains("UnknownIssuer"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_closes_sales_over_verify_full_tls_with_a_client_certificate() {
    let pg = PostgresServer::shared_tls().await.expect("TLS postgres");
    let tls = pg.tls().expect("TLS files");
    let url = pg.create_database().await.expect("database");
    let path = |p: &std::path::Path| p.display().to_string();
    let config = Config::parse_from([
        "boxoffice-operator".to_string(),
        "--database-ca-file".into(),
        path(&tls.ca_file),
        "--database-cert-file".into(),
        path(&tls.client.cert),
        "--database-key-file".into(),
        path(&tls.client.key),
    ]);
    let options = config.database_tls.connect_options(&url).expect("options");
    // The shards' table, as far as closing sales needs it.
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .expect("connect over TLS");
    sqlx::query("CREATE TABLE shows (show text PRIMARY KEY, closed_at timestamptz)")
        .execute(&mut conn)
        .await
        .expect("table");

    close_sales(options, "arts/hamlet")
        .await
        .expect("sales closed over TLS");
    let closed: bool =
        sqlx::query_scalar("SELECT closed_at IS NOT NULL FROM shows WHERE show = 'arts/hamlet'")
            .fetch_one(&mut conn)
            .await
            .expect("row");
    assert!(closed);

    // Without the operator's TLS flags the same URL is refused.
    let bare = Config::parse_from(["boxoffice-operator"]);
    let options = bare.database_tls.connect_options(&url).expect("options");
    let e = close_sales(options, "arts/hamlet")
        .await
        .expect_err("no client certificate");
    assert!(e.to_string().contains("certificate"), "{e}");
}
