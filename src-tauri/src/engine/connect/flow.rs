//! A consent flow's steps after it began: the browser's authorization URL and its redirect
//! listener, waiting for the user's approval, exchanging it for the first token set and
//! installing that set; and the progress that front ends follow.

use std::time::Instant;

use super::redirect;
use super::{Approval, ConnectStart, ConnectStatus, Pending};
use crate::engine::events::{ConnectStage, EngineEvent};
use crate::engine::history::{Outcome, Record, Trigger};
use crate::engine::names::AccountName;
use crate::engine::provider::oauth2::{GrantKind, OAuth2Spec, Redirect};
use crate::engine::provider::{Issued, Provider, RefreshError};
use crate::engine::refresh::attempt;
use crate::engine::{Engine, EngineError};

pub(super) async fn begin_browser(
    engine: &Engine,
    name: &AccountName,
    spec: &OAuth2Spec,
) -> Result<(ConnectStart, Pending), EngineError> {
    if spec.grant != GrantKind::AuthorizationCode {
        return Err(EngineError::usage(name, "this account uses a grant without a browser consent (set grant = \"authorization_code\", or use the device flow)"));
    }
    let account = engine.account(name)?;
    let path = match &spec.redirect {
        Redirect::Exact(url) => url.path().to_owned(),
        Redirect::AnyLoopbackPort => "/callback".to_owned(),
    };
    let (listener, redirect_uri, secret) = if spec.registers() {
        let (listener, registration) = super::registration::ensure(engine, &account, spec).await?;
        (
            listener,
            registration.redirect_uri.clone(),
            Some(registration.to_secret()),
        )
    } else {
        let bind = match &spec.redirect {
            Redirect::Exact(url) => format!("127.0.0.1:{}", url.port().unwrap_or(80)),
            Redirect::AnyLoopbackPort => "127.0.0.1:0".to_owned(),
        };
        let listener = redirect::bind(name, &bind).await?;
        let redirect_uri = match &spec.redirect {
            Redirect::Exact(url) => url.clone(),
            Redirect::AnyLoopbackPort => redirect::loopback_uri(&listener, &path)?,
        };
        (listener, redirect_uri, None)
    };
    let consent = spec
        .begin_consent(
            &engine.shared.http,
            (name, &account.provider_name),
            secret.as_ref(),
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
pub(super) async fn await_approval(
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
pub(super) async fn finish_connect(
    engine: &Engine,
    name: &AccountName,
    approval: Approval,
) -> Result<(), EngineError> {
    let account = engine.account(name)?;
    let Provider::OAuth2(spec) = &account.provider else {
        return Err(EngineError::usage(name, "not an OAuth 2.0 account"));
    };
    let secret = attempt::client_secret(engine, &account).await?;
    let started = Instant::now();
    let request = attempt::request(engine, &account, secret.as_ref(), None, None);
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
    let lifetime = engine.account(name)?.refresh_lifetime;
    let issued = issued.map(|i| i.with_refresh_lifetime(lifetime));
    if let (Ok(_), Err(e)) = (&issued, engine.become_writer().await) {
        // A CLI that waited for the browser without the lock, while an engine started:
        // the grant is handed to that engine (`take_handoff`), never dropped.
        let set = issued.map(|i| i.into_set(None)).ok();
        engine.with_slot(name, |s| s.handoff = set)?;
        return Err(e);
    }
    install_grant(engine, name, issued, started).await
}

pub(super) async fn install_grant(
    engine: &Engine,
    name: &AccountName,
    issued: Result<Issued, RefreshError>,
    started: Instant,
) -> Result<(), EngineError> {
    let issued = match issued {
        Ok(issued) => issued,
        Err(e) => {
            engine.record(Record {
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
    engine
        .adopt_grant(name, issued.into_set(None), started)
        .await
}

pub(super) fn progress(
    engine: &Engine,
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
    engine
        .with_slot(name, |s| {
            s.connect.send_replace(status);
            if stage != ConnectStage::Waiting {
                s.connect_cancel = None;
            }
        })
        .ok();
    engine.emit(EngineEvent::ConnectProgress {
        account: name.clone(),
        stage,
        message,
    });
}
