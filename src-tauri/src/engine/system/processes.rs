//! Which process is at the other end of a connection, and what it is: the program a token
//! was handed to. Linux says, in `/proc`: the socket's inode from the socket table, the
//! process whose file descriptors hold that inode, and its executable, name and arguments.
//! Elsewhere only what the connection itself tells (nothing, over TCP).

use serde::{Deserialize, Serialize};

/// A process, as far as the kernel would say. Never its whole command line: arguments may
/// hold secrets (`curl -H "Authorization: Bearer …"`), so only the script an interpreter
/// runs (an argument that is an existing file) or a Tokenwarden subcommand is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    /// The executable's path (`/proc/PID/exe`).
    pub exe: Option<String>,
    /// The process's name (`/proc/PID/comm`, 15 characters at most).
    pub command: Option<String>,
    /// The script an interpreter runs, or the Tokenwarden subcommand.
    pub detail: Option<String>,
}

/// The subcommands of our own binary worth naming (`tokenwarden exec`, …).
#[cfg(target_os = "linux")]
const SUBCOMMANDS: &[&str] = &[
    "token",
    "exec",
    "mcp",
    "git-credential",
    "kube-credential",
    "refresh",
    "list",
];

impl Process {
    /// What `/proc/PID` says of `pid`; the pid alone where it says nothing.
    pub fn of_pid(pid: u32) -> Self {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt;
            let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
            let exe = std::fs::read_link(dir.join("exe"))
                .ok()
                .map(|p| p.display().to_string());
            let command = std::fs::read_to_string(dir.join("comm"))
                .ok()
                .map(|c| c.trim_end().to_owned());
            let uid = std::fs::metadata(&dir).ok().map(|m| m.uid());
            let args = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let args: Vec<String> = args
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let detail = detail(exe.as_deref(), &args, &dir);
            Self {
                pid: Some(pid),
                uid,
                exe,
                command,
                detail,
            }
        }
        #[cfg(not(target_os = "linux"))]
        Self {
            pid: Some(pid),
            ..Self::default()
        }
    }

    /// This process.
    pub fn this() -> Self {
        let mut me = Self::of_pid(std::process::id());
        if me.exe.is_none() {
            me.exe = std::env::current_exe()
                .ok()
                .map(|p| p.display().to_string());
        }
        me
    }

    /// The program that asks through this process: the process itself, or, for our own
    /// CLI (`tokenwarden token`, `exec`, the credential helpers), the one that ran it. Any
    /// program can run the CLI, so approving "tokenwarden" would approve them all.
    pub fn program(&self) -> std::borrow::Cow<'_, Self> {
        #[cfg(target_os = "linux")]
        if let (Some(pid), true) = (self.pid, self.exe.as_deref().is_some_and(is_ours)) {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if let Some(parent) = parent.filter(|p| *p > 1) {
                return std::borrow::Cow::Owned(Self::of_pid(parent));
            }
        }
        std::borrow::Cow::Borrowed(self)
    }

    /// The process holding the client end of a loopback TCP connection from `peer` to `ours`.
    pub fn at_tcp(peer: std::net::SocketAddr, ours: std::net::SocketAddr) -> Self {
        #[cfg(target_os = "linux")]
        {
            let Some((uid, inode)) = super::sock_diag::socket(peer, ours) else {
                return Self::default();
            };
            match holder(uid, inode) {
                Some(pid) => Self::of_pid(pid),
                None => Self {
                    uid: Some(uid),
                    ..Self::default()
                },
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (peer, ours);
            Self::default()
        }
    }
}

/// Whether `exe` is one of our own binaries (this one, or the CLI beside the tray app).
#[cfg(target_os = "linux")]
fn is_ours(exe: &str) -> bool {
    static OURS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    OURS.get_or_init(|| {
        let Ok(me) = std::env::current_exe() else {
            return Vec::new();
        };
        let cli = me.with_file_name("tokenwarden");
        vec![me.display().to_string(), cli.display().to_string()]
    })
    .iter()
    .any(|ours| ours == exe)
}

