//! TLS and authentication to etcd and PostgreSQL, against real servers: a shard sells
//! over mutual TLS with an etcd user, and over verify-full TLS with a client certificate
//! to PostgreSQL. The same clients without a client certificate, without the CA, with a
//! wrong password or over plain TCP are refused with the server's reason, and the etcd
//! user cannot leave its prefix.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use booking_shard::coord::{CoordError, Coordinator, Keys};
use booking_shard::store::Store;
use boxoffice_e2e::{
    CertFiles, EtcdOptions, EtcdSecurity, EtcdServer, EtcdTls, EtcdUser, Pki, PostgresServer,
};
use boxoffice_transport::{DatabaseTls, EtcdAccess, env};
use common::{Cluster, show_yaml};
use reqwest::StatusCode;
use serde_json::json;
use tempfile::TempDir;

const ETCD_USER: &str = "boxoffice";
const ETCD_PASSWORD: &str = "etcd-pw-7f3a9c";

/// A TLS etcd with auth on, whose user `boxoffice` may use `/boxoffice/` only.
struct SecureEtcd {
    server: EtcdServer,
    ca_file: PathBuf,
    /// The shards' client certificate; its CN is no etcd user, so it grants no rights
    /// on its own.
    client: CertFiles,
    password_file: PathBuf,
    wrong_password_file: PathBuf,
    _dir: TempDir,
}

impl SecureEtcd {
    async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("boxoffice-tls-test-")
            .tempdir()
            .expect("tempdir");
        let pki = Pki::new(dir.path(), "etcd").expect("CA");
        let tls = EtcdTls {
            ca_file: pki.ca_file.clone(),
            server: pki.server("etcd-server").expect("server cert"),
            admin: pki.client("harness").expect("admin cert"),
        };
        let server = EtcdServer::start_secure(
            EtcdOptions {
                name: "secure-etcd".into(),
                unsafe_no_fsync: true,
                ..Default::default()
            },
            EtcdSecurity {
                tls,
                users: vec![EtcdUser {
                    name: ETCD_USER.into(),
                    password: ETCD_PASSWORD.into(),
                    prefix: "/boxoffice/".into(),
                }],
            },
        )
        .await
        .expect("secure etcd");
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, format!("{ETCD_PASSWORD}\n")).expect("password");
        let wrong_password_file = dir.path().join("wrong-password");
        std::fs::write(&wrong_password_file, "not-the-password").expect("password");
        SecureEtcd {
            server,
            ca_file: pki.ca_file.clone(),
            client: pki.client("boxoffice-shard").expect("client cert"),
            password_file,
            wrong_password_file,
            _dir: dir,
        }
    }

    /// CA, client certificate and the user: what a shard is given.
    fn access(&self) -> EtcdAccess {
        EtcdAccess {
            etcd_ca_file: Some(self.ca_file.clone()),
            etcd_cert_file: Some(self.client.cert.clone()),
            etcd_key_file: Some(self.client.key.clone()),
            etcd_user: Some(ETCD_USER.into()),
            etcd_password_file: Some(self.password_file.clone()),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let a = self.access();
        let path = |p: Option<PathBuf>| p.map(|p| p.display().to_string()).unwrap_or_default();
        vec![
            (env::ETCD_CA_FILE.into(), path(a.etcd_ca_file)),
            (env::ETCD_CERT_FILE.into(), path(a.etcd_cert_file)),
            (env::ETCD_KEY_FILE.into(), path(a.etcd_key_file)),
            (env::ETCD_USER.into(), ETCD_USER.into()),
            (env::ETCD_PASSWORD_FILE.into(), path(a.etcd_password_file)),
        ]
    }
}

/// The shared TLS PostgreSQL, and the CA and client certificate that get in.
async fn secure_postgres() -> (&'static PostgresServer, DatabaseTls) {
    let pg = PostgresServer::shared_tls().await.expect("TLS postgres");
    let tls = pg.tls().expect("TLS files");
    let files = DatabaseTls {
        database_ca_file: Some(tls.ca_file.clone()),
        database_cert_file: Some(tls.client.cert.clone()),
        database_key_file: Some(tls.client.key.clone()),
    };
    (pg, files)
}

