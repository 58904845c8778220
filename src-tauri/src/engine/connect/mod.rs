//! Consent flows, done by the engine that owns the account (one writer per account): begin /
//! progress / cancel, browser and device, the hand-over of a grant obtained elsewhere, and
//! what a consent needs or undoes: the client secret, and disconnect (revoke, then delete).
//! The steps after a flow began are in `flow`. A flow runs as a task
//! of the engine and reports its progress through a watch channel and events, so a window,
//! the API and the CLI follow the same flow; a new one for the same account cancels the old.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::engine::bounds;
use crate::engine::events::{ConnectStage, EngineEvent};
use crate::engine::history::{Outcome, Record, Trigger};
use crate::engine::names::AccountName;
use crate::engine::provider::Provider;
mod flow;
mod registration;
pub(crate) mod status;
pub use status::ConnectStatus;
pub(crate) mod redirect;
use crate::engine::account::state::AccountState;
use crate::engine::account::views::AccountView;
use crate::engine::refresh::attempt;
use crate::engine::refresh::saving;
use crate::engine::secret::Secret;
use crate::engine::store::item::SecretKey;
use crate::engine::{Engine, EngineError};

/// How long a cancel waits for the flow to stop.
const CANCEL_SETTLE: Duration = Duration::from_secs(2);

/// Which consent flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectFlow {
    Browser,
    Device,
}

impl ConnectFlow {
    /// The flow front ends ask for with a "device" switch.
    pub fn device(device: bool) -> Self {
        if device {
            Self::Device
        } else {
            Self::Browser
        }
    }
}

/// What the user must do to finish a flow that has begun.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "flow", rename_all = "snake_case")]
pub enum ConnectStart {
    Browser {
        account: AccountName,
        authorization_url: String,
        redirect_uri: String,
    },
    Device {
        account: AccountName,
        verification_uri: String,
        verification_uri_complete: Option<String>,
        user_code: String,
        expires_in: u64,
    },
}

impl ConnectStart {
    /// What a front end opens or prints for the user.
    fn urls(&self) -> Vec<&str> {
        match self {
            Self::Browser {
                authorization_url, ..
            } => vec![authorization_url.as_str()],
            Self::Device {
                verification_uri,
                verification_uri_complete,
                ..
            } => std::iter::once(verification_uri.as_str())
                .chain(verification_uri_complete.as_deref())
                .collect(),
        }
    }
}

/// How a flow that has the user's approval gets its first token set.
enum Approval {
    Code {
        code: String,
        verifier: Option<oauth2::PkceCodeVerifier>,
        redirect_uri: Url,
    },
    Device(Box<crate::engine::provider::oauth2::DeviceStart>),
}

/// A flow that has begun and waits for the user.
enum Pending {
    Browser {
        listener: tokio::net::TcpListener,
        path: String,
        state: String,
        verifier: Option<oauth2::PkceCodeVerifier>,
        redirect_uri: Url,
    },
    Device(Box<crate::engine::provider::oauth2::DeviceStart>),
}

