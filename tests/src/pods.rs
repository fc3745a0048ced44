//! The pod runner: a small kubelet for a machine without a container runtime.
//!
//! It registers Node objects and keeps their leases and Ready condition fresh. Every pod
//! the real scheduler binds to one of them is run as local processes:
//! - the image name is mapped to a binary built from this workspace (`images`), or, for
//!   images in `host_images` (e.g. busybox), the container's command runs on the host;
//! - command, args, env (values, `$(VAR)` expansion, fieldRef, secretKeyRef,
//!   configMapKeyRef), envFrom, and Kubernetes' service environment variables are
//!   honoured;
//! - configMap, secret, projected, downwardAPI and emptyDir volumes are written to a
//!   per-pod directory and every mount path in args and env values is rewritten to it;
//! - the pod gets its own address (10.244.x.y, added to `lo`; needs CAP_NET_ADMIN) as its pod IP, and wildcard listen addresses
//!   (`0.0.0.0:PORT`) in args and env are rewritten to it, so replicas of one
//!   Deployment can all listen on the same port;
//! - a pod whose service account token is mounted gets a token for that account bound
//!   to the pod (TokenRequest) in a kubeconfig named by `KUBECONFIG` (the default
//!   `kubernetes` Service has no reachable endpoint on loopback, so the in-cluster
//!   config would not work);
//! - readiness and liveness HTTP probes run (readiness every second until it first
//!   passes, then at the probe's period), pod status and conditions are reported, and
//!   restart policies are applied;
//! - a deleted pod gets SIGTERM, then SIGKILL after its grace period, and is then
//!   removed from the API like a kubelet does.
//!
//! Deviations from a kubelet, on purpose: no isolation (processes run as the test user,
//! securityContext and resources are not enforced), service environment variables
//! point at a ready endpoint (pod IP and target port) rather than the ClusterIP, which
//! nothing routes here.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Node, Pod, Probe, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ControlPlane;
use crate::process::Process;

/// How pods' images become processes.
#[derive(Debug, Clone, Default)]
pub struct Images {
    /// (substring of the image name, binary).
    pub binaries: Vec<(String, PathBuf)>,
    /// Substrings of image names whose container command runs on the host.
    pub host: Vec<String>,
}

enum Program {
    Binary(PathBuf),
    Host,
}

impl Images {
    fn program(&self, image: &str) -> Option<Program> {
        let repo = image.rsplit('/').next().unwrap_or(image);
        let repo = repo.split([':', '@']).next().unwrap_or(repo);
        if let Some((_, bin)) = self
            .binaries
            .iter()
            .find(|(k, _)| repo.contains(k.as_str()))
        {
            return Some(Program::Binary(bin.clone()));
        }
        self.host
            .iter()
            .any(|h| repo.contains(h.as_str()))
            .then_some(Program::Host)
    }
}

/// The runner; dropping it kills every pod's processes.
pub struct PodRunner {
    stop: CancellationToken,
    pub nodes: Vec<String>,
    pods: Arc<Mutex<HashMap<String, PodHandle>>>,
    dir: PathBuf,
}

struct PodHandle {
    name: String,
    namespace: String,
    updates: watch::Sender<Option<Pod>>,
}

static NEXT_IP: AtomicU32 = AtomicU32::new(0);

/// Pod addresses handed out (removed from `lo` when the runner is dropped).
static ADDRESSES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A fresh address for a pod, added to the loopback interface: 10.244.x.y. Loopback
/// addresses (127/8) will not do: the API server refuses them in EndpointSlices.
fn next_pod_ip() -> Result<String> {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    let block = std::process::id() % 200;
    let ip = format!("10.244.{}.{}", block + n / 250, n % 250 + 2);
    let out = std::process::Command::new("ip")
        .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
        .output()
        .context("running `ip addr add` (iproute2) for a pod address")?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !err.contains("File exists") {
        bail!("adding pod address {ip} to lo needs CAP_NET_ADMIN: {err}");
    }
    ADDRESSES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ip.clone());
    Ok(ip)
}

