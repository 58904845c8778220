//! One refresher per machine: an exclusive lock on `engine.lock` in the data dir, held for
//! the life of whichever process refreshes. The OS drops the lock when that process dies,
//! however it dies. Beside it, `engine.json` says who holds it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
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
}

/// Held while alive; dropping it releases the lock.
#[derive(Debug)]
pub struct EngineLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another Tokenwarden engine (pid {pid}) is already running on {}; stop it first, or point TOKENWARDEN_DATA_DIR elsewhere", dir.display())]
    HeldByEngine { pid: u32, dir: PathBuf },
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
pub fn holder(dir: &Path) -> Option<Holder> {
    let file = open(dir).ok()?;
    match file.try_lock() {
        Ok(()) => None, // nobody: our probe lock is released when `file` drops
        Err(_) => read_holder(dir),
    }
}

fn read_holder(dir: &Path) -> Option<Holder> {
    serde_json::from_slice(&std::fs::read(dir.join("engine.json")).ok()?).ok()
}

fn open(dir: &Path) -> Result<File, LockError> {
    let path = dir.join("engine.lock");
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LockError::Io { path, source })
}

/// Records where the lock holder's API listens (call only while holding the lock).
pub fn announce(dir: &Path, listen: Option<std::net::SocketAddr>) -> Result<(), LockError> {
    let role = read_holder(dir).map_or(Role::Engine, |h| h.role);
    write_holder(
        dir,
        &Holder {
            pid: std::process::id(),
            role,
            listen,
        },
    )
}

fn write_holder(dir: &Path, holder: &Holder) -> Result<(), LockError> {
    let path = dir.join("engine.json");
    let tmp = dir.join("engine.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(holder).expect("serializes"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| LockError::Io { path, source })
}

/// Takes the lock. A CLI command waits up to `wait` for another CLI command; nobody waits
/// for a running engine.
pub fn acquire(dir: &Path, role: Role, wait: Duration) -> Result<EngineLock, LockError> {
    let file = open(dir)?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => {
                write_holder(
                    dir,
                    &Holder {
                        pid: std::process::id(),
                        role,
                        listen: None,
                    },
                )?;
                return Ok(EngineLock { _file: file });
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = read_holder(dir);
                match holder {
                    Some(Holder {
                        pid,
                        role: Role::Engine,
                        ..
                    }) => {
                        return Err(LockError::HeldByEngine {
                            pid,
                            dir: dir.to_owned(),
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
                    path: dir.join("engine.lock"),
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
        let lock = acquire(dir.path(), Role::Engine, Duration::ZERO).unwrap();
        let err = acquire(dir.path(), Role::Engine, Duration::ZERO).unwrap_err();
        assert!(matches!(err, LockError::HeldByEngine { .. }), "{err}");
        assert_eq!(holder(dir.path()).unwrap().pid, std::process::id());
        drop(lock);
        assert!(holder(dir.path()).is_none());
        acquire(dir.path(), Role::Cli, Duration::ZERO).unwrap();
    }
}
