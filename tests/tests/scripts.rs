//! The helper scripts the Makefile runs. `with-keyring.sh` starts a private D-Bus session and
//! gnome-keyring for `make run` on a headless machine, unlocking it with the password in
//! `TOKENWARDEN_KEYRING_PASSWORD`: that password must not be left in the environment of any
//! process it starts (`/proc/PID/environ` is readable by the same user, and outlives use).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokenwarden_e2e::proc::{self, Signal};

/// Every process of this user whose environment contains `needle`, as (pid, command).
fn environs_with(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            let cmd = std::fs::read_to_string(entry.path().join("cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            found.push((pid, cmd));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keyring_leaves_the_password_in_no_environment() {
    let home = tempfile::tempdir().expect("a home");
    let runtime = home.path().join("run");
    std::fs::create_dir(&runtime).expect("a runtime dir");
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("private");
    let canary = format!("tw-keyring-canary-{:016x}", rand::random::<u64>());
    // Every process the script starts inherits this marker, so they can be found and ended.
    let marker = format!("TW_TEST_MARK={:016x}", rand::random::<u64>());
    let (mark_key, mark_value) = marker.split_once('=').expect("a marker");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src-tauri/scripts/with-keyring.sh");
    let mut child = tokio::process::Command::new(&script)
        .args(["sleep", "30"])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        // The session this test runs in has its own keyring; its control socket must not
        // be what `--replace` finds.
        .env_remove("GNOME_KEYRING_CONTROL")
        .env("HOME", home.path())
        // Its own runtime dir: `gnome-keyring-daemon --replace` finds the daemon to replace
        // through the control socket there, and must not replace this session's keyring.
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("TOKENWARDEN_KEYRING_PASSWORD", &canary)
        .env(mark_key, mark_value)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run with-keyring.sh");

    // Wait until the command (`sleep 30`) runs inside the session: by then the bus and the
    // keyring daemon have started and been handed the password.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let started = loop {
        let ours = environs_with(&marker);
        if ours.iter().any(|(_, cmd)| cmd.starts_with("sleep 30")) {
            break ours;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the command did not start within 20 s; processes so far: {ours:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let leaked = environs_with(&canary);
    for (pid, _) in environs_with(&marker) {
        proc::signal(pid, Signal::Term);
    }
    let _ = child.kill().await;
    assert!(
        started
            .iter()
            .any(|(_, cmd)| cmd.contains("gnome-keyring-daemon")),
        "the script started gnome-keyring: {started:?}"
    );
    assert!(
        leaked.is_empty(),
        "the keyring password is in the environment of {leaked:?}"
    );
}