/// Whether this process may add pod addresses to `lo` (root with CAP_NET_ADMIN and
/// iproute2); the pod runner needs it.
pub fn can_add_pod_addresses() -> std::result::Result<(), String> {
    let probe = "10.244.255.254/32";
    let out = std::process::Command::new("ip")
        .args(["addr", "add", probe, "dev", "lo"])
        .output()
        .map_err(|e| format!("`ip` (iproute2) not runnable: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && !err.contains("File exists") {
        return Err(format!(
            "`ip addr add {probe} dev lo` failed: {}",
            err.trim()
        ));
    }
    let _ = std::process::Command::new("ip")
        .args(["addr", "del", probe, "dev", "lo"])
        .output();
    Ok(())
}

fn remove_pod_addresses() {
    for ip in ADDRESSES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
    {
        let _ = std::process::Command::new("ip")
            .args(["addr", "del", &format!("{ip}/32"), "dev", "lo"])
            .output();
    }
}

fn now_time() -> Time {
    Time(Timestamp::now())
}

impl PodRunner {
    /// Registers `nodes` nodes and starts running the pods bound to them.
    pub async fn start(plane: &ControlPlane, nodes: usize, images: Images) -> Result<Self> {
        let client = plane.client().await?;
        let dir = plane.dir().join("pods");
        std::fs::create_dir_all(&dir)?;
        let names: Vec<String> = (1..=nodes).map(|i| format!("node-{i}")).collect();
        let node_api: Api<Node> = Api::all(client.clone());
        for name in &names {
            let node: Node = serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": "zone-a",
                }},
            }))?;
            node_api.create(&PostParams::default(), &node).await?;
            heartbeat(&client, name).await?;
        }
        let stop = CancellationToken::new();
        // Keep the nodes alive: the node lifecycle controller taints nodes whose lease
        // and status go stale.
        {
            let (client, names, stop) = (client.clone(), names.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                    for name in &names {
                        if let Err(e) = heartbeat(&client, name).await {
                            eprintln!("pod runner: heartbeat of {name}: {e:#}");
                        }
                    }
                }
            });
        }
        let pods: Arc<Mutex<HashMap<String, PodHandle>>> = Arc::default();
        let ctx = Arc::new(Ctx {
            client: client.clone(),
            images,
            dir: dir.clone(),
            kubeconfig: KubeconfigFactory {
                server: plane.server_url(),
                ca: plane.ca_file().to_path_buf(),
                dir: dir.clone(),
            },
            stop: stop.clone(),
        });
        {
            let (pods, stop, names) = (pods.clone(), stop.clone(), names.clone());
            tokio::spawn(async move {
                let api: Api<Pod> = Api::all(ctx.client.clone());
                let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
                loop {
                    let event = tokio::select! {
                        _ = stop.cancelled() => break,
                        e = stream.next() => e,
                    };
                    match event {
                        None => break,
                        Some(Err(e)) => {
                            eprintln!("pod runner: watch: {e}");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => {
                            dispatch(&ctx, &pods, &names, Some(pod));
                        }
                        Some(Ok(Event::Delete(pod))) => {
                            let uid = pod.uid().unwrap_or_default();
                            if let Some(h) =
                                pods.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid)
                            {
                                let _ = h.updates.send(None);
                            }
                        }
                        Some(Ok(Event::Init | Event::InitDone)) => {}
                    }
                }
            });
        }
        Ok(Self {
            stop,
            nodes: names,
            pods,
            dir,
        })
    }

    /// Where pod `namespace/name`'s logs and files are.
    pub fn pod_dir(&self, namespace: &str, name: &str) -> PathBuf {
        self.dir.join(format!("{namespace}_{name}"))
    }

    /// Sends `signal` to the processes of pod `namespace/name` (found by its directory in
    /// their command line or environment, where its mounts were rewritten to), as
    /// `kill -9` on a node
    /// would; the runner then sees the container exit and applies the restart policy.
    /// Returns how many processes were signalled.
    pub fn signal_pod(
        &self,
        namespace: &str,
        name: &str,
        signal: nix::sys::signal::Signal,
    ) -> Result<usize> {
        let dir = self.pod_dir(namespace, name).display().to_string();
        let mut n = 0;
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            let names = |file: &str| {
                std::fs::read(entry.path().join(file))
                    .is_ok_and(|b| String::from_utf8_lossy(&b).contains(&dir))
            };
            if pid as u32 != std::process::id() && (names("cmdline") || names("environ")) {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The last lines of every container log of the pods whose name starts with
    /// `prefix` (for failure messages).
    pub fn logs(&self, prefix: &str) -> String {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for h in pods.values().filter(|h| h.name.starts_with(prefix)) {
            let dir = self.pod_dir(&h.namespace, &h.name);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.path().extension().is_some_and(|x| x == "log") {
                        out.push_str(&format!(
                            "--- {}/{} {} ---\n{}\n",
                            h.namespace,
                            h.name,
                            e.file_name().to_string_lossy(),
                            crate::process::tail(&e.path(), 3000)
                        ));
                    }
                }
            }
        }
        out
    }
}

impl Drop for PodRunner {
    fn drop(&mut self) {
        self.stop.cancel();
        for (_, h) in self.pods.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            let _ = h.updates.send(None);
        }
        // Give the pod tasks a moment to kill their processes, then free the addresses.
        std::thread::sleep(Duration::from_millis(300));
        remove_pod_addresses();
    }
}

