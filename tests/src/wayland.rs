//! A real Wayland compositor beside Xvfb: sway on wlroots' headless backend, with the
//! data-control protocol (the clipboard without keyboard focus) and screencopy (`grim`).
//! wlroots compositors refuse to start as root, so sway runs as `nobody` in a runtime folder
//! of its own; the app (root) reaches it by the socket's absolute path in `WAYLAND_DISPLAY`,
//! with an `XDG_RUNTIME_DIR` of its own (Tokenwarden refuses a lock folder another user owns).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Compositor {
    dir: tempfile::TempDir,
    /// The clients' own `XDG_RUNTIME_DIR` (GTK will not open a Wayland display without one).
    clients: tempfile::TempDir,
    socket: PathBuf,
    sway: Child,
}

impl Compositor {
    /// Starts sway (Debian package `sway`) and waits (15 s at most) for its socket.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tokenwarden-wayland-")
            .tempdir()
            .expect("temp dir");
        let config = dir.path().join("config");
        std::fs::write(&config, "output HEADLESS-1 resolution 1280x800\n").expect("sway config");
        for path in [dir.path(), config.as_path()] {
            let status = Command::new("chown")
                .arg("nobody")
                .arg(path)
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "chown nobody {}: run the tests as root",
                path.display()
            );
        }
        let log = std::fs::File::create(
            std::env::temp_dir().join(format!("tokenwarden-sway-{}.log", std::process::id())),
        )
        .expect("sway log");
        let sway = Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "sway",
                "-c",
            ])
            .arg(&config)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("WLR_BACKENDS", "headless")
            .env("WLR_LIBINPUT_NO_DEVICES", "1")
            .env("WLR_RENDERER", "pixman")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start sway (Debian package sway) through setpriv");
        let deadline = Instant::now() + Duration::from_secs(15);
        let socket = loop {
            let found = std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("wayland-") && !n.ends_with(".lock"))
                });
            if let Some(socket) = found {
                break socket;
            }
            assert!(
                Instant::now() < deadline,
                "sway made no Wayland socket within 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let clients = tempfile::Builder::new()
            .prefix("tokenwarden-wayland-clients-")
            .tempdir()
            .expect("temp dir");
        Self {
            dir,
            clients,
            socket,
            sway,
        }
    }

    /// What a client of this compositor runs with: GTK on Wayland, the socket by its path.
    pub fn client_vars(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("GDK_BACKEND", "wayland".into()),
            ("WAYLAND_DISPLAY", self.socket.clone().into()),
            ("XDG_RUNTIME_DIR", self.clients.path().into()),
        ]
    }

    /// A Wayland client tool (`grim`, `wl-paste`) run against this compositor.
    fn tool(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("XDG_RUNTIME_DIR", self.dir.path())
            .env("WAYLAND_DISPLAY", &self.socket);
        cmd
    }

    /// The whole output as a PNG (`grim`, through wlr-screencopy).
    pub fn screenshot(&self, path: &Path) {
        let out = self
            .tool("grim")
            .arg(path)
            .output()
            .expect("grim (Debian package grim)");
        assert!(
            out.status.success(),
            "grim: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The clipboard's text as another Wayland client sees it (`wl-paste`, wl-clipboard);
    /// `None` when it holds nothing.
    pub fn clipboard(&self) -> Option<String> {
        let out = self
            .tool("wl-paste")
            .arg("--no-newline")
            .output()
            .expect("wl-paste (Debian package wl-clipboard)");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Compositor {
    /// The types the clipboard's owner offers (`wl-paste --list-types`).
    pub fn clipboard_types(&self) -> Vec<String> {
        let out = self
            .tool("wl-paste")
            .arg("--list-types")
            .output()
            .expect("wl-paste");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Compositor {
    fn drop(&mut self) {
        let _ = self.sway.kill();
        let _ = self.sway.wait();
    }
}
