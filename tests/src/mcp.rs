//! tests/mcp/server.py, the official MCP SDK's Streamable HTTP server guarded by its own OAuth
//! authorization server (dynamic registration, PKCE, rotating refresh tokens), on a free
//! loopback port; its counters and a switch that kills every access token at once.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::python::{python, script};
use crate::wait_until;

/// tests/mcp/server.py on a free loopback port.
pub struct McpServer {
    child: tokio::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl McpServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let child = tokio::process::Command::new(python())
            .arg(script("mcp/server.py"))
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the MCP SDK server");
        wait_until(
            Duration::from_secs(30),
            "the MCP server writes its port",
            async || port_file.exists(),
        )
        .await;
        let port = std::fs::read_to_string(&port_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn stats_url(&self) -> String {
        format!("http://127.0.0.1:{}/test/stats", self.port)
    }

    /// `/test/stats`: registrations, authorizations (consents), refreshes, …
    pub async fn stats(&self) -> Value {
        reqwest::get(self.stats_url())
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every access token issued so far dies now.
    pub async fn expire(&self) {
        let url = format!("http://127.0.0.1:{}/test/expire", self.port);
        let r = reqwest::Client::new().post(url).send().await.unwrap();
        assert!(r.status().is_success());
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
