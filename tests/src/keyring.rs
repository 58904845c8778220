//! A keyring of one test's own: a private D-Bus session (no service activation, so nothing
//! restarts a keyring behind the test's back) with a gnome-keyring daemon the test can kill
//! and start again, as a user's Secret Service may crash, be stopped or be restarted. Its
//! storage survives the restarts, as a real login keyring's does.
//! [`PrivateKeyring::dying_at_first_call`] is the one with activation: a stand-in that dies at
//! the first call without replying, and the real keyring started by the bus for the next.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const PASSWORD: &str = "tokenwarden-private-keyring";
/// The collection `gnome-keyring-daemon --unlock` makes on its first start.
const LOGIN: &str = "/org/freedesktop/secrets/collection/login";

pub struct PrivateKeyring {
    dir: tempfile::TempDir,
    bus: Child,
    address: String,
    daemon: Option<Child>,
}

impl PrivateKeyring {
    pub fn start() -> Self {
        let mut keyring = Self::on_bus(false);
        keyring.start_daemon();
        keyring
    }

    /// A Secret Service that dies at the first call it gets, without replying, as gnome-keyring
    /// 42 aborts (`scripts/dying-secrets.py`); the bus then starts the real keyring for the next
    /// caller, unlocked, on this keyring's storage. Returns the stand-in's process: it exits 3
    /// once a call has killed it.
    pub fn dying_at_first_call() -> (Self, Child) {
        Self::stand_in(true, &[])
    }

    /// A Secret Service that never answers (a keyring waiting on an unlock prompt nobody
    /// answers): every call waits for its D-Bus timeout. Kill the returned process to end it.
    pub fn never_answering() -> (Self, Child) {
        Self::stand_in(false, &["hang"])
    }

    fn stand_in(activation: bool, args: &[&str]) -> (Self, Child) {
        let keyring = Self::on_bus(activation);
        let mut stand_in = Command::new(crate::desktop::python())
            .arg(crate::desktop::script("dying-secrets.py"))
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &keyring.address)
            .stdout(Stdio::piped())
            .spawn()
            .expect("dying-secrets.py (needs /usr/bin/python3 with python3-gi)");
        let mut ready = String::new();
        BufReader::new(stand_in.stdout.take().expect("stdout"))
            .read_line(&mut ready)
            .expect("the stand-in's first line");
        assert_eq!(ready.trim(), "ready", "the stand-in owns the name");
        (keyring, stand_in)
    }

    /// A private session bus; with `activation`, it starts the real keyring (unlocked, on this
    /// keyring's storage) for a client that asks for the Secret Service when none runs.
    fn on_bus(activation: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tokenwarden-keyring-")
            .tempdir()
            .expect("temp dir");
        let services = dir.path().join("services");
        if activation {
            std::fs::create_dir_all(&services).expect("services dir");
            let runtime = dir.path().join("runtime");
            std::fs::create_dir_all(&runtime).expect("runtime dir");
            let script = dir.path().join("activate.sh");
            std::fs::write(
                &script,
                format!(
                    "#!/bin/sh
export DBUS_SESSION_BUS_ADDRESS=\"$DBUS_STARTER_ADDRESS\" XDG_DATA_HOME='{}' XDG_RUNTIME_DIR='{}'
unset GNOME_KEYRING_CONTROL
printf %s '{PASSWORD}' | exec gnome-keyring-daemon --replace --foreground --unlock --components=secrets
",
                    dir.path().join("data").display(),
                    runtime.display()
                ),
            )
            .expect("activation script");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            std::fs::write(
                services.join("org.freedesktop.secrets.service"),
                format!(
                    "[D-BUS Service]\nName=org.freedesktop.secrets\nExec={}\n",
                    script.display()
                ),
            )
            .expect("service file");
        }
        let servicedir = if activation {
            format!("  <servicedir>{}</servicedir>\n", services.display())
        } else {
            String::new()
        };
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
{servicedir}  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.path().display()
            ),
        )
        .expect("bus config");
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian package dbus)");
        let mut address = String::new();
        BufReader::new(bus.stdout.take().expect("stdout"))
            .read_line(&mut address)
            .expect("the bus address");
        Self {
            dir,
            bus,
            address: address.trim().to_owned(),
            daemon: None,
        }
    }

    /// `DBUS_SESSION_BUS_ADDRESS` of the private session.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the daemon (again) and unlocks the keyring; returns once it answers.
    pub fn start_daemon(&mut self) {
        let runtime = self.dir.path().join("runtime");
        std::fs::create_dir_all(&runtime).expect("runtime dir");
        let mut daemon = Command::new("gnome-keyring-daemon")
            .args([
                "--replace",
                "--unlock",
                "--components=secrets",
                "--foreground",
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("XDG_DATA_HOME", self.home())
            // Its control socket lives here: never the test session's daemon's.
            .env("XDG_RUNTIME_DIR", &runtime)
            .env_remove("GNOME_KEYRING_CONTROL")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon");
        let mut stdin = daemon.stdin.take().expect("stdin");
        stdin.write_all(PASSWORD.as_bytes()).expect("password");
        drop(stdin);
        self.daemon = Some(daemon);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.answers() {
            assert!(
                std::time::Instant::now() < deadline,
                "the private keyring did not come up within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Whether the Secret Service answers on the private bus.
    pub fn answers(&self) -> bool {
        Command::new("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
    }

    /// Locks the login keyring, as a screen lock or `seahorse` does: the Secret Service still
    /// answers, but every read or write of an item needs an unlock prompt, which has no
    /// display to show on here and is dismissed at once.
    pub fn lock(&self) {
        self.dbus_tool("lock", b"");
    }

    /// Unlocks it with its password, as the user typing it into the unlock prompt would.
    pub fn unlock(&self) {
        self.dbus_tool("unlock", PASSWORD.as_bytes());
    }

    fn dbus_tool(&self, command: &str, stdin: &[u8]) {
        let mut child = Command::new(crate::desktop::python())
            .arg(crate::desktop::script("dbus-tool.py"))
            .args([command, LOGIN])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dbus-tool.py (needs /usr/bin/python3 with python3-gi)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("dbus-tool stdin");
        let out = child.wait_with_output().expect("dbus-tool.py");
        assert!(
            out.status.success(),
            "dbus-tool.py {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills the daemon (SIGKILL): the Secret Service is gone until [`Self::start_daemon`].
    pub fn kill_daemon(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        while self.answers() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateKeyring {
    fn drop(&mut self) {
        // A keyring the bus started ends with the bus.
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}
