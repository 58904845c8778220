//! Another user on the same machine (`nobody`, run with `setpriv`; the tests run as root) tries
//! to take Tokenwarden over through the files it shares with us: a lock dir made first in the
//! shared temp dir with a server of theirs announced in it, a server announced in our own lock
//! dir, and a data dir of theirs. The real binary must refuse each with an error that names the
//! folder, its owner and the remedy, and send the other user nothing: their server logs every
//! byte it receives. Our own files are 0700/0600, and older open ones are closed at start.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::local::{drop_box, hold_lock, running_as_root};
use tokenwarden_e2e::proc::{self, Signal};
use tokenwarden_e2e::wait_until;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// `args` run as nobody.
fn as_nobody(args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(args);
    cmd
}

/// A folder like /tmp (root's, 1777) that nobody can make things in.
fn shared_tmp() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("tw-shared-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// Which lock nobody's server holds while it runs.
enum Holding<'a> {
    Nothing,
    /// A lock file in a folder of theirs, opened as nobody.
    Theirs(&'a Path),
    /// Our lock file: a shell of ours opens and locks it on fd 9, then becomes nobody's
    /// server, which keeps fd 9 (as if we had handed it the descriptor).
    Ours(&'a Path),
}

/// nobody's server on a Unix socket at `socket`, logging what it receives to `log`. Waits
/// until it listens.
fn squatter(socket: &Path, log: &Path, holding: Holding) -> Child {
    squatting(&format!("unix '{}'", socket.display()), log, holding)
}

/// nobody's server on `where` (`unix PATH` or `tcp PORT`).
fn squatting(at: &str, log: &Path, holding: Holding) -> Child {
    let server = format!(
        "/usr/bin/python3 '{}' {at} '{}'",
        script("squatter.py").display(),
        log.display()
    );
    let nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups";
    let line = match holding {
        Holding::Nothing => format!("exec {nobody} {server}"),
        Holding::Theirs(lock) => {
            format!("exec {nobody} flock -x -n -F '{}' {server}", lock.display())
        }
        Holding::Ours(lock) => format!(
            "exec 9>>'{}'; flock -x 9; exec {nobody} {server}",
            lock.display()
        ),
    };
    let mut child = Command::new("sh")
        .args(["-c", &line])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the squatter");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready", "the squatter listens");
    child
}

fn received(log: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned()
}

/// Without XDG_RUNTIME_DIR the lock dir is `$TMPDIR/tokenwarden-<uid>`. nobody makes it first,
/// holds its lock and announces a server of theirs as our engine. `secret set` used to hand
/// them the secret and `token` to print their token; now every command, `serve` included,
/// refuses the folder and names its owner and the remedy, and nobody receives a byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_dir_another_user_made_first_is_refused_and_gets_nothing() {
    if !running_as_root() {
        eprintln!("SKIPPED: needs root to act as another user");
        return;
    }
    let (_fake, mut env, seeded) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let tmp = shared_tmp();
    let theirs = tmp.path().join("tokenwarden-0");
    let log = drop_box(tmp.path(), "received");
    let made = as_nobody(&["mkdir", "-m", "0777"])
        .arg(&theirs)
        .status()
        .unwrap();
    assert!(made.success());
    let stem = env.lock_file();
    let stem = stem.file_stem().unwrap().to_string_lossy().into_owned();
    let socket = theirs.join(format!("{stem}.sock"));
    let lock = theirs.join(format!("{stem}.lock"));
    // Holding the lock of that folder, as our engine would.
    let mut server = squatter(&socket, &log, Holding::Theirs(&lock));
    let announcement = serde_json::json!({
        "pid": server.id(), "role": "engine", "listen": format!("127.0.0.1:{}", env.api_port),
        "socket": socket,
    });
    let holder = theirs.join(format!("{stem}.json"));
    std::fs::write(&holder, announcement.to_string()).unwrap();
    std::fs::set_permissions(&holder, std::fs::Permissions::from_mode(0o666)).unwrap();
    env.extra_vars.push(("TMPDIR", tmp.path().into()));
    env.extra_vars.push(("XDG_RUNTIME_DIR", "".into()));

    let secret = env
        .run(
            &["secret", "set", "fb"],
            Some("canary-client-secret-1c2d\n"),
        )
        .await;
    let line = secret.failure_line();
    assert!(
        line.contains(&theirs.display().to_string()),
        "names the folder: {line}"
    );
    assert!(line.contains("uid 65534"), "names its owner: {line}");
    assert!(line.contains("XDG_RUNTIME_DIR"), "says what to do: {line}");

    let token = env.run(&["token", "fb"], None).await;
    token.failure_line();
    assert!(!token.stdout.contains("attacker"), "{token}");

    let serve = env.run_for(&["serve"], None, Duration::from_secs(30)).await;
    assert!(serve.failure_line().contains("uid 65534"), "{serve}");

    let _ = server.kill();
    let _ = server.wait();
    let got = received(&log);
    assert!(got.is_empty(), "nobody received: {got}");
    // Our token is still ours.
    env.extra_vars
        .retain(|(k, _)| *k != "TMPDIR" && *k != "XDG_RUNTIME_DIR");
    assert_eq!(env.token("fb").await, seeded);
}

