//! Commands of the binary whose output a test reads back: `list`, `log`, `token` and
//! `api-key create`, parsed.

use serde_json::Value;

use super::Env;

impl Env {
    /// `list --json`, parsed.
    pub async fn list(&self) -> Vec<Value> {
        let out = self.run(&["list", "--json"], None).await.ok();
        let value: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("list --json is not JSON ({e}):\n{out}"));
        value
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("list --json is not an array:\n{out}"))
    }

    /// One account's entry of `list --json`.
    pub async fn account(&self, name: &str) -> Value {
        let list = self.list().await;
        list.iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no account {name:?} in list --json: {list:?}"))
    }

    pub async fn status(&self, name: &str) -> String {
        self.account(name).await["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// `log [NAME] --json`, parsed (newest first).
    pub async fn log_entries(&self, name: Option<&str>) -> Vec<Value> {
        let mut args = vec!["log"];
        args.extend(name);
        args.push("--json");
        let out = self.run(&args, None).await.ok();
        let value: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("log --json is not JSON ({e}):\n{out}"));
        value
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("log --json is not an array:\n{out}"))
    }

    /// `token NAME`'s output, which must succeed: the token alone.
    pub async fn token(&self, name: &str) -> String {
        self.run(&["token", name], None)
            .await
            .ok()
            .stdout_trimmed()
            .to_string()
    }

    /// `api-key create LABEL`, which must succeed and print the key alone on one line. The key
    /// is read-only: [`Env::create_write_key`] makes one that may change accounts.
    pub async fn create_api_key(&self, label: &str) -> String {
        self.create_key(&["api-key", "create", label]).await
    }

    /// `api-key create LABEL --write`: a key that may also connect, disconnect, set a secret
    /// and reload.
    pub async fn create_write_key(&self, label: &str) -> String {
        self.create_key(&["api-key", "create", label, "--write"])
            .await
    }

    async fn create_key(&self, args: &[&str]) -> String {
        let out = self.run(args, None).await.ok();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "api-key create prints the key alone on one line:\n{out}"
        );
        let key = lines[0].trim().to_string();
        assert!(
            key.len() >= 20 && !key.contains(char::is_whitespace),
            "an API key is one long word:\n{out}"
        );
        key
    }
}
