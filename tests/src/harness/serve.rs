//! [`Serve`], a background `serve` (or tray app) with its output collected, started by
//! [`Env::spawn_serve`] and friends, and a client of its API.

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Env, Output};
use crate::api::Api;
use crate::proc::{self, Signal};

/// A background `serve` (or tray app). Dropping it sends SIGTERM (then SIGKILL after 5 s).
pub struct Serve {
    args: Vec<String>,
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    api_port: u16,
}

impl Serve {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("serve child").id()
    }

    /// CPU time (user + system) serve has used so far ([`proc::cpu_seconds`]).
    pub fn cpu_seconds(&self) -> f64 {
        proc::cpu_seconds(self.pid())
    }

    /// What serve has written to stderr so far, as far as the harness's reader thread has read
    /// it: on a busy machine a line serve wrote a moment ago may not be here yet. To check
    /// that something was logged, use [`Serve::logged`].
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr")).into_owned()
    }

    /// serve's stderr once `needle` appears in it at least `times` times (waiting up to 15 s for
    /// the reader thread, then panicking with the log).
    pub async fn logged(&self, needle: &str, times: usize) -> String {
        let started = Instant::now();
        loop {
            let log = self.stderr();
            if log.matches(needle).count() >= times {
                return log;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "serve did not log {needle:?} {times} time(s) within 15 s:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits until serve answers `/healthz` on its API port. Without an API answer, it settles
    /// for serve having stayed up for 3 s. Panics with its output if it exited.
    pub async fn wait_ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/healthz", self.api_port);
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            assert!(self.running(), "serve exited early:\n{}", self.stderr());
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if started.elapsed() > Duration::from_secs(3) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (10 s at most) until serve answers `GET /healthz` with 200 `ok`; panics with its
    /// output otherwise. For tests of the API, which must not fall back like [`Serve::wait_ready`].
    pub async fn wait_api(&mut self) {
        let url = format!("http://127.0.0.1:{}/healthz", self.api_port);
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            assert!(self.running(), "serve exited early:\n{}", self.stderr());
            let last = match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => e.to_string(),
            };
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "serve does not answer GET /healthz on 127.0.0.1:{} after 10 s ({last}):\n{}",
                self.api_port,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits (15 s at most) for a clean exit.
    pub async fn stop(mut self) -> Output {
        proc::signal(self.pid(), Signal::Term);
        self.collect(Duration::from_secs(15)).await
    }

    /// Ctrl+C (SIGINT), then waits (15 s at most) for a clean exit: how a Windows console
    /// program is stopped (under wine, SIGTERM ends it at once).
    pub async fn interrupt(mut self) -> Output {
        proc::signal(self.pid(), Signal::Int);
        self.collect(Duration::from_secs(15)).await
    }

    /// SIGKILL: no chance to clean up.
    pub async fn kill9(mut self) -> Output {
        proc::signal(self.pid(), Signal::Kill);
        self.collect(Duration::from_secs(5)).await
    }

    /// Waits for the process to exit by itself (panics after `limit`).
    pub async fn wait_exit(mut self, limit: Duration) -> Output {
        self.collect(limit).await
    }

    async fn collect(&mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        let mut child = self.child.take().expect("serve child");
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait serve") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not exit within {limit:?}:\n{}", self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Output {
            args: self.args.clone(),
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&self.stdout.lock().expect("stdout")).into_owned(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        proc::signal(child.id(), Signal::Term);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Env {
    /// Starts `serve` in the background; the guard stops it with SIGTERM when dropped.
    pub fn spawn_serve(&self) -> Serve {
        self.spawn_background(&["serve"], &[])
    }

    /// `serve` with `extra` variables on top of [`Env::vars`] (e.g. `LD_PRELOAD`).
    pub fn spawn_serve_with(&self, extra: &[(&str, std::ffi::OsString)]) -> Serve {
        self.spawn_background(&["serve"], extra)
    }

    /// Starts the tray app (`tokenwarden` with no arguments) with `extra` variables on top of
    /// [`Env::vars`] (DISPLAY and the session bus come from the test's own environment). The
    /// guard stops it with SIGTERM when dropped; [`Serve::wait_api`] waits for its engine.
    pub fn spawn_app(&self, extra: &[(&str, std::ffi::OsString)]) -> Serve {
        self.spawn_background(&[], extra)
    }

    /// The tray app with arguments (`--hidden`).
    pub fn spawn_app_with_args(
        &self,
        args: &[&str],
        extra: &[(&str, std::ffi::OsString)],
    ) -> Serve {
        self.spawn_background(args, extra)
    }

    fn spawn_background(&self, args: &[&str], extra: &[(&str, std::ffi::OsString)]) -> Serve {
        let mut cmd = self.command(args);
        cmd.envs(extra.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `tokenwarden {}`: {e}", args.join(" ")));
        // Drain both pipes continuously: trace logs would otherwise fill a pipe and block serve.
        let drain = |mut pipe: Box<dyn Read + Send>| {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let sink = buf.clone();
            let handle = std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .expect("pipe buffer")
                        .extend_from_slice(&chunk[..n]);
                }
            });
            (buf, handle)
        };
        let (stdout, out_reader) = drain(Box::new(child.stdout.take().expect("stdout")));
        let (stderr, err_reader) = drain(Box::new(child.stderr.take().expect("stderr")));
        Serve {
            args: args.iter().map(|a| a.to_string()).collect(),
            child: Some(child),
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
            api_port: self.api_port,
        }
    }

    /// A client of this environment's API (port of `[api] listen`) with bearer `key`.
    pub fn api(&self, key: &str) -> Api {
        Api::new(self.api_port, Some(key))
    }

    /// [`Env::spawn_serve`], waits until it answers `GET /healthz` ([`Serve::wait_api`]), and
    /// returns it with a client of its API with bearer `key`.
    pub async fn serve_api(&self, key: &str) -> (Serve, Api) {
        let mut serve = self.spawn_serve();
        serve.wait_api().await;
        (serve, self.api(key))
    }

    /// [`Env::create_api_key`] `label`, then [`Env::serve_api`] with that key:
    /// `(serve, client, key)`.
    pub async fn serve_with_new_key(&self, label: &str) -> (Serve, Api, String) {
        let key = self.create_api_key(label).await;
        let (serve, api) = self.serve_api(&key).await;
        (serve, api, key)
    }

    /// [`Env::serve_with_new_key`] with a write key ([`Env::create_write_key`]).
    pub async fn serve_with_new_write_key(&self, label: &str) -> (Serve, Api, String) {
        let key = self.create_write_key(label).await;
        let (serve, api) = self.serve_api(&key).await;
        (serve, api, key)
    }
}
