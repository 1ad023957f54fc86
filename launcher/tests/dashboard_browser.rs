//! The dashboard page in real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which scripts/test installs), driven over WebDriver (fantoccini): a 4-worker local job
//! appears, its workers table fills to 4 rows and it reaches COMPLETED without a reload; then,
//! through a prefix-stripping reverse proxy like `kubectl proxy`, a second job appears live and
//! the page's kill button ends it KILLED (and it really is). Screenshots go to
//! `target/dashboard-screenshots/`.

mod common;
mod dashboard_support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::dash::{free_port, Dash, TOKEN};
use common::*;
use dashboard_support::proxy::{PrefixProxy, KUBECTL_PROXY_PREFIX};
use fantoccini::{Client, ClientBuilder, Locator};

const LONG: Duration = Duration::from_secs(90);
/// How long the page may take to show a change.
const PAGE: Duration = Duration::from_secs(30);

fn waiting_job(root: &Path, name: &str, workers: u32, go: &Path) -> PathBuf {
    shell_job(
        root,
        &format!("name: {name}\nworkers: {workers}\ncommand: [./run.sh]\n"),
        &format!(
            "#!/usr/bin/env bash\nfor i in $(seq 900); do [ -f '{}' ] && exit 0; sleep 0.1; done\nexit 7\n",
            go.display()
        ),
    )
}

