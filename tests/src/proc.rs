//! Processes by id: what the kernel says about them in `/proc/PID/stat` and `/proc/PID/status`,
//! and signals sent to them (`kill`, one process we started at a time).
//!
//! * [`stat`]            state, parent and CPU ticks of a process
//! * [`alive`], [`cpu_seconds`], [`descendants`]  built on it
//! * [`rss_kib`], [`status_kib`]  memory figures of `/proc/PID/status`
//! * [`current_uid`]     who this test process runs as
//! * [`signal`]          `kill -SIG PID`; [`kill_tree`] ends a child and everything below it

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The fields of `/proc/PID/stat` the tests read.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    /// `R`, `S`, `D`, `T`, `Z`, `X`, ...
    pub state: char,
    pub ppid: u32,
    /// CPU time in user and in system mode, in clock ticks (`getconf CLK_TCK` per second).
    pub utime: u64,
    pub stime: u64,
}

/// Parses `/proc/PID/stat`; an error when the process is gone (or the line is not a stat line).
pub fn stat(pid: u32) -> std::io::Result<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a stat line: {text:?}"),
        )
    })
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) may hold spaces and parentheses: count fields after its last
    // closing parenthesis, where field 3 (state) starts.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        // Fields 14 and 15.
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
    })
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    stat(pid).is_ok_and(|s| !matches!(s.state, 'Z' | 'X'))
}

/// CPU time (user + system) of process `pid` in seconds; panics when it cannot be read.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = stat(pid).unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    let per_second = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    (stat.utime + stat.stime) as f64 / per_second
}

/// Every live descendant of `pid` (children first level by level), from `/proc/*/stat`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Ok(s) = stat(child) {
                parent_of.push((child, s.ppid));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, ppid) in &parent_of {
            if ppid == p && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// The user id this test process runs as: the owner of `/proc/self` (no libc call needed).
pub fn current_uid() -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata("/proc/self")?.uid())
}

/// A `kB` figure of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...); `None` when the process is gone
/// or has no such line.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let prefix = format!("{field}:");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resident memory of `pid` in KiB (`VmRSS`); panics when it cannot be read.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS").unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// A signal [`signal`] sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl+C, as a Windows console program under wine receives it.
    Int,
    Term,
    Kill,
    Stop,
    Cont,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Self::Int => "INT",
            Self::Term => "TERM",
            Self::Kill => "KILL",
            Self::Stop => "STOP",
            Self::Cont => "CONT",
        }
    }
}

/// Sends `signal` to one process the test started (itself or through what it ran), by its id,
/// never by name. Whether it arrived is not reported: callers wait for the effect they expect
/// (an exit, a pause), which also covers a process that was already gone.
pub fn signal(pid: u32, signal: Signal) {
    // The kill(1) command rather than kill(2): the crate links no libc of its own.
    let _ = Command::new("kill")
        .args([format!("-{}", signal.name()), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Waits (blocking, `limit` at most) until none of `pids` is alive.
pub fn wait_gone(pids: &[u32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while pids.iter().any(|&p| alive(p)) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Ends `child` and every process below it, all started through it, and waits (10 s at most)
/// until they are gone: SIGTERM from the bottom up, SIGKILL for what is left after 5 s.
pub fn kill_tree(child: &mut Child) {
    let below = descendants(child.id());
    for &pid in below.iter().rev() {
        signal(pid, Signal::Term);
    }
    if !wait_gone(&below, Duration::from_secs(5)) {
        for &pid in &below {
            signal(pid, Signal::Kill);
        }
        wait_gone(&below, Duration::from_secs(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_and_parentheses_in_the_name_parses() {
        let line = "4242 (tokio (rt) 1) S 17 4242 4242 0 -1 4194560 1 0 0 0 250 31 0 0 20 0 9 0 \
                    123456 0 0";
        let s = parse_stat(line).expect("a stat line");
        assert_eq!((s.state, s.ppid, s.utime, s.stime), ('S', 17, 250, 31));
        assert!(parse_stat("4242 (cut").is_none());
    }

    #[test]
    fn this_process_is_alive_and_has_used_cpu() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(cpu_seconds(me) >= 0.0);
        assert!(rss_kib(me) > 0);
        assert!(status_kib(me, "NoSuchField").is_none());
    }
}
