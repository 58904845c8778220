//! One isolated Tokenwarden environment per test, and helpers that drive the real binary.
//!
//! An [`Env`] owns a temp dir (config file + data dir) and a keychain service name nobody else
//! uses, so tests can run in parallel and leftovers never collide; dropping it clears that
//! service's keychain items. The binary is `TOKENWARDEN_BIN`, else `target/debug/tokenwarden`.
//! * [`Env::run`]         one command to completion → [`Output`]
//! * [`Env::spawn_serve`] `serve` in the background → [`Serve`], SIGTERM on drop ([`Env::spawn_serve_with`]:
//!   with extra variables)
//! * [`Env::spawn_app`]   the tray app (no arguments) in the background, also a [`Serve`]
//! * [`Env::vars`]        the variables that isolate it, for launchers such as tauri-driver
//! * [`Env::connect`]     `connect --no-browser` with the test playing the browser
//! * [`Env::keychain_get`] reads the OS keychain with `secret-tool`, independently of the binary
//! * [`Env::history_rows`] the `refreshes` table of `<data dir>/history.sqlite3`, read-only
//! * [`Env::create_api_key`] `api-key create LABEL` → the key ([`Env::create_write_key`]: with
//!   `--write`); [`Env::api`] an API client with it
//! * [`Env::serve_api`]   `serve` answering its API, and a client; [`Env::serve_with_new_key`]
//!   creates the key first ([`Env::serve_with_new_write_key`]: a write key)
//! * [`Env::start_connect_device`] `connect NAME --device`, reading its two stdout lines
//! * [`Env::fail_keychain_writes`] makes every keychain write of the binary fail (debug builds)
//! * [`Env::sibling`]     another data dir and config on the same keychain service
//!
//! [`LegacyAccount`] builds the setup most tests start from: account `fb` on a legacy-Fitbit
//! fake, its client secret stored and, with [`LegacyAccount::connected`], tokens seeded.

use std::fmt;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::api::Api;
use crate::fakes::oauth::{OAuthConfig, OAuthFake};
use crate::proc::{self, Signal};

/// The binary under test.
pub fn bin_path() -> PathBuf {
    let path = std::env::var_os("TOKENWARDEN_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/tokenwarden"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} does not exist: build it with `cargo build -p tokenwarden` or set TOKENWARDEN_BIN",
        path.display()
    );
    path
}

/// A port for a listener the binary opens itself.
///
/// Ports come from below the kernel's ephemeral range (32768 and up on Linux), never the same
/// one twice in a process. A port the kernel handed out for `127.0.0.1:0` could be handed out
/// again, or taken as the local end of any outgoing connection another test makes, before the
/// binary binds it; CI once saw `connect` fail with "Address already in use" that way.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    // Start each test process at its own place so two test binaries run side by side rarely meet.
    static NEXT: AtomicU16 = AtomicU16::new(u16::MAX);
    let _ = NEXT.compare_exchange(
        u16::MAX,
        (std::process::id() % u32::from(SPAN)) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 127.0.0.1:{FIRST}..{}", FIRST + SPAN)
}

/// The `p` quantile (0.0–1.0) of `sorted`, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// RFC 3339 → unix seconds; panics with the text when it is not RFC 3339.
pub fn unix_from_rfc3339(text: &str) -> i64 {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .unix_timestamp()
}

/// Polls `cond` every 100 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_until(timeout: Duration, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one command did.
#[derive(Clone, Debug)]
pub struct Output {
    pub args: Vec<String>,
    /// Exit code; -1 when a signal ended the process.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`tokenwarden {}` exited {}\n--- stdout\n{}\n--- stderr\n{}\n---",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

impl Output {
    /// Panics with everything the command printed unless it exited 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success:\n{self}");
        self
    }

