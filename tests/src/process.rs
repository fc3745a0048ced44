//! Child processes that die with the test: killed on drop (also when a test panics),
//! and killed by a reaper when the test binary exits without dropping them (statics).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
    Ok(listener.local_addr()?.port())
}

/// The pids the reaper kills when this test process goes away.
struct Reaper {
    list: PathBuf,
    dirs: PathBuf,
    pids: Mutex<Vec<u32>>,
}

impl Reaper {
    fn get() -> &'static Reaper {
        static REAPER: OnceLock<Reaper> = OnceLock::new();
        REAPER.get_or_init(|| {
            let list = std::env::temp_dir().join(format!("boxoffice-reap-{}", std::process::id()));
            let dirs = list.with_extension("dirs");
            let _ = std::fs::write(&list, "");
            let _ = std::fs::write(&dirs, "");
            let script = "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; \
                          for p in $(cat \"$2\" 2>/dev/null); do kill -9 \"$p\" 2>/dev/null; done; \
                          sleep 1; \
                          while read -r d; do [ -n \"$d\" ] && rm -rf \"$d\"; done < \"$3\"; \
                          rm -f \"$2\" \"$3\"";
            // Not waited on: it outlives this process by design.
            let _ = Command::new("sh")
                .args(["-c", script, "reaper"])
                .arg(std::process::id().to_string())
                .arg(&list)
                .arg(&dirs)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            Reaper {
                list,
                dirs,
                pids: Mutex::new(Vec::new()),
            }
        })
    }

    fn update(&self, f: impl FnOnce(&mut Vec<u32>)) {
        let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut pids);
        let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
        let _ = std::fs::write(&self.list, text);
    }
}

/// Removes `dir` when this test process exits, for directories held by statics that
/// are never dropped (shared servers).
pub fn remove_dir_on_exit(dir: &Path) {
    append_line(&Reaper::get().dirs, &dir.display().to_string());
}

/// A running child process whose output goes to a log file.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command`, sending stdout and stderr to `<log_dir>/<name>.log` (appended,
    /// so a restarted process keeps its history).
    pub fn spawn(name: &str, mut command: Command, log_dir: &Path) -> Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Reaper::get().update(|p| p.push(child.id()));
        Ok(Self {
            name: name.to_string(),
            child,
            log,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Sends a signal (SIGSTOP, SIGCONT, SIGTERM, ...).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let pid = i32::try_from(self.pid()).context("pid out of range")?;
        kill(Pid::from_raw(pid), signal).with_context(|| format!("signalling {}", self.name))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit code once the process has exited (None while running; -1 when it was
    /// killed by a signal).
    pub fn exit_code(&mut self) -> Option<i32> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.code().unwrap_or(-1)),
            _ => None,
        }
    }

    /// Waits up to `timeout` for the process to exit; returns whether it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.is_running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.signal(Signal::SIGCONT); // a stopped process still dies, but be sure
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.pid();
        Reaper::get().update(|p| p.retain(|x| *x != pid));
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        let _ = self.signal(Signal::SIGTERM);
        if !self.wait_exit(grace) {
            eprintln!(
                "{} did not exit within {grace:?} of SIGTERM; killing",
                self.name
            );
        }
        self.kill();
    }

    /// The last `max` bytes of the log, for failure messages.
    pub fn log_tail(&self, max: u64) -> String {
        tail(&self.log, max)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `max` bytes of a file.
pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Appends a line to a file (best effort), e.g. a marker in a shared log.
pub fn append_line(path: &Path, line: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// Like [`wait_for`], but fails at once (with the log tail) if `process` exits.
pub async fn wait_while_running<T, F, Fut>(
    process: &mut Process,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("not yet");
    loop {
        if !process.is_running() {
            bail!(
                "{} exited while waiting for {what}; log:\n{}",
                process.name(),
                process.log_tail(4000)
            );
        }
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {timeout:?} waiting for {what}: {last}; {} log:\n{}",
                process.name(),
                process.log_tail(4000)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` until it returns `Ok(Some(v))` or `timeout` passes; the last error is
/// reported on timeout.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("not yet");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
