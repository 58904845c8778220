//! Other processes on this machine, for tests of what a local process can do to Tokenwarden:
//! * [`running_as_root`]  whether this test may act as another user
//! * [`hold_lock`]        util-linux `flock` holding a lock file, waited for until the kernel
//!   lists the lock (a command between taking the lock and announcing itself)
//! * [`drop_box`]         a file any user may append to, for a hostile server's log

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// Tests run as root to act as `nobody` (setpriv); elsewhere they say SKIPPED and return.
pub fn running_as_root() -> bool {
    crate::proc::current_uid().is_ok_and(|uid| uid == 0)
}

/// `flock -x -n -F FILE sleep SECS` (it becomes `sleep`, so killing it frees the lock), once
/// the kernel lists its exclusive lock in `/proc/PID/fdinfo`.
pub async fn hold_lock(file: &Path, secs: u32) -> Child {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let child = Command::new("flock")
        .args(["-x", "-n", "-F"])
        .arg(file)
        .args(["sleep", &secs.to_string()])
        .spawn()
        .expect("flock (util-linux)");
    let pid = child.id();
    crate::wait_until(
        Duration::from_secs(10),
        "flock holds the lock",
        async || {
            std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| {
                    std::fs::read_to_string(fd.path())
                        .is_ok_and(|i| i.contains("FLOCK  ADVISORY  WRITE"))
                })
        },
    )
    .await;
    child
}

/// An empty file `name` in `dir` that any user may write: where another user's server logs
/// what it received.
pub fn drop_box(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, "").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    path
}