/// chromedriver on a free loopback port, in a process group of its own with the browsers it
/// starts; the whole group is killed on drop, so a failed test leaves no Chromium behind.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let exe = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("chromedriver is missing: apt-get install chromium chromium-driver (scripts/test does)");
        let port = free_port();
        let child = Command::new(exe)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while common::dash::try_request("GET", &format!("{url}/status")).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn shots_dir() -> PathBuf {
    let d = repo().join("target").join("dashboard-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

/// Texts of the elements matching `css`.
async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap_or_default() {
        out.push(e.text().await.unwrap_or_default());
    }
    out
}

/// Waits until the texts of `css` satisfy `ok`; panics with a screenshot name and the last
/// texts after [`PAGE`].
async fn wait_texts(
    c: &Client,
    css: &str,
    what: &str,
    ok: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let start = Instant::now();
    loop {
        let t = texts(c, css).await;
        if ok(&t) {
            return t;
        }
        if start.elapsed() > PAGE {
            shot(c, &format!("failed-{}", what.replace(' ', "-"))).await;
            panic!("the page did not show {what} within {PAGE:?}; '{css}' shows {t:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(c: &Client, css: &str) {
    click_on(c, Locator::Css(css), css).await
}

/// Clicks what `locator` finds. The page re-renders live, so an element found may be replaced
/// before the click lands (a stale element): find it again, for at most 10 s.
async fn click_on(c: &Client, locator: Locator<'_>, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let err = match c.find(locator).await {
            Ok(el) => match el.click().await {
                Ok(()) => return,
                Err(e) => format!("cannot click '{what}': {e}"),
            },
            Err(e) => format!("no '{what}' on the page: {e}"),
        };
        if std::time::Instant::now() > deadline {
            panic!("{err}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Marks the page; [`still_marked`] is true only if it was never reloaded since.
async fn mark(c: &Client) {
    c.execute("window.__t2_not_reloaded = true; return true;", vec![])
        .await
        .unwrap();
}

async fn still_marked(c: &Client) -> bool {
    c.execute("return window.__t2_not_reloaded === true;", vec![])
        .await
        .unwrap()
        .as_bool()
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_jobs_live_and_kills_one_also_behind_a_kubectl_proxy_prefix() {
    let home = tempfile::tempdir().unwrap();
    let dash = Dash::start(home.path(), &home.path().join("dash.db"), "127.0.0.1:0");
    let proxy =
        PrefixProxy::start(dash.url.trim_start_matches("http://"), KUBECTL_PROXY_PREFIX).await;
    let driver = Driver::start();
    let c = browser(&driver, &home.path().join("chromium-profile")).await;
    let submit_args = vec![
        "--dashboard".to_string(),
        dash.url.clone(),
        "--dashboard-token".into(),
        TOKEN.into(),
    ];

    // 1. Straight to the dashboard: a 4-worker job, watched from the jobs list to its page.
    c.goto(&format!("{}/", dash.url)).await.unwrap();
    wait_texts(&c, "#live", "the live marker", |t| {
        t.first().is_some_and(|t| t == "live")
    })
    .await;
    mark(&c).await;
    shot(&c, "1-empty").await;
    let go = home.path().join("go");
    let job = waiting_job(&home.path().join("src1"), "browser-four", 4, &go);
    let first = spawn_submit(home.path(), &job, &submit_args);
    wait_texts(
        &c,
        "#jobs-table tbody tr[data-job-id] td:first-child",
        "the new job",
        |t| t.iter().any(|n| n == "browser-four"),
    )
    .await;
    shot(&c, "2-job-appeared").await;
    click(&c, "#jobs-table tbody tr[data-job-id] td:first-child a").await;
    wait_texts(
        &c,
        "#workers-table tbody tr.worker-row",
        "4 worker rows",
        |t| t.len() == 4,
    )
    .await;
    wait_texts(&c, "#job-state", "RUNNING", |t| {
        t.first().is_some_and(|s| s == "RUNNING")
    })
    .await;
    wait_texts(&c, "#joined", "4 joined", |t| {
        t.first().is_some_and(|s| s.starts_with("4 of 4"))
    })
    .await;
    shot(&c, "3-four-workers").await;
    let page = texts(&c, "main").await.concat();
    assert!(
        !page.contains("null") && !page.contains("undefined"),
        "{page}"
    );
    std::fs::write(&go, "").unwrap();
    wait_texts(&c, "#job-state", "COMPLETED", |t| {
        t.first().is_some_and(|s| s == "COMPLETED")
    })
    .await;
    let rows = wait_texts(
        &c,
        "#workers-table tbody tr.worker-row",
        "4 completed rows",
        |t| t.len() == 4 && t.iter().all(|r| r.contains("COMPLETED")),
    )
    .await;
    assert_eq!(rows.len(), 4);
    let timeline = texts(&c, "#events li").await;
    assert!(
        timeline.iter().any(|e| e.contains("JOINED #3")),
        "{timeline:?}"
    );
    shot(&c, "4-completed").await;
    assert!(still_marked(&c).await, "the page was reloaded");
    let out = wait(first, LONG);
    assert!(out.status.success(), "{}", text(&out));

    // 2. The same page under a kubectl-proxy-style prefix (the proxy drops Authorization, as
    //    the API server's service proxy does): a long job appears live and is killed.
    c.goto(&format!("{}{}", proxy.url, KUBECTL_PROXY_PREFIX))
        .await
        .unwrap();
    wait_texts(&c, "#live", "the live marker behind the proxy", |t| {
        t.first().is_some_and(|t| t == "live")
    })
    .await;
    wait_texts(
        &c,
        "#jobs-table tbody tr[data-job-id] .state-cell",
        "the first job",
        |t| t.iter().any(|s| s == "COMPLETED"),
    )
    .await;
    mark(&c).await;
    // Its own $T2_HOME, so that the job records there are this job's alone.
    let home2 = tempfile::tempdir().unwrap();
    let never = home2.path().join("never");
    let job = waiting_job(&home2.path().join("src"), "browser-victim", 2, &never);
    let second = spawn_submit(home2.path(), &job, &submit_args);
    wait_texts(
        &c,
        "#jobs-table tbody tr[data-job-id] td:first-child",
        "the second job",
        |t| t.iter().any(|n| n == "browser-victim"),
    )
    .await;
    shot(&c, "5-proxy-jobs").await;
    click_on(
        &c,
        Locator::LinkText("browser-victim"),
        "the second job's link",
    )
    .await;
    wait_texts(&c, "#job-state", "RUNNING", |t| {
        t.first().is_some_and(|s| s == "RUNNING")
    })
    .await;
    let running = RunningJob::wait(home2.path(), LONG);
    c.find(Locator::Css("#kill-token"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    shot(&c, "6-before-kill").await;
    click(&c, "#kill-button").await;
    wait_texts(&c, "#job-state", "KILLED", |t| {
        t.first().is_some_and(|s| s == "KILLED")
    })
    .await;
    let reason = texts(&c, "#job-reason").await;
    assert!(
        reason[0].contains("killed from the dashboard"),
        "{reason:?}"
    );
    shot(&c, "7-killed").await;
    assert!(still_marked(&c).await, "the page was reloaded");
    let out = wait(second, LONG);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(last_line(&out).contains("KILLED"), "{}", text(&out));
    assert_eq!(running.record().unwrap()["state"], "KILLED");
    running.assert_nothing_left();

    // The nodes page, for the record.
    click(&c, "#nav-nodes").await;
    click(&c, "#nodes-all").await;
    wait_texts(&c, ".dc h2", "the local datacenter", |t| {
        t.iter().any(|s| s.contains("local"))
    })
    .await;
    shot(&c, "8-nodes").await;
    c.close().await.unwrap();
}
