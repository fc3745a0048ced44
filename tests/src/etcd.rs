//! A real etcd server on loopback, in its own data directory; optionally with TLS,
//! client-certificate auth and etcd users ([`EtcdServer::start_secure`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use boxoffice_transport::EtcdAccess;
use etcd_client::{Client, ConnectOptions, Permission};
use rand::Rng;
use tempfile::TempDir;

use crate::process::{Process, free_port, wait_for, wait_while_running};
use crate::tls::CertFiles;
use crate::tools::tool;

/// TLS for a test etcd: https only, and every client must present a certificate signed
/// by `ca_file` (`--client-cert-auth`).
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca_file: PathBuf,
    pub server: CertFiles,
    /// The harness's own client certificate (for health checks and setting up users).
    pub admin: CertFiles,
}

/// An etcd user the harness creates before it turns auth on: a role of the same name
/// may read and write keys under `prefix` only.
#[derive(Debug, Clone)]
pub struct EtcdUser {
    pub name: String,
    pub password: String,
    pub prefix: String,
}

/// TLS and, when `users` is not empty, etcd auth (a root user, then `auth enable`).
#[derive(Debug, Clone)]
pub struct EtcdSecurity {
    pub tls: EtcdTls,
    pub users: Vec<EtcdUser>,
}

/// How to run etcd.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Name used for the log file.
    pub name: String,
    /// Skip fsync (fast, for tests that never lose the machine).
    pub unsafe_no_fsync: bool,
    /// `--quota-backend-bytes`: past it etcd raises its NOSPACE alarm and refuses
    /// writes that take space.
    pub quota_backend_bytes: u64,
    /// Periodic auto-compaction keeping this much history (`None`: never compact, for
    /// tests that fill etcd on purpose).
    pub auto_compaction_retention: Option<Duration>,
}

/// The harness's quota: far above what a test writes, far below a disk.
pub const TEST_ETCD_QUOTA_BYTES: u64 = 1024 * 1024 * 1024;

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            name: "etcd".into(),
            unsafe_no_fsync: true,
            quota_backend_bytes: TEST_ETCD_QUOTA_BYTES,
            // As recommended for every etcd that runs boxoffice (docs/reliability.md).
            auto_compaction_retention: Some(Duration::from_secs(300)),
        }
    }
}

/// A running etcd. Dropping it stops the process and removes its data.
pub struct EtcdServer {
    process: Option<Process>,
    options: EtcdOptions,
    data_dir: PathBuf,
    log_dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    security: Option<EtcdSecurity>,
    /// Root's password once auth is on (a file, as the flags want it).
    root_password_file: Option<PathBuf>,
    _dir: Option<TempDir>,
}

impl EtcdServer {
    /// Starts etcd in a fresh temporary directory.
    pub async fn start(options: EtcdOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("boxoffice-etcd-")
            .tempdir()?;
        crate::process::remove_dir_on_exit(dir.path());
        let mut server = Self::start_in(dir.path(), options).await?;
        server._dir = Some(dir);
        Ok(server)
    }

    /// Starts etcd with its data and log under `dir` (kept by the caller).
    pub async fn start_in(dir: &Path, options: EtcdOptions) -> Result<Self> {
        let mut server = Self::new(dir, options, None)?;
        server.launch().await?;
        Ok(server)
    }

