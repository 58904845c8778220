//! The tray app (`tokenwarden` with no arguments) under test in a private desktop session.
//!
//! * [`Session`]  one tray app per D-Bus session at a time: it holds the desktop lock (the app
//!   is single-instance per session bus, and the names below have one owner each), a
//!   StatusNotifierWatcher stand-in (`scripts/sni-watcher.py`) and a dbusmock notification
//!   daemon, and launches the app with `BROWSER` = `scripts/fake-browser.sh`
//! * [`TrayItem`] the app's StatusNotifierItem: properties, dbusmenu layout, clicks
//!   (`scripts/dbus-tool.py`, which prints JSON)
//! * [`Driver`]   tauri-driver + WebKitWebDriver + a fantoccini session on the real window
//! * [`clipboard`], [`write_settings`], [`engine_pid`], [`window_mapped`]/[`close_window`]
//!   (`scripts/x11-window.py`), [`countdown_seconds`], [`save_screenshot`]
//!
//! Everything here observes the app from outside, the way a user or another program would:
//! D-Bus, the X clipboard, X11 window state, the DOM, the lock file. The helper processes are
//! started by the session and ended by their own handles when it drops.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::harness::{bin_path, free_port, Env, Serve};
use crate::proc;
use crate::wait_until;

/// The window title the contract gives the `main` window.
pub const WINDOW_TITLE: &str = "Tokenwarden";

/// The Python with python3-gi and python3-dbusmock: Debian's, not a pyenv shim on PATH.
pub fn python() -> OsString {
    std::env::var_os("TW_PYTHON").unwrap_or_else(|| "/usr/bin/python3".into())
}

/// `tests/scripts/NAME`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// `tests/artifacts/screenshots/` (gitignored), created on demand.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/screenshots");
    std::fs::create_dir_all(&dir).expect("create tests/artifacts/screenshots");
    dir
}

/// Writes `<data dir>/desktop.json`, the tray app's own settings.
pub fn write_settings(env: &Env, notifications: bool, clear_clipboard_secs: u64) {
    let settings = json!({
        "notifications": notifications,
        "clear_clipboard_secs": clear_clipboard_secs,
        "start_at_login": false,
    });
    std::fs::write(env.data_dir.join("desktop.json"), settings.to_string())
        .expect("write desktop.json");
}

/// The pid in the engine lock's holder file, if that process is alive.
pub fn engine_pid(env: &Env) -> Option<u32> {
    let holder = env.engine_holder()?;
    let pid = u32::try_from(holder["pid"].as_u64()?).ok()?;
    proc::alive(pid).then_some(pid)
}

/// The CLIPBOARD selection as `xclip -o -selection clipboard` prints it; `None` when nobody
/// owns it or it holds no text.
pub async fn clipboard() -> Option<String> {
    clipboard_as(None).await
}

