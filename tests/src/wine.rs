//! The Windows build under wine: [`Wine`], one prefix shared by every test of a run (made once,
//! in `target/wine/`), and [`Env::windows`], an environment whose commands run
//! `tokenwarden.exe` in it. What wine implements is what these tests stand on: Credential
//! Manager (`CredWriteW`, kept in the prefix's registry), Winsock on loopback, `LockFileEx`,
//! console Ctrl+C (SIGINT to the process), `CreateProcess` with an environment block.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use crate::harness::Env;

/// A wine prefix ready to run the Windows build.
pub struct Wine {
    pub prefix: PathBuf,
    /// `tokenwarden.exe`.
    pub exe: PathBuf,
}

/// The Windows build under test: `TOKENWARDEN_WINDOWS_BIN`, else the debug build `make test`
/// cross-compiles.
pub fn exe_path() -> PathBuf {
    std::env::var_os("TOKENWARDEN_WINDOWS_BIN").map_or_else(
        || target().join("x86_64-pc-windows-gnu/debug/tokenwarden.exe"),
        PathBuf::from,
    )
}

fn target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

impl Wine {
    /// The run's prefix, made (and `wineboot`ed) by the first test that asks.
    pub fn shared() -> Arc<Wine> {
        static WINE: OnceLock<Arc<Wine>> = OnceLock::new();
        WINE.get_or_init(|| Arc::new(Wine::prepare())).clone()
    }

    fn prepare() -> Wine {
        let exe = exe_path();
        assert!(
            exe.exists(),
            "{} does not exist: build it with `make windows-test-build` (or set TOKENWARDEN_WINDOWS_BIN)",
            exe.display()
        );
        let prefix = target().join("wine/prefix");
        let system32 = prefix.join("drive_c/windows/system32");
        if !system32.join("kernel32.dll").exists() {
            std::fs::create_dir_all(&prefix).expect("wine prefix dir");
            let status = Self::base(&prefix)
                .args(["wineboot", "--init"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run wineboot (apt-get install wine64)");
            assert!(status.success(), "wineboot --init failed: {status}");
            // wineboot returns while the services it started still set the prefix up; a
            // program started meanwhile may die at load without a word.
            let _ = Command::new("wineserver")
                .env("WINEPREFIX", &prefix)
                .arg("-w")
                .status();
        }
        Self::add_process_prng(&system32);
        let wine = Wine { prefix, exe };
        // Every test may then assume that the build starts in this prefix.
        let out = wine
            .command()
            .arg("--version")
            .output()
            .expect("run tokenwarden.exe --version");
        assert!(
            out.status.success(),
            "tokenwarden.exe does not start in {}: {} {}",
            wine.prefix.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        wine
    }

    /// Debian 12's wine 8 lacks bcryptprimitives.dll, whose `ProcessPrng` Rust's std needs on
    /// Windows 10 and later (rust-lang/rust#121337; wine 9 has it): every Rust program stops
    /// at load without it. The stand-in (`tests/wine/bcryptprimitives.c`) is compiled with
    /// mingw into this prefix alone.
    fn add_process_prng(system32: &Path) {
        let dll = system32.join("bcryptprimitives.dll");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("wine/bcryptprimitives.c");
        let built = target().join("wine/bcryptprimitives.dll");
        if !built.exists() {
            let status = Command::new("x86_64-w64-mingw32-gcc")
                .args(["-shared", "-O2", "-o"])
                .arg(&built)
                .arg(&source)
                .arg("-ladvapi32")
                .status()
                .expect("run x86_64-w64-mingw32-gcc (apt-get install mingw-w64)");
            assert!(status.success(), "building {}", built.display());
        }
        std::fs::copy(&built, &dll).expect("copy bcryptprimitives.dll into the prefix");
    }

    fn base(prefix: &Path) -> Command {
        let mut cmd = Command::new("wine");
        cmd.env("WINEPREFIX", prefix)
            .env("WINEDEBUG", "-all")
            // No display: wine must not try to open windows or ask for Mono and Gecko.
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
        cmd
    }

    /// `wine tokenwarden.exe` in this prefix.
    pub fn command(&self) -> Command {
        let mut cmd = Self::base(&self.prefix);
        cmd.arg(&self.exe);
        cmd
    }

    /// The names of every Credential Manager item of `service` (keyring-rs names each
    /// `ENTRY.SERVICE`), as wine's registry holds them, asked of the live registry with
    /// `reg query`.
    pub fn credential_targets(&self, service: &str) -> Vec<String> {
        let out = Self::base(&self.prefix)
            .args(["reg", "query", "HKCU\\Software\\Wine\\Credential Manager"])
            .stderr(Stdio::null())
            .output()
            .expect("wine reg query");
        let suffix = format!(".{service}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim_end().split_once("\\Generic: "))
            .map(|(_, target)| target.to_owned())
            .filter(|t| t.ends_with(&suffix))
            .map(|t| t[..t.len() - suffix.len()].to_owned())
            .collect()
    }
}

impl Env {
    /// [`Env::new`] for the Windows build: every command is `tokenwarden.exe` under wine,
    /// its keychain wine's Credential Manager.
    pub fn windows(accounts: &str) -> Self {
        let mut env = Self::new(accounts);
        env.wine = Some(Wine::shared());
        env
    }
}
