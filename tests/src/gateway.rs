//! A real gateway for the routing tests: the Gateway API CRDs (standard channel, pinned
//! by scripts/tools/gateway-api/) applied into the test API server, and Traefik (built
//! by scripts/tools.sh) run as a local process with its Kubernetes Gateway and Ingress
//! providers, one entrypoint (`web`) on a loopback port. It routes to the shard pods'
//! addresses from EndpointSlices, as a gateway in a cluster does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;

use crate::ControlPlane;
use crate::process::{Process, free_port, wait_for};
use crate::tools::{tool, tools_bin};

/// The namespace of the gateway's own objects (ServiceAccount, Gateway).
pub const GATEWAY_NAMESPACE: &str = "gateway";
/// The GatewayClass and IngressClass Traefik serves.
pub const CLASS: &str = "traefik";
/// The Gateway the Shows' HTTPRoutes attach to.
pub const GATEWAY: &str = "public";

/// The directory of the pinned Gateway API CRDs.
pub fn gateway_api_crds() -> Result<PathBuf> {
    let dir = tools_bin()?.join("gateway-api-crds");
    if !dir.join("VERSION").exists() {
        bail!("{} missing; run scripts/tools.sh", dir.display());
    }
    Ok(dir)
}

/// Applies the Gateway API CRDs and waits until HTTPRoute, Gateway and GatewayClass are
/// Established.
pub async fn install_gateway_api(plane: &ControlPlane) -> Result<()> {
    let names = ["httproutes", "gateways", "gatewayclasses"]
        .map(|n| format!("{n}.gateway.networking.k8s.io"));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    plane.install_crds(&gateway_api_crds()?, &names).await
}

/// Creates the GatewayClass and a Gateway `public` in [`GATEWAY_NAMESPACE`] whose one
/// HTTP listener (on Traefik's entrypoint port) takes routes for `*.<domain>` from
/// every namespace.
pub fn create_gateway(plane: &ControlPlane, port: u16, domain: &str) -> Result<()> {
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: {CLASS}}}
spec: {{controllerName: traefik.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {GATEWAY}, namespace: {GATEWAY_NAMESPACE}}}
spec:
  gatewayClassName: {CLASS}
  listeners:
    - name: web
      protocol: HTTP
      port: {port}
      hostname: \"*.{domain}\"
      allowedRoutes: {{namespaces: {{from: All}}}}
"
    );
    let (ok, _, err) = plane.kubectl_stdin(&["apply", "-f", "-"], &yaml)?;
    anyhow::ensure!(ok, "creating the Gateway failed: {err}");
    Ok(())
}

/// What Traefik may read and write: the Gateway API and Ingress objects, the Services,
/// EndpointSlices, Secrets and Namespaces they name, and the routes' status.
const RBAC: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: traefik}
rules:
  - apiGroups: [\"\"]
    resources: [namespaces, services, secrets, configmaps, endpoints, nodes]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses, ingressclasses]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses/status]
    verbs: [update, patch]
  - apiGroups: [gateway.networking.k8s.io]
    resources: [\"*\"]
    verbs: [get, list, watch]
  - apiGroups: [gateway.networking.k8s.io]
    resources: [\"*/status\"]
    verbs: [update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: traefik}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: traefik}
subjects: [{kind: ServiceAccount, name: traefik, namespace: gateway}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: traefik}
spec: {controller: traefik.io/ingress-controller}
";

/// A running Traefik; dropping it stops the process.
pub struct Traefik {
    process: Process,
    port: u16,
}

impl Traefik {
    /// Starts Traefik under its own ServiceAccount (RBAC above) with both Kubernetes
    /// providers; the Gateway provider retries by itself until the Gateway API CRDs
    /// exist. Waits until the entrypoint answers.
    pub async fn start(plane: &ControlPlane) -> Result<Self> {
        let (ok, _, err) = plane.kubectl_run(&["create", "namespace", GATEWAY_NAMESPACE])?;
        anyhow::ensure!(ok || err.contains("AlreadyExists"), "{err}");
        let (ok, _, err) = plane.kubectl_run(&[
            "create",
            "serviceaccount",
            "traefik",
            "-n",
            GATEWAY_NAMESPACE,
        ])?;
        anyhow::ensure!(ok || err.contains("AlreadyExists"), "{err}");
        let (ok, _, err) = plane.kubectl_stdin(&["apply", "-f", "-"], RBAC)?;
        anyhow::ensure!(ok, "Traefik's RBAC: {err}");
        let sa: Api<ServiceAccount> = Api::namespaced(plane.client().await?, GATEWAY_NAMESPACE);
        let token = sa
            .create_token_request(
                "traefik",
                &PostParams::default(),
                &TokenRequest {
                    spec: TokenRequestSpec {
                        audiences: vec![],
                        expiration_seconds: Some(3 * 3600),
                        bound_object_ref: None,
                    },
                    ..TokenRequest::default()
                },
            )
            .await
            .context("a token for Traefik's ServiceAccount")?
            .status
            .map(|s| s.token)
            .unwrap_or_default();

        let port = free_port()?;
        let dir = plane.dir().join("traefik");
        std::fs::create_dir_all(&dir)?;
        let provider = format!(
            "    endpoint: {server}\n    token: {token}\n    certAuthFilePath: {ca}\n    throttleDuration: 0s\n",
            server = plane.server_url(),
            ca = plane.ca_file().display()
        );
        // readTimeout 0: Go's server read deadline would otherwise cut event streams
        // (docs/architecture.md, "Routing": long-lived SSE through a gateway).
        let config = format!(
            "entryPoints:\n  web:\n    address: \"127.0.0.1:{port}\"\n    transport:\n      respondingTimeouts:\n        readTimeout: 0s\n        idleTimeout: 300s\n\
providers:\n  kubernetesGateway:\n{provider}    statusAddress:\n      ip: 127.0.0.1\n  kubernetesIngress:\n{provider}    ingressClass: {CLASS}\n    strictPrefixMatching: true\n    ingressEndpoint:\n      ip: 127.0.0.1\n\
log:\n  level: INFO\n"
        );
        let file = dir.join("traefik.yaml");
        std::fs::write(&file, config)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        }
        let mut cmd = Command::new(tool("traefik")?);
        cmd.arg(format!("--configfile={}", file.display()));
        let process = Process::spawn("traefik", cmd, &dir)?;
        let traefik = Self { process, port };
        let addr = traefik.addr();
        wait_for(
            "Traefik's entrypoint",
            Duration::from_secs(60),
            || async move { Ok(tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())) },
        )
        .await
        .map_err(|e| e.context(traefik.process.log_tail(4000)))?;
        Ok(traefik)
    }

    /// The entrypoint's port (the Gateway listener's port).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The entrypoint's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A client that sends every request for `hosts` to the gateway's one listener
    /// (as DNS would in a cluster), keeping the Host header of the URL. No overall
    /// timeout (event streams stay open): give each request its own.
    pub fn client(&self, hosts: &[&str]) -> reqwest::Client {
        hosts
            .iter()
            .fold(reqwest::Client::builder(), |b, h| b.resolve(h, self.addr()))
            .build()
            .unwrap_or_default()
    }

    /// The tail of Traefik's log.
    pub fn log_tail(&self, max: u64) -> String {
        self.process.log_tail(max)
    }
}
