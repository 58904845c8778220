//! `tokenwarden exec NAME… [--env VAR=NAME]… -- COMMAND ARGS…`: runs a command with tokens in
//! its environment, each valid for at least `--min-valid`, and ends with its exit code.
//! Tokens go in the environment, never on a command line, where `ps` would show them to
//! every user. On Unix this process becomes the command (`exec`), so signals, the exit code
//! and the process id are the command's own; nothing of the engine runs on beside it.
//! The command gets the tokens it asked for and none of Tokenwarden's own secrets
//! ([`SECRET_VARS`]).

use std::ffi::OsString;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use super::backend::Backend;
use crate::engine::{AccountName, KEY_ENV, PASSWORD_ENV};

/// Variables Tokenwarden reads that hold a secret, taken out of the command's environment:
/// the store key opens every account's tokens in a fleet, and the Redis password its store,
/// while the command was given one account's token. The others only say where things are
/// or how to log, and stay, so that a `tokenwarden` the command runs finds the same config,
/// data and keychain service; a test holds every variable in the source to one list or the
/// other.
const SECRET_VARS: &[&str] = &[KEY_ENV, PASSWORD_ENV];

/// `VAR=NAME` from `--env`.
#[derive(Clone, Debug)]
pub struct Binding {
    pub var: String,
    pub account: AccountName,
}

impl std::str::FromStr for Binding {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (var, account) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not VAR=NAME"))?;
        if !is_variable_name(var) {
            return Err(format!(
                "`{var}` is not an environment variable name (letters, digits and _, not first a digit)"
            ));
        }
        let account = account.parse().map_err(|e| format!("{e}"))?;
        Ok(Self {
            var: var.to_owned(),
            account,
        })
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `fitbit-old` → `FITBIT_OLD_TOKEN`.
pub fn variable_for(name: &AccountName) -> String {
    format!(
        "{}_TOKEN",
        name.as_str().to_ascii_uppercase().replace('-', "_")
    )
}

/// Every variable with its account, in order; a variable named twice is an error.
fn bindings(names: &[AccountName], env: &[Binding]) -> Result<Vec<Binding>> {
    let mut all: Vec<Binding> = names
        .iter()
        .map(|name| Binding {
            var: variable_for(name),
            account: name.clone(),
        })
        .collect();
    all.extend(env.iter().cloned());
    for (i, b) in all.iter().enumerate() {
        if all[..i].iter().any(|earlier| earlier.var == b.var) {
            bail!("the variable {} is given twice", b.var);
        }
    }
    if all.is_empty() {
        bail!("name at least one account, or give --env VAR=NAME");
    }
    Ok(all)
}

/// Refuses bad arguments before any engine is asked for a token.
pub(super) fn check(names: &[AccountName], env: &[Binding], command: &[OsString]) -> Result<()> {
    bindings(names, env)?;
    program(command).map(drop)
}

fn program(command: &[OsString]) -> Result<(&OsString, &[OsString])> {
    command
        .split_first()
        .ok_or_else(|| anyhow!("give the command to run after `--`"))
}

pub(super) async fn run(
    backend: &impl Backend,
    names: &[AccountName],
    env: &[Binding],
    min_valid: Duration,
    command: &[OsString],
) -> Result<()> {
    let bindings = bindings(names, env)?;
    let (program, args) = program(command)?;
    let names: Vec<AccountName> = bindings.iter().map(|b| b.account.clone()).collect();
    let tokens = backend.tokens(&names, min_valid).await?;
    let mut child = std::process::Command::new(program);
    child.args(args);
    for var in SECRET_VARS {
        child.env_remove(var);
    }
    for (binding, token) in bindings.iter().zip(&tokens) {
        child.env(&binding.var, token.access_token.expose());
    }
    start(child, program)
}

#[cfg(unix)]
fn start(mut child: std::process::Command, program: &OsString) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let e = child.exec(); // returns only when the command could not be started
    Err(cannot_start(program, &e))
}

/// Windows has no exec: the command runs as our child and its exit code becomes ours. Ctrl+C
/// reaches every process of the console, so we let it go by and the command decides (as
/// `cargo run` does); a handler, unlike ignoring it, is not inherited by the command.
#[cfg(windows)]
fn start(mut child: std::process::Command, program: &OsString) -> Result<()> {
    unsafe extern "system" fn let_it_pass(_event: u32) -> windows_sys::core::BOOL {
        1
    }
    // SAFETY: registers a handler that touches nothing; failure only means Ctrl+C stops us too.
    unsafe { windows_sys::Win32::System::Console::SetConsoleCtrlHandler(Some(let_it_pass), 1) };
    let status = child.status().map_err(|e| cannot_start(program, &e))?;
    std::process::exit(status.code().unwrap_or(1));
}

#[cfg(not(any(unix, windows)))]
fn start(mut child: std::process::Command, program: &OsString) -> Result<()> {
    let status = child.status().map_err(|e| cannot_start(program, &e))?;
    std::process::exit(status.code().unwrap_or(1));
}

fn cannot_start(program: &OsString, e: &std::io::Error) -> anyhow::Error {
    let code = if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    anyhow::Error::new(super::ExitWith(code))
        .context(format!("cannot run `{}`: {e}", program.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_variables_and_bindings_are_checked() {
        assert_eq!(
            variable_for(&"fitbit-old".parse().unwrap()),
            "FITBIT_OLD_TOKEN"
        );
        let b: Binding = "GH=github".parse().unwrap();
        assert_eq!((b.var.as_str(), b.account.as_str()), ("GH", "github"));
        for bad in ["GH", "1X=a", "A-B=a", "=a", "X=Bad Name"] {
            assert!(bad.parse::<Binding>().is_err(), "{bad}");
        }
        let names = ["a".parse().unwrap()];
        let twice = bindings(&names, &["A_TOKEN=b".parse().unwrap()]).unwrap_err();
        assert!(twice.to_string().contains("A_TOKEN"), "{twice}");
        assert!(bindings(&[], &[]).is_err());
    }

    /// Variables Tokenwarden reads that hold no secret, left to the command.
    const HARMLESS_VARS: &[&str] = &[
        "TOKENWARDEN_CONFIG",
        "TOKENWARDEN_DATA_DIR",
        "TOKENWARDEN_KEYCHAIN_SERVICE",
        "TOKENWARDEN_LOG",
        "TOKENWARDEN_FAULT_KEYCHAIN_WRITES",
        "TOKENWARDEN_FAULT_SCHEDULER_PANIC",
    ];

    #[test]
    fn every_tokenwarden_variable_in_the_source_is_either_removed_or_harmless() {
        fn visit(dir: &std::path::Path, found: &mut std::collections::BTreeSet<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    visit(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (start, _) in text.match_indices("TOKENWARDEN_") {
                        let name: String = text[start..]
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_'
                            })
                            .collect();
                        let name = name.trim_end_matches('_');
                        if name != "TOKENWARDEN" {
                            // (not this test's own search string)
                            found.insert(name.to_owned());
                        }
                    }
                }
            }
        }
        let mut found = std::collections::BTreeSet::new();
        visit(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(
            found.contains(KEY_ENV) && found.contains("TOKENWARDEN_CONFIG"),
            "{found:?}"
        );
        for var in &found {
            assert!(
                SECRET_VARS.contains(&var.as_str()) || HARMLESS_VARS.contains(&var.as_str()),
                "{var} is read by Tokenwarden: add it to SECRET_VARS (it holds a secret) or HARMLESS_VARS"
            );
        }
    }
}
