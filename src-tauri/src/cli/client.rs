//! The CLI as a client of a running engine, found through the lock dir (the engine's
//! announcement says where it listens). It goes through the engine's Unix socket, where the
//! kernel tells the engine who we are, or else over TCP with the engine's own key from the
//! keychain.
//! Answers are the engine's views, so output is the same as when the CLI does the work.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::api::contract::{
    of_account, paths, BeginConnect, Disconnected, ErrorBody, NewSecret, Rejected,
};
use crate::engine::{
    lock_holder, AccountName, AccountView, ApiKeys, ConnectFlow, ConnectStart, ConnectStatus,
    Context, Entry, Role, Secret, TakerRow, TokenSet, TokenView,
};

/// An error answer of the running engine: the same code and remedy as the engine's own
/// error would have, so the CLI words both alike.
pub type ApiFailure = ErrorBody;

pub struct ApiClient {
    way: Way,
}

/// How the CLI reaches the engine. One per CLI process, so its size does not matter (clippy
/// finds the TCP way large where reqwest's client is, on macOS and Windows).
#[allow(clippy::large_enum_variant)]
enum Way {
    /// The engine's Unix socket: no key is read.
    Socket(PathBuf),
    /// TCP, with the engine's key as last read from the keychain.
    Tcp {
        base: String,
        key: Mutex<Secret>,
        keys: ApiKeys,
        http: reqwest::Client,
    },
}

/// How often a refused engine key is read again before the refusal stands.
const KEY_REREADS: u32 = 5;
/// The longest a call may take (a connect flow's status waits up to a minute).
const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// One request to the engine, whichever way it goes.
pub(crate) struct Call {
    method: Method,
    /// Path and query.
    target: String,
    json: Option<Vec<u8>>,
}

impl Call {
    fn get(target: String) -> Self {
        Self {
            method: Method::GET,
            target,
            json: None,
        }
    }

    fn post(target: String, json: Option<Vec<u8>>) -> Self {
        Self {
            method: Method::POST,
            target,
            json,
        }
    }

    fn put(target: String, json: Vec<u8>) -> Self {
        Self {
            method: Method::PUT,
            target,
            json: Some(json),
        }
    }
}

impl ApiClient {
    /// The running engine's API, if an engine runs and can be reached.
    pub async fn discover(ctx: &Context, keys: ApiKeys) -> Result<Option<Self>> {
        let Some(holder) = lock_holder(&ctx.lock_place()) else {
            return Ok(None);
        };
        let (Role::Engine, Some(listen)) = (holder.role, holder.listen) else {
            return Ok(None);
        };
        if let Some(path) = holder.socket {
            // An engine whose socket went away is still asked over TCP.
            if socket::reachable(&path).await {
                return Ok(Some(Self {
                    way: Way::Socket(path),
                }));
            }
        }
        // Before a key goes out: the port must be our user's (while the engine was down,
        // another user may have bound it).
        #[cfg(unix)]
        if let Some(uid) = crate::engine::listener_uid(listen) {
            let me = crate::engine::euid();
            if uid != me {
                anyhow::bail!("{listen}, where the engine announced its API, is served by uid {uid}, not by you (uid {me}); refusing to send it the engine's key. Another user may have taken the port while the engine was down: stop that process, then start the engine again");
            }
        }
        let Some(key) = keys.engine_key().await? else {
            return Ok(None);
        };
        let http = reqwest::Client::builder().timeout(CALL_TIMEOUT).build()?;
        Ok(Some(Self {
            way: Way::Tcp {
                base: format!("http://{listen}"),
                key: Mutex::new(key),
                keys,
                http,
            },
        }))
    }