async fn heartbeat(client: &Client, name: &str) -> Result<()> {
    let now = now_time();
    let status = json!({"status": {
        "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
        "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "nodeInfo": {"machineID": name, "systemUUID": name, "bootID": "boot", "kernelVersion": "",
            "osImage": "boxoffice pod runner", "containerRuntimeVersion": "process://0.1",
            "kubeletVersion": "v1.33.13", "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": "amd64"},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "pod runner is posting ready status",
             "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "lastHeartbeatTime": now, "lastTransitionTime": now},
        ],
    }});
    Api::<Node>::all(client.clone())
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(status))
        .await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                 "renewTime": MicroTime(Timestamp::now())},
    });
    leases
        .patch(
            name,
            &PatchParams::apply("boxoffice-pod-runner").force(),
            &Patch::Apply(lease),
        )
        .await?;
    Ok(())
}

struct KubeconfigFactory {
    server: String,
    ca: PathBuf,
    dir: PathBuf,
}

struct Ctx {
    client: Client,
    images: Images,
    dir: PathBuf,
    kubeconfig: KubeconfigFactory,
    stop: CancellationToken,
}

fn dispatch(
    ctx: &Arc<Ctx>,
    pods: &Arc<Mutex<HashMap<String, PodHandle>>>,
    nodes: &[String],
    pod: Option<Pod>,
) {
    let Some(pod) = pod else { return };
    let on_our_node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some_and(|n| nodes.contains(n));
    if !on_our_node {
        return;
    }
    let uid = pod.uid().unwrap_or_default();
    let mut map = pods.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = map.get(&uid) {
        let _ = h.updates.send(Some(pod));
        return;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
        return;
    }
    let (tx, rx) = watch::channel(Some(pod.clone()));
    map.insert(
        uid,
        PodHandle {
            name: pod.name_any(),
            namespace: pod.namespace().unwrap_or_default(),
            updates: tx,
        },
    );
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let name = pod.name_any();
        if let Err(e) = run_pod(ctx, pod, rx).await {
            eprintln!("pod runner: pod {name}: {e:#}");
        }
    });
}

/// A container made ready to start.
struct Prepared {
    name: String,
    image: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    readiness: Option<Probe>,
    liveness: Option<Probe>,
    ports: HashMap<String, i32>,
}

struct Running {
    prepared: Prepared,
    process: Option<Process>,
    started_at: Time,
    restarts: i32,
    ready: bool,
    ever_ready: bool,
    next_readiness: Instant,
    next_liveness: Instant,
    liveness_failures: i32,
    exit: Option<(i32, Time)>,
    backoff_until: Option<Instant>,
}

fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

