//! Routing through a real gateway: the chart's operator publishes each Show as an
//! HTTPRoute (or an Ingress), Traefik (a local process with its Kubernetes Gateway and
//! Ingress providers) serves them on one listener, and clients book through it.
//!
//! Three Shows in two namespaces, two of them named alike: every operation of the
//! OpenAPI document reaches the right show's leader (the `x-boxoffice-leader` header
//! names a pod of that Show, the body its title); holds, confirms, the seat map and an
//! SSE event through the gateway; kill -9 of a leader (requests succeed again, none
//! answered by another show); a deleted Show's URL answers 404 from the gateway while
//! the others go on. Without Gateway API CRDs at start, a gateway-mode Show is Ready with
//! Routed=False (GatewayAPIMissing) and becomes routed once the CRDs and a Gateway are
//! installed, with nothing restarted.

// The scenario's steps are helpers outside `#[test]` functions; an unwrap there is a
// failed test like any other.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use boxoffice_crds::Show;
use boxoffice_e2e::gateway::{
    GATEWAY, GATEWAY_NAMESPACE, Traefik, create_gateway, install_gateway_api,
};
use boxoffice_e2e::pods::{Images, PodRunner};
use boxoffice_e2e::shard::{TEST_JWT_SECRET, shard_binary};
use boxoffice_e2e::tools::repo_root;
use boxoffice_e2e::{ControlPlane, EtcdOptions, EtcdServer, PostgresServer, token, wait_for};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const SYSTEM: &str = "boxoffice-system";
const DOMAIN: &str = "tickets.test";
const LEADER_HEADER: &str = "x-boxoffice-leader";

/// One Show of the test: namespace, name, title (distinct per Show).
#[derive(Clone, Debug)]
struct Target {
    ns: &'static str,
    name: &'static str,
    title: &'static str,
}

const EAST_CLUB: Target = Target {
    ns: "east",
    name: "club-night",
    title: "East Side Club Night",
};
const WEST_CLUB: Target = Target {
    ns: "west",
    name: "club-night",
    title: "West Side Club Night",
};
const EAST_LATE: Target = Target {
    ns: "east",
    name: "late-set",
    title: "East Side Late Set",
};

impl Target {
    fn host(&self) -> String {
        format!("{}.{DOMAIN}", self.ns)
    }
    fn base(&self) -> String {
        format!("http://{}/v1/shows/{}", self.host(), self.name)
    }
    fn manifest(&self, mode: Option<&str>) -> String {
        let club = std::fs::read_to_string(repo_root().join("examples/shows/club.yaml"))
            .expect("club.yaml");
        let mut text = club
            .replace("name: club-night", &format!("name: {}", self.name))
            .replace(
                "\"Late Set at the Blue Room\"",
                &format!("\"{}\"", self.title),
            );
        assert!(text.contains(self.title));
        if let Some(mode) = mode {
            text.push_str(&format!("  route:\n    mode: {mode}\n"));
        }
        text
    }
}

struct Cluster {
    plane: ControlPlane,
    client: Client,
    runner: PodRunner,
    traefik: Traefik,
    _etcd: EtcdServer,
}