    /// Where the engine was reached, for messages.
    fn place(&self) -> String {
        match &self.way {
            Way::Socket(path) => path.display().to_string(),
            Way::Tcp { base, .. } => base.clone(),
        }
    }

    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let answer = match &self.way {
            Way::Socket(path) => socket::send(path, &call).await,
            Way::Tcp {
                base,
                key,
                keys,
                http,
            } => over_tcp(base, key, keys, http, &call).await,
        };
        let (status, body) = answer
            .map_err(|e| anyhow!("the running engine at {} did not answer: {e}", self.place()))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| anyhow!("the running engine's answer is not what this CLI expects ({e}); are both the same version?"));
        }
        match serde_json::from_slice::<ApiFailure>(&body) {
            Ok(f) => Err(f.into()),
            Err(_) => Err(anyhow!("the running engine answered HTTP {status}")),
        }
    }

    pub async fn token(&self, name: &AccountName, min_valid: Duration) -> Result<TokenView> {
        let target = format!(
            "{}?min_valid={}",
            of_account(paths::TOKEN, name),
            min_valid.as_secs()
        );
        self.call(Call::get(target)).await
    }

    pub async fn refresh(&self, name: &AccountName) -> Result<TokenView> {
        self.call(Call::post(of_account(paths::REFRESH, name), None))
            .await
    }

    pub async fn rejected(&self, name: &AccountName, token: &Secret) -> Result<TokenView> {
        let body = Rejected {
            access_token: token.expose().to_owned(),
        };
        let target = of_account(paths::REJECTED, name);
        self.call(Call::post(target, Some(serde_json::to_vec(&body)?)))
            .await
    }

    pub async fn takers(&self, name: &AccountName) -> Result<Vec<TakerRow>> {
        self.call(Call::get(of_account(paths::CALLERS, name))).await
    }

    pub async fn accounts(&self) -> Result<Vec<AccountView>> {
        self.call(Call::get(paths::ACCOUNTS.to_owned())).await
    }

    pub async fn history(&self, name: Option<&AccountName>, limit: usize) -> Result<Vec<Entry>> {
        let mut target = format!(
            "{}?limit={}",
            paths::HISTORY,
            limit.clamp(1, crate::engine::MAX_HISTORY_ROWS)
        );
        if let Some(name) = name {
            target.push_str(&format!("&account={name}"));
        }
        self.call(Call::get(target)).await
    }

    pub async fn begin_connect(
        &self,
        name: &AccountName,
        flow: ConnectFlow,
    ) -> Result<ConnectStart> {
        let body = BeginConnect {
            device: flow == ConnectFlow::Device,
            timeout: None,
        };
        let target = of_account(paths::CONNECT, name);
        self.call(Call::post(target, Some(serde_json::to_vec(&body)?)))
            .await
    }

    /// The flow's status once it stops waiting, or after `wait`.
    pub async fn connect_status(
        &self,
        name: &AccountName,
        wait: Duration,
    ) -> Result<ConnectStatus> {
        let target = format!(
            "{}?wait={}",
            of_account(paths::CONNECT, name),
            wait.as_secs()
        );
        self.call(Call::get(target)).await
    }

    pub async fn disconnect(&self, name: &AccountName) -> Result<Option<String>> {
        let target = of_account(paths::DISCONNECT, name);
        let answer: Disconnected<serde::de::IgnoredAny> =
            self.call(Call::post(target, None)).await?;
        Ok(answer.warning)
    }

    pub async fn set_secret(&self, name: &AccountName, secret: &Secret) -> Result<AccountView> {
        let body = NewSecret {
            secret: secret.expose().to_owned(),
        };
        let target = of_account(paths::SECRET, name);
        self.call(Call::put(target, serde_json::to_vec(&body)?))
            .await
    }

    /// Hands a grant this process obtained to the running engine, the one writer.
    pub async fn hand_over(&self, name: &AccountName, set: &TokenSet) -> Result<AccountView> {
        let target = of_account(paths::GRANT, name);
        let body = set.to_stored_json();
        self.call(Call::put(target, body.expose().as_bytes().to_vec()))
            .await
    }
}

/// One call over TCP with the engine's key. An engine that restarted between our reading
/// its announcement and its key has a new key, which it writes just after it binds: on 401
/// the key is read again for a moment.
async fn over_tcp(
    base: &str,
    key: &Mutex<Secret>,
    keys: &ApiKeys,
    http: &reqwest::Client,
    call: &Call,
) -> Result<(StatusCode, Bytes)> {
    let mut rereads = 0;
    loop {
        let secret = key.lock().expect("poisoned").clone();
        let mut request = http
            .request(call.method.clone(), format!("{base}{}", call.target))
            .bearer_auth(secret.expose());
        if let Some(json) = &call.json {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow!(crate::engine::network_detail(&e)))?;
        let status = response.status();
        if status != StatusCode::UNAUTHORIZED || rereads == KEY_REREADS {
            return Ok((status, response.bytes().await?));
        }
        rereads += 1;
        tokio::time::sleep(Duration::from_millis(100) * rereads).await;
        if let Some(newer) = keys.engine_key().await? {
            *key.lock().expect("poisoned") = newer;
        }
    }
}

/// HTTP/1.1 over the engine's Unix socket: reqwest has no Unix sockets; hyper's client
/// connection, which reqwest itself is built on, does.
#[cfg(unix)]
mod socket {
    use std::path::Path;

    use anyhow::{anyhow, Result};
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::header::{CONTENT_TYPE, HOST};
    use hyper_util::rt::TokioIo;
    use reqwest::StatusCode;
    use tokio::net::UnixStream;

    use super::{Call, CALL_TIMEOUT};

    pub async fn reachable(path: &Path) -> bool {
        UnixStream::connect(path).await.is_ok()
    }

    pub async fn send(path: &Path, call: &Call) -> Result<(StatusCode, Bytes)> {
        tokio::time::timeout(CALL_TIMEOUT, exchange(path, call))
            .await
            .map_err(|_| anyhow!("no answer within {}s", CALL_TIMEOUT.as_secs()))?
    }

    async fn exchange(path: &Path, call: &Call) -> Result<(StatusCode, Bytes)> {
        let stream = UnixStream::connect(path).await?;
        // The kernel says who serves it: never our engine if it is another user.
        let server = stream.peer_cred()?.uid();
        let me = crate::engine::euid();
        if server != me {
            anyhow::bail!(
                "{} is served by uid {server}, not by you (uid {me}); refusing to talk to it",
                path.display()
            );
        }
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection is driven beside the request; it ends when `sender` is dropped.
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(call.method.clone())
            .uri(&call.target)
            .header(HOST, "localhost");
        if call.json.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let body = Full::new(Bytes::from(call.json.clone().unwrap_or_default()));
        let response = sender.send_request(request.body(body)?).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        drop(sender);
        let _ = driver.await;
        Ok((status, body))
    }
}

#[cfg(not(unix))]
mod socket {
    use std::path::Path;

    use bytes::Bytes;
    use reqwest::StatusCode;

    pub async fn reachable(_path: &Path) -> bool {
        false
    }

    pub async fn send(_path: &Path, _call: &super::Call) -> anyhow::Result<(StatusCode, Bytes)> {
        anyhow::bail!("Unix sockets are not available here")
    }
}