async fn run_pod(ctx: Arc<Ctx>, pod: Pod, mut updates: watch::Receiver<Option<Pod>>) -> Result<()> {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let uid = pod.uid().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let dir = ctx.dir.join(format!("{namespace}_{name}"));
    std::fs::create_dir_all(&dir)?;
    let ip = next_pod_ip()?;
    let start_time = now_time();
    let spec = pod.spec.clone().unwrap_or_default();
    let restart_policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());

    // Prepare the containers; a missing Secret or ConfigMap is retried, as a kubelet
    // would (CreateContainerConfigError).
    let prepared = loop {
        if deleting(&pod) || updates.borrow().as_ref().is_none_or(deleting) {
            return finish_delete(&api, &name, &uid).await;
        }
        match prepare(&ctx, &pod, &dir, &ip).await {
            Ok(p) => break p,
            Err(e) => {
                let status = json!({"status": {
                    "phase": "Pending", "hostIP": "127.0.0.1", "startTime": start_time,
                    "conditions": [{"type": "PodScheduled", "status": "True"}],
                    "containerStatuses": spec.containers.iter().map(|c| json!({
                        "name": c.name, "image": c.image, "imageID": "", "ready": false,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "CreateContainerConfigError", "message": format!("{e:#}")}},
                    })).collect::<Vec<_>>(),
                }});
                let _ = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                    .await;
                tokio::select! {
                    _ = ctx.stop.cancelled() => return Ok(()),
                    _ = updates.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };

    let mut running: Vec<Running> = prepared
        .into_iter()
        .map(|p| Running {
            prepared: p,
            process: None,
            started_at: now_time(),
            restarts: 0,
            ready: false,
            ever_ready: false,
            next_readiness: Instant::now(),
            next_liveness: Instant::now(),
            liveness_failures: 0,
            exit: None,
            backoff_until: None,
        })
        .collect();
    for r in &mut running {
        start_container(r, &dir)?;
    }
    let http = reqwest::Client::new();
    let mut last_status = serde_json::Value::Null;
    let grace = spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64;
    loop {
        // Deletion: SIGTERM, grace, SIGKILL, then remove the pod object.
        let current = updates.borrow().clone();
        let gone = current.is_none() || ctx.stop.is_cancelled();
        if gone || current.as_ref().is_some_and(deleting) {
            let grace = current
                .as_ref()
                .and_then(|p| p.metadata.deletion_grace_period_seconds)
                .map(|g| g.max(0) as u64)
                .unwrap_or(grace);
            let grace = if gone { 0 } else { grace };
            let mut procs: Vec<Process> = running
                .iter_mut()
                .filter_map(|r| r.process.take())
                .collect();
            tokio::task::spawn_blocking(move || {
                for p in &mut procs {
                    let _ = p.signal(nix::sys::signal::Signal::SIGTERM);
                }
                let deadline = Instant::now() + Duration::from_secs(grace);
                for p in &mut procs {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if !p.wait_exit(left) {
                        p.kill();
                    }
                }
            })
            .await?;
            if gone {
                return Ok(());
            }
            return finish_delete(&api, &name, &uid).await;
        }

        let now = Instant::now();
        let mut all_done = true;
        for r in &mut running {
            // Exits and restarts.
            if let Some(p) = r.process.as_mut()
                && let Some(code) = p.exit_code()
            {
                r.process = None;
                r.ready = false;
                r.exit = Some((code, now_time()));
                let restart = match restart_policy.as_str() {
                    "Never" => false,
                    "OnFailure" => code != 0,
                    _ => true,
                };
                if restart {
                    let delay = Duration::from_secs(1 << r.restarts.clamp(0, 3));
                    r.backoff_until = Some(now + delay);
                }
            }
            if r.process.is_none()
                && let Some(t) = r.backoff_until
                && t <= now
            {
                r.backoff_until = None;
                r.restarts += 1;
                start_container(r, &dir)?;
            }
            if r.process.is_some() || r.backoff_until.is_some() {
                all_done = false;
            }
            // Probes.
            if r.process.is_some() {
                match r.prepared.readiness.clone() {
                    None => r.ready = true,
                    Some(probe) if now >= r.next_readiness => {
                        let ok = run_probe(&http, &probe, &ip, &r.prepared.ports).await;
                        if ok {
                            r.ever_ready = true;
                        }
                        r.ready = ok;
                        let period = probe.period_seconds.unwrap_or(10).max(1) as u64;
                        let period = if r.ever_ready { period } else { 1 };
                        r.next_readiness = now + Duration::from_secs(period);
                    }
                    Some(_) => {}
                }
                if let Some(probe) = r.prepared.liveness.clone()
                    && now >= r.next_liveness
                {
                    let initial = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
                    let since_start = Timestamp::now().duration_since(r.started_at.0);
                    if since_start.as_secs() >= initial as i64 {
                        if run_probe(&http, &probe, &ip, &r.prepared.ports).await {
                            r.liveness_failures = 0;
                        } else {
                            r.liveness_failures += 1;
                        }
                        if r.liveness_failures >= probe.failure_threshold.unwrap_or(3).max(1) {
                            if let Some(mut p) = r.process.take() {
                                p.kill();
                            }
                            r.liveness_failures = 0;
                            r.ready = false;
                            r.exit = Some((137, now_time()));
                            r.backoff_until = Some(now);
                        }
                    }
                    r.next_liveness =
                        now + Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
                }
            }
        }

        let status = pod_status(&running, &ip, &start_time, all_done);
        if status != last_status {
            match api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(status.clone()),
                )
                .await
            {
                Ok(_) => last_status = status,
                Err(e) => eprintln!("pod runner: status of {name}: {e}"),
            }
        }
        if all_done {
            return Ok(());
        }
        tokio::select! {
            _ = ctx.stop.cancelled() => {}
            _ = updates.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

async fn finish_delete(api: &Api<Pod>, name: &str, uid: &str) -> Result<()> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn start_container(r: &mut Running, dir: &Path) -> Result<()> {
    let p = &r.prepared;
    let mut cmd = std::process::Command::new(&p.program);
    cmd.args(&p.args).env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in &p.env {
        cmd.env(k, v);
    }
    cmd.current_dir(dir);
    r.process = Some(Process::spawn(&p.name, cmd, dir)?);
    r.started_at = now_time();
    r.exit = None;
    r.ready = false;
    r.ever_ready = false;
    r.next_readiness = Instant::now();
    r.next_liveness = Instant::now();
    Ok(())
}

fn pod_status(running: &[Running], ip: &str, start: &Time, done: bool) -> serde_json::Value {
    let statuses: Vec<serde_json::Value> = running
        .iter()
        .map(|r| {
            let state = match (&r.process, &r.exit) {
                (Some(_), _) => json!({"running": {"startedAt": r.started_at}}),
                (None, Some((code, at))) if r.backoff_until.is_some() => json!({"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": format!("exited with {code} at {}", at.0)}}),
                (None, Some((code, at))) => json!({"terminated": {
                    "exitCode": code, "reason": if *code == 0 { "Completed" } else { "Error" },
                    "startedAt": r.started_at, "finishedAt": at}}),
                (None, None) => json!({"waiting": {"reason": "ContainerCreating"}}),
            };
            json!({
                "name": r.prepared.name, "image": r.prepared.image,
                "imageID": format!("process://{}", r.prepared.program.display()),
                "containerID": format!("process://{}", r.prepared.name),
                "ready": r.ready, "started": r.process.is_some(),
                "restartCount": r.restarts, "state": state,
            })
        })
        .collect();
    let all_ready = running.iter().all(|r| r.ready);
    let ready = if all_ready { "True" } else { "False" };
    let phase = if done {
        if running.iter().all(|r| matches!(r.exit, Some((0, _)))) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else {
        "Running"
    };
    json!({"status": {
        "phase": phase,
        "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": start,
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": ready},
            {"type": "Ready", "status": ready},
        ],
        "containerStatuses": statuses,
    }})
}

async fn run_probe(
    http: &reqwest::Client,
    probe: &Probe,
    ip: &str,
    ports: &HashMap<String, i32>,
) -> bool {
    let Some(get) = &probe.http_get else {
        // Only HTTP probes are used here; anything else counts as passing.
        return true;
    };
    let port = match &get.port {
        IntOrString::Int(p) => *p,
        IntOrString::String(name) => match ports.get(name) {
            Some(p) => *p,
            None => return false,
        },
    };
    let url = format!("http://{ip}:{port}{}", get.path.as_deref().unwrap_or("/"));
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    match http.get(url).timeout(timeout).send().await {
        Ok(r) => r.status().is_success() || r.status().is_redirection(),
        Err(_) => false,
    }
}

/// Expands `$(VAR)` references like the kubelet: unknown references stay as written,
/// `$$` escapes a dollar.
fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Replaces wildcard listen addresses with the pod IP and mount paths with their
/// directories on the host.
fn rewrite(value: &str, ip: &str, mounts: &[(String, PathBuf)]) -> String {
    let v = value.replace("0.0.0.0:", &format!("{ip}:"));
    let v = v.replace("[::]:", &format!("{ip}:"));
    // Each item of a comma-separated list (one secret file per webhook) on its own.
    v.split(',')
        .map(|item| rewrite_mount(item, mounts))
        .collect::<Vec<_>>()
        .join(",")
}

/// `value` with a mount path at its start, or after `=`, pointing into the pod's
/// directory instead.
fn rewrite_mount(value: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut v = value.to_string();
    for (mount, host) in mounts {
        if let Some(rest) = v.strip_prefix(mount.as_str())
            && (rest.is_empty() || rest.starts_with('/'))
        {
            v = format!("{}{rest}", host.display());
        } else if let Some(i) = v.find(&format!("={mount}")) {
            let (head, tail) = v.split_at(i + 1);
            let rest = &tail[mount.len()..];
            if rest.is_empty() || rest.starts_with('/') {
                v = format!("{head}{}{rest}", host.display());
            }
        }
    }
    v
}

async fn prepare(ctx: &Ctx, pod: &Pod, dir: &Path, ip: &str) -> Result<Vec<Prepared>> {
    let namespace = pod.namespace().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);

    // Volumes.
    let mut volumes: HashMap<String, PathBuf> = HashMap::new();
    let mut token_for_kubeconfig = None;
    for v in spec.volumes.iter().flatten() {
        let vdir = dir.join("volumes").join(&v.name);
        std::fs::create_dir_all(&vdir)?;
        if let Some(cm) = &v.config_map {
            let data =
                config_map_data(&config_maps, &cm.name, cm.optional.unwrap_or(false)).await?;
            write_items(&vdir, &data, cm.items.as_deref())?;
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let data = secret_data(&secrets, &name, s.optional.unwrap_or(false)).await?;
            write_items(&vdir, &data, s.items.as_deref())?;
        } else if let Some(p) = &v.projected {
            for source in p.sources.iter().flatten() {
                if let Some(t) = &source.service_account_token {
                    let token = service_account_token(ctx, pod).await?;
                    std::fs::write(vdir.join(&t.path), &token)?;
                    token_for_kubeconfig = Some(token);
                }
                if let Some(cm) = &source.config_map {
                    let data =
                        config_map_data(&config_maps, &cm.name, cm.optional.unwrap_or(false))
                            .await?;
                    write_items(&vdir, &data, cm.items.as_deref())?;
                }
                if let Some(s) = &source.secret {
                    let data = secret_data(&secrets, &s.name, s.optional.unwrap_or(false)).await?;
                    write_items(&vdir, &data, s.items.as_deref())?;
                }
                if let Some(d) = &source.downward_api {
                    for item in d.items.iter().flatten() {
                        if let Some(f) = &item.field_ref {
                            std::fs::write(
                                vdir.join(&item.path),
                                field_value(pod, &f.field_path, ip),
                            )?;
                        }
                    }
                }
            }
        } else if let Some(d) = &v.downward_api {
            for item in d.items.iter().flatten() {
                if let Some(f) = &item.field_ref {
                    std::fs::write(vdir.join(&item.path), field_value(pod, &f.field_path, ip))?;
                }
            }
        }
        volumes.insert(v.name.clone(), vdir);
    }
    let kubeconfig = match token_for_kubeconfig {
        Some(token) => {
            let path = dir.join("kubeconfig");
            crate::control_plane::write_kubeconfig(
                &path,
                &ctx.kubeconfig.server,
                &ctx.kubeconfig.ca,
                "pod",
                &token,
            )?;
            let _ = &ctx.kubeconfig.dir;
            Some(path)
        }
        None => None,
    };

    let service_env = service_env(
        &ctx.client,
        &namespace,
        spec.enable_service_links.unwrap_or(true),
    )
    .await;
    let mut out = Vec::new();
    for c in &spec.containers {
        out.push(
            prepare_container(
                ctx,
                pod,
                c,
                ip,
                &volumes,
                &service_env,
                kubeconfig.as_deref(),
                &secrets,
                &config_maps,
            )
            .await?,
        );
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn prepare_container(
    ctx: &Ctx,
    pod: &Pod,
    c: &Container,
    ip: &str,
    volumes: &HashMap<String, PathBuf>,
    service_env: &BTreeMap<String, String>,
    kubeconfig: Option<&Path>,
    secrets: &Api<Secret>,
    config_maps: &Api<ConfigMap>,
) -> Result<Prepared> {
    let image = c.image.clone().unwrap_or_default();
    let program = ctx
        .images
        .program(&image)
        .ok_or_else(|| anyhow!("no binary for image {image}"))?;
    // Mounts, longest path first so nested mounts win.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let host = volumes
            .get(&m.name)
            .ok_or_else(|| anyhow!("volume {} not found", m.name))?;
        let host = match &m.sub_path {
            Some(sub) if !sub.is_empty() => host.join(sub),
            _ => host.clone(),
        };
        mounts.push((m.mount_path.trim_end_matches('/').to_string(), host));
    }
    mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));

    // Environment: service links, then envFrom, then env (later wins), as the kubelet.
    let mut vars: BTreeMap<String, String> = service_env.clone();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(cm) = &from.config_map_ref {
            for (k, v) in
                config_map_data(config_maps, &cm.name, cm.optional.unwrap_or(false)).await?
            {
                vars.insert(
                    format!("{prefix}{k}"),
                    String::from_utf8_lossy(&v).into_owned(),
                );
            }
        }
        if let Some(s) = &from.secret_ref {
            for (k, v) in secret_data(secrets, &s.name, s.optional.unwrap_or(false)).await? {
                vars.insert(
                    format!("{prefix}{k}"),
                    String::from_utf8_lossy(&v).into_owned(),
                );
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            Some(expand(v, &vars))
        } else if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                Some(field_value(pod, &f.field_path, ip))
            } else if let Some(s) = &from.secret_key_ref {
                let data = secret_data(secrets, &s.name, s.optional.unwrap_or(false)).await?;
                match data.get(&s.key) {
                    Some(v) => Some(String::from_utf8_lossy(v).into_owned()),
                    None if s.optional.unwrap_or(false) => None,
                    None => bail!("key {} not in Secret {}", s.key, s.name),
                }
            } else if let Some(cm) = &from.config_map_key_ref {
                let data =
                    config_map_data(config_maps, &cm.name, cm.optional.unwrap_or(false)).await?;
                match data.get(&cm.key) {
                    Some(v) => Some(String::from_utf8_lossy(v).into_owned()),
                    None if cm.optional.unwrap_or(false) => None,
                    None => bail!("key {} not in ConfigMap {}", cm.key, cm.name),
                }
            } else {
                None
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            vars.insert(e.name.clone(), v);
        }
    }
    if let Some(k) = kubeconfig {
        vars.insert("KUBECONFIG".into(), k.display().to_string());
    }
    let env: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.clone(), rewrite(v, ip, &mounts)))
        .collect();

    let command: Vec<String> = c.command.clone().unwrap_or_default();
    let args: Vec<String> = c.args.clone().unwrap_or_default();
    let expanded = |v: &Vec<String>| -> Vec<String> {
        v.iter()
            .map(|a| rewrite(&expand(a, &vars), ip, &mounts))
            .collect()
    };
    let (program, args) = match program {
        Program::Binary(bin) => {
            // The image's entrypoint is the binary; a command replaces it.
            let mut all = expanded(&command);
            if !all.is_empty() {
                all.remove(0);
            }
            all.extend(expanded(&args));
            (bin, all)
        }
        Program::Host => {
            let mut all = expanded(&command);
            all.extend(expanded(&args));
            if all.is_empty() {
                bail!("image {image} needs a command to run on the host");
            }
            let first = all.remove(0);
            (PathBuf::from(first), all)
        }
    };
    let ports = c
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone().map(|n| (n, p.container_port)))
        .collect();
    Ok(Prepared {
        name: c.name.clone(),
        image,
        program,
        args,
        env,
        readiness: c.readiness_probe.clone(),
        liveness: c.liveness_probe.clone(),
        ports,
    })
}

