//! Where things live: the config file, the data dir (history, API key index), the keychain
//! service name and the refresher lock (per service, in the runtime dir), from flags,
//! environment and the platform's conventions.

use std::path::PathBuf;

pub const DEFAULT_KEYCHAIN_SERVICE: &str = "tokenwarden";

#[derive(Clone, Debug)]
pub struct Context {
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    /// Separate services keep separate sets of secrets (tests, several profiles).
    pub keychain_service: String,
    /// Where the refresher lock of each keychain service lives.
    pub lock_dir: PathBuf,
}

impl Context {
    /// `config` comes from `--config` or `TOKENWARDEN_CONFIG` (clap reads both).
    pub fn resolve(config: Option<PathBuf>) -> Result<Self, String> {
        let dirs = directories::ProjectDirs::from("", "", "tokenwarden");
        let config_path = match config {
            Some(path) => path,
            None => dirs
                .as_ref()
                .map(|d| d.config_dir().join("config.toml"))
                .ok_or("cannot find a home directory; pass --config PATH")?,
        };
        let data_dir = match std::env::var_os("TOKENWARDEN_DATA_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            // Windows: %LOCALAPPDATA%, not the roaming %APPDATA% (a database open on one
            // machine must not be copied to another at logon). Elsewhere they are the same.
            _ => dirs
                .as_ref()
                .map(|d| d.data_local_dir().to_owned())
                .ok_or("cannot find a home directory; set TOKENWARDEN_DATA_DIR")?,
        };
        let keychain_service = std::env::var("TOKENWARDEN_KEYCHAIN_SERVICE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_KEYCHAIN_SERVICE.to_owned());
        Ok(Self {
            config_path,
            data_dir,
            keychain_service,
            lock_dir: lock_dir(),
        })
    }

    pub fn lock_place(&self) -> crate::engine::lock::LockPlace {
        crate::engine::lock::LockPlace::new(self.lock_dir.clone(), &self.keychain_service)
    }

    pub fn history_path(&self) -> PathBuf {
        self.data_dir.join("history.sqlite3")
    }
}

/// What moves the data dir elsewhere, for errors about it.
pub const DATA_DIR_REMEDY: &str = "set TOKENWARDEN_DATA_DIR to a folder only you can write";

/// `$XDG_RUNTIME_DIR/tokenwarden` (private to the user, gone at logout with the processes
/// it describes), else a per-user folder in the temp dir, named by uid (`$USER` is often unset
/// in containers and units, and two users would then share one name). Another user may make
/// that folder first: `engine::private` refuses it then.
#[cfg(not(any(windows, target_os = "macos")))]
fn lock_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("tokenwarden");
    }
    #[cfg(unix)]
    let user = super::system::private::euid().to_string();
    #[cfg(not(unix))]
    let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".to_owned());
    std::env::temp_dir().join(format!("tokenwarden-{user}"))
}

/// Windows: `%LOCALAPPDATA%\tokenwarden\run`, the user's own (its ACL lets no other user
/// in), on this machine only; there is no runtime dir, and an `XDG_RUNTIME_DIR` that leaks in
/// (from MSYS2, Cygwin or wine) is not the user's profile. macOS: `~/Library/Application
/// Support/tokenwarden/run`, not `$TMPDIR`, which macOS sweeps of files untouched for three
/// days: a swept lock file would let a second refresher start beside the engine.
#[cfg(any(windows, target_os = "macos"))]
fn lock_dir() -> PathBuf {
    directories::BaseDirs::new()
        .map(|d| d.data_local_dir().join("tokenwarden").join("run"))
        .unwrap_or_else(|| std::env::temp_dir().join("tokenwarden"))
}