impl Cluster {
    /// A control plane, pods as processes, Traefik, and the chart installed with
    /// routing mode `mode`; Gateway API CRDs and the Gateway only when `gateway_api`.
    async fn start(mode: &str, gateway_api: bool) -> Option<Self> {
        if let Err(why) = boxoffice_e2e::pods::can_add_pod_addresses() {
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let plane = ControlPlane::start().await.expect("control plane");
        let client = plane.client().await.expect("client");
        let operator = shard_binary()
            .expect("binaries built")
            .with_file_name("boxoffice-operator");
        let images = Images {
            binaries: vec![
                ("boxoffice-operator".into(), operator),
                ("booking-shard".into(), shard_binary().expect("shard")),
            ],
            host: vec!["busybox".into()],
        };
        let runner = PodRunner::start(&plane, 2, images)
            .await
            .expect("pod runner");
        let etcd = EtcdServer::start(EtcdOptions {
            name: "routing-shard-etcd".into(),
            unsafe_no_fsync: true,
            ..Default::default()
        })
        .await
        .expect("etcd");
        for ns in [SYSTEM, "east", "west"] {
            let (ok, _, err) = plane.kubectl_run(&["create", "namespace", ns]).unwrap();
            assert!(ok, "{err}");
        }
        // A database per namespace, as two tenants would have.
        for ns in ["east", "west"] {
            let db_url = PostgresServer::shared()
                .await
                .expect("postgres")
                .create_database()
                .await
                .expect("database");
            for (name, key, value) in [
                ("boxoffice-database", "url", db_url.as_str()),
                ("boxoffice-jwt", "secret", TEST_JWT_SECRET),
            ] {
                let literal = format!("--from-literal={key}={value}");
                let args = ["create", "secret", "generic", name, "-n", ns, &literal];
                let (ok, _, err) = plane.kubectl_run(&args).unwrap();
                assert!(ok, "{err}");
            }
        }
        if gateway_api {
            install_gateway_api(&plane).await.expect("Gateway API CRDs");
        }
        let traefik = Traefik::start(&plane).await.expect("traefik");
        if gateway_api {
            create_gateway(&plane, traefik.port(), DOMAIN).expect("gateway");
        }
        let values = plane.dir().join("routing-values.yaml");
        std::fs::write(
            &values,
            format!(
                "image: {{repository: boxoffice-operator, tag: dev}}
shard:
  image: booking-shard:dev
  etcdEndpoints: [{etcd}]
statusIntervalSeconds: 2
logFormat: text
routing:
  mode: {mode}
  host: \"{{namespace}}.{DOMAIN}\"
  scheme: http
  gateway:
    parentRefs: [{{name: {GATEWAY}, namespace: {GATEWAY_NAMESPACE}}}]
  ingress:
    className: traefik
",
                etcd = etcd.endpoint()
            ),
        )
        .unwrap();
        let values = values.display().to_string();
        let (ok, out) = plane.helm(&[
            "install",
            "boxoffice",
            "charts/boxoffice",
            "-n",
            SYSTEM,
            "-f",
            &values,
            "--wait",
            "--timeout",
            "3m",
        ]);
        let cluster = Self {
            plane,
            client,
            runner,
            traefik,
            _etcd: etcd,
        };
        assert!(ok, "{}", cluster.fail(&format!("helm install: {out}")));
        // NOTES.txt says where Shows will be reachable.
        assert!(
            out.contains(&format!("http://{{namespace}}.{DOMAIN}/v1/shows/<show>")),
            "NOTES: {out}"
        );
        Some(cluster)
    }

    fn fail(&self, what: &str) -> String {
        let objects = self
            .plane
            .kubectl_run(&[
                "get",
                "pods,shows,httproutes,ingresses,gateways",
                "-A",
                "-o",
                "wide",
            ])
            .map(|(_, o, e)| format!("{o}{e}"))
            .unwrap_or_default();
        format!(
            "{what}\n{}\n--- traefik ---\n{}\n{objects}",
            self.runner.logs("boxoffice"),
            self.traefik.log_tail(6000)
        )
    }

    fn apply(&self, target: &Target, mode: Option<&str>) {
        let (ok, _, err) = self
            .plane
            .kubectl_stdin(
                &["apply", "-n", target.ns, "-f", "-"],
                &target.manifest(mode),
            )
            .unwrap();
        assert!(ok, "{err}");
    }

    async fn show(&self, t: &Target) -> Option<Show> {
        Api::<Show>::namespaced(self.client.clone(), t.ns)
            .get_opt(t.name)
            .await
            .ok()
            .flatten()
    }

    /// Waits until the Show is Ready and its Routed condition has `routed`/`reason`.
    async fn wait_routed(&self, t: &Target, routed: &str, reason: &str) -> Show {
        let what = format!("{}/{} Ready with Routed={routed} ({reason})", t.ns, t.name);
        wait_for(&what, Duration::from_secs(150), || async move {
            Ok(self.show(t).await.filter(|s| {
                let conditions = s
                    .status
                    .as_ref()
                    .map(|s| s.conditions.clone())
                    .unwrap_or_default();
                let has = |ty: &str, st: &str, re: Option<&str>| {
                    conditions.iter().any(|c| {
                        c.type_ == ty && c.status == st && re.is_none_or(|r| c.reason == r)
                    })
                };
                has("Ready", "True", None) && has("Routed", routed, Some(reason))
            }))
        })
        .await
        .unwrap_or_else(|e| panic!("{}", self.fail(&format!("{e:#}"))))
    }

    /// Pod names of the Show's shard (what the leader header may name).
    async fn pods(&self, t: &Target) -> BTreeSet<String> {
        Api::<Pod>::namespaced(self.client.clone(), t.ns)
            .list(&ListParams::default().labels(&format!("boxoffice.dev/show={}", t.name)))
            .await
            .map(|l| l.items.iter().map(|p| p.name_any()).collect())
            .unwrap_or_default()
    }

    fn http(&self) -> reqwest::Client {
        let hosts: Vec<String> = ["east", "west"]
            .iter()
            .map(|ns| format!("{ns}.{DOMAIN}"))
            .collect();
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        self.traefik.client(&hosts)
    }

    /// Waits until GET of the Show through the gateway answers its own title.
    async fn wait_served(&self, t: &Target) {
        let http = self.http();
        let what = format!("{}/{} served through the gateway", t.ns, t.name);
        wait_for(&what, Duration::from_secs(60), || {
            let http = http.clone();
            async move {
                let r = http
                    .get(t.base())
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                let Ok(r) = r else { return Ok(None) };
                if !r.status().is_success() {
                    return Ok(None);
                }
                let body: Value = r.json().await.unwrap_or_default();
                Ok((body["title"] == t.title).then_some(()))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{}", self.fail(&format!("{e:#}"))));
    }
}

/// An answer through the gateway that the right Show's shard gave: the leader header
/// names one of its pods (another show's pods have other names: another namespace, or
/// another Show's Deployment).
fn answered_by(r: &reqwest::Response, pods: &BTreeSet<String>) -> Result<(), String> {
    let leader = r
        .headers()
        .get(LEADER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match leader {
        Some(l) if pods.contains(&l) => Ok(()),
        Some(l) => Err(format!("answered by leader {l}, not one of {pods:?}")),
        None => Err(format!(
            "{} without {LEADER_HEADER}: not a shard's answer",
            r.status()
        )),
    }
}

/// Every operation of the OpenAPI document, through the gateway, with the flows a
/// buyer runs: the seat map, a live seat stream that delivers the hold's event, hold,
/// read, extend, release, confirm, my bookings, booking, its history and stream,
/// check-in, cancel; checkout and the payment callback (a free show refuses them, but
/// its leader must be the one refusing).
async fn every_operation(c: &Cluster, t: &Target) {
    let http = c.http();
    let pods = c.pods(t).await;
    let base = t.base();
    let user = format!("fan-{}", t.ns);
    let auth = token(&user, &[]);
    let staff = token("door", &["staff"]);
    let mut seen = BTreeSet::new();
    let check = |op: &str, r: &reqwest::Response, seen: &mut BTreeSet<String>| {
        if let Err(e) = answered_by(r, &pods) {
            panic!("{}", c.fail(&format!("{} {op}: {e}", t.base())));
        }
        seen.insert(op.to_string());
    };

    let r = http.get(&base).send().await.unwrap();
    check("getShow", &r, &mut seen);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["title"], t.title, "another show answered {base}");
    let r = http
        .get(format!("{base}/availability"))
        .send()
        .await
        .unwrap();
    check("getAvailability", &r, &mut seen);
    assert!(r.status().is_success());
    let r = http.get(format!("{base}/seats")).send().await.unwrap();
    check("getSeatMap", &r, &mut seen);
    assert!(r.status().is_success());

    // The seat stream, through the gateway, unbuffered: the hold below arrives on it.
    let events = http.get(format!("{base}/events")).send().await.unwrap();
    check("streamSeatChanges", &events, &mut seen);
    assert!(events.status().is_success());
    let mut stream = events.bytes_stream();

    let seat = format!("floor:B:{}", if t.ns == "east" { 3 } else { 7 });
    let r = http
        .post(format!("{base}/holds"))
        .bearer_auth(&auth)
        .json(&json!({"seats": [seat]}))
        .send()
        .await
        .unwrap();
    check("createHold", &r, &mut seen);
    assert_eq!(r.status(), 201, "{base} hold");
    let hold: Value = r.json().await.unwrap();
    let id = hold["id"].as_str().unwrap().to_string();

    let mut text = String::new();
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap_or_default()));
            if text.contains("event: seats") && text.contains(&seat) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(
        got,
        "{}",
        c.fail(&format!(
            "no seat event for {seat} through the gateway: {text}"
        ))
    );
    drop(stream);

    for (op, method, path) in [
        ("getHold", "GET", format!("/holds/{id}")),
        ("extendHold", "POST", format!("/holds/{id}/extend")),
        ("streamHold", "GET", format!("/holds/{id}/events")),
        ("checkoutHold", "POST", format!("/holds/{id}/checkout")),
        ("paymentCallback", "POST", "/payments/sim/callback".into()),
    ] {
        let r = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(&auth)
            .header("content-type", "application/json")
            .body("{}")
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        check(op, &r, &mut seen);
        if op != "checkoutHold" && op != "paymentCallback" {
            assert!(r.status().is_success(), "{op}: {}", r.status());
        }
    }

    let r = http
        .post(format!("{base}/holds/{id}/confirm"))
        .bearer_auth(&auth)
        .json(&json!({"paymentReference": format!("psp-{}", t.ns)}))
        .send()
        .await
        .unwrap();
    check("confirmHold", &r, &mut seen);
    assert_eq!(r.status(), 201);
    let booking: Value = r.json().await.unwrap();
    let reference = booking["reference"].as_str().unwrap().to_string();
    let ticket = booking["ticket"].as_str().unwrap().to_string();

    for (op, path) in [
        ("listMyBookings", "/bookings".to_string()),
        ("getBooking", format!("/bookings/{reference}")),
        ("bookingHistory", format!("/bookings/{reference}/history")),
        ("streamBooking", format!("/bookings/{reference}/events")),
    ] {
        // The audit trail is for staff.
        let who = if op == "bookingHistory" {
            &staff
        } else {
            &auth
        };
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth(who)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        check(op, &r, &mut seen);
        assert!(r.status().is_success(), "{op}: {}", r.status());
        if op == "listMyBookings" {
            let list: Value = r.json().await.unwrap();
            assert!(list.to_string().contains(&reference), "{list}");
        }
    }
    let r = http
        .post(format!("{base}/bookings/{reference}/check-in"))
        .bearer_auth(&staff)
        .json(&json!({"ticket": ticket}))
        .send()
        .await
        .unwrap();
    check("checkInBooking", &r, &mut seen);
    assert!(r.status().is_success(), "check-in: {}", r.status());

    // A second hold: released; a third: confirmed and cancelled.
    let mut holds = Vec::new();
    for n in [5, 6] {
        let r = http
            .post(format!("{base}/holds"))
            .bearer_auth(&auth)
            .json(&json!({"seats": [format!("floor:C:{n}")]}))
            .send()
            .await
            .unwrap();
        check("createHold", &r, &mut seen);
        assert_eq!(r.status(), 201);
        holds.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let r = http
        .delete(format!("{base}/holds/{}", holds[0]))
        .bearer_auth(&auth)
        .send()
        .await
        .unwrap();
    check("releaseHold", &r, &mut seen);
    assert!(r.status().is_success());
    let r = http
        .post(format!("{base}/holds/{}/confirm", holds[1]))
        .bearer_auth(&auth)
        .json(&json!({"paymentReference": "psp-cancel"}))
        .send()
        .await
        .unwrap();
    let cancel_ref = r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http
        .post(format!("{base}/bookings/{cancel_ref}/cancel"))
        .bearer_auth(&auth)
        .send()
        .await
        .unwrap();
    check("cancelBooking", &r, &mut seen);
    assert!(r.status().is_success(), "cancel: {}", r.status());

    // The booking events (staff): the feed holds this show's booking and no other's.
    let r = http
        .get(format!("{base}/events/feed?after=0&limit=100"))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap();
    check("eventFeed", &r, &mut seen);
    assert!(r.status().is_success(), "feed: {}", r.status());
    let feed = r.text().await.unwrap();
    assert!(feed.contains(&reference), "{base} feed: {feed}");
    for (op, method, path) in [
        ("eventStream", "GET", "/events/stream".to_string()),
        ("listDeadLetters", "GET", "/events/dead-letters".into()),
        (
            "replayDeadLetter",
            "POST",
            "/events/dead-letters/1/replay".into(),
        ),
    ] {
        let r = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(&staff)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        check(op, &r, &mut seen);
        // No sink is configured here, so there is no dead letter to replay (404).
        if op != "replayDeadLetter" {
            assert!(r.status().is_success(), "{op}: {}", r.status());
        }
    }

    // Every operation the contract lists was sent.
    let document: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("booking-shard/openapi.json")).unwrap(),
    )
    .unwrap();
    let all: BTreeSet<String> = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| p.as_object().unwrap().values())
        .filter_map(|o| o["operationId"].as_str().map(String::from))
        .collect();
    let missing: Vec<&String> = all.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "operations not sent through the gateway: {missing:?}"
    );
}

