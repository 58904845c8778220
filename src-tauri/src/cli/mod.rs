//! The command line: clap definitions, dispatch, and how errors are worded. While an engine
//! runs (tray app or `serve`), every command asks it over its local API (`client`), so that
//! it alone refreshes and writes secrets; when none runs, a command does the work itself
//! under the lock of the keychain service (`commands`, `connect`).
//! * `commands` one function per command       * `connect` consent flows from a terminal
//! * `client`   the running engine's API        * `output`  text and JSON for people and programs
//! * `exec`     a command run with tokens in its environment
//! * `mcp`      a stdio bridge to a remote MCP server   * `kube` kubectl's exec credential
//! * `git_credential` git's credential helper
//! * `tokenboy` `import tokenboy`: a TokenBoy config.py as accounts

mod backend;
mod client;
mod commands;
mod connect;
mod doctor;
mod exec;
mod git_credential;
mod kube;
mod mcp;
mod output;
mod tokenboy;
pub mod tray_app;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::engine::{parse_duration, AccountName, Context, EngineError, Remedy, StoreKind};

#[derive(Parser, Debug)]
#[command(
    name = "tokenwarden",
    version,
    about = "Keeps API access tokens fresh: OAuth consent, refresh before expiry, OS keychain, local API"
)]
pub struct Cli {
    /// The config file [default: $XDG_CONFIG_HOME/tokenwarden/config.toml]
    #[arg(long, global = true, env = "TOKENWARDEN_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// With no command: starts the tray app in the tray, without its window (what start at
    /// login uses). On a desktop that shows no tray icons the window shows anyway
    #[arg(long)]
    pub hidden: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Runs the engine in the foreground: refreshes every account before it expires
    Serve,
    /// Lists accounts: status, expiry, last refresh
    List {
        #[arg(long)]
        json: bool,
    },
    /// Prints the current access token (never an expired one)
    Token {
        name: AccountName,
        /// Refresh first unless the token stays valid this long (e.g. 60s, 5m)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
        min_valid: Duration,
        /// Print `Authorization: Bearer …` instead of the bare token
        #[arg(long)]
        header: bool,
    },
    /// Runs a command with tokens in its environment and exits with its exit code
    #[command(
        after_help = "Each NAME's token is in <NAME>_TOKEN (upper case, - as _); --env VAR=NAME names the variable.\nTokens are never put on the command line, where ps would show them.\nExample: tokenwarden exec github -- sh -c 'curl -H \"Authorization: Bearer $GITHUB_TOKEN\" https://api.github.com/user'"
    )]
    Exec {
        names: Vec<AccountName>,
        /// Puts NAME's token in VAR (repeatable)
        #[arg(long = "env", value_name = "VAR=NAME")]
        env: Vec<exec::Binding>,
        /// Refresh first unless each token stays valid this long
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
        min_valid: Duration,
        /// The command and its arguments
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// Refreshes an account's token now
    Refresh { name: AccountName },
    /// Runs the consent flow in the browser and stores the first token
    Connect {
        name: AccountName,
        /// Print the authorization URL alone on one stdout line instead of opening a browser
        #[arg(long)]
        no_browser: bool,
        /// Use the device authorization grant (RFC 8628)
        #[arg(long, conflicts_with = "no_browser")]
        device: bool,
    },
    /// Manages an account's client secret in the keychain
    Secret {
        #[command(subcommand)]
        action: SecretAction,
    },
    /// Revokes at the provider where it can and deletes the account's secrets
    Disconnect { name: AccountName },
    /// Manages API keys for the local HTTP API
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Manages where token sets and client secrets are stored
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// Prints another tool's configuration as Tokenwarden accounts
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Bridges an MCP client on stdio to the account's remote MCP server (Streamable HTTP),
    /// with a fresh token on every request
    #[command(
        after_help = "In the MCP client's config: {\"command\": \"tokenwarden\", \"args\": [\"mcp\", \"NAME\"]}\nThe account has provider = \"mcp\" and url = \"https://…/mcp\"; connect it once with `tokenwarden connect NAME`."
    )]
    Mcp { name: AccountName },
    /// git's credential helper: the token of the account whose `git_hosts` match the remote
    #[command(
        after_help = "git config --global credential.https://git.example.com.helper '!tokenwarden git-credential'\nA git_hosts entry with a path (git.example.com/team/) needs credential.useHttpPath = true."
    )]
    GitCredential {
        #[arg(value_parser = ["get", "store", "erase"])]
        operation: String,
    },
    /// Prints an ExecCredential for kubectl (its `exec` credential plugin)
    KubeCredential {
        name: AccountName,
        /// client.authentication.k8s.io/v1 or v1beta1 [default: what kubectl asks for, else v1]
        #[arg(long, value_name = "VERSION")]
        api_version: Option<String>,
        /// Refresh first unless the token stays valid this long
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
        min_valid: Duration,
    },
    /// Checks the config, the store, the engine and each account, and says what to do
    Doctor {
        name: Option<AccountName>,
        #[arg(long)]
        json: bool,
        /// Also writes a report for an issue (statuses, findings, versions, the last 50 log
        /// rows; no secret) to FILE
        #[arg(long, value_name = "FILE")]
        bundle: Option<PathBuf>,
    },
    /// Shows which programs took which tokens: executable, uid, pid, API key, how often, when
    Who {
        name: Option<AccountName>,
        #[arg(long)]
        json: bool,
    },
    /// Shows the refresh history, newest first
    Log {
        name: Option<AccountName>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApiKeyAction {
    /// Creates a key and prints it once
    Create {
        label: String,
        /// Limits the key to these accounts (comma-separated); the others do not exist for it
        #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
        accounts: Option<Vec<AccountName>>,
        /// Lets the key change its accounts too (connect, disconnect, set a secret, reload);
        /// without it the key only reads tokens and state
        #[arg(long)]
        write: bool,
    },
    /// Lists key labels, creation times, accounts and whether each may write (never the keys)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revokes a key: it stops working at once, also for a running engine
    Revoke { label: String },
}

#[derive(Subcommand, Debug)]
pub enum StoreAction {
    /// Moves every account's secrets to another store and points the config at it (stop
    /// the engine first)
    Migrate {
        /// keychain: one OS keychain item per secret; database: sealed in the data dir, its
        /// key in the keychain (for thousands of accounts)
        #[arg(long, value_parser = store_kind_parser())]
        to: StoreKind,
    },
    /// Makes the key of a shared (redis) store, once for the whole fleet: writes it where
    /// this host reads it (store.key_file, else the keychain), or prints it with --print
    /// for TOKENWARDEN_STORE_KEY (anywhere: --print needs no config)
    Init {
        /// Prints the key on stdout instead of storing it (for the other hosts' environment)
        #[arg(long)]
        print: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImportFrom {
    /// TokenBoy's config.py (read as data, never run): its token_sources as [[account]]
    /// tables on stdout, and the `secret set` commands for the secrets it held
    Tokenboy {
        #[arg(value_name = "PATH/config.py")]
        path: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretAction {
    /// Reads the client secret (WeChat appsecret, OAuth client secret) from stdin
    Set { name: AccountName },
}

/// `--to keychain|database`, by the engine's names (listed in `--help`).
fn store_kind_parser() -> impl clap::builder::TypedValueParser<Value = StoreKind> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(StoreKind::NAMES)
        .map(|name| StoreKind::from_name(&name).expect("one of the names"))
}

/// Runs a command on a runtime of its own and prints a failure as one line: the whole of
/// `main` for a command, in both binaries.
pub fn run_to_exit(cli: Cli) -> std::process::ExitCode {
    use std::process::ExitCode;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokenwarden: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // A keychain call stuck until its D-Bus timeout (~25 s) would otherwise hold the exit past
    // the engine's own bound on its last writes: what is unsaved is named above and journaled.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tokenwarden: {err:#}"); // one line, whole chain
            match err.downcast_ref::<ExitWith>() {
                Some(ExitWith(code)) => ExitCode::from(*code),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// A failure that ends the process with this code instead of 1 (`exec`: 127 when the
/// command is not found, 126 when it cannot be run, as shells do).
#[derive(Debug, thiserror::Error)]
#[error("exit code {0}")]
pub struct ExitWith(pub u8);

pub async fn run(cli: Cli) -> Result<()> {
    if cli.hidden {
        anyhow::bail!("--hidden starts the tray app without its window; it goes with no command (`tokenwarden --hidden`)");
    }
    let ctx = Context::resolve(cli.config).map_err(anyhow::Error::msg)?;
    let Some(command) = cli.command else {
        <Cli as clap::CommandFactory>::command().print_help()?;
        return Ok(());
    };
    commands::dispatch(&ctx, command).await.map_err(worded)
}

/// One line that says what is wrong, what to do, and the error code scripts can match on
/// (the same code whether the CLI did the work or asked a running engine).
fn worded(err: anyhow::Error) -> anyhow::Error {
    let (code, remedy, account) = if let Some(e) = err.downcast_ref::<EngineError>() {
        (e.code().to_owned(), e.remedy(), e.account().cloned())
    } else if let Some(f) = err.downcast_ref::<client::ApiFailure>() {
        (f.error.clone(), f.remedy.clone(), f.account.clone())
    } else {
        return err;
    };
    let remedy = remedy
        .map(|r| format!("; {}", remedy_words(&r, account.as_ref())))
        .unwrap_or_default();
    anyhow::anyhow!("{err:#}{remedy} (error: {code})")
}

/// A remedy in the CLI's words: a command to run where there is one.
pub(crate) fn remedy_words(remedy: &Remedy, account: Option<&AccountName>) -> String {
    let name = account.map_or("NAME".to_owned(), |a| a.to_string());
    match remedy {
        Remedy::Reconnect => format!("run `tokenwarden connect {name}`"),
        Remedy::SetSecret => format!("run `tokenwarden secret set {name}`"),
        Remedy::FixConfig { line: Some(line) } => format!("fix line {line} of the config file"),
        Remedy::FixConfig { line: None } => "fix the config file".to_owned(),
        Remedy::WaitUntil { until } => format!("it is tried again at {until}"),
        Remedy::UnlockKeychain => format!(
            "make sure the OS keychain ({}) runs and is unlocked",
            if cfg!(target_os = "macos") {
                "the login keychain"
            } else if cfg!(windows) {
                "Credential Manager"
            } else {
                "Secret Service"
            }
        ),
        Remedy::CheckStore { store } => format!("check {store}, then try again"),
        // The error itself names the engine and its pid.
        Remedy::StopOtherEngine { .. } => {
            "use it (the CLI and the API reach it), or stop it first".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remedies_name_the_command_to_run() {
        let fb: AccountName = "fb".parse().unwrap();
        assert_eq!(
            remedy_words(&Remedy::Reconnect, Some(&fb)),
            "run `tokenwarden connect fb`"
        );
    }
}