/// The CLIPBOARD selection converted to `target` (`xclip -t TARGET`): `TARGETS` lists what
/// the owner offers, `x-kde-passwordManagerHint` is the clipboard-manager hint.
pub async fn clipboard_as(target: Option<&str>) -> Option<String> {
    let mut args = vec!["-o", "-selection", "clipboard"];
    if let Some(target) = target {
        args.extend(["-t", target]);
    }
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new("xclip")
            .args(&args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("xclip -o did not answer within 10 s")
    .expect("run xclip (Debian package xclip)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Runs `scripts/NAME args` with [`python`]: its stdout parsed as JSON, or what went wrong.
pub async fn python_json(name: &str, args: &[&str]) -> Result<Value, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(python())
            .arg(script(name))
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| format!("{name} {args:?} took more than 20 s"))?
    .map_err(|e| format!("run {name}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{name} {args:?} exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{name} {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

async fn dbus_tool(args: &[&str]) -> Result<Value, String> {
    python_json("dbus-tool.py", args).await
}

/// Whether `pid`'s window titled [`WINDOW_TITLE`] is mapped: `None` when it has none (yet).
pub async fn window_mapped(pid: u32) -> Option<bool> {
    let state = python_json("x11-window.py", &["state", &pid.to_string(), WINDOW_TITLE])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    state["window"].as_u64()?;
    state["mapped"].as_bool()
}

/// Sends WM_DELETE_WINDOW to `pid`'s main window, as a window manager's close button does.
pub async fn close_window(pid: u32) {
    let state = python_json("x11-window.py", &["close", &pid.to_string(), WINDOW_TITLE])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        state["window"].as_u64().is_some(),
        "process {pid} has no window titled {WINDOW_TITLE:?}"
    );
}

/// A countdown such as "59m 12s", "1h 2m", "45s" or "2d 3h", in seconds; `None` otherwise.
pub fn countdown_seconds(text: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut parts = 0;
    for part in text.split_whitespace() {
        let unit = part.chars().last()?;
        let n: i64 = part[..part.len() - unit.len_utf8()].parse().ok()?;
        total += n * match unit {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        parts += 1;
    }
    (parts > 0).then_some(total)
}

/// A dbusmenu label as the user reads it: `_` marks a mnemonic, `__` is a literal underscore.
pub fn dbusmenu_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' {
            if chars.peek() == Some(&'_') {
                chars.next();
                out.push('_');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One Notify call the fake notification daemon received.
#[derive(Clone, Debug)]
pub struct Notification {
    pub app_name: String,
    pub summary: String,
    pub body: String,
}

/// One top-level entry of the tray menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MenuEntry {
    pub id: i32,
    /// Mnemonic markers removed ([`dbusmenu_text`]).
    pub label: String,
    pub enabled: bool,
    pub visible: bool,
    pub separator: bool,
}

/// The app's StatusNotifierItem, as the watcher stand-in recorded it.
#[derive(Clone, Debug)]
pub struct TrayItem {
    pub bus: String,
    pub path: String,
}

impl TrayItem {
    /// The top-level menu entries, or why they could not be read.
    pub async fn try_menu(&self) -> Result<(String, Vec<MenuEntry>), String> {
        let menu = dbus_tool(&["menu", &self.bus, &self.path]).await?;
        let path = menu["menu_path"].as_str().unwrap_or_default().to_string();
        let entries = menu["items"]
            .as_array()
            .ok_or_else(|| format!("no items in {menu}"))?
            .iter()
            .map(|i| MenuEntry {
                id: i["id"].as_i64().unwrap_or(-1) as i32,
                label: dbusmenu_text(i["label"].as_str().unwrap_or_default()),
                enabled: i["enabled"].as_bool().unwrap_or(true),
                visible: i["visible"].as_bool().unwrap_or(true),
                separator: i["type"] == "separator",
            })
            .collect();
        Ok((path, entries))
    }

    /// The visible top-level menu entries.
    pub async fn menu(&self) -> Vec<MenuEntry> {
        let (_, entries) = self.try_menu().await.unwrap_or_else(|e| panic!("{e}"));
        entries.into_iter().filter(|e| e.visible).collect()
    }

    /// Waits (20 s at most) until the visible menu satisfies `cond`, and returns it.
    pub async fn wait_menu(
        &self,
        what: &str,
        cond: impl Fn(&[MenuEntry]) -> bool,
    ) -> Vec<MenuEntry> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let last = match self.try_menu().await {
                Ok((_, entries)) => {
                    let visible: Vec<MenuEntry> =
                        entries.into_iter().filter(|e| e.visible).collect();
                    if cond(&visible) {
                        return visible;
                    }
                    format!("{visible:#?}")
                }
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "timed out after 20 s waiting for the tray menu: {what}\nlast menu: {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks entry `id` (com.canonical.dbusmenu `Event(id, "clicked", <i 0>, now)`).
    pub async fn click(&self, id: i32) {
        let (menu_path, _) = self.try_menu().await.unwrap_or_else(|e| panic!("{e}"));
        dbus_tool(&["click", &self.bus, &menu_path, &id.to_string()])
            .await
            .unwrap_or_else(|e| panic!("click tray entry {id}: {e}"));
    }

    /// The org.kde.StatusNotifierItem properties (pixmaps left out).
    pub async fn properties(&self) -> Value {
        dbus_tool(&["props", &self.bus, &self.path])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Finds the entry whose label starts with `prefix`; panics listing the menu otherwise.
#[track_caller]
pub fn entry<'a>(menu: &'a [MenuEntry], prefix: &str) -> &'a MenuEntry {
    menu.iter()
        .find(|e| e.label.starts_with(prefix))
        .unwrap_or_else(|| panic!("no tray entry starting with {prefix:?} in {menu:#?}"))
}

/// One desktop at a time: the lock, the watcher stand-in and the notification daemon.
pub struct Session {
    dir: tempfile::TempDir,
    watcher: Option<Child>,
    notifier: Option<Child>,
    /// Held for the session's life: released when the file closes.
    _lock: std::fs::File,
}

impl Session {
    /// Takes the desktop lock (waiting for another test's session to end), then starts the
    /// StatusNotifierWatcher stand-in and the dbusmock notification daemon and waits until both
    /// own their names. Every desktop test starts one, so no app ever reaches the
    /// D-Bus-activated real notification daemon (dunst) instead of the fake.
    pub async fn start() -> Self {
        Self::open(true).await
    }

    /// A desktop that shows no tray icons (GNOME without the AppIndicator extension): no
    /// StatusNotifierWatcher on the bus.
    pub async fn start_without_tray() -> Self {
        Self::open(false).await
    }

    async fn open(tray: bool) -> Self {
        let lock = tokio::task::spawn_blocking(|| {
            let bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").expect(
                "DBUS_SESSION_BUS_ADDRESS is not set: run the tests inside tests/scripts/session.sh",
            );
            std::env::var_os("DISPLAY")
                .expect("DISPLAY is not set: run the tests inside tests/scripts/session.sh");
            let tag: String = bus
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let tag = &tag[tag.len().saturating_sub(40)..];
            let path = std::env::temp_dir().join(format!("tokenwarden-e2e-desktop-{tag}.lock"));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            file.lock()
                .unwrap_or_else(|e| panic!("lock {}: {e}", path.display()));
            file
        })
        .await
        .expect("desktop lock task");
        let dir = tempfile::Builder::new()
            .prefix("tokenwarden-desktop-")
            .tempdir()
            .expect("temp dir");
        let mut session = Self {
            dir,
            watcher: None,
            notifier: None,
            _lock: lock,
        };
        if tray {
            session.start_watcher();
        }
        session.start_notifier().await;
        session
    }

    fn start_watcher(&mut self) {
        let record = self.dir.path().join("watcher.jsonl");
        let mut child = Command::new(python())
            .arg(script("sni-watcher.py"))
            .arg(&record)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sni-watcher.py (needs /usr/bin/python3 with python3-gi)");
        let stdout = child.stdout.take().expect("watcher stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
        self.watcher = Some(child);
        assert_eq!(
            line.trim(),
            "ready",
            "the StatusNotifierWatcher stand-in did not start"
        );
    }

    async fn start_notifier(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("dbusmock.log")).expect("log");
        let child = Command::new(python())
            .args(["-m", "dbusmock", "--session", "--template"])
            .arg("notification_daemon")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start python3 -m dbusmock (Debian package python3-dbusmock)");
        self.notifier = Some(child);
        // Probe with GetNameOwner first: a call addressed to the name before the mock owns it
        // would make the bus activate the real daemon (dunst) instead.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let owned = dbus_tool(&["owner", "org.freedesktop.Notifications"])
                .await
                .is_ok_and(|o| o["owner"].is_string());
            let last = if !owned {
                "org.freedesktop.Notifications has no owner yet".to_string()
            } else {
                match dbus_tool(&["notifications"]).await {
                    Ok(calls) if calls.as_array().is_some_and(|c| c.is_empty()) => return,
                    Ok(calls) => format!("a fresh daemon already has calls: {calls}"),
                    Err(e) => e,
                }
            };
            assert!(
                Instant::now() < deadline,
                "the dbusmock notification daemon did not come up: {last}\n{}",
                std::fs::read_to_string(self.dir.path().join("dbusmock.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Variables the app runs with besides [`Env::vars`]: the fake browser (and its log),
    /// and the WebKit setting Xvfb needs.
    pub fn app_vars(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("BROWSER", script("fake-browser.sh").into()),
            ("TW_BROWSER_LOG", self.dir.path().join("browser.log").into()),
            ("WEBKIT_DISABLE_COMPOSITING_MODE", "1".into()),
            ("NO_AT_BRIDGE", "1".into()),
        ]
    }

    /// What the fake browser did, one line per step.
    pub fn browser_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("browser.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the tray app with `env`'s isolation and [`Session::app_vars`] (+ `extra`).
    pub fn launch(&self, env: &Env, extra: &[(&'static str, OsString)]) -> Serve {
        let mut vars = self.app_vars();
        vars.extend(extra.iter().cloned());
        env.spawn_app(&vars)
    }

    /// The tray app with arguments (`--hidden`), as [`Session::launch`].
    pub fn launch_with_args(&self, env: &Env, args: &[&str]) -> Serve {
        env.spawn_app_with_args(args, &self.app_vars())
    }

    /// The StatusNotifierItem that process `pid` registered (30 s at most).
    pub async fn tray_item(&self, pid: u32) -> TrayItem {
        let record = self.dir.path().join("watcher.jsonl");
        let mut found = None;
        wait_until(
            Duration::from_secs(30),
            &format!("process {pid} registers a StatusNotifierItem with the watcher"),
            async || {
                let text = std::fs::read_to_string(&record).unwrap_or_default();
                found = text
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|r| r["pid"].as_u64() == Some(u64::from(pid)));
                found.is_some()
            },
        )
        .await;
        let r = found.expect("registration");
        TrayItem {
            bus: r["bus"].as_str().expect("bus").to_string(),
            path: r["path"].as_str().expect("path").to_string(),
        }
    }

    /// Every Notify call so far, in order.
    pub async fn notifications(&self) -> Vec<Notification> {
        let calls = dbus_tool(&["notifications"])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        calls
            .as_array()
            .expect("a list of calls")
            .iter()
            .map(|c| Notification {
                app_name: c["app_name"].as_str().unwrap_or_default().to_string(),
                summary: c["summary"].as_str().unwrap_or_default().to_string(),
                body: c["body"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for mut child in [self.watcher.take(), self.notifier.take()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

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
    async fn guard<T>(&self, what: &str, command: impl std::future::Future<Output = T>) -> T {
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

    /// Presses and releases `key` on whatever has the keyboard focus, as a user would
    /// (WebDriver key actions, not a script).
    pub async fn press(&self, key: fantoccini::key::Key) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let value: char = key.into();
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
        self.guard("key press", self.client.perform_actions(actions))
            .await
            .unwrap_or_else(|e| panic!("press {key:?}: {e}"));
    }

    /// Types `text` into whatever has the keyboard focus.
    pub async fn type_text(&self, text: &str) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut actions = KeyActions::new("keyboard".into());
        for value in text.chars() {
            actions = actions
                .then(KeyAction::Down { value })
                .then(KeyAction::Up { value });
        }
        self.guard("typing", self.client.perform_actions(actions))
            .await
            .unwrap_or_else(|e| panic!("type {} characters: {e}", text.len()));
    }

    /// What has the keyboard focus: its `data-testid`, else its id, else its tag name
    /// (`BODY` when nothing does), with the account of the card it sits in, if any.
    pub async fn focused(&self) -> (String, Option<String>) {
        let v = self
            .execute(
                "const e = document.activeElement; if (!e) return ['BODY', null];\
                 const row = e.closest('[data-account]');\
                 return [e.getAttribute('data-testid') || e.id || e.tagName,\
                         row ? row.getAttribute('data-account') : null];",
            )
            .await;
        (
            v[0].as_str().unwrap_or_default().to_owned(),
            v[1].as_str().map(str::to_owned),
        )
    }

    /// Shift+Tab: the focus moves back.
    pub async fn press_shift_tab(&self) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        use fantoccini::key::Key;
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down {
                value: Key::Shift.into(),
            })
            .then(KeyAction::Down {
                value: Key::Tab.into(),
            })
            .then(KeyAction::Up {
                value: Key::Tab.into(),
            })
            .then(KeyAction::Up {
                value: Key::Shift.into(),
            });
        self.guard("shift+tab", self.client.perform_actions(actions))
            .await
            .unwrap_or_else(|e| panic!("press shift+tab: {e}"));
    }

    /// Presses Tab until the focus is on `testid` (in `account`'s card when given): at most
    /// `limit` presses. Returns the stops on the way, to show the order.
    pub async fn tab_to(&self, testid: &str, account: Option<&str>, limit: usize) -> Vec<String> {
        self.move_focus_to(testid, account, limit, false).await
    }

    /// [`Driver::tab_to`] with Shift+Tab.
    pub async fn tab_back_to(&self, testid: &str, limit: usize) -> Vec<String> {
        self.move_focus_to(testid, None, limit, true).await
    }

    async fn move_focus_to(
        &self,
        testid: &str,
        account: Option<&str>,
        limit: usize,
        back: bool,
    ) -> Vec<String> {
        let mut stops = Vec::new();
        for _ in 0..limit {
            if back {
                self.press_shift_tab().await;
            } else {
                self.press(fantoccini::key::Key::Tab).await;
            }
            let (id, row) = self.focused().await;
            stops.push(match &row {
                Some(r) => format!("{r}/{id}"),
                None => id.clone(),
            });
            if id == testid && (account.is_none() || row.as_deref() == account) {
                return stops;
            }
        }
        panic!("{testid} ({account:?}) is not reached with {limit} Tabs; stops: {stops:?}");
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

/// Saves a screenshot of the whole X screen (`import -window root`) as
/// `tests/artifacts/screenshots/NAME.png`, e.g. to show the window without WebDriver.
pub async fn save_screenshot(name: &str) -> PathBuf {
    let path = screenshot_dir().join(format!("{name}.png"));
    let status = tokio::process::Command::new("import")
        .args(["-window", "root"])
        .arg(&path)
        .stdin(Stdio::null())
        .status()
        .await
        .expect("run import (Debian package imagemagick)");
    assert!(status.success(), "import -window root failed");
    path
}

/// Reads the PNG header: (width, height), or `None` when `bytes` is not a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_and_labels_parse() {
        assert_eq!(countdown_seconds("59m 12s"), Some(3552));
        assert_eq!(countdown_seconds("1h 2m"), Some(3720));
        assert_eq!(countdown_seconds("45s"), Some(45));
        assert_eq!(countdown_seconds("expired"), None);
        assert_eq!(countdown_seconds(""), None);
        assert_eq!(
            dbusmenu_text("Copy fb token — not__connected"),
            "Copy fb token — not_connected"
        );
        assert_eq!(dbusmenu_text("_Quit"), "Quit");
    }
}