/// kill -9 of the Show's leader: requests through the gateway succeed again after the
/// failover, and none is answered by another show.
async fn kill_leader(c: &Cluster, t: &Target) {
    let leader = c
        .show(t)
        .await
        .and_then(|s| s.status?.leader)
        .expect("leader");
    let pods = c.pods(t).await;
    let killed = c
        .runner
        .signal_pod(t.ns, &leader, nix::sys::signal::Signal::SIGKILL)
        .expect("kill -9");
    assert!(killed >= 1, "no process of {leader} found");
    let http = c.http();
    let auth = token(&format!("after-{}", t.ns), &[]);
    let (mut failed, mut n) = (0u32, 0u32);
    // What the unanswered attempts got, for the log (gateway 502s while the dead
    // endpoint is listed, the standby's 503 + Retry-After, timeouts).
    let mut outcomes: std::collections::BTreeMap<String, u32> = Default::default();
    let recovered = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            n += 1;
            let r = http
                .post(format!("{}/holds", t.base()))
                .bearer_auth(&auth)
                .json(&json!({"best": {"quantity": 1}}))
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            match r {
                Ok(r) if r.headers().contains_key(LEADER_HEADER) || r.status().is_success() => {
                    // Whatever a shard answered, it was this show's (the pods may have
                    // been replaced meanwhile: take the current ones too).
                    let mut now = c.pods(t).await;
                    now.extend(pods.iter().cloned());
                    if let Err(e) = answered_by(&r, &now) {
                        panic!("{}", c.fail(&format!("during the failover: {e}")));
                    }
                    // The runner restarts the killed container in the same pod, which
                    // may win the election again: any hold granted after the kill counts.
                    if r.status() == 201 {
                        return;
                    }
                    failed += u32::from(!r.status().is_success());
                    *outcomes
                        .entry(format!("{} from a shard", r.status().as_u16()))
                        .or_default() += 1;
                }
                Ok(r) => {
                    let retry = if r.headers().contains_key("retry-after") {
                        " + Retry-After"
                    } else {
                        ""
                    };
                    *outcomes
                        .entry(format!("{}{retry}", r.status().as_u16()))
                        .or_default() += 1;
                    failed += 1;
                }
                Err(e) => {
                    let kind = if e.is_timeout() { "timeout" } else { "error" };
                    *outcomes.entry(kind.into()).or_default() += 1;
                    failed += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    assert!(
        recovered.is_ok(),
        "{}",
        c.fail("no successful hold after the failover")
    );
    // The standby stays in the Service through the election (its readiness grace) and
    // answers 503 + Retry-After itself: the gateway never says the show is not there
    // (404) or has no endpoint at all (its own bare 503).
    for gateway_said in ["404", "503"] {
        assert!(
            !outcomes.contains_key(gateway_said),
            "{}",
            c.fail(&format!(
                "the gateway answered {gateway_said} during the failover: {outcomes:?}"
            ))
        );
    }
    println!(
        "{}/{}: kill -9 {leader}: {n} attempts, {failed} unanswered during the failover: {outcomes:?}",
        t.ns, t.name
    );
}

/// Deleting a Show removes its route: its URL answers 404 from the gateway (not from a
/// shard), the others are still served.
async fn delete_show(c: &Cluster, gone: &Target, others: &[&Target]) {
    let (ok, _, err) = c
        .plane
        .kubectl_run(&[
            "delete",
            "show",
            gone.name,
            "-n",
            gone.ns,
            "--wait=true",
            "--timeout=90s",
        ])
        .unwrap();
    assert!(ok, "{}", c.fail(&format!("delete: {err}")));
    let http = c.http();
    let what = format!("{} to answer 404 from the gateway", gone.base());
    wait_for(&what, Duration::from_secs(90), || {
        let http = http.clone();
        async move {
            let r = http
                .get(gone.base())
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            Ok(r.ok()
                .filter(|r| r.status() == 404 && !r.headers().contains_key(LEADER_HEADER))
                .map(|_| ()))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{}", c.fail(&format!("{e:#}"))));
    for t in others {
        let r = http.get(t.base()).send().await.unwrap();
        assert!(
            r.status().is_success(),
            "{} after deleting {}",
            t.base(),
            gone.base()
        );
        answered_by(&r, &c.pods(t).await).unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["title"], t.title);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_routes_three_shows_through_one_listener() {
    let Some(c) = Cluster::start("gateway", true).await else {
        return;
    };
    for t in [&EAST_CLUB, &WEST_CLUB, &EAST_LATE] {
        c.apply(t, None);
    }
    for t in [&EAST_CLUB, &WEST_CLUB, &EAST_LATE] {
        let show = c.wait_routed(t, "True", "Accepted").await;
        assert_eq!(show.status.and_then(|s| s.url), Some(t.base()));
        c.wait_served(t).await;
    }
    // `kubectl get shows` shows the Routed column.
    let (ok, out, err) = c
        .plane
        .kubectl_run(&["get", "shows", "-n", "east"])
        .unwrap();
    assert!(ok, "{err}");
    assert!(
        out.lines().next().unwrap_or_default().contains("ROUTED"),
        "{out}"
    );
    assert!(out.lines().skip(1).all(|l| l.contains("True")), "{out}");

    for t in [&EAST_CLUB, &WEST_CLUB, &EAST_LATE] {
        every_operation(&c, t).await;
    }
    kill_leader(&c, &WEST_CLUB).await;
    c.wait_served(&EAST_CLUB).await;
    delete_show(&c, &EAST_CLUB, &[&WEST_CLUB, &EAST_LATE]).await;
    let routes = c
        .plane
        .kubectl_run(&["get", "httproutes", "-n", "east", "-o", "name"])
        .unwrap()
        .1;
    assert!(
        !routes.contains("club-night"),
        "the deleted Show's HTTPRoute remains: {routes}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_mode_and_gateway_api_installed_later() {
    let Some(c) = Cluster::start("ingress", false).await else {
        return;
    };
    c.apply(&EAST_CLUB, None);
    c.apply(&WEST_CLUB, None);
    c.apply(&EAST_LATE, Some("gateway"));
    // No Gateway API: the gateway-mode Show is Ready, in-cluster, and says why it is not
    // routed; the Ingress-mode Shows are routed by Traefik's Ingress provider.
    let late = c
        .wait_routed(&EAST_LATE, "False", "GatewayAPIMissing")
        .await;
    assert!(
        late.status
            .and_then(|s| s.endpoint)
            .is_some_and(|e| e.contains(".east.svc"))
    );
    for t in [&EAST_CLUB, &WEST_CLUB] {
        let show = c.wait_routed(t, "True", "IngressAdmitted").await;
        assert_eq!(show.status.and_then(|s| s.url), Some(t.base()));
        c.wait_served(t).await;
        every_operation(&c, t).await;
    }
    let r = c.http().get(EAST_LATE.base()).send().await.unwrap();
    assert_eq!(
        r.status(),
        404,
        "an unrouted Show answered through the gateway"
    );

    // Install the CRDs and a Gateway: the Show becomes routed, nothing restarted.
    let operator_pods = |c: &Cluster| {
        let client = c.client.clone();
        async move {
            Api::<Pod>::namespaced(client, SYSTEM)
                .list(&ListParams::default().labels("app.kubernetes.io/name=boxoffice-operator"))
                .await
                .unwrap()
                .items
                .iter()
                .map(|p| {
                    (
                        p.name_any(),
                        p.status
                            .as_ref()
                            .and_then(|s| s.container_statuses.clone())
                            .unwrap_or_default()
                            .iter()
                            .map(|s| s.restart_count)
                            .sum::<i32>(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let before = operator_pods(&c).await;
    install_gateway_api(&c.plane)
        .await
        .expect("Gateway API CRDs");
    create_gateway(&c.plane, c.traefik.port(), DOMAIN).expect("gateway");
    c.wait_routed(&EAST_LATE, "True", "Accepted").await;
    c.wait_served(&EAST_LATE).await;
    every_operation(&c, &EAST_LATE).await;
    assert_eq!(
        operator_pods(&c).await,
        before,
        "the operator was restarted"
    );

    kill_leader(&c, &EAST_CLUB).await;
    delete_show(&c, &WEST_CLUB, &[&EAST_CLUB, &EAST_LATE]).await;
    let ingresses = c
        .plane
        .kubectl_run(&["get", "ingresses", "-n", "west", "-o", "name"])
        .unwrap()
        .1;
    assert!(
        !ingresses.contains("club-night"),
        "the deleted Show's Ingress remains: {ingresses}"
    );
}
