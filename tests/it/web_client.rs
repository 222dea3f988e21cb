//! The example web client (examples/web-client) in headless Chromium, driven
//! through chromedriver: the page on its own origin, the shipped gateway.yaml in
//! front of the demo services, every call cross-origin through the gateway.
//!
//! Without Chromium and chromedriver the test says it is skipped (on stderr);
//! with `FINGATE_REQUIRE_BROWSER=1` (set by `scripts/test` once it installed
//! them) their absence fails it instead.

use crate::demo::{demo_config, demo_services};
use crate::harness::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var_os("FINGATE_REQUIRE_BROWSER").is_none(),
            "FINGATE_REQUIRE_BROWSER is set but {CHROMIUM} / {CHROMEDRIVER} are missing"
        );
        eprintln!(
            "SKIPPED web_client: {CHROMIUM} and {CHROMEDRIVER} are not installed \
             (apt-get install chromium chromium-driver); the browser test did not run"
        );
    }
    present
}

/// A process started in a process group of its own, killed with the whole group
/// when dropped: chromedriver's Chromium processes outlive chromedriver itself
/// when the test fails before the browser session is closed.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `services-mock web` on `port` serving the client, which calls `gateway` and
/// asks for `session`-long tokens.
fn web_server(port: u16, gateway: &str, session: &str) -> Mock {
    let dir = repo().join("examples/web-client");
    Mock::start(
        &[
            "web",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--dir",
            dir.to_str().unwrap(),
            "--gateway",
            gateway,
            "--session",
            session,
        ],
        1,
    )
}

fn chromedriver() -> (Killed, u16) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    wait_for(Duration::from_secs(10), "chromedriver", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (Killed(child), port)
}

async fn browser(port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect to chromedriver")
}

/// The page's view, read and waited on through the DOM.
struct Page<'a> {
    c: &'a Client,
}

impl Page<'_> {
    async fn text(&self, css: &str) -> String {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits until the text of `css` satisfies `ok`; returns it.
    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            if let Ok(e) = self.c.find(Locator::Css(css)).await {
                if let Ok(t) = e.text().await {
                    if ok(&t) {
                        return t;
                    }
                    if started.elapsed() > Duration::from_secs(10) {
                        panic!("{what}: {css} reads {t:?}");
                    }
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what}: {css} not found"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn fill(&self, css: &str, value: &str) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn count(&self, css: &str) -> usize {
        self.c.find_all(Locator::Css(css)).await.unwrap().len()
    }

    async fn visible(&self, css: &str) -> bool {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.is_displayed().await.unwrap()
    }

    async fn login(&self, username: &str, password: &str) {
        self.wait_text("#login-title", "the login form", |t| t == "Log in")
            .await;
        self.fill("#login-form [name=username]", username).await;
        self.fill("#login-form [name=password]", password).await;
        self.click("#login-form button[type=submit]").await;
        self.wait_text("#who-name", "logged in", |t| t == username)
            .await;
    }

    async fn screenshot(&self, width: u32, height: u32, file: &Path) {
        self.c.set_window_size(width, height).await.unwrap();
        self.c
            .execute("window.scrollTo(0, 0)", vec![])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(file, png).unwrap();
    }
}