fn database_env(tls: &DatabaseTls) -> Vec<(String, String)> {
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    vec![
        (env::DATABASE_CA_FILE.into(), path(&tls.database_ca_file)),
        (
            env::DATABASE_CERT_FILE.into(),
            path(&tls.database_cert_file),
        ),
        (env::DATABASE_KEY_FILE.into(), path(&tls.database_key_file)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_sells_over_mutual_tls_with_an_etcd_user_and_verify_full_postgres() {
    let etcd = SecureEtcd::start().await;
    let (pg, db_tls) = secure_postgres().await;
    let db_url = pg.create_database().await.expect("database");
    let mut env = etcd.env();
    env.extend(database_env(&db_tls));
    let mut cluster = Cluster::with_servers(
        &show_yaml("secure", 2, 10, None, 4, None),
        etcd.server,
        db_url,
        3,
        None,
        env,
    );
    cluster.add_replica("shard-0").await;
    cluster.add_replica("shard-1").await;
    let leader = cluster.all_serving().await;
    let standby = 1 - leader;

    // Through the standby: it forwards to the leader, which holds in etcd and confirms
    // in PostgreSQL.
    let (s, hold) = cluster
        .post(
            standby,
            "/holds",
            "ann",
            json!({"seats": ["main:A:1", "main:A:2"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hold}\n{}", cluster.logs());
    let id = hold["id"].as_str().expect("id");
    let (s, booking) = cluster
        .post(
            standby,
            &format!("/holds/{id}/confirm"),
            "ann",
            json!({"paymentReference": "pay-tls"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{booking}\n{}", cluster.logs());
    let (s, body) = cluster
        .post(leader, "/holds", "bob", json!({"seats": ["main:A:2"]}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let counts = cluster.check_counts(leader).await.expect("counts");
    assert_eq!(counts["inventory"]["sold"], 2, "{counts}");

    // The booking is in PostgreSQL and the election key in etcd, both over TLS.
    let mut admin = cluster.etcd.admin_client().await.expect("admin client");
    let resp = admin
        .get("/boxoffice/tests/secure/leader", None)
        .await
        .expect("leader key");
    assert_eq!(resp.kvs().len(), 1);
    let options = db_tls
        .connect_options(&cluster.db_url)
        .expect("database options");
    let store = Store::connect_with(options, "tests/secure", 1)
        .await
        .expect("store over TLS");
    let sold: i64 = sqlx::query_scalar("SELECT count(*) FROM booking_seats")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(sold, 2);
    assert!(
        !cluster.logs().contains(ETCD_PASSWORD),
        "the etcd password is in a log"
    );
}

/// The error of connecting a coordinator with `access` to `endpoint`.
async fn etcd_refusal(endpoint: &str, access: &EtcdAccess) -> String {
    let keys = Keys::new("tests", "refused");
    match Coordinator::connect_with(&[endpoint.to_string()], access, keys).await {
        Ok(_) => panic!("etcd accepted a client it should refuse: {access:?}"),
        Err(e @ CoordError::Connect(_)) => {
            println!("refused as expected: {e}");
            e.to_string()
        }
        Err(e) => panic!("not a connection refusal: {e}"),
    }
}

/// Waits until etcd's log says `reason`.
async fn etcd_logged(etcd: &SecureEtcd, reason: &str) {
    let log = etcd
        .server
        .process()
        .expect("etcd runs")
        .log_path()
        .to_path_buf();
    boxoffice_e2e::wait_for("etcd to log the refusal", Duration::from_secs(5), || {
        let log = log.clone();
        async move {
            let text = std::fs::read_to_string(&log)?;
            Ok(text.contains(reason).then_some(()))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("etcd's log does not say {reason:?}: {e:#}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_refuses_clients_without_certificate_ca_password_or_tls() {
    let etcd = SecureEtcd::start().await;
    let endpoint = etcd.server.endpoint();
    let good = etcd.access();

    let keys = Keys::new("tests", "allowed");
    let coord = Coordinator::connect_with(std::slice::from_ref(&endpoint), &good, keys)
        .await
        .expect("the configured client connects");
    assert_eq!(coord.leader().await.expect("read"), None);

    let no_cert = EtcdAccess {
        etcd_cert_file: None,
        etcd_key_file: None,
        ..good.clone()
    };
    // TLS 1.3 checks the client's certificate after the handshake: the client sees the
    // alert or only the connection closed; etcd logs why.
    let e = etcd_refusal(&endpoint, &no_cert).await;
    assert!(e.contains(&endpoint), "{e}");
    etcd_logged(&etcd, "client didn't provide a certificate").await;

    // Without the CA file the system's roots are trusted, and they do not know our CA.
    let no_ca = EtcdAccess {
        etcd_ca_file: None,
        ..good.clone()
    };
    let e = etcd_refusal(&endpoint, &no_ca).await;
    assert!(e.contains("UnknownIssuer"), "{e}");

    let wrong_password = EtcdAccess {
        etcd_password_file: Some(etcd.wrong_password_file.clone()),
        ..good.clone()
    };
    let e = etcd_refusal(&endpoint, &wrong_password).await;
    assert!(e.contains("authentication failed"), "{e}");
    assert!(!e.contains("not-the-password"), "{e}");

    // Plain TCP to the TLS port: the user signs in first, and that fails.
    let plain = EtcdAccess {
        etcd_ca_file: None,
        etcd_cert_file: None,
        etcd_key_file: None,
        ..good.clone()
    };
    let e = etcd_refusal(&endpoint.replace("https://", "http://"), &plain).await;
    assert!(e.starts_with("connecting to etcd: "), "{e}");
    etcd_logged(&etcd, "does not look like a TLS handshake").await;

    // TLS files with an http:// endpoint are a configuration error, named as such.
    let e = etcd_refusal(&endpoint.replace("https://", "http://"), &good).await;
    assert!(e.contains("need https://"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_user_cannot_leave_its_prefix() {
    let etcd = SecureEtcd::start().await;
    let endpoint = etcd.server.endpoint();
    let options = etcd
        .access()
        .apply(
            std::slice::from_ref(&endpoint),
            etcd_client::ConnectOptions::new(),
        )
        .expect("options");
    let mut client = etcd_client::Client::connect([endpoint.as_str()], Some(options))
        .await
        .expect("the user signs in");
    client
        .put("/boxoffice/tests/inside", "ok", None)
        .await
        .expect("inside the prefix");
    for key in ["/other/key", "/boxoffic", "/boxoffice0"] {
        let e = client.get(key, None).await.expect_err("read outside");
        let text = boxoffice_transport::explain_etcd_error(&e);
        assert!(text.contains("permission denied"), "{key}: {text}");
        let e = client.put(key, "x", None).await.expect_err("write outside");
        let text = boxoffice_transport::explain_etcd_error(&e);
        assert!(text.contains("permission denied"), "{key}: {text}");
    }
    // The admin (root) sees that nothing was written outside.
    let mut admin = etcd.server.admin_client().await.expect("admin");
    let outside = admin.get("/other/key", None).await.expect("root reads");
    assert!(outside.kvs().is_empty());
}

/// The error of connecting a store with `options`, as the shard would report it.
async fn postgres_refusal(options: sqlx::postgres::PgConnectOptions) -> String {
    match Store::connect_with(options, "tests/refused", 1).await {
        Ok(_) => panic!("PostgreSQL accepted a client it should refuse"),
        Err(e) => {
            println!("refused as expected: {e}");
            e.to_string()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_clients_without_certificate_ca_or_tls() {
    let (pg, good) = secure_postgres().await;
    let db_url = pg.create_database().await.expect("database");
    // A password in the URL (cert auth ignores it) must never show in an error.
    let url = db_url.replace("boxoffice@", "boxoffice:db-pw-41c7@");

    let options = good.connect_options(&url).expect("options");
    Store::connect_with(options, "tests/tls", 1)
        .await
        .expect("the configured client connects");

    // libpq's URL parameters do the same as the flags.
    let tls = pg.tls().expect("tls");
    let with_params = format!(
        "{url}?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        tls.ca_file.display(),
        tls.client.cert.display(),
        tls.client.key.display()
    );
    Store::connect(&with_params, "tests/tls", 1)
        .await
        .expect("URL parameters work");

    let no_cert = DatabaseTls {
        database_cert_file: None,
        database_key_file: None,
        ..good.clone()
    };
    let e = postgres_refusal(no_cert.connect_options(&url).expect("options")).await;
    assert!(e.contains("certificate"), "{e}");
    assert!(!e.contains("db-pw-41c7"), "{e}");

    let no_ca = format!("{url}?sslmode=verify-full");
    let e = postgres_refusal(no_ca.parse().expect("options")).await;
    assert!(e.contains("UnknownIssuer"), "{e}");

    let plain = format!("{url}?sslmode=disable");
    let e = postgres_refusal(plain.parse().expect("options")).await;
    assert!(e.contains("no pg_hba.conf entry"), "{e}");
    assert!(!e.contains("db-pw-41c7"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_with_a_wrong_etcd_password_stops_and_says_why() {
    let etcd = SecureEtcd::start().await;
    let (pg, db_tls) = secure_postgres().await;
    let db_url = pg.create_database().await.expect("database");
    let dir = tempfile::tempdir().expect("dir");
    let show = dir.path().join("show.yaml");
    std::fs::write(&show, show_yaml("refused", 1, 4, None, 4, None)).expect("show");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_booking-shard"));
    cmd.arg("--show")
        .arg(&show)
        .arg("--etcd")
        .arg(etcd.server.endpoint())
        .arg("--database-url")
        .arg(&db_url)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env(
            "BOXOFFICE_JWT_SECRET",
            boxoffice_e2e::shard::TEST_JWT_SECRET,
        );
    for (k, v) in etcd.env().into_iter().chain(database_env(&db_tls)) {
        cmd.env(k, v);
    }
    cmd.env(env::ETCD_PASSWORD_FILE, &etcd.wrong_password_file);
    let out = cmd.output().expect("run the shard");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("connecting to etcd") && stderr.contains("authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
}