impl Engine {
    /// Starts a consent flow; the engine waits for the browser (or the device) for up to
    /// `timeout`, then exchanges and stores the first token set. Progress: `connect_status`
    /// and `ConnectProgress` events.
    pub async fn begin_connect(
        &self,
        name: &AccountName,
        flow: ConnectFlow,
        timeout: Duration,
    ) -> Result<ConnectStart, EngineError> {
        let timeout = timeout.min(bounds::MAX_CONSENT_WAIT);
        let account = self.account(name)?;
        let Provider::OAuth2(spec) = &account.provider else {
            return Err(EngineError::usage(name, "this provider needs no consent: it fetches tokens with the client secret alone (set the secret)"));
        };
        let cancel = CancellationToken::new();
        let previous = self.with_slot(name, |s| s.connect_cancel.replace(cancel.clone()))?;
        if let Some(previous) = previous {
            previous.cancel(); // one flow per account: the newest wins
        }
        let (start, approval) = match flow {
            ConnectFlow::Browser => flow::begin_browser(self, name, spec).await?,
            ConnectFlow::Device => {
                let secret = attempt::client_secret(self, &account).await?;
                let request = attempt::request(self, &account, secret.as_ref(), None, None);
                let device = spec.begin_device(&request).await?;
                let start = ConnectStart::Device {
                    account: name.clone(),
                    verification_uri: device.verification_uri.clone(),
                    verification_uri_complete: device.verification_uri_complete.clone(),
                    user_code: device.user_code.clone(),
                    expires_in: device.expires_in.as_secs(),
                };
                (start, Pending::Device(Box::new(device)))
            }
        };
        // The one gate before any front end opens or prints a URL for the user.
        for url in start.urls() {
            crate::engine::provider::openable(url, spec.insecure_http)
                .map_err(|why| EngineError::usage(name, why))?;
        }
        flow::progress(self, name, ConnectStage::Waiting, None, None);
        let (engine, name) = (self.clone(), name.clone());
        let stop = self.shared.stop.clone();
        self.shared.tasks.spawn(async move {
            let outcome = tokio::select! {
                _ = cancel.cancelled() => Err(None),
                _ = stop.cancelled() => Err(None),
                r = tokio::time::timeout(timeout, flow::await_approval(&name, approval)) => match r {
                    Ok(Ok(approval)) => flow::finish_connect(&engine, &name, approval).await.map_err(Some),
                    Ok(Err(e)) => Err(Some(e)),
                    Err(_) => Err(Some(EngineError::usage(&name, format!("no authorization arrived within {} minutes; start again", timeout.as_secs().div_ceil(60))))),
                },
            };
            match outcome {
                Ok(()) => flow::progress(&engine, &name, ConnectStage::Completed, None, None),
                Err(None) => flow::progress(&engine, &name, ConnectStage::Cancelled, None, None),
                Err(Some(e)) => {
                    let message = e.to_string();
                    flow::progress(&engine, &name, ConnectStage::Failed, Some(message), Some(e.code()));
                }
            }
        });
        Ok(start)
    }

    /// A grant this process obtained but may not store (another engine owns the keychain
    /// service now): the caller hands it to that engine.
    pub fn take_handoff(&self, name: &AccountName) -> Option<crate::engine::secret::TokenSet> {
        self.with_slot(name, |s| s.handoff.take()).ok().flatten()
    }

    /// Makes a first token set the account's grant: under the gate (a refresh of the old
    /// grant still in flight lands first and is then replaced), keychain first.
    pub async fn adopt_grant(
        &self,
        name: &AccountName,
        set: crate::engine::secret::TokenSet,
        started: Instant,
    ) -> Result<(), EngineError> {
        let account = self.account(name)?;
        crate::engine::account::reading::writer_only(self, name)?;
        let gate = self.with_slot(name, |s| s.gate.clone())?;
        let _turn = gate.lock().await;
        // A refresh token that is only in memory is one crash from lost: a consent flow
        // whose token cannot be stored fails, and the user connects again.
        saving::save_grant(self, name, &set)
            .await
            .map_err(|source| EngineError::Unsaved {
                account: name.clone(),
                source,
                journaled: false,
            })?;
        let expires_at = set.expires_at;
        self.update(name, |s| {
            s.state = AccountState::fresh(set, account.schedule, name);
            s.generation += 1;
            s.unsaved = None;
            s.mark_refreshed(crate::engine::clock::now());
            s.report_refreshes.clear();
            s.last_outcome = None;
        })?;
        self.record(Record {
            account: name.clone(),
            trigger: Trigger::Connect,
            outcome: Outcome::Ok,
            elapsed: started.elapsed(),
            expires_at: Some(expires_at),
            error: None,
        });
        self.emit(EngineEvent::Refreshed {
            account: name.clone(),
            expires_at,
            trigger: Trigger::Connect,
        });
        tracing::info!(account = %name, expires_at = %expires_at, "connected");
        self.shared.wake.notify_one();
        Ok(())
    }

