//! The OS keychain of an [`Env`], read and written with `secret-tool`, independently of the
//! binary; and the fault hook that makes the binary's own keychain writes fail.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::Env;

impl Env {
    /// While `on`, every keychain write of the binary (every command this environment runs,
    /// including a `serve` already running) fails; reads still work. Uses the debug builds'
    /// fault hook `TOKENWARDEN_FAULT_KEYCHAIN_WRITES`, which checks for the file on each write.
    pub fn fail_keychain_writes(&self, on: bool) {
        if on {
            std::fs::write(&self.keychain_fault_path, b"fail").expect("create the fault file");
        } else {
            match std::fs::remove_file(&self.keychain_fault_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("remove the fault file: {e}"),
            }
        }
    }

    /// `secret-tool` on this environment's session bus.
    fn secret_tool(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("secret-tool");
        if let Some(bus) = &self.bus {
            cmd.env("DBUS_SESSION_BUS_ADDRESS", bus);
        }
        cmd
    }

    /// `secret-tool ARGS` with `input` on stdin, asked again (twice at most, after a moment)
    /// when it fails with an error: gnome-keyring 42 aborts under bursts of clients (an upstream
    /// bug, see `session.sh`) and the bus starts it again for the next caller. Only calls in
    /// flight see the crash, and the test's own reads and writes must not fail for it. A lookup
    /// of nothing fails without a word, so it is not asked again.
    async fn secret_tool_run(&self, args: &[&str], input: Option<&str>) -> std::process::Output {
        let mut attempt = 1;
        loop {
            let mut child = self
                .secret_tool()
                .args(args)
                .stdin(if input.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run secret-tool (Debian package libsecret-tools)");
            if let Some(value) = input {
                let mut pipe = child.stdin.take().expect("stdin");
                pipe.write_all(value.as_bytes())
                    .await
                    .expect("write secret");
            }
            let out = child.wait_with_output().await.expect("secret-tool");
            if out.status.success() || out.stderr.is_empty() || attempt == 3 {
                return out;
            }
            eprintln!(
                "secret-tool {} failed ({}); asking again",
                args[0],
                String::from_utf8_lossy(&out.stderr).trim()
            );
            attempt += 1;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }

    /// The secret stored under `username = entry`, read by `secret-tool`, not by the binary.
    pub async fn keychain_get(&self, entry: &str) -> Option<String> {
        let out = self
            .secret_tool_run(
                &["lookup", "service", &self.service, "username", entry],
                None,
            )
            .await;
        let value = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !value.is_empty()).then_some(value)
    }

    /// Every item of this environment's service, `username` → secret, in one `secret-tool
    /// search --all` (for tests with too many items to look up one by one). secret-tool prints
    /// secrets on stdout and attributes on stderr, each in item order, so they pair by index.
    pub async fn keychain_all(&self) -> std::collections::HashMap<String, String> {
        let out = self
            .secret_tool_run(
                &["search", "--all", "--unlock", "service", &self.service],
                None,
            )
            .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let secrets: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("secret = "))
            .collect();
        let users: Vec<&str> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("attribute.username = "))
            .collect();
        assert_eq!(
            secrets.len(),
            users.len(),
            "secret-tool search: {} secrets but {} usernames",
            secrets.len(),
            users.len()
        );
        users
            .into_iter()
            .zip(secrets)
            .map(|(u, s)| (u.to_string(), s.to_string()))
            .collect()
    }

    /// Removes an item of this environment's service from the keychain.
    pub async fn keychain_clear(&self, entry: &str) {
        let out = self
            .secret_tool_run(
                &["clear", "service", &self.service, "username", entry],
                None,
            )
            .await;
        assert!(out.status.success(), "secret-tool clear {entry} failed");
    }

    /// Writes an item the way keyring-rs v3 does (same attributes), so the binary finds it.
    pub async fn keychain_set(&self, entry: &str, value: &str) {
        let label = format!("{entry}@{} (e2e seed)", self.service);
        let out = self
            .secret_tool_run(
                &[
                    "store",
                    "--label",
                    &label,
                    "service",
                    &self.service,
                    "username",
                    entry,
                    "target",
                    "default",
                    "application",
                    "rust-keyring",
                ],
                Some(value),
            )
            .await;
        assert!(
            out.status.success(),
            "secret-tool store failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `secret set NAME` with `value` on stdin (plus the newline a shell would add).
    pub async fn set_secret(&self, name: &str, value: &str) {
        self.run(&["secret", "set", name], Some(&format!("{value}\n")))
            .await
            .ok();
    }

    /// Stores `tokens:NAME` as if the account had been connected: the contract's JSON shape.
    pub async fn seed_tokens(&self, name: &str, access: &str, refresh: &str, expires_at: i64) {
        let json = serde_json::json!({
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_at": expires_at,
        });
        self.keychain_set(&format!("tokens:{name}"), &json.to_string())
            .await;
    }

    /// The JSON of `tokens:NAME` in the keychain, if any.
    pub async fn stored_tokens(&self, name: &str) -> Option<Value> {
        let text = self.keychain_get(&format!("tokens:{name}")).await?;
        Some(serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "tokens:{name} in the keychain is not JSON ({e}): {} bytes",
                text.len()
            )
        }))
    }
}
