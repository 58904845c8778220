//! Consent flows, done by the engine that owns the account (one writer per account): begin /
//! progress / cancel, browser and device, and the hand-over of a grant obtained elsewhere
//! (disconnect, client secrets and keychain re-reads are in `manage`). A flow runs as a task
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
use crate::engine::provider::oauth2::{GrantKind, OAuth2Spec, Redirect};
use crate::engine::provider::{Issued, Provider, RefreshError};
pub(crate) mod redirect;
use crate::engine::account::state::AccountState;
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

/// Where an account's latest flow is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConnectStatus {
    pub account: AccountName,
    pub stage: ConnectStage,
    pub message: Option<String>,
    /// The error code of a failed flow.
    pub error: Option<String>,
}

impl ConnectStatus {
    pub fn none(account: &AccountName) -> Self {
        Self {
            account: account.clone(),
            stage: ConnectStage::None,
            message: None,
            error: None,
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
            ConnectFlow::Browser => self.begin_browser(name, spec).await?,
            ConnectFlow::Device => {
                let secret = self.client_secret(&account).await?;
                let request = self.request(&account, secret.as_ref(), None, None);
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
        self.progress(name, ConnectStage::Waiting, None, None);
        let (engine, name) = (self.clone(), name.clone());
        let stop = self.shared.stop.clone();
        self.shared.tasks.spawn(async move {
            let outcome = tokio::select! {
                _ = cancel.cancelled() => Err(None),
                _ = stop.cancelled() => Err(None),
                r = tokio::time::timeout(timeout, engine.await_approval(&name, approval)) => match r {
                    Ok(Ok(approval)) => engine.finish_connect(&name, approval).await.map_err(Some),
                    Ok(Err(e)) => Err(Some(e)),
                    Err(_) => Err(Some(EngineError::usage(&name, format!("no authorization arrived within {} minutes; start again", timeout.as_secs().div_ceil(60))))),
                },
            };
            match outcome {
                Ok(()) => engine.progress(&name, ConnectStage::Completed, None, None),
                Err(None) => engine.progress(&name, ConnectStage::Cancelled, None, None),
                Err(Some(e)) => {
                    let message = e.to_string();
                    engine.progress(&name, ConnectStage::Failed, Some(message), Some(e.code()));
                }
            }
        });
        Ok(start)
    }

    async fn begin_browser(
        &self,
        name: &AccountName,
        spec: &OAuth2Spec,
    ) -> Result<(ConnectStart, Pending), EngineError> {
        if spec.grant != GrantKind::AuthorizationCode {
            return Err(EngineError::usage(name, "this account uses a grant without a browser consent (set grant = \"authorization_code\", or use the device flow)"));
        }
        let (bind, path) = match &spec.redirect {
            Redirect::Exact(url) => (
                format!("127.0.0.1:{}", url.port().unwrap_or(80)),
                url.path().to_owned(),
            ),
            Redirect::AnyLoopbackPort => ("127.0.0.1:0".to_owned(), "/callback".to_owned()),
        };
        let listener = tokio::net::TcpListener::bind(&bind).await.map_err(|e| {
            EngineError::usage(
                name,
                format!("cannot listen on {bind} for the redirect ({e}); is another program using that port?"),
            )
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| EngineError::Io(e.to_string()))?
            .port();
        let redirect_uri = match &spec.redirect {
            Redirect::Exact(url) => url.clone(),
            Redirect::AnyLoopbackPort => Url::parse(&format!("http://127.0.0.1:{port}{path}"))
                .map_err(|e| EngineError::Io(e.to_string()))?,
        };
        let account = self.account(name)?;
        let consent = spec
            .begin_consent(
                &self.shared.http,
                name,
                &account.provider_name,
                &redirect_uri,
            )
            .await?;
        let start = ConnectStart::Browser {
            account: name.clone(),
            authorization_url: consent.url.to_string(),
            redirect_uri: redirect_uri.to_string(),
        };
        let pending = Pending::Browser {
            listener,
            path,
            state: consent.state.secret().to_owned(),
            verifier: consent.verifier,
            redirect_uri,
        };
        Ok((start, pending))
    }

    /// Waits for the user: the redirect on the loopback listener, or the device approval.
    async fn await_approval(
        &self,
        name: &AccountName,
        pending: Pending,
    ) -> Result<Approval, EngineError> {
        match pending {
            Pending::Browser {
                listener,
                path,
                state,
                verifier,
                redirect_uri,
            } => match redirect::receive(&listener, &path, &state)
                .await
                .map_err(|e| EngineError::Io(format!("redirect listener: {e}")))?
            {
                redirect::Redirected::Code(code) => Ok(Approval::Code {
                    code,
                    verifier,
                    redirect_uri,
                }),
                redirect::Redirected::Refused(error) => Err(EngineError::usage(
                    name,
                    format!("the provider did not grant access ({error})"),
                )),
            },
            Pending::Device(device) => Ok(Approval::Device(device)),
        }
    }

    /// Trades the approval for the first token set and stores it under the gate, so a refresh
    /// of the old grant that is still in flight lands first and is then replaced.
    async fn finish_connect(
        &self,
        name: &AccountName,
        approval: Approval,
    ) -> Result<(), EngineError> {
        let account = self.account(name)?;
        let Provider::OAuth2(spec) = &account.provider else {
            return Err(EngineError::usage(name, "not an OAuth 2.0 account"));
        };
        let secret = self.client_secret(&account).await?;
        let started = Instant::now();
        let request = self.request(&account, secret.as_ref(), None, None);
        let issued = match approval {
            Approval::Code {
                code,
                verifier,
                redirect_uri,
            } => {
                spec.exchange_code(&request, code, verifier, &redirect_uri)
                    .await
            }
            Approval::Device(device) => spec.finish_device(&request, &device).await,
        };
        let lifetime = self.account(name)?.refresh_lifetime;
        let issued = issued.map(|i| i.with_refresh_lifetime(lifetime));
        if let (Ok(_), Err(e)) = (&issued, self.become_writer().await) {
            // A CLI that waited for the browser without the lock, while an engine started:
            // the grant is handed to that engine (`take_handoff`), never dropped.
            let set = issued.map(|i| i.into_set(None)).ok();
            self.with_slot(name, |s| s.handoff = set)?;
            return Err(e);
        }
        self.install_grant(name, issued, started).await
    }

    /// A grant this process obtained but may not store (another engine owns the keychain
    /// service now): the caller hands it to that engine.
    pub fn take_handoff(&self, name: &AccountName) -> Option<crate::engine::secret::TokenSet> {
        self.with_slot(name, |s| s.handoff.take()).ok().flatten()
    }

    async fn install_grant(
        &self,
        name: &AccountName,
        issued: Result<Issued, RefreshError>,
        started: Instant,
    ) -> Result<(), EngineError> {
        let issued = match issued {
            Ok(issued) => issued,
            Err(e) => {
                self.record(Record {
                    account: name.clone(),
                    trigger: Trigger::Connect,
                    outcome: Outcome::PermanentError,
                    elapsed: started.elapsed(),
                    expires_at: None,
                    error: Some((e.code(), e.to_string())),
                });
                return Err(e.into());
            }
        };
        self.adopt_grant(name, issued.into_set(None), started).await
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
        self.writer_only(name)?;
        let gate = self.with_slot(name, |s| s.gate.clone())?;
        let _turn = gate.lock().await;
        // A refresh token that is only in memory is one crash from lost: a consent flow
        // whose token cannot be stored fails, and the user connects again.
        self.save_grant(name, &set)
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

    fn progress(
        &self,
        name: &AccountName,
        stage: ConnectStage,
        message: Option<String>,
        error: Option<&str>,
    ) {
        let status = ConnectStatus {
            account: name.clone(),
            stage,
            message: message.clone(),
            error: error.map(str::to_owned),
        };
        self.with_slot(name, |s| {
            s.connect.send_replace(status);
            if stage != ConnectStage::Waiting {
                s.connect_cancel = None;
            }
        })
        .ok();
        self.emit(EngineEvent::ConnectProgress {
            account: name.clone(),
            stage,
            message,
        });
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