fn field_value(pod: &Pod, path: &str, ip: &str) -> String {
    match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => pod.namespace().unwrap_or_default(),
        "metadata.uid" => pod.uid().unwrap_or_default(),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => ip.to_string(),
        "status.hostIP" => "127.0.0.1".into(),
        _ => String::new(),
    }
}

async fn secret_data(
    api: &Api<Secret>,
    name: &str,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>> {
    match api.get_opt(name).await? {
        Some(s) => {
            let mut out: BTreeMap<String, Vec<u8>> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in s.string_data.unwrap_or_default() {
                out.insert(k, v.into_bytes());
            }
            Ok(out)
        }
        None if optional => Ok(BTreeMap::new()),
        None => bail!("Secret {name} not found"),
    }
}

async fn config_map_data(
    api: &Api<ConfigMap>,
    name: &str,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>> {
    match api.get_opt(name).await? {
        Some(cm) => {
            let mut out: BTreeMap<String, Vec<u8>> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            for (k, v) in cm.binary_data.unwrap_or_default() {
                out.insert(k, v.0);
            }
            Ok(out)
        }
        None if optional => Ok(BTreeMap::new()),
        None => bail!("ConfigMap {name} not found"),
    }
}

fn write_items(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
) -> Result<()> {
    match items {
        Some(items) => {
            for i in items {
                let v = data
                    .get(&i.key)
                    .with_context(|| format!("key {} missing", i.key))?;
                let path = dir.join(&i.path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(path, v)?;
            }
        }
        None => {
            for (k, v) in data {
                std::fs::write(dir.join(k), v)?;
            }
        }
    }
    Ok(())
}

/// A token for the pod's service account, bound to the pod (TokenRequest).
async fn service_account_token(ctx: &Ctx, pod: &Pod) -> Result<String> {
    let namespace = pod.namespace().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name_any()),
                uid: pod.uid(),
            }),
        },
        ..TokenRequest::default()
    };
    let answer = api
        .create_token_request(&sa, &PostParams::default(), &request)
        .await
        .with_context(|| format!("a token for ServiceAccount {namespace}/{sa}"))?;
    Ok(answer.status.map(|s| s.token).unwrap_or_default())
}