    /// Panics unless the command exited 1 with exactly one `tokenwarden: ` line on stderr
    /// (other stderr lines are logs); returns that line.
    #[track_caller]
    pub fn failure_line(&self) -> String {
        assert_eq!(self.code, 1, "expected exit code 1:\n{self}");
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("tokenwarden: "))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one `tokenwarden: ` line on stderr:\n{self}"
        );
        lines[0].to_string()
    }

    pub fn stdout_trimmed(&self) -> &str {
        self.stdout.trim_end_matches(['\n', '\r'])
    }
}

/// An isolated environment: its own config file, data dir and keychain service.
pub struct Env {
    dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    /// `TOKENWARDEN_KEYCHAIN_SERVICE`: unique, so tests never see each other's items.
    pub service: String,
    /// Port of `[api] listen`, so parallel `serve`s never fight over the default one.
    pub api_port: u16,
    /// `TOKENWARDEN_LOG` for every command started from now on.
    pub log: String,
    /// Every command's output, in order, for tests that scan everything that was printed.
    pub transcript: Mutex<Vec<Output>>,
    /// `TOKENWARDEN_FAULT_KEYCHAIN_WRITES` of every command: while a file exists here, the
    /// binary's keychain writes fail ([`Env::fail_keychain_writes`]).
    pub keychain_fault_path: PathBuf,
    /// Whether dropping this environment clears the keychain service ([`Env::sibling`]s don't).
    owns_service: bool,
    /// A D-Bus session of its own (a private keyring, [`crate::keyring::PrivateKeyring`]) for
    /// the binary and for `secret-tool`; `None`: the test session's.
    pub bus: Option<std::ffi::OsString>,
    /// More variables for every command of this environment (a fleet host's store key).
    pub extra_vars: Vec<(&'static str, std::ffi::OsString)>,
    /// The binary every command runs; `None`: [`bin_path`] (an installed package's
    /// `/usr/bin/tokenwarden` in the package tests).
    pub bin: Option<PathBuf>,
}

impl Env {
    /// A config made of a header (`[api] listen` on a free port, `[refresh] retry_initial = "1s"`
    /// and `min_interval = "1s"`, so that tests may use tokens living a few seconds) followed
    /// by `accounts` (`[[account]]` tables).
    pub fn new(accounts: &str) -> Self {
        Self::with_refresh("retry_initial = \"1s\"\nmin_interval = \"1s\"", accounts)
    }

    /// Like [`Env::new`] with `refresh` (TOML lines) as the `[refresh]` table instead of
    /// `retry_initial = "1s"`.
    pub fn with_refresh(refresh: &str, accounts: &str) -> Self {
        let env = Self::without_config();
        let header = format!(
            "[api]\nlisten = \"127.0.0.1:{}\"\n\n[refresh]\n{refresh}\n\n",
            env.api_port
        );
        env.write_config(&(header + accounts));
        env
    }

    /// An environment whose config file does not exist yet (see [`Env::write_config`]).
    pub fn without_config() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tokenwarden-e2e-")
            .tempdir()
            .expect("temp dir");
        let config_path = dir.path().join("config").join("config.toml");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let service = format!(
            "tokenwarden-e2e-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        Self {
            keychain_fault_path: dir.path().join("fail-keychain-writes"),
            dir,
            config_path,
            data_dir,
            service,
            api_port: free_port(),
            log: "info".into(),
            transcript: Mutex::new(Vec::new()),
            owns_service: true,
            bus: None,
            extra_vars: Vec::new(),
            bin: None,
        }
    }

    /// Another environment on the same keychain service (so the same accounts and secrets),
    /// with its own data dir and a copy of this config whose `[api] listen` is another free
    /// port: a second installation that shares only the keychain. Dropping it leaves the
    /// keychain to this one.
    pub fn sibling(&self) -> Self {
        let mut other = Self::without_config();
        other.service = self.service.clone();
        other.owns_service = false;
        let config = std::fs::read_to_string(&self.config_path).expect("read config");
        let old = format!("listen = \"127.0.0.1:{}\"", self.api_port);
        assert!(config.contains(&old), "the config has no {old}");
        other.write_config(
            &config.replace(&old, &format!("listen = \"127.0.0.1:{}\"", other.api_port)),
        );
        other
    }

