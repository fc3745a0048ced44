//! A real PostgreSQL server on loopback, and a fresh database per test.
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
use crate::tools::postgres_bin;

/// A running PostgreSQL server. Dropping it stops the server and removes its data.
pub struct PostgresServer {
    process: Option<Process>,
    port: u16,
    data_dir: PathBuf,
    run_as: Option<String>,
    dir: TempDir,
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

    /// Initializes a new cluster in a temporary directory and starts it.
    pub async fn start() -> Result<Self> {
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
        let mut server = Self {
            process: None,
            port: free_port()?,
            data_dir,
            run_as,
            dir,
        };
        server.launch().await?;
        Ok(server)
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

    /// Creates a new, empty database and returns its URL.
    pub async fn create_database(&self) -> Result<String> {
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::connect(&self.url("postgres")).await?;
        // The name is generated here from digits, never from input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name}"))?;
        conn.close().await?;
        Ok(self.url(&name))
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
