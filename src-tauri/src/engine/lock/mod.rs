//! One refresher per keychain service: an exclusive lock on `<service>.lock` in the user's
//! runtime dir, held for the life of whichever process refreshes. Its scope is the keychain
//! service because that is what two processes really share: two data dirs over one keychain
//! would otherwise both refresh the same rotating token. The OS drops the lock when that
//! process dies, however it dies. Beside it, `<service>.json` says who holds it and where
//! its API listens.
//! That announcement is believed only when the kernel confirms its process holds the lock
//! ([`owner`]): a holder killed with SIGKILL leaves it behind, and the next holder writes its
//! own a moment after taking the lock. A lock held by a process that has not announced itself
//! is busy, never "an engine runs".
//! This is the seam for "who may refresh": a shared store can take its place later.

mod owner;

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub role: Role,
    /// Where its local API listens, once it does.
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
    /// Its Unix socket, where this user's processes are let in without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// When its process started (Linux clock ticks since boot): pids are reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
}

impl Holder {
    fn me(role: Role) -> Self {
        let pid = std::process::id();
        Self {
            pid,
            role,
            listen: None,
            socket: None,
            start: owner::start_time(pid),
        }
    }
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

/// Held while alive; dropping it takes back the announcement and releases the lock.
#[derive(Debug)]
pub struct EngineLock {
    file: File,
    place: LockPlace,
}

impl Drop for EngineLock {
    fn drop(&mut self) {
        // Still under the lock: nobody else can have announced meanwhile.
        if read_holder(&self.place).is_some_and(|h| h.pid == std::process::id()) {
            let _ = std::fs::remove_file(self.place.holder_file());
        }
        let _ = self.file.unlock();
    }
}

/// Who holds a busy lock, as far as can be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Occupant {
    /// Announced, and the kernel confirms its process holds the lock.
    Announced(Holder),
    /// Held by a process that has not (yet) said who it is: its pid where the kernel lists it.
    Unannounced { pid: Option<u32> },
}

impl std::fmt::Display for Occupant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Announced(h) if h.role == Role::Engine => {
                write!(f, "a Tokenwarden engine (pid {})", h.pid)
            }
            Self::Announced(h) => write!(f, "a one-shot tokenwarden command (pid {})", h.pid),
            Self::Unannounced { pid: Some(pid) } => {
                write!(f, "process {pid} (it has not said what it is)")
            }
            Self::Unannounced { pid: None } => f.write_str("another process"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another Tokenwarden engine (`serve` or the tray app, pid {pid}) is already running for keychain service `{service}`")]
    HeldByEngine { pid: u32, service: String },
    #[error("the lock of keychain service `{service}` is held by {occupant}, which did not let go within {} s; try again when it has finished", waited.as_secs())]
    Busy {
        /// Boxed: a holder's paths are larger on Windows, and every engine error carries this.
        occupant: Box<Occupant>,
        service: String,
        waited: Duration,
    },
    #[error("lock dir {0}")]
    Place(#[from] crate::engine::system::private::PlaceError),
    #[error("lock file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The announced holder of the lock, if the lock is held and its holder has announced itself.
pub fn holder(place: &LockPlace) -> Option<Holder> {
    let file = open(place).ok()?;
    match file.try_lock() {
        Ok(()) => None, // nobody: our probe lock is released when `file` drops
        Err(_) => match occupant(place) {
            Occupant::Announced(holder) => Some(holder),
            Occupant::Unannounced { .. } => None,
        },
    }
}

/// Who holds the (busy) lock: the announcement if its process holds the lock, else whoever the
/// kernel names.
fn occupant(place: &LockPlace) -> Occupant {
    let path = place.lock_file();
    if let Some(holder) = read_holder(place) {
        if owner::verdict(holder.pid, holder.start, &path) != owner::Verdict::DoesNot {
            return Occupant::Announced(holder);
        }
    }
    Occupant::Unannounced {
        pid: owner::holders(&path).first().copied(),
    }
}

fn read_holder(place: &LockPlace) -> Option<Holder> {
    serde_json::from_slice(&std::fs::read(place.holder_file()).ok()?).ok()
}

/// What moves the lock dir elsewhere, for errors about it.
const LOCK_DIR_REMEDY: &str = "set XDG_RUNTIME_DIR (or TMPDIR) to a folder only you can write";

/// Opens the lock file in a lock dir that is ours alone (refused otherwise: another user who
/// made it could announce a server of theirs to our CLI, or hold the lock against us).
fn open(place: &LockPlace) -> Result<File, LockError> {
    crate::engine::system::private::own_dir(&place.dir, LOCK_DIR_REMEDY)?;
    let path = place.lock_file();
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options
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
            listen,
            socket,
            ..Holder::me(role)
        },
    )
}