/// In our own lock dir, an announcement that names another user's process (which holds our
/// lock through a descriptor we handed it) is not our engine: the CLI never connects to the
/// socket it names, waits for the lock, and answers from our own keychain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_announced_as_another_users_process_is_not_believed() {
    if !running_as_root() {
        eprintln!("SKIPPED: needs root to act as another user");
        return;
    }
    let (_fake, env, seeded) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let tmp = shared_tmp();
    let socket = tmp.path().join("theirs.sock");
    let log = drop_box(tmp.path(), "received");
    // Runs `tokenwarden list` once so that the lock dir and file exist.
    env.run(&["list"], None).await.ok();
    let mut server = squatter(&socket, &log, Holding::Ours(&env.lock_file()));
    let holder = env.lock_file().with_extension("json");
    let announcement = serde_json::json!({
        "pid": server.id(), "role": "engine", "listen": format!("127.0.0.1:{}", env.api_port),
        "socket": socket,
    });
    std::fs::write(&holder, announcement.to_string()).unwrap();
    // nobody lets go after a while; until then the CLI waits for the lock.
    let pid = server.id();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proc::signal(pid, Signal::Term);
    });
    let token = env.run(&["token", "fb"], None).await.ok();
    release.await.unwrap();
    let _ = server.wait();
    assert_eq!(token.stdout_trimmed(), seeded);
    let got = received(&log);
    assert!(got.is_empty(), "nobody received: {got}");
}

/// The socket an announcement of ours names is checked too: the kernel says who serves it
/// (SO_PEERCRED), and another user's server gets no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_served_by_another_user_gets_no_request() {
    if !running_as_root() {
        eprintln!("SKIPPED: needs root to act as another user");
        return;
    }
    let (_fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let tmp = shared_tmp();
    let socket = tmp.path().join("theirs.sock");
    let log = drop_box(tmp.path(), "received");
    env.run(&["list"], None).await.ok();
    let mut server = squatter(&socket, &log, Holding::Nothing);
    // A process of ours holds the lock and is announced as the engine, with their socket.
    let mut ours = hold_lock(&env.lock_file(), 60).await;
    let pid = ours.id();
    let holder = env.lock_file().with_extension("json");
    let announcement = serde_json::json!({
        "pid": pid, "role": "engine", "listen": format!("127.0.0.1:{}", env.api_port),
        "socket": socket,
    });
    std::fs::write(&holder, announcement.to_string()).unwrap();

    let token = env.run(&["token", "fb"], None).await;
    let _ = ours.kill();
    let _ = ours.wait();
    let _ = server.kill();
    let _ = server.wait();
    let line = token.failure_line();
    assert!(!token.stdout.contains("attacker"), "{token}");
    assert!(line.contains("uid 65534"), "{line}");
    let got = received(&log);
    assert!(got.is_empty(), "nobody received: {got}");
}

/// While the engine is down another user binds its TCP port. An announcement naming that
/// port with no socket (the CLI's fallback to TCP) must not make the CLI send it the engine's
/// key: the kernel's socket table says whose the listener is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_port_taken_by_another_user_gets_no_key() {
    if !running_as_root() {
        eprintln!("SKIPPED: needs root to act as another user");
        return;
    }
    let (_fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    // A serve that ran once leaves the engine's key in the keychain, as on any machine.
    let mut first = env.spawn_serve();
    first.wait_api().await;
    assert_eq!(first.stop().await.code, 0);
    let tmp = shared_tmp();
    let log = drop_box(tmp.path(), "received");
    let mut server = squatting(&format!("tcp {}", env.api_port), &log, Holding::Nothing);
    let mut ours = hold_lock(&env.lock_file(), 60).await;
    let announcement = serde_json::json!({
        "pid": ours.id(), "role": "engine", "listen": format!("127.0.0.1:{}", env.api_port),
    });
    std::fs::write(
        env.lock_file().with_extension("json"),
        announcement.to_string(),
    )
    .unwrap();

    let token = env.run(&["token", "fb"], None).await;
    let _ = ours.kill();
    let _ = ours.wait();
    let _ = server.kill();
    let _ = server.wait();
    let line = token.failure_line();
    assert!(line.contains("uid 65534"), "{line}");
    assert!(!token.stdout.contains("attacker"), "{token}");
    let got = received(&log);
    assert!(got.is_empty(), "nobody received: {got}");
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o777
}