    /// While `on`, every keychain write of the binary (every command this environment runs,
    /// including a `serve` already running) fails; reads still work. Uses the debug builds'
    /// fault hook `TOKENWARDEN_FAULT_KEYCHAIN_WRITES`, which checks for the file on each write.
    pub fn fail_keychain_writes(&self, on: bool) {
        if on {
            std::fs::write(&self.keychain_fault_path, b"fail").expect("create the fault file");
        } else {
            match std::fs::remove_file(&self.keychain_fault_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("remove the fault file: {e}"),
            }
        }
    }

    pub fn write_config(&self, contents: &str) {
        std::fs::create_dir_all(self.config_path.parent().expect("config dir"))
            .expect("config dir");
        std::fs::write(&self.config_path, contents).expect("write config");
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The variables every command of this environment runs with, for processes that start
    /// the binary themselves (tauri-driver launches the tray app with its own environment).
    pub fn vars(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let bus = self
            .bus
            .iter()
            .map(|b| ("DBUS_SESSION_BUS_ADDRESS", b.clone()));
        let mut vars = vec![
            ("TOKENWARDEN_CONFIG", self.config_path.clone().into()),
            ("TOKENWARDEN_DATA_DIR", self.data_dir.clone().into()),
            ("TOKENWARDEN_KEYCHAIN_SERVICE", self.service.clone().into()),
            ("TOKENWARDEN_LOG", self.log.clone().into()),
            (
                "TOKENWARDEN_FAULT_KEYCHAIN_WRITES",
                self.keychain_fault_path.clone().into(),
            ),
        ];
        vars.extend(bus);
        vars.extend(self.extra_vars.iter().cloned());
        vars
    }

    /// `secret-tool` on this environment's session bus.
    fn secret_tool(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("secret-tool");
        if let Some(bus) = &self.bus {
            cmd.env("DBUS_SESSION_BUS_ADDRESS", bus);
        }
        cmd
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.bin.clone().unwrap_or_else(bin_path));
        // `cargo test` puts every build script's output folder on LD_LIBRARY_PATH; a user's
        // process has none of them (the loader would probe each for each of the ~170
        // libraries the binary links), so timings here match theirs.
        cmd.args(args)
            .envs(self.vars())
            .env_remove("RUST_LOG")
            .env_remove("LD_LIBRARY_PATH");
        cmd
    }

