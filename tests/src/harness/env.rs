//! [`Env`], one isolated environment per test: its config file, data dir and keychain service,
//! the variables that isolate it, and commands of the binary run to completion in it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::{free_port, Output};

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
    /// Run the Windows build under wine instead ([`Env::windows`]).
    pub wine: Option<std::sync::Arc<crate::wine::Wine>>,
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
            wine: None,
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

    /// `tokenwarden args` as a command with this environment, not yet started.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = match &self.wine {
            Some(wine) => wine.command(),
            None => std::process::Command::new(self.bin.clone().unwrap_or_else(bin_path)),
        };
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
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.owns_service || self.wine.is_some() {
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