    /// The latest flow's status, once it is no longer waiting or `wait` has passed.
    pub async fn connect_status(
        &self,
        name: &AccountName,
        wait: Duration,
    ) -> Result<ConnectStatus, EngineError> {
        let mut rx = self.with_slot(name, |s| s.connect.subscribe())?;
        let _ = tokio::time::timeout(wait, rx.wait_for(|s| s.stage != ConnectStage::Waiting)).await;
        let status = rx.borrow().clone();
        Ok(status)
    }

    /// Cancels the account's pending flow, if any.
    pub fn cancel_connect(&self, name: &AccountName) -> Result<(), EngineError> {
        if let Some(cancel) = self.with_slot(name, |s| s.connect_cancel.take())? {
            cancel.cancel();
        }
        Ok(())
    }

    /// Cancels the pending flow and answers once it has stopped (2 s at most), for front
    /// ends that show the outcome.
    pub async fn cancel_connect_settled(
        &self,
        name: &AccountName,
    ) -> Result<ConnectStatus, EngineError> {
        self.cancel_connect(name)?;
        self.connect_status(name, CANCEL_SETTLE).await
    }

    /// Revokes at the provider where it can, then deletes the account's secrets. A failed
    /// revocation is reported but does not keep the secrets.
    pub async fn disconnect(&self, name: &AccountName) -> Result<Option<String>, EngineError> {
        let account = self.account(name)?;
        crate::engine::account::reading::writer_only(self, name)?;
        self.cancel_connect(name)?;
        let gate = self.with_slot(name, |s| s.gate.clone())?;
        let _turn = gate.lock().await;
        let tokens = self.with_slot(name, |s| s.state.tokens().cloned())?;
        let tokens = match tokens {
            Some(t) => Some(t),
            None => self.shared.keychain.tokens(name).await.ok().flatten(),
        };
        let mut warning = None;
        if let (Provider::OAuth2(spec), Some(tokens)) = (&account.provider, &tokens) {
            // Revoking without the secret may still work (public clients): try anyway.
            let secret = attempt::client_secret(self, &account).await.ok().flatten();
            let request = attempt::request(self, &account, secret.as_ref(), Some(tokens), None);
            let (token, is_refresh) = match &tokens.refresh {
                Some(r) => (r, true),
                None => (&tokens.access, false),
            };
            warning = match spec.revoke(&request, token, is_refresh).await {
                Ok(true) => None,
                Ok(false) => Some(format!(
                    "{}: has no revocation endpoint; revoke access in the provider's settings too",
                    account.provider_name
                )),
                Err(e) => Some(format!(
                    "revocation failed ({e}); revoke access in the provider's settings"
                )),
            };
        }
        let keychain = &self.shared.keychain;
        keychain.delete(SecretKey::Tokens(name.clone())).await?;
        keychain
            .delete(SecretKey::ClientSecret(name.clone()))
            .await?;
        self.update(name, |s| {
            s.state = AccountState::NotConnected;
            s.generation += 1;
            s.unsaved = None;
            s.last_outcome = None;
            s.report_refreshes.clear();
            s.fetch_unasked = false;
            s.client_secret = None;
        })?;
        tracing::info!(account = %name, "disconnected");
        Ok(warning)
    }

    /// Saves a client secret (`secret set`, the window, `PUT …/secret`). An account that
    /// waited for it is fetched at once.
    pub async fn set_client_secret(
        &self,
        name: &AccountName,
        value: Secret,
    ) -> Result<AccountView, EngineError> {
        let account = self.account(name)?;
        crate::engine::account::reading::writer_only(self, name)?;
        if value.expose().trim().is_empty() {
            return Err(EngineError::usage(
                name,
                "the secret is empty; nothing was stored",
            ));
        }
        self.shared
            .keychain
            .set(SecretKey::ClientSecret(name.clone()), value)
            .await?;
        if !account.provider.needs_consent() {
            let now = crate::engine::clock::now();
            self.update(name, |s| {
                s.last_outcome = None;
                s.fetch_unasked = true;
                let state = std::mem::replace(&mut s.state, AccountState::NotConnected);
                s.state = state.retry_now(now);
            })?;
            self.shared.wake.notify_one();
        }
        self.view(name)
    }
}
