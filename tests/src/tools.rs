//! Where the test toolchain lives: `BOXOFFICE_TOOLS_BIN` (set by scripts/test.sh), or
//! whatever `scripts/tools.sh` prints (building the tools on first use).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The directory holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler
/// and helm.
pub fn tools_bin() -> Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| find_tools().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn find_tools() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("BOXOFFICE_TOOLS_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let script = repo_root().join("scripts/tools.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "scripts/tools.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// A tool binary from the toolchain directory.
pub fn tool(name: &str) -> Result<PathBuf> {
    let path = tools_bin()?.join(name);
    if !path.exists() {
        bail!("{} not found; run scripts/tools.sh", path.display());
    }
    Ok(path)
}

/// PostgreSQL's server binaries (initdb, postgres): PG_BIN, `pg_config --bindir`, or
/// the Debian location.
pub fn postgres_bin() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    for version in ["17", "16", "15"] {
        let dir = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    bail!("PostgreSQL server binaries not found (set PG_BIN or install postgresql)")
}