/// Kubernetes' service environment variables for `namespace`, pointing at a ready
/// endpoint of each Service (resolved from its EndpointSlices).
async fn service_env(client: &Client, namespace: &str, links: bool) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut services: Vec<(String, Service)> = Vec::new();
    if let Ok(list) = Api::<Service>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
    {
        services.extend(
            list.items
                .into_iter()
                .filter(|s| s.name_any() == "kubernetes")
                .map(|s| ("default".to_string(), s)),
        );
    }
    if links
        && let Ok(list) = Api::<Service>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await
    {
        services.extend(list.items.into_iter().map(|s| (namespace.to_string(), s)));
    }
    for (ns, svc) in services {
        let name = svc.name_any();
        let prefix = name.to_uppercase().replace('-', "_");
        let Some(target) = resolve_service(client, &ns, &name, None)
            .await
            .ok()
            .flatten()
        else {
            continue;
        };
        env.insert(format!("{prefix}_SERVICE_HOST"), target.host.clone());
        env.insert(format!("{prefix}_SERVICE_PORT"), target.port.to_string());
        for (port_name, port) in &target.named_ports {
            env.insert(
                format!(
                    "{prefix}_SERVICE_PORT_{}",
                    port_name.to_uppercase().replace('-', "_")
                ),
                port.to_string(),
            );
        }
    }
    env
}

