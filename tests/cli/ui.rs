//! `pipeline ui` in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), against the real `pipeline ui` server, plus the
//! refusals checked with plain HTTP requests. `.ci/run` installs Debian's
//! `chromium` and `chromium-driver`; elsewhere the browser tests say
//! `SKIPPED` (and fail under CI).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::harness::Test;

const PENGUINS: &str = include_str!("../../pipelines/data/penguins.csv");
const T_ALICE: &str = "a1ice0000000000000000000000000000000000000000000";
const T_BOB: &str = "b0b00000000000000000000000000000000000000000000000";

/// A `pipeline ui` server of a test's workspace, stopped when dropped.
struct Ui {
    child: Child,
    url: String,
}

impl Ui {
    fn start(t: &Test, extra: &[&str]) -> Ui {
        let mut args = vec!["ui", "--port", "0"];
        args.extend_from_slice(extra);
        let mut child = t
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pipeline ui");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("pipeline ui printed where it serves");
        let at = line.find("http://").expect("a URL in the first line");
        let url = line[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        // Bound to 0.0.0.0, it is reached on loopback all the same.
        let url = url.replace("0.0.0.0", "127.0.0.1");
        Ui { child, url }
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a fresh connection: status, headers, body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the UI");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Headless Chromium through chromedriver, or `None` (with `SKIPPED`) when
/// they are not installed; under CI their absence fails the test.
struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
}

impl Browser {
    fn start(test: &str) -> Option<Browser> {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let why = "Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`)";
            if std::env::var_os("CI").is_some() {
                panic!("{test} needs {why}; CI must provide it");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: needs {why}");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--no-first-run", "--disable-extensions"],
            }),
        );
        let client = rt
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a chromedriver session");
        Some(Browser {
            rt,
            client: Some(client),
            driver,
        })
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn go(&self, url: &str) {
        self.rt.block_on(self.c().goto(url)).expect("open the page");
    }

    fn text(&self, css: &str) -> String {
        self.rt
            .block_on(async { self.c().find(Locator::Css(css)).await?.text().await })
            .unwrap_or_else(|e| panic!("the text of `{css}`: {e}"))
    }

    fn try_text(&self, css: &str) -> Option<String> {
        self.rt
            .block_on(async { self.c().find(Locator::Css(css)).await?.text().await })
            .ok()
    }

