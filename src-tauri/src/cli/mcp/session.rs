//! One bridge's side of the Streamable HTTP transport (MCP 2025-03-26 and later): the
//! token it sends (held while it stays valid, replaced after a 401), the `Mcp-Session-Id`
//! and `MCP-Protocol-Version` the server set up, and the relay of each answer to stdout.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use url::Url;

use super::Out;
use crate::cli::backend::{running, token_preferring, Backend, Local};
use crate::engine::{AccountName, Context, Secret, TokenView};

/// A token is fetched again this long before it expires.
const MIN_VALID: Duration = Duration::from_secs(60);
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

pub struct Session {
    ctx: Context,
    name: AccountName,
    url: Url,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<TokenView>>,
    id: std::sync::Mutex<Option<String>>,
    version: std::sync::Mutex<Option<String>>,
}

impl Session {
    pub fn new(ctx: Context, name: AccountName, url: Url) -> Result<Self> {
        // No overall timeout: a tool call's event stream may last as long as the tool runs.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            ctx,
            name,
            url,
            http,
            token: tokio::sync::Mutex::new(None),
            id: std::sync::Mutex::new(None),
            version: std::sync::Mutex::new(None),
        })
    }

    /// The token to send: the one held while it stays valid, else a fresh one from the
    /// running engine (or this process's own, under the lock, when none runs).
    pub async fn token(&self) -> Result<Secret> {
        let mut held = self.token.lock().await;
        let now = crate::engine::Deadline::now().time();
        if let Some(t) = held
            .as_ref()
            .filter(|t| t.expires_at.remaining(now) > MIN_VALID)
        {
            return Ok(t.access_token.clone());
        }
        let fresh = match running(&self.ctx).await? {
            Some(api) => token_preferring(&api, &self.name, MIN_VALID).await?,
            None => token_preferring(&Local { ctx: &self.ctx }, &self.name, MIN_VALID).await?,
        };
        let token = fresh.access_token.clone();
        *held = Some(fresh);
        Ok(token)
    }

    /// The server refused `used`: the engine refreshes once for every bridge that says so
    /// (an older token just gets the current one).
    async fn rejected(&self, used: &Secret) -> Result<()> {
        let mut held = self.token.lock().await;
        if held
            .as_ref()
            .is_some_and(|t| t.access_token.expose() != used.expose())
        {
            return Ok(()); // another request of this bridge already reported it
        }
        let fresh = match running(&self.ctx).await? {
            Some(api) => Backend::rejected(&api, &self.name, used).await?,
            None => Local { ctx: &self.ctx }.rejected(&self.name, used).await?,
        };
        *held = Some(fresh);
        Ok(())
    }

    /// Sends one message from the client and relays what comes back. A failure becomes a
    /// JSON-RPC error for a request (the client is waiting for its id) and a line on stderr.
    pub async fn forward(&self, line: String, out: &Out) {
        let message: Option<Value> = serde_json::from_str(&line).ok();
        if let Err(e) = self.post(&line, out).await {
            eprintln!("tokenwarden mcp {}: {e:#}", self.name);
            let request_id = message
                .as_ref()
                .filter(|m| m.get("method").is_some())
                .and_then(|m| m.get("id").cloned());
            if let Some(id) = request_id {
                let error = serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": id,
                    "error": { "code": -32000, "message": format!("tokenwarden: {e:#}") }
                });
                let _ = out.send(error.to_string());
            }
        }
    }

    async fn post(&self, body: &str, out: &Out) -> Result<()> {
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let request = self
                .with_session(self.http.post(self.url.clone()), &token)
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json, text/event-stream")
                .body(body.to_owned());
            let response = request
                .send()
                .await
                .with_context(|| format!("cannot reach the MCP server {}", self.shown()))?;
            if response.status() == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                self.rejected(&token).await?;
                continue;
            }
            if let Some(id) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                *self.id.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.to_owned());
            }
            return self.relay(response, out).await;
        }
    }

    /// The server's own stream (GET), for messages it sends unasked. A server that offers
    /// none answers 405; a dropped stream is opened again.
    pub async fn listen(self: std::sync::Arc<Self>, out: Out) {
        let mut failures = 0;
        let mut retried = false;
        while failures < 5 {
            let Ok(token) = self.token().await else {
                return;
            };
            let request = self
                .with_session(self.http.get(self.url.clone()), &token)
                .header(ACCEPT, "text/event-stream");
            match request.send().await {
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && !retried => {
                    retried = true;
                    if self.rejected(&token).await.is_err() {
                        return;
                    }
                }
                Ok(r) if r.status().is_success() => {
                    retried = false;
                    if self.relay(r, &out).await.is_err() {
                        failures += 1;
                    }
                }
                Ok(_) => return, // 405: no stream to listen to
                Err(_) => failures += 1,
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Ends the session at the server (it may refuse; either way the bridge is done).
    pub async fn close(&self) {
        let Some(id) = self.id.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return;
        };
        let Ok(token) = self.token().await else {
            return;
        };
        let request = self
            .http
            .delete(self.url.clone())
            .bearer_auth(token.expose())
            .header(SESSION_HEADER, id)
            .timeout(Duration::from_secs(5));
        let _ = request.send().await;
    }

    fn with_session(
        &self,
        request: reqwest::RequestBuilder,
        token: &Secret,
    ) -> reqwest::RequestBuilder {
        let mut request = request.bearer_auth(token.expose());
        if let Some(id) = self.id.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            request = request.header(SESSION_HEADER, id);
        }
        if let Some(v) = self
            .version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            request = request.header(VERSION_HEADER, v);
        }
        request
    }

    async fn relay(&self, response: Response, out: &Out) -> Result<()> {
        let status = response.status();
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return Ok(());
        }
        if !status.is_success() {
            if status == StatusCode::NOT_FOUND
                && self
                    .id
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .is_some()
            {
                bail!("the MCP server {} ended the session (HTTP 404); the client must initialize again", self.shown());
            }
            let text = response.text().await.unwrap_or_default();
            let text: String = text.chars().take(300).collect();
            bail!(
                "the MCP server {} answered HTTP {status}: {}",
                self.shown(),
                text.trim()
            );
        }
        let streamed = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if streamed {
            let mut events = response.bytes_stream().eventsource();
            while let Some(event) = events.next().await {
                let event = event.map_err(|e| anyhow!("the event stream broke off: {e}"))?;
                if !event.data.trim().is_empty() {
                    self.pass(&event.data, out);
                }
            }
        } else {
            let body = response
                .text()
                .await
                .context("reading the MCP server's answer")?;
            if !body.trim().is_empty() {
                self.pass(&body, out);
            }
        }
        Ok(())
    }

    /// One message to the client, on one line; the protocol version the server agreed to
    /// is noted on the way (later requests carry it).
    fn pass(&self, text: &str, out: &Out) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            eprintln!(
                "tokenwarden mcp {}: the MCP server sent a message that is not JSON; dropped",
                self.name
            );
            return;
        };
        if let Some(v) = message
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
        {
            *self.version.lock().unwrap_or_else(|e| e.into_inner()) = Some(v.to_owned());
        }
        let line = if text.contains('\n') {
            message.to_string()
        } else {
            text.trim().to_owned()
        };
        let _ = out.send(line);
    }

    /// The server's URL without its query, for messages.
    fn shown(&self) -> &str {
        &self.url[..url::Position::AfterPath]
    }
}