    /// Runs `tokenwarden args` to completion (60 s at most), feeding `stdin` when given.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_for(args, stdin, Duration::from_secs(60)).await
    }

    pub async fn run_for(&self, args: &[&str], stdin: Option<&str>, limit: Duration) -> Output {
        let mut cmd = tokio::process::Command::from(self.command(args));
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn tokenwarden");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(input.as_bytes()).await.expect("write stdin");
        }
        let out = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "`tokenwarden {}` still running after {limit:?}",
                    args.join(" ")
                )
            })
            .expect("wait for tokenwarden");
        let out = Output {
            args: args.iter().map(|a| a.to_string()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.transcript
            .lock()
            .expect("transcript")
            .push(out.clone());
        out
    }

    /// `secret set NAME` with `value` on stdin (plus the newline a shell would add).
    pub async fn set_secret(&self, name: &str, value: &str) {
        self.run(&["secret", "set", name], Some(&format!("{value}\n")))
            .await
            .ok();
    }

    /// `list --json`, parsed.
    pub async fn list(&self) -> Vec<Value> {
        let out = self.run(&["list", "--json"], None).await.ok();
        let value: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("list --json is not JSON ({e}):\n{out}"));
        value
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("list --json is not an array:\n{out}"))
    }

    /// One account's entry of `list --json`.
    pub async fn account(&self, name: &str) -> Value {
        let list = self.list().await;
        list.iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no account {name:?} in list --json: {list:?}"))
    }

    pub async fn status(&self, name: &str) -> String {
        self.account(name).await["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// `log [NAME] --json`, parsed (newest first).
    pub async fn log_entries(&self, name: Option<&str>) -> Vec<Value> {
        let mut args = vec!["log"];
        args.extend(name);
        args.push("--json");
        let out = self.run(&args, None).await.ok();
        let value: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("log --json is not JSON ({e}):\n{out}"));
        value
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("log --json is not an array:\n{out}"))
    }

    /// `token NAME`'s output, which must succeed: the token alone.
    pub async fn token(&self, name: &str) -> String {
        self.run(&["token", name], None)
            .await
            .ok()
            .stdout_trimmed()
            .to_string()
    }

    /// The secret stored under `username = entry`, read by `secret-tool`, not by the binary.
    pub async fn keychain_get(&self, entry: &str) -> Option<String> {
        let out = self
            .secret_tool()
            .args(["lookup", "service", &self.service, "username", entry])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run secret-tool (Debian package libsecret-tools)");
        let value = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !value.is_empty()).then_some(value)
    }

    /// Every item of this environment's service, `username` → secret, in one `secret-tool
    /// search --all` (for tests with too many items to look up one by one). secret-tool prints
    /// secrets on stdout and attributes on stderr, each in item order, so they pair by index.
    pub async fn keychain_all(&self) -> std::collections::HashMap<String, String> {
        let out = self
            .secret_tool()
            .args(["search", "--all", "--unlock", "service", &self.service])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run secret-tool (Debian package libsecret-tools)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let secrets: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("secret = "))
            .collect();
        let users: Vec<&str> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("attribute.username = "))
            .collect();
        assert_eq!(
            secrets.len(),
            users.len(),
            "secret-tool search: {} secrets but {} usernames",
            secrets.len(),
            users.len()
        );
        users
            .into_iter()
            .zip(secrets)
            .map(|(u, s)| (u.to_string(), s.to_string()))
            .collect()
    }

    /// Removes an item of this environment's service from the keychain.
    pub async fn keychain_clear(&self, entry: &str) {
        let status = self
            .secret_tool()
            .args(["clear", "service", &self.service, "username", entry])
            .stdin(Stdio::null())
            .status()
            .await
            .expect("run secret-tool");
        assert!(status.success(), "secret-tool clear {entry} failed");
    }

    /// The folder of this service's engine lock, by the binary's rule:
    /// `$XDG_RUNTIME_DIR/tokenwarden`, else `<temp>/tokenwarden-$USER`.
    pub fn lock_dir(&self) -> PathBuf {
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("tokenwarden"),
            None => {
                let uid = proc::current_uid().expect("/proc");
                std::env::temp_dir().join(format!("tokenwarden-{uid}"))
            }
        }
    }

    /// The lock file of this service's refresher.
    pub fn lock_file(&self) -> PathBuf {
        self.lock_dir().join(format!("{}.lock", self.lock_stem()))
    }

    /// The service's name as the lock's files are named.
    fn lock_stem(&self) -> String {
        self.service
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The engine lock's holder file (`{"pid","role","listen","socket"}`), if there is one.
    pub fn engine_holder(&self) -> Option<Value> {
        let path = self.lock_dir().join(format!("{}.json", self.lock_stem()));
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// The JSON of `tokens:NAME` in the keychain, if any.
    pub async fn stored_tokens(&self, name: &str) -> Option<Value> {
        let text = self.keychain_get(&format!("tokens:{name}")).await?;
        Some(serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "tokens:{name} in the keychain is not JSON ({e}): {} bytes",
                text.len()
            )
        }))
    }

    /// Writes an item the way keyring-rs v3 does (same attributes), so the binary finds it.
    pub async fn keychain_set(&self, entry: &str, value: &str) {
        let mut child = self
            .secret_tool()
            .args([
                "store",
                "--label",
                &format!("{entry}@{} (e2e seed)", self.service),
            ])
            .args(["service", &self.service, "username", entry])
            .args(["target", "default", "application", "rust-keyring"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run secret-tool");
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(value.as_bytes())
            .await
            .expect("write secret");
        drop(pipe);
        assert!(
            child.wait().await.expect("secret-tool").success(),
            "secret-tool store failed"
        );
    }

    /// Stores `tokens:NAME` as if the account had been connected: the contract's JSON shape.
    pub async fn seed_tokens(&self, name: &str, access: &str, refresh: &str, expires_at: i64) {
        let json = serde_json::json!({
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_at": expires_at,
        });
        self.keychain_set(&format!("tokens:{name}"), &json.to_string())
            .await;
    }

    /// Rows of the `refreshes` table as JSON objects (column → value), read-only.
    /// Empty when the database or the table does not exist yet.
    pub fn history_rows(&self) -> Vec<serde_json::Map<String, Value>> {
        use rusqlite::{types::ValueRef, OpenFlags};
        let path = self.data_dir.join("history.sqlite3");
        let Ok(db) = rusqlite::Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ) else {
            return Vec::new();
        };
        let _ = db.busy_timeout(Duration::from_secs(2));
        let Ok(mut stmt) = db.prepare("SELECT * FROM refreshes") else {
            return Vec::new();
        };
        let names: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let rows = stmt.query_map([], |row| {
            let mut map = serde_json::Map::new();
            for (i, name) in names.iter().enumerate() {
                let value = match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => n.into(),
                    ValueRef::Real(x) => x.into(),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned().into()
                    }
                };
                map.insert(name.clone(), value);
            }
            Ok(map)
        });
        rows.map(|r| r.filter_map(Result::ok).collect())
            .unwrap_or_default()
    }

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

    /// Starts `connect NAME --no-browser` and reads the authorization URL from its first line.
    pub async fn start_connect(&self, name: &str) -> Connecting {
        self.spawn_reading_lines(&["connect", name, "--no-browser"], 1)
            .await
    }

    /// Starts `connect NAME --device` and reads its first two stdout lines: the verification
    /// URI and the user code.
    pub async fn start_connect_device(&self, name: &str) -> DeviceConnecting {
        let flow = self
            .spawn_reading_lines(&["connect", name, "--device"], 2)
            .await;
        let lines: Vec<String> = flow
            .first_line
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect();
        DeviceConnecting {
            verification_uri: lines[0].clone(),
            user_code: lines[1].clone(),
            flow,
        }
    }

    /// `api-key create LABEL`, which must succeed and print the key alone on one line. The key
    /// is read-only: [`Env::create_write_key`] makes one that may change accounts.
    pub async fn create_api_key(&self, label: &str) -> String {
        self.create_key(&["api-key", "create", label]).await
    }

    /// `api-key create LABEL --write`: a key that may also connect, disconnect, set a secret
    /// and reload.
    pub async fn create_write_key(&self, label: &str) -> String {
        self.create_key(&["api-key", "create", label, "--write"])
            .await
    }

    async fn create_key(&self, args: &[&str]) -> String {
        let out = self.run(args, None).await.ok();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "api-key create prints the key alone on one line:\n{out}"
        );
        let key = lines[0].trim().to_string();
        assert!(
            key.len() >= 20 && !key.contains(char::is_whitespace),
            "an API key is one long word:\n{out}"
        );
        key
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

    /// Starts `tokenwarden args` and reads `lines` stdout lines (20 s at most).
    async fn spawn_reading_lines(&self, args: &[&str], lines: usize) -> Connecting {
        let mut cmd = tokio::process::Command::from(self.command(args));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn tokenwarden connect");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr_task = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        let mut first = String::new();
        for i in 0..lines {
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut line)).await;
            if !matches!(read, Ok(Ok(n)) if n > 0) {
                let _ = child.start_kill();
                let stderr = stderr_task.await.unwrap_or_default();
                panic!(
                    "`tokenwarden {}` printed {i} stdout lines, expected {lines}\n--- stdout\n{first}\n--- stderr\n{stderr}",
                    args.join(" ")
                );
            }
            first.push_str(&line);
        }
        let stdout_task = tokio::spawn(async move {
            let mut rest = String::new();
            let _ = stdout.read_to_string(&mut rest).await;
            rest
        });
        Connecting {
            args: args.iter().map(|a| a.to_string()).collect(),
            auth_url: first.lines().next().unwrap_or("").trim_end().to_string(),
            first_line: first,
            child,
            stdout_task,
            stderr_task,
        }
    }

    /// The whole consent flow: start connect, follow the fake's redirect into the app's loopback
    /// listener, expect its 200 page, expect exit 0. Returns the authorization URL.
    pub async fn connect(&self, name: &str) -> url::Url {
        let flow = self.start_connect(name).await;
        let auth_url = flow.url();
        let callback = authorize_in_browser(&flow.auth_url).await;
        let (status, body) = browser_get(&callback).await;
        assert_eq!(
            status, 200,
            "the loopback listener's answer to {callback}: {body}"
        );
        let out = flow.finish().await;
        self.transcript
            .lock()
            .expect("transcript")
            .push(out.clone());
        out.ok();
        auth_url
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.owns_service {
            return;
        }
        // Everything this test stored lives under its own service name.
        let mut clear = std::process::Command::new("secret-tool");
        if let Some(bus) = &self.bus {
            clear.env("DBUS_SESSION_BUS_ADDRESS", bus);
        }
        let _ = clear
            .args(["clear", "service", &self.service])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Account `fb` on a legacy-Fitbit [`OAuthFake`] of its own, the setup most tests start from.
///
/// [`LegacyAccount::start`] starts the fake (config [`OAuthConfig::fitbit_legacy`] with `fb`'s
/// redirect_uri, passed through `configure`), writes an [`Env`] whose `fb` table points at the
/// fake with `redirect_uri` on a port that was free (the one redirect the fake accepts), and
/// stores `fb`'s client secret. [`LegacyAccount::connected`] also seeds `fb`'s tokens.
/// [`Env::serve_with_new_key`] is the usual next step.
pub struct LegacyAccount {
    configure: Box<dyn FnOnce(OAuthConfig) -> OAuthConfig + Send>,
    /// Appended to `fb`'s table after its redirect_uri, each part on a line of its own.
    extra: String,
    /// Names of the never-connected accounts after `fb`.
    others: Vec<String>,
    /// The `[refresh]` table's lines, when not [`Env::new`]'s.
    refresh: Option<String>,
}

impl LegacyAccount {
    /// `configure` gets the fake's default legacy config (8 h tokens) and returns the one to
    /// run, e.g. `|c| c.expires_in(3600)`.
    pub fn new(configure: impl FnOnce(OAuthConfig) -> OAuthConfig + Send + 'static) -> Self {
        Self {
            configure: Box::new(configure),
            extra: String::new(),
            others: Vec::new(),
            refresh: None,
        }
    }

    /// TOML lines for the `[refresh]` table instead of `retry_initial = "1s"`.
    pub fn refresh_settings(mut self, lines: &str) -> Self {
        self.refresh = Some(lines.into());
        self
    }

    /// TOML lines for `fb`'s table after its redirect_uri (`refresh_before`, `scopes`, ...).
    pub fn extra(mut self, lines: &str) -> Self {
        self.extra.push('\n');
        self.extra.push_str(lines);
        self
    }

    /// Another `fitbit-legacy` account `name` on the same fake, after `fb`, with a redirect_uri
    /// of its own on a free port: configured but never connected, no client secret stored.
    pub fn another_account(mut self, name: &str) -> Self {
        self.others.push(name.into());
        self
    }

    /// The fake, and the environment with `fb`'s client secret stored (no tokens).
    pub async fn start(self) -> (OAuthFake, Env) {
        let redirect = format!("http://127.0.0.1:{}/callback", free_port());
        let config = (self.configure)(OAuthConfig::fitbit_legacy(&redirect));
        let fake = OAuthFake::start(config).await;
        let mut accounts = fake.account_toml(
            "fb",
            "fitbit-legacy",
            &format!("redirect_uri = \"{redirect}\"{}", self.extra),
        );
        for name in &self.others {
            let redirect = format!("http://127.0.0.1:{}/callback", free_port());
            accounts.push_str(&fake.account_toml(
                name,
                "fitbit-legacy",
                &format!("redirect_uri = \"{redirect}\""),
            ));
        }
        let env = match &self.refresh {
            Some(refresh) => Env::with_refresh(refresh, &accounts),
            None => Env::new(&accounts),
        };
        let secret = fake.lock().config.client_secret.clone();
        env.set_secret("fb", &secret).await;
        (fake, env)
    }

    /// [`LegacyAccount::start`], then `fb` connected: a grant from the fake
    /// ([`OAuthFake::issue_grant`]) stored as `tokens:fb`, expiring `left` seconds from now
    /// (negative: already expired). Returns the access token as well.
    pub async fn connected(self, left: i64) -> (OAuthFake, Env, String) {
        let (fake, env) = self.start().await;
        let (access, refresh) = fake.issue_grant();
        env.seed_tokens("fb", &access, &refresh, unix_now() + left)
            .await;
        (fake, env, access)
    }
}

/// A running `connect --no-browser` (or another command whose first lines were read).
pub struct Connecting {
    args: Vec<String>,
    /// The first stdout line, trimmed: the authorization URL.
    pub auth_url: String,
    /// The stdout lines read before returning, with their line ends.
    pub first_line: String,
    child: tokio::process::Child,
    stdout_task: tokio::task::JoinHandle<String>,
    stderr_task: tokio::task::JoinHandle<String>,
}

impl Connecting {
    /// The authorization URL; panics unless the first line is a URL and nothing else.
    pub fn url(&self) -> url::Url {
        url::Url::parse(&self.auth_url).unwrap_or_else(|e| {
            panic!(
                "connect's first stdout line is not a URL ({e}): {:?}",
                self.first_line
            )
        })
    }

    /// Waits (30 s at most) for the process to exit.
    pub async fn finish(mut self) -> Output {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let code = match status {
            Ok(Ok(s)) => s.code().unwrap_or(-1),
            _ => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                -2
            }
        };
        let rest = self.stdout_task.await.unwrap_or_default();
        Output {
            args: self.args,
            code,
            stdout: self.first_line + &rest,
            stderr: self.stderr_task.await.unwrap_or_default(),
        }
    }
}

