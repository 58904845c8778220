//! One refresher per keychain service: an exclusive lock on `<service>.lock` in the user's
//! runtime dir, held for the life of whichever process refreshes. Its scope is the keychain
//! service because that is what two processes really share: two data dirs over one keychain
//! would otherwise both refresh the same rotating token. The OS drops the lock when that
//! process dies, however it dies. Beside it, `<service>.json` says who holds it and where
//! its API listens.
//! This is the seam for "who may refresh": a shared store can take its place later.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `serve` or the tray app: long-running, others leave refreshing to it.
    Engine,
    /// A CLI command doing one job: others wait for it.
    Cli,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub role: Role,
    /// Where its local API listens, once it does.
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
    /// Its Unix socket, where this user's processes are let in without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
}

/// Where the lock of one keychain service lives.
#[derive(Clone, Debug)]
pub struct LockPlace {
    pub dir: PathBuf,
    /// The keychain service, made safe for a file name.
    pub stem: String,
    /// For messages.
    pub service: String,
}

impl LockPlace {
    pub fn new(dir: PathBuf, service: &str) -> Self {
        let stem = service
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            dir,
            stem,
            service: service.to_owned(),
        }
    }
    fn lock_file(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.stem))
    }
    fn holder_file(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.stem))
    }
    /// Where the engine of this service takes its Unix socket.
    pub fn socket_file(&self) -> PathBuf {
        self.dir.join(format!("{}.sock", self.stem))
    }
}

/// Held while alive; dropping it releases the lock.
#[derive(Debug)]
pub struct EngineLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another Tokenwarden engine (pid {pid}) is already running for keychain service `{service}`; use it (the CLI and the API reach it), or stop it first")]
    HeldByEngine { pid: u32, service: String },
    #[error("timed out waiting for another tokenwarden command (pid {pid}) to finish")]
    Busy { pid: u32 },
    #[error("lock file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Who holds the lock now, if anyone does.
pub fn holder(place: &LockPlace) -> Option<Holder> {
    let file = open(place).ok()?;
    match file.try_lock() {
        Ok(()) => None, // nobody: our probe lock is released when `file` drops
        Err(_) => read_holder(place),
    }
}

fn read_holder(place: &LockPlace) -> Option<Holder> {
    serde_json::from_slice(&std::fs::read(place.holder_file()).ok()?).ok()
}

fn open(place: &LockPlace) -> Result<File, LockError> {
    let path = place.lock_file();
    std::fs::create_dir_all(&place.dir).map_err(|source| LockError::Io {
        path: place.dir.clone(),
        source,
    })?;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LockError::Io { path, source })
}

/// Records where the lock holder's API listens (call only while holding the lock).
pub fn announce(
    place: &LockPlace,
    listen: Option<std::net::SocketAddr>,
    socket: Option<PathBuf>,
) -> Result<(), LockError> {
    let role = read_holder(place).map_or(Role::Engine, |h| h.role);
    write_holder(
        place,
        &Holder {
            pid: std::process::id(),
            role,
            listen,
            socket,
        },
    )
}

fn write_holder(place: &LockPlace, holder: &Holder) -> Result<(), LockError> {
    let path = place.holder_file();
    let tmp = place
        .dir
        .join(format!("{}.json.{}.tmp", place.stem, std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(holder).expect("serializes"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| LockError::Io { path, source })
}

/// Takes the lock. A CLI command waits up to `wait` for another CLI command; nobody waits
/// for a running engine.
pub fn acquire(place: &LockPlace, role: Role, wait: Duration) -> Result<EngineLock, LockError> {
    let file = open(place)?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => {
                write_holder(
                    place,
                    &Holder {
                        pid: std::process::id(),
                        role,
                        listen: None,
                        socket: None,
                    },
                )?;
                return Ok(EngineLock { _file: file });
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = read_holder(place);
                match holder {
                    Some(Holder {
                        pid,
                        role: Role::Engine,
                        ..
                    }) => {
                        return Err(LockError::HeldByEngine {
                            pid,
                            service: place.service.clone(),
                        })
                    }
                    other if started.elapsed() >= wait => {
                        return Err(LockError::Busy {
                            pid: other.map_or(0, |h| h.pid),
                        })
                    }
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(LockError::Io {
                    path: place.lock_file(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_engine_is_refused_and_the_lock_frees_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let place = LockPlace::new(dir.path().to_owned(), "tokenwarden/test one");
        assert_eq!(place.stem, "tokenwarden_test_one");
        let lock = acquire(&place, Role::Engine, Duration::ZERO).unwrap();
        let err = acquire(&place, Role::Engine, Duration::ZERO).unwrap_err();
        assert!(matches!(err, LockError::HeldByEngine { .. }), "{err}");
        assert_eq!(holder(&place).unwrap().pid, std::process::id());
        // Another service is another lock.
        let other = LockPlace::new(dir.path().to_owned(), "other");
        drop(acquire(&other, Role::Engine, Duration::ZERO).unwrap());
        drop(lock);
        assert!(holder(&place).is_none());
        acquire(&place, Role::Cli, Duration::ZERO).unwrap();
    }
}
