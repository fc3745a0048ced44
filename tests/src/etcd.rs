//! A real etcd server on loopback, in its own data directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use tempfile::TempDir;

use crate::process::{Process, free_port, wait_while_running};
use crate::tools::tool;

/// How to run etcd.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Name used for the log file.
    pub name: String,
    /// Skip fsync (fast, for tests that never lose the machine).
    pub unsafe_no_fsync: bool,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            name: "etcd".into(),
            unsafe_no_fsync: true,
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
        let mut server = Self {
            process: None,
            data_dir: dir.join(format!("{}-data", options.name)),
            log_dir: dir.to_path_buf(),
            options,
            client_port: free_port()?,
            peer_port: free_port()?,
            _dir: None,
        };
        server.launch().await?;
        Ok(server)
    }

    async fn launch(&mut self) -> Result<()> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = Command::new(tool("etcd")?);
        cmd.arg(format!("--name={}", self.options.name))
            .arg(format!("--data-dir={}", self.data_dir.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}={peer}", self.options.name))
            .arg("--log-level=warn");
        if self.options.unsafe_no_fsync {
            cmd.arg("--unsafe-no-fsync");
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

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
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
