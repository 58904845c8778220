//! `connect` from a terminal. Beside a running engine the flow runs in that engine (one
//! writer per account) and the terminal only shows the URL and follows the progress. With
//! none running, this process runs the flow and waits for the browser without holding the
//! lock; it takes the lock only to store the grant, so a `serve` started meanwhile is not
//! kept waiting.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, Result};

use super::backend::{finish, open, running};
use crate::engine::{
    AccountName, ConnectFlow, ConnectStage, ConnectStart, ConnectStatus, Context, Mode,
};

/// How long a terminal flow waits for the browser (or the device).
const CONSENT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// One long poll of a running engine.
const POLL: Duration = Duration::from_secs(60);

pub async fn run(ctx: &Context, name: &AccountName, no_browser: bool, device: bool) -> Result<()> {
    let flow = ConnectFlow::device(device);
    let status = match running(ctx).await? {
        Some(api) => {
            show(name, &api.begin_connect(name, flow).await?, no_browser);
            loop {
                let status = api.connect_status(name, POLL).await?;
                if status.stage != ConnectStage::Waiting {
                    break status;
                }
            }
        }
        None => {
            let engine = open(ctx, Mode::Observer).await?;
            let start = engine.begin_connect(name, flow, CONSENT_TIMEOUT).await?;
            show(name, &start, no_browser);
            let status = loop {
                let status = engine.connect_status(name, POLL).await?;
                if status.stage != ConnectStage::Waiting {
                    break status;
                }
            };
            let handoff = engine.take_handoff(name);
            finish(&engine, Ok(())).await?;
            match (handoff, running(ctx).await?) {
                // An engine started while the browser had the user: it stores the grant.
                (Some(set), Some(api)) => {
                    api.hand_over(name, &set).await?;
                    eprintln!("{name}: handed the new grant to the engine that started meanwhile");
                    return done(name, completed(name));
                }
                _ => status,
            }
        }
    };
    done(name, status)
}

fn show(name: &AccountName, start: &ConnectStart, no_browser: bool) {
    let mut out = std::io::stdout().lock();
    match start {
        ConnectStart::Browser {
            authorization_url, ..
        } => {
            if no_browser {
                // stdout: the URL alone, for scripts; a closed stdout shows up as no redirect.
                let _ = writeln!(out, "{authorization_url}").and_then(|()| out.flush());
            } else {
                eprintln!("Opening the browser to connect {name}. If it does not open, visit:\n{authorization_url}");
                if let Err(e) = open::that_detached(authorization_url) {
                    eprintln!("(could not open a browser: {e})");
                }
            }
        }
        ConnectStart::Device {
            verification_uri,
            user_code,
            expires_in,
            ..
        } => {
            // stdout: the URL and the code alone, for scripts; the explanation on stderr.
            let _ = writeln!(out, "{verification_uri}\n{user_code}").and_then(|()| out.flush());
            eprintln!(
                "To connect {name}, open {verification_uri} on any device and enter the code {user_code} (valid for {} minutes).",
                expires_in.div_ceil(60)
            );
        }
    }
}

fn done(name: &AccountName, status: ConnectStatus) -> Result<()> {
    match status.stage {
        ConnectStage::Completed => {
            eprintln!("{name}: connected");
            Ok(())
        }
        ConnectStage::Cancelled => Err(anyhow!("{name}: the connect was cancelled")),
        _ => Err(anyhow!(
            "{}",
            status
                .message
                .unwrap_or_else(|| format!("{name}: the connect failed"))
        )),
    }
}

fn completed(name: &AccountName) -> ConnectStatus {
    ConnectStatus {
        account: name.clone(),
        stage: ConnectStage::Completed,
        message: None,
        error: None,
    }
}