    /// Starts etcd with TLS in a fresh temporary directory; with users, it creates them
    /// (and root) and enables auth before returning.
    pub async fn start_secure(options: EtcdOptions, security: EtcdSecurity) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("boxoffice-etcd-")
            .tempdir()?;
        crate::process::remove_dir_on_exit(dir.path());
        let mut server = Self::new(dir.path(), options, Some(security))?;
        server._dir = Some(dir);
        server.launch().await?;
        server.enable_auth().await?;
        Ok(server)
    }

    fn new(dir: &Path, options: EtcdOptions, security: Option<EtcdSecurity>) -> Result<Self> {
        Ok(Self {
            process: None,
            data_dir: dir.join(format!("{}-data", options.name)),
            log_dir: dir.to_path_buf(),
            options,
            client_port: free_port()?,
            peer_port: free_port()?,
            security,
            root_password_file: None,
            _dir: None,
        })
    }

    async fn launch(&mut self) -> Result<()> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = Command::new(tool("etcd")?);
        cmd.arg(format!("--name={}", self.options.name))
            .arg(format!("--data-dir={}", self.data_dir.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}={peer}", self.options.name))
            .arg("--log-level=warn")
            .arg(format!(
                "--quota-backend-bytes={}",
                self.options.quota_backend_bytes
            ));
        if let Some(retention) = self.options.auto_compaction_retention {
            cmd.arg("--auto-compaction-mode=periodic").arg(format!(
                "--auto-compaction-retention={}s",
                retention.as_secs().max(1)
            ));
        }
        if self.options.unsafe_no_fsync {
            cmd.arg("--unsafe-no-fsync");
        }
        if let Some(tls) = self.security.as_ref().map(|s| &s.tls) {
            cmd.arg(format!("--cert-file={}", tls.server.cert.display()))
                .arg(format!("--key-file={}", tls.server.key.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca_file.display()))
                .arg("--client-cert-auth");
            let mut process = Process::spawn(&self.options.name, cmd, &self.log_dir)?;
            let access = self.admin_access();
            let endpoint = self.endpoint();
            wait_while_running(
                &mut process,
                "etcd over TLS",
                Duration::from_secs(30),
                || {
                    let access = access.clone();
                    let endpoint = endpoint.clone();
                    async move {
                        let mut client = admin_client(&endpoint, &access).await?;
                        client.status().await?;
                        Ok(Some(()))
                    }
                },
            )
            .await?;
            self.process = Some(process);
            return Ok(());
        }
        let mut process = Process::spawn(&self.options.name, cmd, &self.log_dir)?;
        let url = format!("{}/health", self.endpoint());
        let http = reqwest::Client::new();
        wait_while_running(&mut process, "etcd health", Duration::from_secs(30), || {
            let http = http.clone();
            let url = url.clone();
            async move {
                let body = http.get(&url).send().await?.text().await?;
                Ok(body.contains("\"health\":\"true\"").then_some(()))
            }
        })
        .await?;
        self.process = Some(process);
        Ok(())
    }

    /// The client URL, `http://127.0.0.1:PORT` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.security.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// How the harness itself connects: its client certificate, and root once auth is on.
    pub fn admin_access(&self) -> EtcdAccess {
        let Some(tls) = self.security.as_ref().map(|s| &s.tls) else {
            return EtcdAccess::default();
        };
        EtcdAccess {
            etcd_ca_file: Some(tls.ca_file.clone()),
            etcd_cert_file: Some(tls.admin.cert.clone()),
            etcd_key_file: Some(tls.admin.key.clone()),
            etcd_user: self.root_password_file.as_ref().map(|_| "root".to_string()),
            etcd_password_file: self.root_password_file.clone(),
        }
    }

    /// A client as [`Self::admin_access`].
    pub async fn admin_client(&self) -> Result<Client> {
        admin_client(&self.endpoint(), &self.admin_access()).await
    }

    /// Creates root and the configured users, then turns auth on.
    async fn enable_auth(&mut self) -> Result<()> {
        let Some(security) = self.security.clone() else {
            return Ok(());
        };
        if security.users.is_empty() {
            return Ok(());
        }
        let mut client = self.admin_client().await?;
        let root_password = format!("{:032x}", rand::rng().random::<u128>());
        client
            .user_add("root", root_password.as_str(), None)
            .await?;
        client.user_grant_role("root", "root").await?;
        for user in &security.users {
            client.role_add(user.name.as_str()).await?;
            client
                .role_grant_permission(
                    user.name.as_str(),
                    Permission::read_write(user.prefix.as_str()).with_prefix(),
                )
                .await?;
            client
                .user_add(user.name.as_str(), user.password.as_str(), None)
                .await?;
            client
                .user_grant_role(user.name.as_str(), user.name.as_str())
                .await?;
        }
        client.auth_enable().await.context("etcd auth enable")?;
        let file = self
            .log_dir
            .join(format!("{}-root-password", self.options.name));
        std::fs::write(&file, root_password)?;
        self.root_password_file = Some(file);
        // Auth is on once root can sign in.
        let (endpoint, access) = (self.endpoint(), self.admin_access());
        wait_for("etcd auth", Duration::from_secs(10), || {
            let (endpoint, access) = (endpoint.clone(), access.clone());
            async move {
                let mut client = admin_client(&endpoint, &access).await?;
                client.status().await?;
                Ok(Some(()))
            }
        })
        .await
    }

    /// The running process (for signals in fault tests).
    pub fn process(&self) -> Option<&Process> {
        self.process.as_ref()
    }

    /// kill -9, keeping the data directory.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Starts again on the same ports and data (after [`Self::kill`]).
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.launch().await
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn admin_client(endpoint: &str, access: &EtcdAccess) -> Result<Client> {
    let endpoints = [endpoint.to_string()];
    let options = access.apply(
        &endpoints,
        ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5)),
    )?;
    Ok(Client::connect(&endpoints, Some(options)).await?)
}