/// Where Service traffic goes here: a ready endpoint from the Service's EndpointSlices.
#[derive(Debug, Clone)]
pub struct ServiceTarget {
    pub host: String,
    pub port: i32,
    pub named_ports: BTreeMap<String, i32>,
    /// Every ready endpoint address.
    pub ready: Vec<String>,
}

impl ServiceTarget {
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
    /// URLs of every ready endpoint.
    pub fn urls(&self) -> Vec<String> {
        self.ready
            .iter()
            .map(|h| format!("http://{h}:{}", self.port))
            .collect()
    }
}

/// Resolves Service `namespace/name` through its EndpointSlices: its ready endpoint
/// addresses and ports (`port_name` picks a port, else the first).
pub async fn resolve_service(
    client: &Client,
    namespace: &str,
    name: &str,
    port_name: Option<&str>,
) -> Result<Option<ServiceTarget>> {
    if namespace == "default" && name == "kubernetes" {
        // The API server itself; its Endpoints cannot carry a loopback address.
        return Ok(None);
    }
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let list = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={name}")))
        .await?;
    let mut ready = Vec::new();
    let mut named_ports = BTreeMap::new();
    let mut first_port = None;
    for slice in list.items {
        for p in slice.ports.iter().flatten() {
            if let Some(port) = p.port {
                first_port.get_or_insert(port);
                if let Some(n) = &p.name
                    && !n.is_empty()
                {
                    named_ports.insert(n.clone(), port);
                }
            }
        }
        for e in slice.endpoints {
            let is_ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
            if is_ready {
                ready.extend(e.addresses);
            }
        }
    }
    let port = match port_name {
        Some(n) => named_ports.get(n).copied(),
        None => first_port,
    };
    match (ready.first(), port) {
        (Some(host), Some(port)) => Ok(Some(ServiceTarget {
            host: host.clone(),
            port,
            named_ports,
            ready,
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_the_kubelet() {
        let vars: BTreeMap<String, String> = [
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "x".to_string()),
        ]
        .into();
        assert_eq!(expand("$(A)-$(B)", &vars), "1-x");
        assert_eq!(expand("$(C)", &vars), "$(C)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("cost $5", &vars), "cost $5");
    }

    #[test]
    fn rewrites_listen_addresses_and_mount_paths() {
        let mounts = vec![("/etc/boxoffice".to_string(), PathBuf::from("/tmp/p/v"))];
        assert_eq!(
            rewrite("0.0.0.0:8080", "127.1.0.5", &mounts),
            "127.1.0.5:8080"
        );
        assert_eq!(
            rewrite("/etc/boxoffice/show.json", "ip", &mounts),
            "/tmp/p/v/show.json"
        );
        assert_eq!(
            rewrite("--show=/etc/boxoffice/show.json", "ip", &mounts),
            "--show=/tmp/p/v/show.json"
        );
        assert_eq!(rewrite("/etc/boxofficex", "ip", &mounts), "/etc/boxofficex");
        // Every item of a list, and nothing else in it.
        let hooks = vec![
            ("/run/hooks/0".to_string(), PathBuf::from("/tmp/p/h0")),
            ("/run/hooks/1".to_string(), PathBuf::from("/tmp/p/h1")),
        ];
        assert_eq!(
            rewrite("/run/hooks/0/secret,/run/hooks/1/secret", "ip", &hooks),
            "/tmp/p/h0/secret,/tmp/p/h1/secret"
        );
        assert_eq!(
            rewrite("http://a/run/hooks/0,/run/hooks/1/secret", "ip", &hooks),
            "http://a/run/hooks/0,/tmp/p/h1/secret"
        );
    }

    #[test]
    fn secret_volume_items_become_one_file_whose_mount_path_is_rewritten() {
        // As the operator mounts the JWT key: only the listed key, under its path.
        let dir = tempfile::tempdir().expect("tempdir");
        let data = BTreeMap::from([
            ("secret".to_string(), b"jwt-key".to_vec()),
            ("other".to_string(), b"not for the shard".to_vec()),
        ]);
        let items = [k8s_openapi::api::core::v1::KeyToPath {
            key: "secret".into(),
            path: "jwt".into(),
            ..Default::default()
        }];
        write_items(dir.path(), &data, Some(&items)).expect("written");
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, ["jwt"]);
        assert_eq!(
            std::fs::read(dir.path().join("jwt")).expect("file"),
            b"jwt-key"
        );
        let mounts = vec![
            (
                "/var/run/secrets/boxoffice".to_string(),
                dir.path().to_path_buf(),
            ),
            ("/etc/boxoffice".to_string(), PathBuf::from("/tmp/p/show")),
        ];
        assert_eq!(
            rewrite("/var/run/secrets/boxoffice/jwt", "ip", &mounts),
            dir.path().join("jwt").display().to_string()
        );
        assert!(
            write_items(
                dir.path(),
                &data,
                Some(&[k8s_openapi::api::core::v1::KeyToPath {
                    key: "missing".into(),
                    path: "x".into(),
                    ..Default::default()
                }])
            )
            .is_err()
        );
    }

    #[test]
    fn maps_images() {
        let images = Images {
            binaries: vec![("booking-shard".into(), PathBuf::from("/bin/shard"))],
            host: vec!["busybox".into()],
        };
        assert!(matches!(
            images.program("ghcr.io/x/booking-shard:0.1.0"),
            Some(Program::Binary(_))
        ));
        assert!(matches!(
            images.program("busybox:1.36"),
            Some(Program::Host)
        ));
        assert!(images.program("nginx").is_none());
    }
}