/// The processes found last: a program that took a token is likely to take another on a
/// new connection, so they are looked at first.
#[cfg(target_os = "linux")]
static RECENT: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());
#[cfg(target_os = "linux")]
const RECENT_KEPT: usize = 16;

/// Sockets seen while looking through processes' descriptors: inode → (pid, fd). Every
/// search records every socket it passes, so a burst of connections from one program costs
/// one read of its descriptors, not one per connection: a client holding 10,000 sockets made
/// each search read 10,000 links, and a 10,000-connection storm waited 195 s for its answers.
/// An entry is trusted only after one `readlink` shows the descriptor still holds the socket.
#[cfg(target_os = "linux")]
type Seen = std::collections::HashMap<u64, (u32, u32)>;
#[cfg(target_os = "linux")]
static SEEN: std::sync::Mutex<Option<Seen>> = std::sync::Mutex::new(None);
/// How many times the test process's own descriptors were read: the unit test of a burst
/// counts them (a full search of other tests, running beside it, reads every process's).
#[cfg(all(test, target_os = "linux"))]
static SCANS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Past this many, what was seen is forgotten (the sockets of a storm long closed).
#[cfg(target_os = "linux")]
const SEEN_KEPT: usize = 200_000;

/// The first process of `uid` with a descriptor on socket `inode`: one seen holding it in an
/// earlier search, else the recent takers first, then the others newest first (a client that
/// just connected is more often young). One search at a time: a burst of new connections
/// from one program costs one full search, and the others find theirs among what it saw.
#[cfg(target_os = "linux")]
fn holder(uid: u32, inode: u64) -> Option<u32> {
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let seen = seen.get_or_insert_with(Default::default);
    if let Some(&(pid, fd)) = seen.get(&inode) {
        if owned_by(pid, uid) && socket_of(&format!("/proc/{pid}/fd/{fd}")) == Some(inode) {
            remember(pid);
            return Some(pid);
        }
    }
    if seen.len() > SEEN_KEPT {
        seen.clear();
    }
    // Reads all of `pid`'s descriptors, noting every socket, and says whether one is `inode`.
    let mut holds = |pid: u32| {
        if !owned_by(pid, uid) {
            return false;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        #[cfg(test)]
        if pid == std::process::id() {
            SCANS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let mut found = false;
        for fd in fds.flatten() {
            let number = fd.file_name().to_str().and_then(|n| n.parse::<u32>().ok());
            let socket = fd.path().to_str().and_then(socket_of);
            if let (Some(number), Some(socket)) = (number, socket) {
                seen.insert(socket, (pid, number));
                found |= socket == inode;
            }
        }
        found
    };
    let recent: Vec<u32> = RECENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let found = match recent.iter().copied().find(|&pid| holds(pid)) {
        Some(pid) => pid,
        None => {
            let mut pids: Vec<u32> = std::fs::read_dir("/proc")
                .ok()?
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|pid| !recent.contains(pid))
                .collect();
            pids.sort_unstable_by(|a, b| b.cmp(a));
            pids.into_iter().find(|&pid| holds(pid))?
        }
    };
    remember(found);
    Some(found)
}

#[cfg(target_os = "linux")]
fn owned_by(pid: u32, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}"))
        .map(|m| m.uid())
        .ok()
        == Some(uid)
}