fn write_holder(place: &LockPlace, holder: &Holder) -> Result<(), LockError> {
    let path = place.holder_file();
    let json = serde_json::to_vec(holder).expect("serializes");
    crate::engine::system::private::replace(&path, &json, 0o600)
        .map_err(|source| LockError::Io { path, source })
}

/// Takes the lock, waiting up to `wait` while a one-shot command (or a process that has not
/// announced itself yet) holds it. Nobody waits for a running engine.
pub fn acquire(place: &LockPlace, role: Role, wait: Duration) -> Result<EngineLock, LockError> {
    let file = open(place)?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => {
                write_holder(place, &Holder::me(role))?;
                return Ok(EngineLock {
                    file,
                    place: place.clone(),
                });
            }
            Err(std::fs::TryLockError::WouldBlock) => match occupant(place) {
                Occupant::Announced(Holder {
                    pid,
                    role: Role::Engine,
                    ..
                }) => {
                    return Err(LockError::HeldByEngine {
                        pid,
                        service: place.service.clone(),
                    })
                }
                occupant if started.elapsed() >= wait => {
                    return Err(LockError::Busy {
                        occupant: Box::new(occupant),
                        service: place.service.clone(),
                        waited: wait,
                    })
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            },
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
        assert!(
            !place.holder_file().exists(),
            "the announcement goes with the lock"
        );
        acquire(&place, Role::Cli, Duration::ZERO).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_dead_engines_announcement_is_busy_not_a_running_engine() {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let place = LockPlace::new(dir.path().to_owned(), "svc");
        // An engine that was killed: its announcement stays, its process is gone.
        let mut dead = Command::new("true").spawn().unwrap();
        dead.wait().unwrap();
        write_holder(
            &place,
            &Holder {
                pid: dead.id(),
                role: Role::Engine,
                listen: None,
                socket: None,
                start: None,
            },
        )
        .unwrap();
        drop(open(&place).unwrap());
        // A new holder between taking the lock and announcing itself (util-linux flock).
        let mut cli = Command::new("flock")
            .args(["-x", "-n", "-F"])
            .arg(place.lock_file())
            .args(["sleep", "30"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        while owner::holders(&place.lock_file()).is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            holder(&place),
            None,
            "the stale announcement is not believed"
        );
        let err = acquire(&place, Role::Engine, Duration::from_millis(200)).unwrap_err();
        match &err {
            LockError::Busy { occupant, .. } => assert_eq!(
                **occupant,
                Occupant::Unannounced {
                    pid: Some(cli.id())
                }
            ),
            other => panic!("busy, naming the real holder: {other}"),
        }
        let words = err.to_string();
        assert!(words.contains(&format!("process {}", cli.id())), "{words}");
        assert!(!words.contains(&dead.id().to_string()), "{words}");

        // The engine waits for it, then takes the lock and announces itself.
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            cli.kill().unwrap();
            cli.wait().unwrap();
        });
        let lock = acquire(&place, Role::Engine, Duration::from_secs(10)).unwrap();
        release.join().unwrap();
        assert_eq!(holder(&place).unwrap().pid, std::process::id());
        drop(lock);
    }
}
