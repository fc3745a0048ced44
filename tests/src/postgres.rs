//! A real PostgreSQL server on loopback, and a fresh database per test; optionally with
//! TLS and client-certificate auth ([`PostgresServer::start_tls`]).
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the server runs as
//! the `postgres` system user (`setpriv`, which execs in place so the pid we hold is
//! the postmaster's and signals reach it).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tempfile::TempDir;
use tokio::sync::OnceCell;

use crate::process::{Process, free_port, wait_while_running};
use crate::tls::{CertFiles, Pki};
use crate::tools::postgres_bin;

/// A running PostgreSQL server. Dropping it stops the server and removes its data.
pub struct PostgresServer {
    process: Option<Process>,
    port: u16,
    data_dir: PathBuf,
    run_as: Option<String>,
    tls: Option<PostgresTls>,
    dir: TempDir,
}

/// What a TLS server's clients need: its CA, and a client certificate for `user`.
#[derive(Debug, Clone)]
pub struct PostgresTls {
    /// The role that may connect over TCP: only with TLS and this certificate.
    pub user: String,
    pub ca_file: PathBuf,
    pub client: CertFiles,
}

static NEXT_DB: AtomicU32 = AtomicU32::new(1);

impl PostgresServer {
    /// A server shared by every test of this test binary (started on first use, killed
    /// by the reaper when the binary exits). Tests get isolation from
    /// [`Self::create_database`].
    pub async fn shared() -> Result<&'static PostgresServer> {
        static SHARED: OnceCell<PostgresServer> = OnceCell::const_new();
        SHARED.get_or_try_init(PostgresServer::start).await
    }

    /// A TLS server ([`Self::start_tls`] for role `boxoffice`) shared by every test of
    /// this test binary.
    pub async fn shared_tls() -> Result<&'static PostgresServer> {
        static SHARED: OnceCell<PostgresServer> = OnceCell::const_new();
        SHARED
            .get_or_try_init(|| PostgresServer::start_tls("boxoffice"))
            .await
    }

    /// Initializes a new cluster in a temporary directory and starts it.
    pub async fn start() -> Result<Self> {
        Self::start_with(None).await
    }

    /// A server with `ssl=on` (a certificate for 127.0.0.1 from a CA of its own) whose
    /// pg_hba.conf admits role `user` over TCP only with TLS and a client certificate
    /// naming it (`hostssl ... cert`): plain TCP, or TLS without that certificate, is
    /// refused. The harness's own `postgres` superuser keeps trust auth.
    pub async fn start_tls(user: &str) -> Result<Self> {
        Self::start_with(Some(user)).await
    }

    async fn start_with(tls_user: Option<&str>) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("boxoffice-pg-").tempdir()?;
        let run_as = (nix::unistd::geteuid().is_root()).then(|| "postgres".to_string());
        if let Some(user) = &run_as {
            let pw = nix::unistd::User::from_name(user)?
                .with_context(|| format!("running as root needs the {user} system user"))?;
            std::os::unix::fs::chown(dir.path(), Some(pw.uid.as_raw()), Some(pw.gid.as_raw()))?;
        }
        crate::process::remove_dir_on_exit(dir.path());
        let data_dir = dir.path().join("data");
        let bin = postgres_bin()?;
        let mut initdb = Self::command(&run_as, bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data_dir)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C"]);
        let out = initdb.output().context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let tls = match tls_user {
            Some(user) => Some(Self::configure_tls(dir.path(), &data_dir, &run_as, user)?),
            None => None,
        };
        let mut server = Self {
            process: None,
            port: free_port()?,
            data_dir,
            run_as,
            tls,
            dir,
        };
        server.launch().await?;
        if let Some(tls) = &server.tls {
            let mut conn = PgConnection::connect(&server.url("postgres")).await?;
            // The name is a test constant, never input.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE ROLE {} LOGIN",
                tls.user
            )))
            .execute(&mut conn)
            .await?;
            conn.close().await?;
        }
        Ok(server)
    }

    /// Certificates into the data directory (the key readable by the server's user
    /// only, as PostgreSQL insists) and a pg_hba.conf that wants them.
    fn configure_tls(
        dir: &std::path::Path,
        data_dir: &std::path::Path,
        run_as: &Option<String>,
        user: &str,
    ) -> Result<PostgresTls> {
        use std::os::unix::fs::PermissionsExt;
        let pki = Pki::new(dir, "postgres")?;
        let server = pki.server("postgres-server")?;
        let client = pki.client(user)?;
        let owner = match run_as {
            Some(name) => nix::unistd::User::from_name(name)?.map(|u| (u.uid, u.gid)),
            None => None,
        };
        for (from, to, mode) in [
            (&server.cert, "server.crt", 0o644),
            (&server.key, "server.key", 0o600),
            (&pki.ca_file, "root.crt", 0o644),
        ] {
            let to = data_dir.join(to);
            std::fs::copy(from, &to)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&to, Some(uid.as_raw()), Some(gid.as_raw()))?;
            }
        }
        std::fs::write(
            data_dir.join("pg_hba.conf"),
            format!(
                "local all all trust\n\
                 hostssl all {user} 127.0.0.1/32 cert\n\
                 host all postgres 127.0.0.1/32 trust\n"
            ),
        )?;
        Ok(PostgresTls {
            user: user.to_string(),
            ca_file: pki.ca_file.clone(),
            client,
        })
    }

    fn command(run_as: &Option<String>, program: PathBuf) -> Command {
        match run_as {
            Some(user) => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={user}"))
                    .arg(format!("--regid={user}"))
                    .arg("--init-groups")
                    .arg("--")
                    .arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    async fn launch(&mut self) -> Result<()> {
        let mut cmd = Self::command(&self.run_as, postgres_bin()?.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=300"])
            .args(["-c", "shared_buffers=128MB"])
            .args(["-c", "fsync=on", "-c", "synchronous_commit=on"])
            .args(["-c", "log_min_messages=warning"]);
        if self.tls.is_some() {
            cmd.args(["-c", "ssl=on", "-c", "ssl_cert_file=server.crt"])
                .args([
                    "-c",
                    "ssl_key_file=server.key",
                    "-c",
                    "ssl_ca_file=root.crt",
                ]);
        }
        let mut process = Process::spawn("postgres", cmd, self.dir.path())?;
        let url = self.url("postgres");
        wait_while_running(
            &mut process,
            "PostgreSQL to accept connections",
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move {
                    let conn = PgConnection::connect(&url).await?;
                    conn.close().await?;
                    Ok(Some(()))
                }
            },
        )
        .await?;
        self.process = Some(process);
        Ok(())
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// TLS files for clients of a [`Self::start_tls`] server.
    pub fn tls(&self) -> Option<&PostgresTls> {
        self.tls.as_ref()
    }

    /// A URL for database `db` as the TLS server's client role (no TLS parameters: the
    /// caller adds them, by flags or URL parameters).
    pub fn user_url(&self, db: &str) -> Option<String> {
        let tls = self.tls.as_ref()?;
        Some(format!(
            "postgres://{}@127.0.0.1:{}/{db}",
            tls.user, self.port
        ))
    }

    /// Creates a new, empty database and returns its URL (on a TLS server, owned by the
    /// client role, and its [`Self::user_url`]).
    pub async fn create_database(&self) -> Result<String> {
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::connect(&self.url("postgres")).await?;
        // The name is generated here from digits, never from input.
        let owner = self
            .tls
            .as_ref()
            .map(|t| format!(" OWNER {}", t.user))
            .unwrap_or_default();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name}{owner}"
        )))
        .execute(&mut conn)
        .await
        .with_context(|| format!("creating database {name}"))?;
        conn.close().await?;
        Ok(self.user_url(&name).unwrap_or_else(|| self.url(&name)))
    }

    /// The postmaster process (for signals in fault tests).
    pub fn process(&self) -> Option<&Process> {
        self.process.as_ref()
    }

    /// kill -9 the postmaster, keeping the data.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Starts again on the same port and data (after [`Self::kill`]); PostgreSQL runs
    /// crash recovery from its WAL.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        // Backends notice the postmaster's death and exit; wait until the port is free
        // and the lock file is released before launching again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.launch().await
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}
