//! [`Driver`], the real window through WebDriver: tauri-driver and WebKitWebDriver started for
//! one app, a fantoccini session on it, and the element lookups and clicks tests make.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::{save_screenshot, Session};
use crate::harness::{bin_path, free_port, Env};
use crate::proc;

/// The real window through WebDriver: tauri-driver (which starts WebKitWebDriver, which starts
/// the app with tauri-driver's environment) and a fantoccini client.
pub struct Driver {
    pub client: Client,
    driver: Option<Child>,
    log: PathBuf,
    /// When the WebDriver session was requested and when the page said `data-ready`.
    pub launch_to_ready: Duration,
    pub session_created: Duration,
}

impl Driver {
    /// Starts tauri-driver on free ports with `env`'s variables, the session's and `extra`,
    /// opens a session on the app, and waits (60 s at most) for `[data-ready="true"]`.
    pub async fn launch(env: &Env, session: &Session, extra: &[(&'static str, OsString)]) -> Self {
        let tauri_driver = std::env::var_os("TAURI_DRIVER").unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            let installed = home.join(".cargo/bin/tauri-driver");
            if installed.exists() {
                installed.into()
            } else {
                "tauri-driver".into()
            }
        });
        let native = std::env::var_os("WEBKIT_WEBDRIVER")
            .unwrap_or_else(|| "/usr/bin/WebKitWebDriver".into());
        // Two probes may return the same port (each listener closes before the next binds).
        let port = free_port();
        let native_port = std::iter::repeat_with(free_port)
            .find(|&p| p != port)
            .expect("a second free port");
        let log = session.dir().join(format!("tauri-driver-{port}.log"));
        let out = std::fs::File::create(&log).expect("driver log");
        let mut vars = env.vars();
        vars.extend(session.app_vars());
        vars.extend(extra.iter().cloned());
        let child = Command::new(&tauri_driver)
            .args(["--port", &port.to_string(), "--native-port"])
            .arg(native_port.to_string())
            .arg("--native-driver")
            .arg(&native)
            .envs(vars)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {} ({e}): `cargo install tauri-driver --locked`, or set TAURI_DRIVER",
                    Path::new(&tauri_driver).display()
                )
            });
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let log_text = |log: &Path| std::fs::read_to_string(log).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{url}/status")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "tauri-driver does not answer {url}/status:\n{}",
                log_text(&log)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The tray app's own binary: WebKitWebDriver starts it with arguments of its own.
        let application = std::fs::canonicalize(bin_path().with_file_name("tokenwarden-app"))
            .expect("tokenwarden-app beside tokenwarden: build with `cargo build -p tokenwarden`");
        let caps = json!({
            "browserName": "wry",
            "tauri:options": {"application": application},
        });
        let caps = caps.as_object().expect("object").clone();
        let started = Instant::now();
        let connect = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&url),
        )
        .await
        .unwrap_or_else(|_| {
            Err(fantoccini::error::NewSessionError::Lost(
                std::io::Error::other(
                    "no session after 60 s: the app did not come up under WebKitWebDriver",
                ),
            ))
        });
        let session_created = started.elapsed();
        let mut driver = Self {
            client: match connect {
                Ok(client) => client,
                Err(e) => {
                    let mut child = child;
                    proc::kill_tree(&mut child);
                    panic!("no WebDriver session on the app ({e}):\n{}", log_text(&log));
                }
            },
            driver: Some(child),
            log,
            launch_to_ready: Duration::ZERO,
            session_created,
        };
        driver
            .find_within(r#"[data-ready="true"]"#, Duration::from_secs(60))
            .await;
        driver.launch_to_ready = started.elapsed();
        driver
    }

    /// What tauri-driver and WebKitWebDriver printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs one WebDriver command, panicking if it gets no answer within 30 s (WebKitWebDriver
    /// waits forever on a page whose main thread is stuck).
    pub(super) async fn guard<T>(
        &self,
        what: &str,
        command: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::time::timeout(Duration::from_secs(30), command)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "WebDriver gave no answer to `{what}` within 30 s: the page is not responding\n{}",
                    self.log()
                )
            })
    }

    /// The first element matching `css`, waiting 20 s at most.
    pub async fn find(&self, css: &str) -> Element {
        self.find_within(css, Duration::from_secs(20)).await
    }

    pub async fn find_within(&self, css: &str, limit: Duration) -> Element {
        // The outer timeout covers a WebDriver command that never answers (a page whose main
        // thread is stuck), which the polling limit alone would wait on forever.
        let wait = self
            .client
            .wait()
            .at_most(limit)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css));
        match tokio::time::timeout(limit + Duration::from_secs(10), wait).await {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => panic!("no element {css} after {limit:?}: {e}"),
            Err(_) => panic!(
                "WebDriver did not answer while looking for {css} ({limit:?} + 10 s): the page \
                 is not responding\n{}",
                self.log()
            ),
        }
    }

    /// Every element matching `css` now (maybe none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.guard(css, self.client.find_all(Locator::Css(css)))
            .await
            .unwrap_or_else(|e| panic!("find_all {css}: {e}"))
    }

    /// Scrolls `element` to the middle of the view, as a user would before using it (WebKit
    /// refuses to click what lies below the fold).
    pub async fn scroll_to(&self, element: &Element) {
        let arg = serde_json::to_value(element).expect("an element reference");
        let scroll = self.client.execute(
            // Instantly: the window scrolls smoothly (CSS), and a click computed while the
            // page still moves lands where the element was, not where it is.
            "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'}); return true;",
            vec![arg],
        );
        let _ = self.guard("scrollIntoView", scroll).await;
    }

    /// Clicks the first element matching `css` (waiting for it, scrolling to it). The page
    /// redraws on engine events and may replace the element between finding and clicking it,
    /// so a click on a node that is gone finds it again (a few times at most).
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.scroll_to(&element).await;
        if let Err(native) = self.guard(css, element.click()).await {
            // WebKitWebDriver sometimes refuses a native click on a visible, enabled submit
            // button with an empty error; the DOM click is what that button does anyway.
            println!("native click on {css} failed ({native:?}); clicking through the DOM");
            self.click_in_dom(css).await;
        }
    }

    /// Clicks the first element matching `css` through the DOM (its `click()`), not at a point
    /// on the screen: a native click lands wherever that point is when it arrives, and a
    /// banner appearing in another row meanwhile moves the button away from under it.
    pub async fn click_in_dom(&self, css: &str) {
        let mut last = String::new();
        for _ in 0..5 {
            let element = self.find(css).await;
            let arg = serde_json::to_value(&element).expect("an element reference");
            match self
                .guard(
                    css,
                    self.client
                        .execute("arguments[0].click(); return true;", vec![arg]),
                )
                .await
            {
                Ok(_) => return,
                Err(e) => last = e.to_string(), // replaced by a redraw: find it again
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("click {css} in the DOM: {last}");
    }

    /// Clicks an element whose action ends the app (Quit's confirmation): the app, and the
    /// WebDriver session with it, may be gone before the click is answered, so no answer
    /// after the element is found is an error here. The caller checks that the app ended.
    pub async fn click_ending_the_app(&self, css: &str) {
        let element = self.find(css).await;
        self.scroll_to(&element).await;
        if self.guard(css, element.click()).await.is_err() {
            let arg = serde_json::to_value(&element).expect("an element reference");
            let _ = self
                .guard(
                    css,
                    self.client
                        .execute("arguments[0].click(); return true;", vec![arg]),
                )
                .await;
        }
    }

    /// Attribute `name` of the first element matching `css` now; `None` if either is missing.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self
            .guard(css, self.client.find(Locator::Css(css)))
            .await
            .ok()?;
        self.guard(css, element.attr(name)).await.ok().flatten()
    }

    /// Rendered text of the first element matching `css` now.
    pub async fn text(&self, css: &str) -> Option<String> {
        let element = self
            .guard(css, self.client.find(Locator::Css(css)))
            .await
            .ok()?;
        self.guard(css, element.text()).await.ok()
    }

    /// Whether an element matching `css` exists and is displayed.
    pub async fn displayed(&self, css: &str) -> bool {
        match self.guard(css, self.client.find(Locator::Css(css))).await {
            Ok(e) => self.guard(css, e.is_displayed()).await.unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Whether the first element matching `css` exists and is enabled (a form's submit).
    pub async fn enabled(&self, css: &str) -> bool {
        match self.find_all(css).await.first() {
            Some(element) => element.is_enabled().await.unwrap_or(false),
            None => false,
        }
    }

    /// Replaces the value of the input matching `css` with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.scroll_to(&element).await;
        element
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Selects the option with `value` in the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value:?} in {css}: {e}"));
    }

    /// The serialized DOM.
    pub async fn source(&self) -> String {
        self.guard("page source", self.client.source())
            .await
            .unwrap_or_else(|e| panic!("page source: {e}"))
    }

    /// Panics if any of `secrets` appears in the serialized DOM or the visible text.
    pub async fn assert_no_secret(&self, secrets: &[&str], when: &str) {
        let source = self.source().await;
        let text = self.text("body").await.unwrap_or_default();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            assert!(
                !source.contains(secret) && !text.contains(secret),
                "a secret ({}…) is in the page {when}",
                &secret[..secret.len().min(6)]
            );
        }
    }

    /// The `data-account` of each account card in the page, in order (a long list draws only
    /// the cards near the viewport).
    pub async fn account_rows(&self) -> Vec<String> {
        let names = self
            .execute(
                "return [...document.querySelectorAll('[data-testid=account-row]')]\
                 .map((r) => r.getAttribute('data-account'))",
            )
            .await;
        serde_json::from_value(names).expect("names")
    }

    /// Runs `script` in the page and returns its value.
    pub async fn execute(&self, script: &str) -> Value {
        self.guard(script, self.client.execute(script, vec![]))
            .await
            .unwrap_or_else(|e| panic!("execute {script:?}: {e}"))
    }

    /// Lets the page draw its last change (two animation frames, or 500 ms when a static page
    /// gets none), then saves the X screen (`import -window root`; the window is the only
    /// thing on it) as `tests/artifacts/screenshots/NAME.png` and returns its path.
    /// WebKitWebDriver's own screenshot command waits for a new frame, which a static page
    /// under Xvfb may never paint, and it then holds every later command of the session.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let frames = self.client.execute_async(
            "const done = arguments[arguments.length - 1]; let sent = false;\
             const once = () => { if (!sent) { sent = true; done(true); } };\
             requestAnimationFrame(() => requestAnimationFrame(once)); setTimeout(once, 500);",
            vec![],
        );
        let _ = self.guard("wait for a frame", frames).await;
        save_screenshot(name).await
    }

    /// Ends the WebDriver session (which closes the app), then tauri-driver and anything it
    /// left running, and waits for them to be gone.
    pub async fn quit(mut self) {
        let client = self.client.clone();
        let _ = tokio::time::timeout(Duration::from_secs(15), client.close()).await;
        if let Some(mut child) = self.driver.take() {
            tokio::task::spawn_blocking(move || proc::kill_tree(&mut child))
                .await
                .expect("stop tauri-driver");
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(mut child) = self.driver.take() {
            proc::kill_tree(&mut child);
        }
    }
}
