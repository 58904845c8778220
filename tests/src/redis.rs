//! A real `redis-server` (Debian's package) on a free loopback port, one per test, stopped by
//! its PID when dropped. How it keeps its data decides what a restart on the same port brings
//! back: nothing ([`Keeps::Nothing`], a wipe), everything (an append-only file, an outage), or
//! the last snapshot taken with [`RedisServer::snapshot`] (Redis's default persistence, a
//! lagging replica promoted, a backup restored: an older state than the one the hosts saw).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_port, Env};
use crate::proc::{self, Signal};
use crate::Api;

/// The key prefix of the fleets tests make.
pub const NAMESPACE: &str = "tw-e2e";

/// What a restarted server comes back with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keeps {
    Nothing,
    /// An append-only file, fsync'd on every write.
    Everything,
    /// `dump.rdb` in its dir, written only when a test asks (`SAVE`).
    Snapshot,
}

pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    keeps: Keeps,
    /// More `redis-server` arguments (ACL users).
    extra: Vec<String>,
    /// `redis-cli` arguments to log in with, once the default user is off.
    login: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Without persistence, as TESTING.md runs it.
    pub async fn start() -> Self {
        Self::start_with(Keeps::Nothing).await
    }

    /// With an append-only file (fsync on every write), for restarts that keep the data.
    pub async fn start_persistent() -> Self {
        Self::start_with(Keeps::Everything).await
    }

    /// With snapshots only when asked ([`Self::snapshot`]), for restarts that go back to one.
    pub async fn start_snapshotting() -> Self {
        Self::start_with(Keeps::Snapshot).await
    }

    /// With the default user off and one ACL user, `user` with password `password`.
    pub async fn start_with_user(user: &str, password: &str) -> Self {
        let extra = format!("--user default off --user {user} on >{password} ~* &* +@all");
        Self::start_args(
            Keeps::Nothing,
            extra.split(' ').map(str::to_owned).collect(),
            user,
            password,
        )
        .await
    }

    async fn start_with(keeps: Keeps) -> Self {
        Self::start_args(keeps, Vec::new(), "", "").await
    }

    async fn start_args(keeps: Keeps, extra: Vec<String>, user: &str, password: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tokenwarden-redis-")
            .tempdir()
            .expect("temp dir");
        let login = if user.is_empty() {
            Vec::new()
        } else {
            ["--user", user, "--pass", password, "--no-auth-warning"]
                .map(str::to_owned)
                .to_vec()
        };
        let mut server = Self {
            port: free_port(),
            dir,
            keeps,
            extra,
            login,
            child: None,
        };
        server.run().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A fleet host on this server: `[refresh]` lines, then a `[store]` table (namespace
    /// `tw-e2e`, 3 s leases, `host = name`), then `accounts`; `key` is its
    /// `TOKENWARDEN_STORE_KEY` (empty: none).
    pub fn host(&self, name: &str, key: &str, refresh: &str, accounts: &str) -> Env {
        let store = format!(
            "[store]\nkind = \"redis\"\nurl = \"{}\"\nlease = \"3s\"\nnamespace = \"{NAMESPACE}\"\nhost = \"{name}\"\n\n",
            self.url()
        );
        let mut env = Env::with_refresh(refresh, &(store + accounts));
        if !key.is_empty() {
            env.extra_vars.push(("TOKENWARDEN_STORE_KEY", key.into()));
        }
        env
    }

    /// A new store key, from `tokenwarden store init --print`.
    pub async fn new_key(&self) -> String {
        let out = self
            .host("keygen", "", "", "")
            .run(&["store", "init", "--print"], None)
            .await
            .ok();
        let key = out.stdout_trimmed().to_owned();
        assert_eq!(key.len(), 44, "base64 of 32 bytes: {out}");
        key
    }

    fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    async fn run(&mut self) {
        let port = self.port.to_string();
        let dir = self.dir();
        let dir_arg = dir.to_string_lossy().into_owned();
        // `--save ''`: no snapshot unless a test asks for one, so that a restart comes back
        // with exactly the state the test chose.
        let mut args = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--protected-mode",
            "no",
        ];
        match self.keeps {
            Keeps::Nothing => args.extend(["--appendonly", "no"]),
            Keeps::Everything => args.extend(["--appendonly", "yes", "--appendfsync", "always"]),
            Keeps::Snapshot => args.extend([
                "--appendonly",
                "no",
                "--dir",
                &dir_arg,
                "--dbfilename",
                "dump.rdb",
            ]),
        }
        let child = Command::new("redis-server")
            .args(&args)
            .args(&self.extra)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; make test installs it)");
        self.child = Some(child);
        let started = Instant::now();
        while self.cli(&["PING"]).await.trim() != "PONG" {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server on port {} does not answer PING",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server (SIGTERM, as an operator would; an append-only file is complete).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            proc::signal(child.id(), Signal::Term);
            let started = Instant::now();
            while matches!(child.try_wait(), Ok(None)) {
                if started.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.run().await;
    }

    /// Writes a snapshot (`SAVE`, in the foreground): what [`Self::restart_from_snapshot`]
    /// goes back to.
    pub async fn snapshot(&self) {
        assert_eq!(self.keeps, Keeps::Snapshot, "start_snapshotting() first");
        let out = self.cli(&["SAVE"]).await;
        assert_eq!(out.trim(), "OK", "redis-cli SAVE: {out}");
    }

    /// Stops the server without saving (`SHUTDOWN NOSAVE`) and starts it again on the same
    /// port and dir: it loads the last snapshot, and everything written since is gone.
    pub async fn restart_from_snapshot(&mut self) {
        assert_eq!(self.keeps, Keeps::Snapshot, "start_snapshotting() first");
        assert!(
            self.dir().join("dump.rdb").exists(),
            "no snapshot to go back to"
        );
        // The connection drops as the server exits: there is no answer to read.
        let _ = self.cli(&["SHUTDOWN", "NOSAVE"]).await;
        if let Some(mut child) = self.child.take() {
            let started = Instant::now();
            while matches!(child.try_wait(), Ok(None)) {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "redis-server on port {} ignores SHUTDOWN NOSAVE",
                    self.port
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.run().await;
    }

    /// `redis-cli -p PORT args…`, its stdout.
    pub async fn cli(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(&self.login)
            .args(args)
            .output()
            .await
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every key with its type and value, for comparing the whole store before and after.
    pub async fn dump(&self) -> BTreeMap<String, String> {
        let keys = self.cli(&["--raw", "KEYS", "*"]).await;
        let mut all = BTreeMap::new();
        for key in keys.lines().filter(|k| !k.is_empty()) {
            let kind = self.cli(&["TYPE", key]).await;
            let value = match kind.trim() {
                "string" => self.cli(&["--raw", "GET", key]).await,
                "hash" => self.cli(&["--raw", "HGETALL", key]).await,
                other => format!("<{other}>"),
            };
            all.insert(key.to_owned(), value);
        }
        all
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls every host's API until all serve the same token for `account`, other than `old`
/// (panics after `limit`); that token.
pub async fn until_all_serve_new(
    hosts: &[&Api],
    account: &str,
    old: &str,
    limit: Duration,
) -> String {
    let started = Instant::now();
    let target = format!("/v1/accounts/{account}/token");
    loop {
        let mut tokens = Vec::new();
        for api in hosts {
            tokens.push(api.get(&target).await.access_token());
        }
        if tokens.iter().all(|t| *t == tokens[0] && t != old) {
            return tokens.remove(0);
        }
        assert!(
            started.elapsed() < limit,
            "the hosts still serve {tokens:?} {limit:?} after a refresh of {old:?}"
        );
    }
}
