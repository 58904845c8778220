//! `mcp NAME`: a stdio ↔ Streamable HTTP bridge to a remote MCP server (what `mcp-remote`
//! does), with the account's token on every request. An MCP client runs it as a local
//! server (`"command": "tokenwarden", "args": ["mcp", "NAME"]`): each JSON-RPC line on stdin
//! is POSTed to the server and each answer, JSON or a server-sent event stream, comes back
//! as lines on stdout. A 401 is reported to the engine (one refresh shared with every other
//! bridge and program), and the request is sent once more with the new token. The token is
//! never written to stdout, stderr or a log: only the server sees it.
//! * `session` one bridge's HTTP side: token, session id, protocol version, relaying

mod session;

use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::engine::{AccountName, Config, Context};
use session::Session;

/// Lines for stdout, one JSON-RPC message each.
pub(super) type Out = mpsc::UnboundedSender<String>;

pub async fn run(ctx: &Context, name: &AccountName) -> Result<()> {
    let config = Config::load(&ctx.config_path)?;
    let Some(account) = config.account(name) else {
        bail!(
            "no account `{name}` in {}; add an [[account]] with provider = \"mcp\" and url = \"https://…/mcp\"",
            ctx.config_path.display()
        );
    };
    let url = match account.mcp_server() {
        Some(url) => url.clone(),
        None => bail!(
            "{name}: provider `{}` is not a remote MCP server; `tokenwarden mcp` bridges accounts with provider = \"mcp\"",
            account.provider_name
        ),
    };
    let session = Arc::new(Session::new(ctx.clone(), name.clone(), url)?);
    // A grant that is missing or refused shows now, in words, not as the first call's error.
    session.token().await?;
    let (out, lines_out) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_lines(lines_out));
    let mut input = BufReader::new(tokio::io::stdin()).lines();
    let mut sends = JoinSet::new();
    let mut listener = None;
    while let Some(line) = input.next_line().await.context("reading stdin")? {
        if line.trim().is_empty() {
            continue;
        }
        // The session id comes with the answer to `initialize`: nothing else may go before it.
        if listener.is_none() && is_initialize(&line) {
            session.forward(line, &out).await;
            listener = Some(tokio::spawn(session.clone().listen(out.clone())));
            continue;
        }
        let (session, out) = (session.clone(), out.clone());
        sends.spawn(async move { session.forward(line, &out).await });
        while sends.try_join_next().is_some() {}
    }
    while sends.join_next().await.is_some() {}
    if let Some(listener) = listener {
        listener.abort();
    }
    session.close().await;
    drop(out);
    let _ = writer.await;
    Ok(())
}

fn is_initialize(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("method")?.as_str().map(|m| m == "initialize"))
        .unwrap_or(false)
}

/// Stdout belongs to the MCP client: whole lines only, one writer.
async fn write_lines(mut lines: mpsc::UnboundedReceiver<String>) {
    let mut stdout = tokio::io::stdout();
    while let Some(mut line) = lines.recv().await {
        line.push('\n');
        if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
            return;
        }
    }
}