/// The data dir is 0700 and every file in it 0600 (SQLite's -wal included); a data dir left
/// open by an older version is closed at the next start, and the log says so once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_its_files_are_ours_alone_and_old_ones_are_closed() {
    let (_fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    env.create_api_key("perm-test").await;
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    let check = |what: &str| {
        assert_eq!(mode(&env.data_dir), 0o700, "{what}: the data dir");
        for entry in std::fs::read_dir(&env.data_dir).unwrap().flatten() {
            let want = if entry.path().is_dir() { 0o700 } else { 0o600 };
            assert_eq!(
                mode(&entry.path()),
                want,
                "{what}: {}",
                entry.path().display()
            );
        }
    };
    check("made new");
    assert!(env.data_dir.join("history.sqlite3-wal").exists());
    serve.stop().await;

    // As an older version left them.
    std::fs::set_permissions(&env.data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["history.sqlite3", "api-keys.json"] {
        std::fs::set_permissions(
            env.data_dir.join(name),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    check("closed at start");
    let out = serve.stop().await;
    let said: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("readable by other users"))
        .collect();
    assert_eq!(said.len(), 1, "said once: {}", out.stderr);
    assert!(said[0].contains("api-keys.json") && said[0].contains("history.sqlite3"));
}

/// A data dir that another user owns is refused before anything is written in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_another_user_is_refused() {
    if !running_as_root() {
        eprintln!("SKIPPED: needs root to act as another user");
        return;
    }
    let (_fake, mut env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let tmp = shared_tmp();
    let theirs = tmp.path().join("data");
    assert!(as_nobody(&["mkdir", "-m", "0777"])
        .arg(&theirs)
        .status()
        .unwrap()
        .success());
    env.extra_vars
        .push(("TOKENWARDEN_DATA_DIR", theirs.clone().into()));
    let out = env.run_for(&["serve"], None, Duration::from_secs(30)).await;
    let line = out.failure_line();
    assert!(
        line.contains("uid 65534") && line.contains("TOKENWARDEN_DATA_DIR"),
        "{line}"
    );
    assert_eq!(
        std::fs::read_dir(&theirs).unwrap().count(),
        0,
        "nothing written"
    );
}

/// A damaged refresh history never stops refreshing: it is moved aside, said once with its
/// new name, and a new one is started. A damaged sealed store names its own remedy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_history_is_moved_aside_and_a_damaged_store_names_its_remedy() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(-5)
        .await;
    // Damaged whole: with its write-ahead log gone too (a log of valid pages would mask it).
    for extra in ["history.sqlite3-wal", "history.sqlite3-shm"] {
        let _ = std::fs::remove_file(env.data_dir.join(extra));
    }
    std::fs::write(env.data_dir.join("history.sqlite3"), vec![0x5a; 8192]).unwrap();
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    wait_until(Duration::from_secs(15), "a refresh", async || {
        fake.lock().refresh_grants == 1
    })
    .await;
    let out = serve.stop().await;
    let said: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("history was damaged"))
        .collect();
    assert_eq!(said.len(), 1, "said once:\n{}", out.stderr);
    let aside: Vec<PathBuf> = std::fs::read_dir(&env.data_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("history.sqlite3.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        said[0].contains(&aside[0].display().to_string()),
        "{}",
        said[0]
    );
    assert_eq!(std::fs::read(&aside[0]).unwrap(), vec![0x5a; 8192]);
    assert!(env
        .log_entries(Some("fb"))
        .await
        .iter()
        .any(|e| e["outcome"] == "ok"));

    // The database store: a damaged file stops the engine with its own remedy.
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    env.write_config(&format!("[store]\nkind = \"database\"\n\n{config}"));
    std::fs::write(env.data_dir.join("secrets.sqlite3"), vec![0x5a; 8192]).unwrap();
    let out = env.run_for(&["serve"], None, Duration::from_secs(30)).await;
    let line = out.failure_line();
    assert!(line.contains("secrets.sqlite3 is damaged"), "{line}");
    assert!(line.contains("restore it from a backup"), "{line}");
    assert!(!line.to_lowercase().contains("unlock"), "{line}");
}