    fn click(&self, css: &str) {
        self.rt
            .block_on(async { self.c().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    fn type_into(&self, css: &str, text: &str) {
        self.rt
            .block_on(async {
                self.c()
                    .find(Locator::Css(css))
                    .await?
                    .send_keys(text)
                    .await
            })
            .unwrap_or_else(|e| panic!("type into `{css}`: {e}"));
    }

    fn source(&self) -> String {
        self.rt.block_on(self.c().source()).unwrap()
    }

    fn url(&self) -> String {
        self.rt
            .block_on(self.c().current_url())
            .unwrap()
            .to_string()
    }

    /// Waits (at most `secs`) until `css`'s text satisfies `ok`.
    fn wait_text(&self, css: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.try_text(css).unwrap_or_default();
            if ok(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "`{css}` still says {t:?} after {secs} s; the page:\n{}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn train_yaml() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/train.yaml"))
        .unwrap()
}

fn run_ids(t: &Test) -> Vec<String> {
    let out = t.exec(["runs", "list", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_run_page_follows_a_running_run_until_its_steps_finish() {
    let Some(b) = Browser::start("the_run_page_follows_a_running_run_until_its_steps_finish")
    else {
        return;
    };
    let t = Test::new();
    let go = t.path().join("go");
    t.write(
        "live.yaml",
        &format!(
            "name: live\nsteps:\n  wait:\n    kind: command\n    run: [sh, -c, 'echo waiting for the go; i=0; while [ ! -f {go} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo went']\n  then:\n    kind: command\n    run: [echo, done]\n    after: [wait]\n",
            go = go.display()
        ),
    );
    let ui = Ui::start(&t, &[]);
    let mut run = t
        .command(["run", "live.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        if t.workspace().join("runs.db").exists()
            && let Some(id) = run_ids(&t).into_iter().next()
        {
            break id;
        }
        assert!(Instant::now() < deadline, "the run did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    b.go(&format!("{}/runs/{id}", ui.url));
    b.wait_text("#run-status", 30, |s| s == "running");
    b.wait_text("tr[data-step=wait] .badge", 30, |s| s == "running");
    assert_eq!(b.text("tr[data-step=then] .badge"), "pending");
    // The log of the running step streams in.
    b.wait_text("#log", 30, |s| s.contains("waiting for the go"));
    std::fs::write(&go, "").unwrap();
    // Without a reload: the page follows the run's records.
    b.wait_text("tr[data-step=wait] .badge", 30, |s| s == "succeeded");
    b.wait_text("tr[data-step=then] .badge", 30, |s| s == "succeeded");
    b.wait_text("#run-status", 30, |s| s == "succeeded");
    let dag_class = b.rt.block_on(async {
        b.c()
            .find(Locator::Css("#node-wait"))
            .await?
            .attr("class")
            .await
    });
    assert_eq!(dag_class.unwrap().as_deref(), Some("node st-succeeded"));
    b.wait_text("#log", 30, |s| s.contains("went"));
    assert!(run.wait().unwrap().success());
}

#[test]
fn two_runs_are_compared_side_by_side_with_their_training_curves() {
    let Some(b) = Browser::start("two_runs_are_compared_side_by_side_with_their_training_curves")
    else {
        return;
    };
    let t = Test::new().file("data/penguins.csv", PENGUINS);
    t.write("train.yaml", &train_yaml());
    t.exec(["run", "train.yaml"]).success();
    t.exec(["run", "train.yaml", "--param", "max_depth=2"])
        .success();
    let ids = run_ids(&t);
    assert_eq!(ids.len(), 2);
    let ui = Ui::start(&t, &[]);
    // Why each step of the second run ran or was cached, from the cache index.
    let (_, _, train) = http(
        ui.port(),
        "GET",
        &format!("/runs/{}/steps/train", ids[0]),
        &[],
        "",
    );
    assert!(train.contains("max_depth` changed (4 -&gt; 2)"), "{train}");
    let (_, _, split) = http(
        ui.port(),
        "GET",
        &format!("/runs/{}/steps/split", ids[0]),
        &[],
        "",
    );
    assert!(
        split.contains(&format!("cached: run {} made these outputs", ids[1])),
        "{split}"
    );
    b.go(&format!("{}/runs", ui.url));
    for id in &ids {
        b.click(&format!("input[value='{id}']"));
    }
    b.click("#compare-runs");
    b.wait_text("table#compare", 30, |s| s.contains("max_depth"));
    let html = b.source();
    // The param that differs is marked; one that does not, is not.
    let row = |name: &str| {
        let at = html
            .find(&format!("<td>{name}</td>"))
            .unwrap_or_else(|| panic!("a row {name}"));
        let start = html[..at].rfind("<tr").unwrap();
        html[start..at].to_string()
    };
    assert!(row("max_depth").contains("differs"), "{}", row("max_depth"));
    assert!(!row("eta").contains("differs"), "{}", row("eta"));
    // Both runs' validation curves on one plot.
    assert!(html.contains("train: validation:mlogloss"), "no curve plot");
    let plot_start = html.find("train: validation:mlogloss").unwrap();
    let plot = &html[plot_start..html[plot_start..].find("</svg>").unwrap() + plot_start];
    assert_eq!(plot.matches("<polyline").count(), 2, "one curve a run");
}

/// A pipeline whose version waits for a reviewer, with a hook that records approvals.
fn pending_version(t: &Test) {
    let text = train_yaml().replace(
        "steps:\n",
        "on_approved: [\"echo $PIPELINE_REGISTRY_REF $PIPELINE_REGISTRY_STATUS >> hooks.log\"]\n\nsteps:\n",
    );
    t.write("train.yaml", &text);
    t.exec(["run", "train.yaml"]).success();
    t.exec(["registry", "show", "penguins-species", "1"])
        .success()
        .stdout_contains("PendingManualApproval");
}

#[test]
fn approving_in_the_browser_records_the_signed_in_reviewer_and_runs_the_hook() {
    let Some(b) =
        Browser::start("approving_in_the_browser_records_the_signed_in_reviewer_and_runs_the_hook")
    else {
        return;
    };
    let t = Test::new().file("data/penguins.csv", PENGUINS);
    pending_version(&t);
    t.write("users", &format!("alice {T_ALICE}\nbob {T_BOB}\n"));
    std::fs::set_permissions(
        t.path().join("users"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let ui = Ui::start(&t, &["--users", "users"]);
    b.go(&format!("{}/registry/penguins-species/1", ui.url));
    // Not signed in: the sign-in page, which then leads back.
    assert!(b.url().contains("/login"), "{}", b.url());
    b.type_into("#token", T_ALICE);
    b.click("#sign-in");
    b.wait_text("#version-status", 30, |s| s == "PendingManualApproval");
    assert_eq!(b.text("#identity"), "alice");
    b.type_into("#note", "looks good on the holdout");
    b.click("#approve");
    b.wait_text("#version-status", 30, |s| s == "Approved");
    let audit = b.text("#audit");
    assert!(audit.contains("alice"), "{audit}");
    assert!(audit.contains("looks good on the holdout"), "{audit}");
    // Recorded as the command line records it: the same audit entry and hook.
    let cli = t
        .exec(["registry", "history", "penguins-species"])
        .success();
    assert!(cli.stdout.contains("alice"), "{}", cli.stdout);
    assert_eq!(
        t.read("hooks.log").trim(),
        "registry://penguins-species@1 Approved"
    );
}

#[test]
fn off_loopback_the_ui_needs_a_users_file_and_a_token() {
    let t = Test::new();
    t.exec(["ui", "--port", "0", "--bind", "0.0.0.0"])
        .code(2)
        .stderr_contains("is not a loopback address");
    t.write("users", &format!("alice {T_ALICE}\n"));
    // A users file others can read is refused too.
    std::fs::set_permissions(
        t.path().join("users"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    t.exec(["ui", "--port", "0", "--bind", "0.0.0.0", "--users", "users"])
        .code(2)
        .stderr_contains("chmod 600");
    std::fs::set_permissions(
        t.path().join("users"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let ui = Ui::start(&t, &["--bind", "0.0.0.0", "--users", "users"]);
    let port = ui.port();
    let (status, head, _) = http(port, "GET", "/runs", &[], "");
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("location: /login"), "{head}");
    let (status, _, _) = http(
        port,
        "GET",
        "/runs",
        &[("Authorization", "Bearer not-a-token")],
        "",
    );
    assert_eq!(status, 401);
    let (status, _, body) = http(
        port,
        "GET",
        "/runs",
        &[("Authorization", &format!("Bearer {T_ALICE}"))],
        "",
    );
    assert_eq!(status, 200);
    assert!(body.contains("alice"));
    let (status, _, _) = http(
        port,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "token=wrong&next=%2Fruns",
    );
    assert_eq!(status, 401);

    // In a browser: refused until signed in.
    let Some(b) = Browser::start("off_loopback_the_ui_needs_a_users_file_and_a_token") else {
        return;
    };
    b.go(&format!("{}/registry", ui.url));
    assert!(b.url().contains("/login?next=/registry"), "{}", b.url());
    b.type_into("#token", "wrong-token");
    b.click("#sign-in");
    // The sign-in page again, once the browser has loaded the answer.
    b.wait_text("#login-error", 30, |s| s.contains("belongs to no user"));
    b.type_into("#token", T_ALICE);
    b.click("#sign-in");
    b.wait_text("h1", 30, |s| s == "Registry");
    assert_eq!(b.text("#identity"), "alice");
}

/// Serves one page, from another origin, that posts an approval to the UI
/// as soon as it loads (a cross-site request forgery).
fn attacker_site(target: &str) -> (u16, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let page = format!(
        "<!doctype html><form id=f method=post action=\"{target}\"><input name=decision value=approve><input name=note value=forged><input name=csrf value=guess></form><script>document.getElementById('f').submit()</script>"
    );
    let h = std::thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        // One page, then the thread ends (bounded: the test waits at most 30 s).
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    (port, h)
}

#[test]
fn a_forged_cross_site_approval_is_refused() {
    let t = Test::new().file("data/penguins.csv", PENGUINS);
    pending_version(&t);
    let ui = Ui::start(&t, &[]);
    let port = ui.port();
    let review = "/registry/penguins-species/1/review";
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    // Plain requests: another site's Origin, a cross-site fetch, a missing
    // CSRF token, and a Host that is not loopback (DNS rebinding).
    let (status, _, body) = http(
        port,
        "POST",
        review,
        &[form[0], ("Origin", "http://evil.example")],
        "decision=approve",
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = http(
        port,
        "POST",
        review,
        &[form[0], ("Sec-Fetch-Site", "cross-site")],
        "decision=approve",
    );
    assert_eq!(status, 403);
    let (status, _, body) = http(port, "POST", review, &form, "decision=approve&csrf=guess");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let (status, _, _) = http(port, "GET", "/runs", &[("Host", "evil.example:80")], "");
    assert_eq!(status, 421);
    t.exec(["registry", "show", "penguins-species", "1"])
        .success()
        .stdout_contains("PendingManualApproval");

    // A real browser on a page of another site, which posts on load.
    let Some(b) = Browser::start("a_forged_cross_site_approval_is_refused") else {
        return;
    };
    // The browser has been to the UI (it holds a session cookie).
    b.go(&format!("{}/registry/penguins-species/1", ui.url));
    b.wait_text("#version-status", 30, |s| s == "PendingManualApproval");
    let (evil, h) = attacker_site(&format!("{}{review}", ui.url));
    b.go(&format!("http://localhost:{evil}/"));
    b.wait_text("body", 30, |s| s.contains("refused"));
    h.join().unwrap();
    t.exec(["registry", "show", "penguins-species", "1"])
        .success()
        .stdout_contains("PendingManualApproval");
    assert!(!t.path().join("hooks.log").exists());
}

#[test]
fn stored_artifacts_are_served_unable_to_run_scripts_and_paths_stay_inside() {
    let t = Test::new().file("data/penguins.csv", PENGUINS);
    t.write("train.yaml", &train_yaml());
    let out = t.exec(["run", "train.yaml", "--json"]).success();
    let report = crate::harness::output_digest(&out.summary(), "evaluate", "report");
    let ui = Ui::start(&t, &[]);
    let (status, head, body) = http(
        ui.port(),
        "GET",
        &format!("/artifacts/{report}/report.html"),
        &[],
        "",
    );
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-security-policy: sandbox"),
        "{head}"
    );
    assert!(body.contains("holdout evaluation"));
    let (status, _, _) = http(
        ui.port(),
        "GET",
        &format!("/artifacts/{report}/../../runs.db"),
        &[],
        "",
    );
    assert!(status == 400 || status == 404, "{status}");
    for escape in [
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        "/./report.html",
        "/%2e%2e/%2e%2e/runs.db",
    ] {
        let (status, _, body) = http(
            ui.port(),
            "GET",
            &format!("/artifacts/{report}{escape}"),
            &[],
            "",
        );
        assert!(status == 400 || status == 404, "{escape}: {status} {body}");
        assert!(!body.contains("root:"), "{escape}");
    }
    let (status, _, _) = http(ui.port(), "GET", "/artifacts/not-a-digest/x", &[], "");
    assert_eq!(status, 400);
    // The pages themselves.
    for page in [
        "/runs",
        "/registry",
        "/registry/penguins-species",
        "/schedules",
        "/compare",
    ] {
        let (status, _, body) = http(ui.port(), "GET", page, &[], "");
        assert_eq!(status, 200, "{page}: {body}");
    }
    let id = run_ids(&t).remove(0);
    for page in [
        format!("/runs/{id}"),
        format!("/runs/{id}/steps/train"),
        format!("/runs/{id}/steps/evaluate"),
        format!("/api/runs/{id}"),
    ] {
        let (status, _, body) = http(ui.port(), "GET", &page, &[], "");
        assert_eq!(status, 200, "{page}: {body}");
    }
    let (_, _, step) = http(
        ui.port(),
        "GET",
        &format!("/runs/{id}/steps/train"),
        &[],
        "",
    );
    assert!(step.contains("Feature importance"), "{step}");
    let (status, _, _) = http(ui.port(), "GET", "/runs/20000101-000000-000000", &[], "");
    assert_eq!(status, 404);
}

#[test]
fn a_tune_steps_page_shows_its_leaderboard_and_a_schedule_shows_on_the_schedules_page() {
    let t = Test::new().file("data/penguins.csv", PENGUINS);
    let tune =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/tune.yaml"))
            .unwrap()
            .replace("max_jobs: 20", "max_jobs: 4")
            .replace("strategy: bayesian", "strategy: random");
    t.write("tune.yaml", &tune);
    t.exec(["run", "tune.yaml"]).success();
    let id = run_ids(&t).remove(0);
    let ui = Ui::start(&t, &[]);
    let (status, _, page) = http(ui.port(), "GET", &format!("/runs/{id}/steps/tune"), &[], "");
    assert_eq!(status, 200);
    assert!(page.contains("<h2>Leaderboard (leaderboard"), "{page}");
    assert!(
        page.contains("<th>rank</th>\n<th>trial</th>")
            || page.contains("<th>rank</th><th>trial</th>"),
        "{page}"
    );
    // Four trials, each a row of the leaderboard: ranks 1 to 4.
    let board = &page[page.find("<h2>Leaderboard").unwrap()..];
    let board = &board[..board.find("</table>").unwrap()];
    assert_eq!(board.matches("<td>succeeded</td>").count(), 4, "{board}");
    // The run page draws the trials in the graph.
    let (_, _, run) = http(ui.port(), "GET", &format!("/runs/{id}"), &[], "");
    assert!(run.contains("id=\"node-tune.3\""), "{run}");
    let (status, _, schedules) = http(ui.port(), "GET", "/schedules", &[], "");
    assert_eq!(status, 200);
    assert!(
        schedules.contains("Nothing is scheduled here"),
        "{schedules}"
    );
}