/// The socket inode a descriptor link (`/proc/PID/fd/N`) points at, if it is a socket.
#[cfg(target_os = "linux")]
fn socket_of(link: &str) -> Option<u64> {
    std::fs::read_link(link)
        .ok()?
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Puts `pid` first among the recent takers.
#[cfg(target_os = "linux")]
fn remember(pid: u32) {
    let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    recent.retain(|p| *p != pid);
    recent.insert(0, pid);
    recent.truncate(RECENT_KEPT);
}

/// The script an interpreter runs (its first argument that is an existing file, relative to
/// the process's folder), or our own subcommand; nothing else of the command line.
#[cfg(target_os = "linux")]
fn detail(exe: Option<&str>, args: &[String], dir: &std::path::Path) -> Option<String> {
    let ours = exe
        .and_then(|e| std::path::Path::new(e).file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("tokenwarden"));
    if ours {
        let subcommand = args
            .iter()
            .skip(1)
            .find(|a| SUBCOMMANDS.contains(&a.as_str()))?;
        // `exec … -- CMD`: the token is for CMD, which is not running yet. Its name (never
        // its arguments) says who gets it.
        let runs = args
            .iter()
            .skip_while(|a| a.as_str() != "--")
            .nth(1)
            .and_then(|cmd| std::path::Path::new(cmd).file_name()?.to_str());
        return Some(match (subcommand.as_str(), runs) {
            ("exec", Some(cmd)) => format!("exec {cmd}"),
            _ => subcommand.clone(),
        });
    }
    let cwd = std::fs::read_link(dir.join("cwd")).ok();
    args.iter().skip(1).take(3).find_map(|a| {
        if a.starts_with('-') || a.contains('=') {
            return None;
        }
        let path = std::path::Path::new(a);
        let full = match (&cwd, path.is_absolute()) {
            (Some(cwd), false) => cwd.join(path),
            _ => path.to_owned(),
        };
        full.is_file().then(|| full.display().to_string())
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::Process;

    #[test]
    fn the_other_end_of_our_own_connection_is_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let (_accepted, from) = listener.accept().unwrap();
        assert_eq!(from, client.local_addr().unwrap());
        let found = Process::at_tcp(from, server);
        assert_eq!(found.pid, Some(std::process::id()));
        assert_eq!(found, Process::this());
        assert!(found.exe.is_some() && found.command.is_some(), "{found:?}");
        assert_eq!(
            Process::at_tcp(from, std::net::SocketAddr::from(([127, 0, 0, 1], 1))),
            Process::default()
        );
    }

    /// A program holding many connections is read once, not once per connection: the first
    /// search notes every socket it passes, and each later connection of that burst is found
    /// among them with one `readlink` (a 10,000-connection storm waited 195 s before).
    #[test]
    fn a_burst_of_connections_from_one_program_is_read_once() {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let mut burst = Vec::new();
        for _ in 0..500 {
            let client = std::net::TcpStream::connect(server).unwrap();
            let (accepted, from) = listener.accept().unwrap();
            burst.push((client, accepted, from));
        }
        let before = super::SCANS.load(Ordering::Relaxed);
        for (_, _, from) in &burst {
            assert_eq!(Process::at_tcp(*from, server).pid, Some(std::process::id()));
        }
        // One read of this process's descriptors (the other tests' lookups, running beside
        // this one, may add one each); before, each of the 500 connections read them again.
        let scans = super::SCANS.load(Ordering::Relaxed) - before;
        assert!(
            scans <= 20,
            "{scans} reads of descriptors for 500 connections"
        );
        // A socket closed since is not taken for its old holder's.
        let (client, accepted, from) = burst.pop().unwrap();
        drop((client, accepted));
        assert_eq!(Process::at_tcp(from, server), Process::default());
    }

    /// `make bench`: what finding the process behind a loopback connection costs: the client
    /// a shell of its own (few descriptors), this process holding 200 other sockets (an
    /// engine with many clients).
    #[test]
    #[ignore = "a benchmark: make bench"]
    fn bench_finding_the_process_behind_a_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let mut held = Vec::new();
        for _ in 0..100 {
            held.push(std::net::TcpStream::connect(server).unwrap());
            held.push(listener.accept().unwrap().0);
        }
        let mut client = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "exec 3<>/dev/tcp/127.0.0.1/{}; sleep 30",
                server.port()
            ))
            .spawn()
            .unwrap();
        let (_accepted, from) = listener.accept().unwrap();
        let processes = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count();
        let rounds = 200u32;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            assert_eq!(Process::at_tcp(from, server).pid, Some(client.id()));
        }
        let each = started.elapsed() / rounds;
        let _ = client.kill();
        let _ = client.wait();
        println!(
            "bench: who took a token: finding the process behind a new loopback connection {:.3} ms (sock_diag, then /proc/PID/fd; {processes} processes on the machine), once per connection",
            each.as_secs_f64() * 1000.0
        );
    }
}
