//! A real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC on, token
//! authentication, service-account issuer), kube-controller-manager and kube-scheduler.
//! Every port is random; everything lives in a temporary directory; dropping the
//! [`ControlPlane`] stops every process.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use tempfile::TempDir;

use crate::etcd::{EtcdOptions, EtcdServer};
use crate::process::{Process, free_port, wait_for, wait_while_running};
use crate::tools::tool;

/// Identities known to the API server's token file.
struct Identity {
    user: &'static str,
    groups: &'static str,
    token: String,
}

/// A running control plane.
pub struct ControlPlane {
    // Drop order: clients of the API server first, etcd last.
    scheduler: Process,
    controller_manager: Process,
    apiserver: Process,
    _etcd: EtcdServer,
    port: u16,
    admin_token: String,
    ca_file: PathBuf,
    kubeconfig: PathBuf,
    dir: TempDir,
}

fn random_token() -> String {
    let mut rng = rand::rng();
    (0..32).fold(String::new(), |mut s, _| {
        let _ = write!(s, "{:02x}", rng.random::<u8>());
        s
    })
}

impl ControlPlane {
    /// Starts etcd, the API server, the controller manager and the scheduler, and waits
    /// until the API server is ready and the default namespace has its ServiceAccount.
    pub async fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("boxoffice-k8s-")
            .tempdir()?;
        crate::process::remove_dir_on_exit(dir.path());
        let root = dir.path();
        let etcd = EtcdServer::start_in(
            root,
            EtcdOptions {
                name: "k8s-etcd".into(),
                unsafe_no_fsync: true,
                ..Default::default()
            },
        )
        .await?;

