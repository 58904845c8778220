//! The CLI as a client of a running engine: found through the lock dir (the engine's
//! announcement says where its API listens) and reached with the engine's own key from the
//! keychain.
//! Answers are the engine's views, so output is the same as when the CLI does the work.

use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::de::DeserializeOwned;

use crate::engine::api_keys::ApiKeys;
use crate::engine::history::Entry;
use crate::engine::lock::{self, Role};
use crate::engine::names::AccountName;
use crate::engine::paths::Context;
use crate::engine::secret::{Secret, TokenSet};
use crate::engine::views::{AccountView, TokenView};
use crate::engine::{ConnectFlow, ConnectStart, ConnectStatus, Remedy};

/// An error answer of the running engine: the same code and remedy as the engine's own
/// error would have, so the CLI words both alike.
#[derive(Debug, serde::Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiFailure {
    pub error: String,
    pub message: String,
    #[serde(default)]
    pub remedy: Option<Remedy>,
    #[serde(default)]
    pub account: Option<crate::engine::names::AccountName>,
}

pub struct ApiClient {
    base: String,
    /// The engine's key as last read from the keychain.
    key: std::sync::Mutex<Secret>,
    keys: ApiKeys,
    http: reqwest::Client,
}

/// How often a refused engine key is read again before the refusal stands.
const KEY_REREADS: u32 = 5;

impl ApiClient {
    /// The running engine's API, if an engine runs and can be reached.
    pub async fn discover(ctx: &Context, keys: ApiKeys) -> Result<Option<Self>> {
        let Some(holder) = lock::holder(&ctx.lock_place()) else {
            return Ok(None);
        };
        let (Role::Engine, Some(listen)) = (holder.role, holder.listen) else {
            return Ok(None);
        };
        let Some(key) = keys.engine_key().await? else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()?;
        Ok(Some(Self {
            base: format!("http://{listen}"),
            key: std::sync::Mutex::new(key),
            keys,
            http,
        }))
    }

    async fn call<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let mut rereads = 0;
        let response = loop {
            let key = self.key.lock().expect("poisoned").clone();
            let attempt = request
                .try_clone()
                .ok_or_else(|| anyhow!("a request to the running engine could not be repeated"))?;
            let response = attempt
                .bearer_auth(key.expose())
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "the running engine at {} did not answer: {}",
                        self.base,
                        crate::engine::provider::error::network_detail(&e)
                    )
                })?;
            // An engine that restarted between reading its announcement and its key has a
            // new key, which it writes just after it binds: read it again for a moment.
            if response.status() != reqwest::StatusCode::UNAUTHORIZED || rereads == KEY_REREADS {
                break response;
            }
            rereads += 1;
            tokio::time::sleep(Duration::from_millis(100) * rereads).await;
            if let Some(newer) = self.keys.engine_key().await? {
                *self.key.lock().expect("poisoned") = newer;
            }
        };
        let status = response.status();
        if status.is_success() {
            return response.json().await.map_err(|e| anyhow!("the running engine's answer is not what this CLI expects ({e}); are both the same version?"));
        }
        match response.json::<ApiFailure>().await {
            Ok(f) => Err(f.into()),
            Err(_) => Err(anyhow!("the running engine answered HTTP {status}")),
        }
    }

    pub async fn token(&self, name: &AccountName, min_valid: Duration) -> Result<TokenView> {
        let url = format!(
            "{}/v1/accounts/{name}/token?min_valid={}",
            self.base,
            min_valid.as_secs()
        );
        self.call(self.http.get(url)).await
    }

    pub async fn refresh(&self, name: &AccountName) -> Result<TokenView> {
        self.call(
            self.http
                .post(format!("{}/v1/accounts/{name}/refresh", self.base)),
        )
        .await
    }

    pub async fn accounts(&self) -> Result<Vec<AccountView>> {
        self.call(self.http.get(format!("{}/v1/accounts", self.base)))
            .await
    }

    pub async fn history(&self, name: Option<&AccountName>, limit: usize) -> Result<Vec<Entry>> {
        let mut url = format!(
            "{}/v1/history?limit={}",
            self.base,
            limit.clamp(1, crate::engine::bounds::MAX_HISTORY_ROWS)
        );
        if let Some(name) = name {
            url.push_str(&format!("&account={name}"));
        }
        self.call(self.http.get(url)).await
    }

    pub async fn begin_connect(
        &self,
        name: &AccountName,
        flow: ConnectFlow,
    ) -> Result<ConnectStart> {
        let body = serde_json::json!({ "device": flow == ConnectFlow::Device });
        let url = format!("{}/v1/accounts/{name}/connect", self.base);
        self.call(self.http.post(url).json(&body)).await
    }

    /// The flow's status once it stops waiting, or after `wait`.
    pub async fn connect_status(
        &self,
        name: &AccountName,
        wait: Duration,
    ) -> Result<ConnectStatus> {
        let url = format!(
            "{}/v1/accounts/{name}/connect?wait={}",
            self.base,
            wait.as_secs()
        );
        self.call(self.http.get(url)).await
    }

    pub async fn disconnect(&self, name: &AccountName) -> Result<Option<String>> {
        #[derive(serde::Deserialize)]
        struct Disconnected {
            warning: Option<String>,
        }
        let url = format!("{}/v1/accounts/{name}/disconnect", self.base);
        let answer: Disconnected = self.call(self.http.post(url)).await?;
        Ok(answer.warning)
    }

    pub async fn set_secret(&self, name: &AccountName, secret: &Secret) -> Result<AccountView> {
        let body = serde_json::json!({ "secret": secret.expose() });
        let url = format!("{}/v1/accounts/{name}/secret", self.base);
        self.call(self.http.put(url).json(&body)).await
    }

    /// Hands a grant this process obtained to the running engine, the one writer.
    pub async fn hand_over(&self, name: &AccountName, set: &TokenSet) -> Result<AccountView> {
        let url = format!("{}/v1/accounts/{name}/grant", self.base);
        let body = set.to_stored_json();
        let request = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.expose().to_owned());
        self.call(request).await
    }
}