/// Where the test leaves its screenshots (two are copied into docs/).
fn screenshot_dir() -> PathBuf {
    let dir = repo().join("target/web-client");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_person_logs_in_reads_pays_retries_quotes_and_meets_every_error() {
    if !browser_available() {
        return;
    }
    let services = demo_services();
    // The gateway must allow the page's origins: the normal one and one whose
    // sessions last 2 s (for the expiry part). Tokens are checked without leeway,
    // and payments are limited to 3 a minute so the test meets the limit soon.
    let web_port = free_port();
    let short_port = free_port();
    let origins = format!("[\"http://127.0.0.1:{web_port}\", \"http://127.0.0.1:{short_port}\"]");
    let yaml = demo_config(&services, free_port())
        .replace(
            "origins: [\"${FINGATE_WEB_ORIGIN:-http://127.0.0.1:8090}\"]",
            &format!("origins: {origins}"),
        )
        .replace("leeway: 30s", "leeway: 0s")
        .replace(
            "rate_limit: { key: consumer, limit: 10, per: 1m }",
            "rate_limit: { key: consumer, limit: 3, per: 1m }",
        );
    assert!(yaml.contains(&origins) && yaml.contains("limit: 3,"));
    let gw = Gateway::start_with_args(&yaml, &["--demo"]);
    let gateway = format!("http://{}", gw.addr);
    let web = web_server(web_port, &gateway, "15m");
    let short = web_server(short_port, &gateway, "2s");
    let (_driver, driver_port) = chromedriver();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = browser(driver_port).await;
        let page = Page { c: &c };
        c.goto(&format!("http://{}/", web.addr("web")))
            .await
            .unwrap();
        page.login("mobile-app", "mobile-demo-pass").await;

        // The statement, paged with next_cursor; amounts from minor units.
        page.click("#statement-form button").await;
        page.wait_text("#statement-balance", "the statement", |t| {
            t.contains("10 transactions")
        })
        .await;
        assert!(page.visible("#statement-more").await);
        let first = page.text("#statement-table tbody tr:first-child").await;
        assert!(
            first.contains("2,500.00") && first.contains("Opening deposit"),
            "{first}"
        );
        page.click("#statement-more").await;
        page.wait_text("#statement-balance", "the second page", |t| {
            t.contains("20 transactions")
        })
        .await;

        // A payment, then its retry with the same key: replayed by the gateway,
        // so the payments service sees one request.
        let before = Mock::requests(services.addr("payments"));
        page.fill("#pay-form [name=amount]", "12.34").await;
        page.click("#pay-form button[type=submit]").await;
        let paid = page
            .wait_text("#pay-result", "the payment", |t| t.contains("PAY-"))
            .await;
        assert!(
            paid.contains("€12.34") && !paid.contains("replayed"),
            "{paid}"
        );
        assert!(page.visible("#pay-retry").await);
        page.click("#pay-retry").await;
        let replay = page
            .wait_text("#pay-result", "the replay", |t| t.contains("replayed"))
            .await;
        let id = |t: &str| t.split_whitespace().nth(1).map(str::to_owned);
        assert_eq!(id(&replay), id(&paid), "the replay is the same payment");
        assert_eq!(
            Mock::requests(services.addr("payments")) - before,
            1,
            "the retry reached the payments service"
        );
        // One ledger entry for the payment and its retry, checked at the services
        // (the statement of the paying account, read from an accounts instance).
        let statement = get(
            services.addr("accounts-1"),
            "/accounts/ACC-1001/statement?limit=500",
        )
        .json();
        let entries = statement["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["amount"] == -1234)
            .count();
        assert_eq!(
            entries, 1,
            "the payment and its retry made {entries} ledger entries"
        );

        // 422: the gateway's schema check, shown beside the field.
        page.fill("#pay-form [name=amount]", "0").await;
        page.click("#pay-form button[type=submit]").await;
        let field = page
            .wait_text("[data-for='/amount']", "the field error", |t| !t.is_empty())
            .await;
        assert!(field.contains("minimum"), "{field}");

        // 429: the fourth payment call this minute; a countdown, the button waits.
        page.fill("#pay-form [name=amount]", "1.00").await;
        page.click("#pay-form button[type=submit]").await;
        let wait = page
            .wait_text("[data-for=pay]", "the countdown", |t| {
                t.starts_with("Too many requests")
            })
            .await;
        let secs: u32 = wait
            .split_whitespace()
            .rev()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&secs), "{wait}");
        let disabled = c
            .find(Locator::Css("#pay-form button[type=submit]"))
            .await
            .unwrap()
            .attr("disabled")
            .await
            .unwrap();
        assert!(disabled.is_some(), "Pay is enabled during the countdown");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let later = page.text("[data-for=pay]").await;
        assert_ne!(later, wait, "the countdown does not count");

        // A loan quote with its schedule.
        page.click("#quote-form button[type=submit]").await;
        page.wait_text("#quote-summary", "the quote", |t| {
            t.contains("12 payments of €862.96")
        })
        .await;
        assert_eq!(page.count("#quote-table tbody tr").await, 12);

        let shots = screenshot_dir();
        page.screenshot(1280, 800, &shots.join("desktop.png")).await;
        page.screenshot(390, 844, &shots.join("phone.png")).await;
        // At phone width nothing overflows sideways.
        let overflow = c
            .execute(
                "return document.documentElement.scrollWidth > window.innerWidth",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            overflow,
            serde_json::json!(false),
            "the page scrolls sideways at 390 px"
        );
        c.set_window_size(1280, 800).await.unwrap();

        // 5xx: the request id to quote to support.
        set_faults(services.addr("loans"), r#"{"force_status": 503}"#);
        page.click("#quote-form button[type=submit]").await;
        let failed = page
            .wait_text("[data-for=quote]", "the 5xx message", |t| {
                t.contains("request id")
            })
            .await;
        let quoted = page.text("[data-for=quote] .request-id").await;
        assert_eq!(quoted.len(), 36, "{failed}");
        wait_for(
            Duration::from_secs(2),
            "the request id in the access log",
            || {
                gw.log()
                    .contains(&format!("\"request_id\":\"{quoted}\""))
                    .then_some(())
            },
        );
        set_faults(services.addr("loans"), r#"{"force_status": null}"#);

        // 403: a login whose token lacks payments:write.
        page.click("#logout").await;
        page.login("web-app", "web-demo-pass").await;
        page.click("#pay-form button[type=submit]").await;
        page.wait_text("[data-for=pay]", "the 403 message", |t| {
            t.contains("not allowed")
        })
        .await;

        // 401 after the token expires: asked to log in again.
        c.goto(&format!("http://{}/", short.addr("web")))
            .await
            .unwrap();
        page.login("mobile-app", "mobile-demo-pass").await;
        // `exp` is in whole seconds: a 2 s token is surely past it after 3.
        tokio::time::sleep(Duration::from_millis(3100)).await;
        page.click("#statement-form button").await;
        page.wait_text("#login-note", "the expiry note", |t| t.contains("expired"))
            .await;
        assert!(page.visible("#login-view").await && !page.visible("#app-view").await);

        c.close().await.unwrap();
    });
}
