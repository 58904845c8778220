//! [`Session`], one desktop at a time: the desktop lock, the StatusNotifierWatcher stand-in and
//! the dbusmock notification daemon ([`Notification`]s), and the tray app launched into them.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{dbus_tool, python, script, TrayItem};
use crate::harness::{Env, Serve};
use crate::wait_until;

/// One Notify call the fake notification daemon received.
#[derive(Clone, Debug)]
pub struct Notification {
    pub app_name: String,
    pub summary: String,
    pub body: String,
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