        // Certificates: a CA, the API server's serving cert, and a service-account key.
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "boxoffice-test-ca");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let serving_key = KeyPair::generate()?;
        let mut serving_params = CertificateParams::new(vec![
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
        ])?;
        serving_params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse()?));
        serving_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let serving_cert = serving_params.signed_by(&serving_key, &issuer)?;
        let sa_key = KeyPair::generate()?;

        let ca_file = root.join("ca.crt");
        let serving_cert_file = root.join("apiserver.crt");
        let serving_key_file = root.join("apiserver.key");
        let sa_key_file = root.join("sa.key");
        let sa_pub_file = root.join("sa.pub");
        std::fs::write(&ca_file, ca_cert.pem())?;
        std::fs::write(&serving_cert_file, serving_cert.pem())?;
        std::fs::write(&serving_key_file, serving_key.serialize_pem())?;
        std::fs::write(&sa_key_file, sa_key.serialize_pem())?;
        std::fs::write(&sa_pub_file, sa_key.public_key_pem())?;

        let admin = Identity {
            user: "boxoffice-admin",
            groups: "system:masters",
            token: random_token(),
        };
        let controller_manager_id = Identity {
            user: "system:kube-controller-manager",
            groups: "",
            token: random_token(),
        };
        let scheduler_id = Identity {
            user: "system:kube-scheduler",
            groups: "",
            token: random_token(),
        };
        let token_file = root.join("tokens.csv");
        let tokens: String = [&admin, &controller_manager_id, &scheduler_id]
            .iter()
            .map(|id| format!("{},{},{},\"{}\"\n", id.token, id.user, id.user, id.groups))
            .collect();
        std::fs::write(&token_file, tokens)?;

        let port = free_port()?;
        let server = format!("https://127.0.0.1:{port}");
        let mut apiserver = Command::new(tool("kube-apiserver")?);
        apiserver
            .arg(format!("--etcd-servers={}", etcd.endpoint()))
            .arg(format!("--secure-port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--cert-dir={}", root.join("certs").display()))
            .arg(format!("--tls-cert-file={}", serving_cert_file.display()))
            .arg(format!(
                "--tls-private-key-file={}",
                serving_key_file.display()
            ))
            .arg(format!("--client-ca-file={}", ca_file.display()))
            .arg(format!("--token-auth-file={}", token_file.display()))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!(
                "--service-account-key-file={}",
                sa_pub_file.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                sa_key_file.display()
            ))
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            .arg("--allow-privileged=true")
            .arg("--profiling=false")
            .arg("--v=0");
        let apiserver = Process::spawn("kube-apiserver", apiserver, root)?;

        let kubeconfig = root.join("admin.kubeconfig");
        write_kubeconfig(&kubeconfig, &server, &ca_file, admin.user, &admin.token)?;
        let cm_kubeconfig = root.join("controller-manager.kubeconfig");
        write_kubeconfig(
            &cm_kubeconfig,
            &server,
            &ca_file,
            controller_manager_id.user,
            &controller_manager_id.token,
        )?;
        let sched_kubeconfig = root.join("scheduler.kubeconfig");
        write_kubeconfig(
            &sched_kubeconfig,
            &server,
            &ca_file,
            scheduler_id.user,
            &scheduler_id.token,
        )?;

        let client = client_from_kubeconfig(&kubeconfig).await?;
        let mut apiserver = apiserver;
        wait_while_running(
            &mut apiserver,
            "kube-apiserver readiness",
            Duration::from_secs(90),
            || {
                let client = client.clone();
                async move {
                    let ns: Api<Namespace> = Api::all(client);
                    Ok(ns.get_opt("default").await?.map(|_| ()))
                }
            },
        )
        .await?;

        let mut cm = Command::new(tool("kube-controller-manager")?);
        cm.arg(format!("--kubeconfig={}", cm_kubeconfig.display()))
            .arg("--secure-port=0")
            .arg("--leader-elect=false")
            .arg("--use-service-account-credentials=true")
            .arg(format!(
                "--service-account-private-key-file={}",
                sa_key_file.display()
            ))
            .arg(format!("--root-ca-file={}", ca_file.display()))
            .arg("--cluster-name=boxoffice-test")
            .arg("--controllers=*")
            .arg("--concurrent-gc-syncs=5")
            .arg("--v=0");
        let controller_manager = Process::spawn("kube-controller-manager", cm, root)?;

        let mut sched = Command::new(tool("kube-scheduler")?);
        sched
            .arg(format!("--kubeconfig={}", sched_kubeconfig.display()))
            .arg("--secure-port=0")
            .arg("--leader-elect=false")
            .arg("--v=0");
        let scheduler = Process::spawn("kube-scheduler", sched, root)?;

        let plane = Self {
            scheduler,
            controller_manager,
            apiserver,
            _etcd: etcd,
            port,
            admin_token: admin.token,
            ca_file,
            kubeconfig,
            dir,
        };
        // The serviceaccount controller creates "default" in every namespace; pods cannot
        // be admitted before it exists.
        let sa_ready = wait_for(
            "the default ServiceAccount (controller-manager running)",
            Duration::from_secs(60),
            || {
                let client = client.clone();
                async move {
                    let sa: Api<ServiceAccount> = Api::namespaced(client, "default");
                    Ok(sa.get_opt("default").await?.map(|_| ()))
                }
            },
        )
        .await;
        if let Err(e) = sa_ready {
            return Err(e.context(plane.logs()));
        }
        Ok(plane)
    }

    /// An admin client (system:masters).
    pub async fn client(&self) -> Result<Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// A client authenticating with a bearer token (e.g. a ServiceAccount's).
    pub async fn client_with_token(&self, token: &str) -> Result<Client> {
        let path = self
            .dir
            .path()
            .join(format!("token-{}.kubeconfig", &random_token()[..8]));
        write_kubeconfig(
            &path,
            &self.server_url(),
            &self.ca_file,
            "token-user",
            token,
        )?;
        client_from_kubeconfig(&path).await
    }

    /// Writes a kubeconfig for a bearer token and returns its path.
    pub fn kubeconfig_with_token(&self, name: &str, token: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        write_kubeconfig(&path, &self.server_url(), &self.ca_file, name, token)?;
        Ok(path)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The admin kubeconfig, usable with `kubectl --kubeconfig`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The CA that signed the API server's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The directory holding logs, certificates and kubeconfigs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A `kubectl` command bound to the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()));
        cmd
    }

    /// Runs kubectl with `args`; returns (success, stdout, stderr).
    pub fn kubectl_run(&self, args: &[&str]) -> Result<(bool, String, String)> {
        let out = self
            .kubectl()
            .args(args)
            .output()
            .context("running kubectl")?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Runs kubectl with `args`, feeding `stdin`; returns (success, stdout, stderr).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Result<(bool, String, String)> {
        use std::io::Write;
        let mut child = self
            .kubectl()
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("running kubectl")?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Installs the Show CRD from `crds/manifests/` with kubectl and waits until it is
    /// Established.
    pub async fn install_show_crd(&self) -> Result<()> {
        let manifests = crate::tools::repo_root().join("crds/manifests");
        self.install_crds(&manifests, &["shows.boxoffice.dev"])
            .await
    }

    /// Applies the CRD manifests at `path` (a file or directory) server-side and waits
    /// until each CRD of `names` is Established.
    pub async fn install_crds(&self, path: &Path, names: &[&str]) -> Result<()> {
        let path = path.display().to_string();
        let (ok, _, err) = self.kubectl_run(&["apply", "--server-side", "-f", &path])?;
        anyhow::ensure!(ok, "kubectl apply of {path} failed: {err}");
        let crds: Api<CustomResourceDefinition> = Api::all(self.client().await?);
        for name in names {
            wait_for(
                &format!("the CRD {name} to be Established"),
                Duration::from_secs(30),
                || {
                    let crds = crds.clone();
                    async move {
                        let crd = crds.get(name).await?;
                        let established = crd
                            .status
                            .and_then(|s| s.conditions)
                            .unwrap_or_default()
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True");
                        Ok(established.then_some(()))
                    }
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Runs helm against this control plane from the repository root: success, and
    /// stdout followed by stderr.
    pub fn helm(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(tool("helm").expect("helm"))
            .args(args)
            .arg(format!("--kubeconfig={}", self.kubeconfig_path().display()))
            .current_dir(crate::tools::repo_root())
            .output()
            .expect("helm runs");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// The tails of the component logs, for failure messages.
    pub fn logs(&self) -> String {
        [&self.apiserver, &self.controller_manager, &self.scheduler]
            .iter()
            .map(|p| format!("--- {} ---\n{}\n", p.name(), p.log_tail(3000)))
            .collect()
    }
}

pub(crate) fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca: &Path,
    user: &str,
    token: &str,
) -> Result<()> {
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: boxoffice-test
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: boxoffice-test
  context:
    cluster: boxoffice-test
    user: {user}
    namespace: default
current-context: boxoffice-test
",
        ca = ca.display()
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}
