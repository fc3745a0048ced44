//! The live seat-map page (`/seatmap`) in a real headless browser: Debian's Chromium
//! driven through chromedriver (both installed by scripts/tools.sh) with fantoccini.
//! One page holds a seat with its token and another page, without a token, on the
//! other replica, sees it turn held, then sold; a release turns a seat back. Against
//! real shards on etcd and PostgreSQL.
//!
//! `stadium_screenshot` (ignored; run by hand) takes the README's picture:
//! `BOXOFFICE_SCREENSHOT=docs/img/seatmap-stadium.png cargo test -p booking-shard
//! --test page -- --ignored stadium_screenshot`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use boxoffice_e2e::{Process, free_port, token, wait_for};
use common::{Cluster, show_yaml};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    _process: Process,
    url: String,
}

impl Driver {
    async fn start(log_dir: &std::path::Path) -> Driver {
        let port = free_port().expect("port");
        let binary = std::env::var_os("BOXOFFICE_CHROMEDRIVER").unwrap_or("chromedriver".into());
        let mut command = Command::new(&binary);
        command.arg(format!("--port={port}"));
        let process = Process::spawn("chromedriver", command, log_dir)
            .expect("chromedriver runs (scripts/tools.sh installs Debian's chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_for("chromedriver", Duration::from_secs(20), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                Ok(http
                    .get(format!("{url}/status"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                    .then_some(()))
            }
        })
        .await
        .expect("chromedriver answers");
        Driver {
            _process: process,
            url,
        }
    }

    /// A new headless Chromium window.
    async fn browser(&self, width: u32, height: u32) -> Client {
        let chromium: PathBuf = std::env::var_os("BOXOFFICE_CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/usr/bin/chromium".into());
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run",
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        // chromedriver is on loopback: plain HTTP.
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a browser session")
    }
}

/// Waits until the seat `id` is drawn in state `state` (A, H, M for mine, S).
async fn seat_in(page: &Client, id: &str, state: &str) {
    page.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&format!(
            "[data-seat='{id}'][data-state='{state}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("seat {id} never became {state}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_held_in_one_page_turns_held_in_another() {
    let cluster = Cluster::start(&show_yaml("page", 3, 10, Some(30), 4, None), 2, 3, None).await;
    let leader = cluster.leader().await;
    let standby = 1 - leader;

    // The page's security headers.
    let r = cluster
        .http
        .get(format!("{}/seatmap", cluster.replicas[standby].url))
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");

    let driver = Driver::start(cluster.dir.path()).await;
    let buyer = driver.browser(1200, 900).await;
    let watcher = driver.browser(1200, 900).await;
    let ann = token("ann", &[]);
    buyer
        .goto(&format!(
            "{}/seatmap#token={ann}",
            cluster.replicas[leader].url
        ))
        .await
        .expect("buyer page");
    watcher
        .goto(&format!("{}/seatmap", cluster.replicas[standby].url))
        .await
        .expect("watcher page");
    seat_in(&buyer, "main:A:3", "A").await;
    seat_in(&watcher, "main:A:3", "A").await;
    // The token left the address bar (and so history and any later link) at once.
    let href = buyer.current_url().await.expect("url").to_string();
    assert!(!href.contains(&ann) && !href.contains("token"), "{href}");

    // Hold a seat by clicking it: mine in the buyer's page, held in the watcher's.
    click(&buyer, "[data-seat='main:A:3']").await;
    seat_in(&buyer, "main:A:3", "M").await;
    seat_in(&watcher, "main:A:3", "H").await;
    let (s, seats) = cluster.get(leader, "/seats", "x").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        seats["sections"][0]["rows"][0]["seats"], "AAHAAAAAAA",
        "{seats}"
    );

    // Confirm it: sold in both.
    click(&buyer, "[data-action='confirm']").await;
    seat_in(&buyer, "main:A:3", "S").await;
    seat_in(&watcher, "main:A:3", "S").await;

    // Hold another and release it: available again in both.
    click(&buyer, "[data-seat='main:B:5']").await;
    seat_in(&watcher, "main:B:5", "H").await;
    click(&buyer, "[data-action='release']").await;
    seat_in(&watcher, "main:B:5", "A").await;
    seat_in(&buyer, "main:B:5", "A").await;

    // The watcher has no token: clicking holds nothing and says so.
    click(&watcher, "[data-seat='main:C:1']").await;
    wait_for("the watcher's message", Duration::from_secs(10), || {
        let watcher = watcher.clone();
        // Found again on every look: the page may have drawn it anew.
        async move {
            let message = watcher.find(Locator::Css("#message")).await?;
            Ok(message.text().await?.contains("token").then_some(()))
        }
    })
    .await
    .expect("a token is asked for");
    let (_, seats) = cluster.get(leader, "/seats", "x").await;
    assert_eq!(
        seats["sections"][0]["rows"][2]["seats"], "AAAAAAAAAA",
        "{seats}"
    );

    buyer.close().await.expect("close");
    watcher.close().await.expect("close");
}

/// Clicks what `css` finds once it is there, finding it again when the page drew it
/// anew between the find and the click (the live page re-renders on stream events:
/// WebDriver's "stale element reference"; the click did not happen then).
async fn click(page: &Client, css: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let clicked = match page
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element.click().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match clicked {
            Ok(()) => return,
            Err(e)
                if format!("{e:?}").contains("StaleElementReference")
                    && std::time::Instant::now() < deadline => {}
            Err(e) => panic!("clicking {css}: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes the README's screenshot; run by hand with BOXOFFICE_SCREENSHOT"]
async fn stadium_screenshot() {
    let out = std::env::var("BOXOFFICE_SCREENSHOT").expect("BOXOFFICE_SCREENSHOT=<png path>");
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/shows/stadium.yaml"
    ))
    .expect("stadium.yaml")
    .replace("namespace: default", "namespace: tests");
    let cluster = Cluster::start(&yaml, 1, 3, None).await;
    // Some sales and holds, spread over the sections, so the picture has all colours.
    let mut x: u32 = 20261123;
    let mut next = |n: u32| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (x >> 8) % n
    };
    for i in 0..400u32 {
        let (section, row) = if next(2) == 0 {
            let row = (b'A' + next(26) as u8) as char;
            (format!("l{}", 101 + next(20)), row.to_string())
        } else {
            (format!("u{}", 201 + next(30)), (1 + next(36)).to_string())
        };
        let first = 1 + next(45);
        let seats: Vec<String> = (first..first + 1 + next(5))
            .map(|n| format!("{section}:{row}:{n}"))
            .collect();
        let user = format!("fan-{i}");
        let (s, hold) = cluster
            .post(0, "/holds", &user, json!({ "seats": seats }))
            .await;
        if s == StatusCode::CREATED && next(3) > 0 {
            let id = hold["id"].as_str().unwrap_or_default();
            cluster
                .post(
                    0,
                    &format!("/holds/{id}/confirm"),
                    &user,
                    json!({"paymentReference": format!("p-{i}")}),
                )
                .await;
        }
    }
    let driver = Driver::start(cluster.dir.path()).await;
    let page = driver.browser(1600, 1000).await;
    page.goto(&format!(
        "{}/seatmap#token={}",
        cluster.replicas[0].url,
        token("visitor", &[])
    ))
    .await
    .expect("page");
    page.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("[data-state='S']"))
        .await
        .expect("drawn");
    let png = page.screenshot().await.expect("screenshot");
    std::fs::write(&out, png).expect("write the screenshot");
    page.close().await.expect("close");
}
