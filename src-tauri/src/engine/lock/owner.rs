//! Who really holds a lock file, asked of the kernel rather than of the file that says so.
//! An announcement outlives a process killed with SIGKILL, and a new holder writes its own a
//! moment after it takes the lock: between the two, the file names a dead (or unrelated)
//! process. On Linux each open file's lock is listed in `/proc/PID/fdinfo/FD`; elsewhere on
//! Unix only whether the process lives can be known.

use std::path::Path;

/// What the kernel says about one process and a lock file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It holds an exclusive lock on the file.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Holds,
    /// It is gone, or alive without the lock (a stale announcement).
    DoesNot,
    /// This platform cannot say; the process at least lives.
    Alive,
}

/// Does `pid` (started at `start`, when known: pids are reused) hold the lock on `path`? A
/// process of another user never counts: our CLI must not believe it is our engine.
pub fn verdict(pid: u32, start: Option<u64>, path: &Path) -> Verdict {
    #[cfg(target_os = "linux")]
    {
        if start.is_some() && start != start_time(pid) {
            return Verdict::DoesNot;
        }
        if !ours(pid) {
            return Verdict::DoesNot;
        }
        if proc_fs_is_mounted() {
            return match holds(pid, path) {
                true => Verdict::Holds,
                false => Verdict::DoesNot,
            };
        }
    }
    let _ = (start, path);
    if alive(pid) {
        Verdict::Alive
    } else {
        Verdict::DoesNot
    }
}

/// The processes that hold an exclusive lock on `path` (Linux; empty elsewhere). Only for
/// naming the holder in an error: it looks at every process of ours.
pub fn holders(path: &Path) -> Vec<u32> {
    #[cfg(target_os = "linux")]
    {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut pids: Vec<u32> = procs
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&pid| holds(pid, path))
            .collect();
        pids.sort_unstable();
        pids
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        Vec::new()
    }
}

/// When this process started, in clock ticks since boot (field 22 of `/proc/PID/stat`): with
/// the pid, it names one process for the life of the machine.
pub fn start_time(pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        rest.split_whitespace().nth(19)?.parse().ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// The process runs as our effective user (the owner of its /proc entry).
#[cfg(target_os = "linux")]
fn ours(pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}"))
        .is_ok_and(|m| m.uid() == crate::engine::system::private::euid())
}

#[cfg(target_os = "linux")]
fn proc_fs_is_mounted() -> bool {
    Path::new("/proc/self/fdinfo").is_dir()
}

/// One of `pid`'s open files is `path` and carries an exclusive lock (`lock: … WRITE` in its
/// fdinfo). Matched by path and by inode, as a bind mount or an overlay may show either.
#[cfg(target_os = "linux")]
fn holds(pid: u32, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(path).ok().map(|m| m.ino());
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        let same_path = std::fs::read_link(fd.path()).is_ok_and(|target| target == path);
        let Ok(info) = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        )) else {
            return false;
        };
        let same_inode = inode.is_some_and(|ino| {
            info.lines().any(|l| {
                l.strip_prefix("ino:")
                    .is_some_and(|v| v.trim() == ino.to_string())
            })
        });
        (same_path || same_inode)
            && info
                .lines()
                .any(|l| l.starts_with("lock:") && l.contains("FLOCK") && l.contains("WRITE"))
    })
}

#[cfg(unix)]
fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // EPERM means it lives under another user.
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(not(unix))]
fn alive(_pid: u32) -> bool {
    true
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// util-linux `flock` holding `path` for a while, in a process of its own (`-F`: it
    /// becomes the command, so killing it frees the lock).
    fn flock(path: &Path) -> std::process::Child {
        let child = Command::new("flock")
            .args(["-x", "-n", "-F"])
            .arg(path)
            .args(["sleep", "30"])
            .stdout(Stdio::null())
            .spawn()
            .expect("flock (util-linux) runs");
        let waited = Instant::now();
        while holders(path).is_empty() {
            assert!(
                waited.elapsed() < Duration::from_secs(10),
                "flock took the lock"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child
    }

    #[test]
    fn the_process_holding_a_lock_is_told_from_one_that_only_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        std::fs::write(&path, "").unwrap();
        let me = std::process::id();
        assert_eq!(verdict(me, start_time(me), &path), Verdict::DoesNot);

        let mut holder = flock(&path);
        assert_eq!(verdict(holder.id(), None, &path), Verdict::Holds);
        assert!(holders(&path).contains(&holder.id()));
        // This process lives but does not hold it; a wrong start time is another process.
        assert_eq!(verdict(me, None, &path), Verdict::DoesNot);
        let start = start_time(holder.id()).expect("a start time");
        assert_eq!(
            verdict(holder.id(), Some(start + 1), &path),
            Verdict::DoesNot
        );

        holder.kill().unwrap();
        holder.wait().unwrap();
        let pid = holder.id();
        assert!(holders(&path).is_empty());
        assert_eq!(verdict(pid, Some(start), &path), Verdict::DoesNot);
    }

    #[test]
    fn a_start_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let me = std::process::id();
        assert!(start_time(me).is_some());
        assert_eq!(start_time(u32::MAX), None);
    }
}
