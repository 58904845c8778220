//! A keyring of one test's own: a private D-Bus session (no service activation, so nothing
//! restarts a keyring behind the test's back) with a gnome-keyring daemon the test can kill
//! and start again, as a user's Secret Service may crash, be stopped or be restarted. Its
//! storage survives the restarts, as a real login keyring's does.

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
        let dir = tempfile::Builder::new()
            .prefix("tokenwarden-keyring-")
            .tempdir()
            .expect("temp dir");
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
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
        let mut keyring = Self {
            dir,
            bus,
            address: address.trim().to_owned(),
            daemon: None,
        };
        keyring.start_daemon();
        keyring
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
        self.kill_daemon();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}
