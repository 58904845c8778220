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

    /// The secret stored under `username = entry`, read by `secret-tool`, not by the binary.
    pub async fn keychain_get(&self, entry: &str) -> Option<String> {
        let out = self
            .secret_tool()
            .args(["lookup", "service", &self.service, "username", entry])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run secret-tool (Debian package libsecret-tools)");
        let value = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !value.is_empty()).then_some(value)
    }

    /// Every item of this environment's service, `username` → secret, in one `secret-tool
    /// search --all` (for tests with too many items to look up one by one). secret-tool prints
    /// secrets on stdout and attributes on stderr, each in item order, so they pair by index.
    pub async fn keychain_all(&self) -> std::collections::HashMap<String, String> {
        let out = self
            .secret_tool()
            .args(["search", "--all", "--unlock", "service", &self.service])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run secret-tool (Debian package libsecret-tools)");
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
        let status = self
            .secret_tool()
            .args(["clear", "service", &self.service, "username", entry])
            .stdin(Stdio::null())
            .status()
            .await
            .expect("run secret-tool");
        assert!(status.success(), "secret-tool clear {entry} failed");
    }

    /// Writes an item the way keyring-rs v3 does (same attributes), so the binary finds it.
    pub async fn keychain_set(&self, entry: &str, value: &str) {
        let mut child = self
            .secret_tool()
            .args([
                "store",
                "--label",
                &format!("{entry}@{} (e2e seed)", self.service),
            ])
            .args(["service", &self.service, "username", entry])
            .args(["target", "default", "application", "rust-keyring"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run secret-tool");
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(value.as_bytes())
            .await
            .expect("write secret");
        drop(pipe);
        assert!(
            child.wait().await.expect("secret-tool").success(),
            "secret-tool store failed"
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