/// A running `connect NAME --device`.
pub struct DeviceConnecting {
    /// Stdout line 1.
    pub verification_uri: String,
    /// Stdout line 2.
    pub user_code: String,
    pub flow: Connecting,
}

impl DeviceConnecting {
    /// Waits (30 s at most) for the process to exit; stdout includes the two lines read.
    pub async fn finish(self) -> Output {
        self.flow.finish().await
    }
}

/// Plays the browser on the provider: GET the authorization URL without following the redirect,
/// and return where the provider sends the user (the app's loopback callback).
pub async fn authorize_in_browser(auth_url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let response = client
        .get(auth_url)
        .send()
        .await
        .expect("GET the authorization URL");
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match location {
        Some(l) if status.is_redirection() => l,
        _ => panic!(
            "the provider refused the authorization request {auth_url}: HTTP {status}: {}",
            response.text().await.unwrap_or_default()
        ),
    }
}

/// GET `url` like a browser on the loopback listener: (status, body). Retries refused
/// connections for 2 s, since a browser is never faster than that after the URL is printed.
pub async fn browser_get(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match client.get(url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                return (status, r.text().await.unwrap_or_default());
            }
            Err(e) if e.is_connect() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("GET {url}: {e}"),
        }
    }
}

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

/// Files under `dir` (recursively) whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path);
            }
        }
    }
    found
}
