//! Who took each token: every token handed out (the API, TokenBoy's route, the proxy, the
//! CLI, the tray's Copy, the helpers) is noted with the program that took it, and the
//! history database keeps one row per account and program (how many times, first and last),
//! bounded. Never a token: only who, how and when.

use serde::{Deserialize, Serialize};

use super::names::Deadline;
use super::system::processes::Process;

/// How a token left the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// `GET /v1/accounts/{name}/token`, a refresh or a 401 report answered with a token.
    Api,
    /// `GET /token?name=`.
    Tokenboy,
    /// `/v1/proxy/{name}/…`: the token went to the account's API, for this caller.
    Proxy,
    /// A command of this machine's CLI that did the work itself (no engine ran).
    Cli,
    /// The tray app's Copy.
    Tray,
    /// The metadata server for Google's libraries.
    Metadata,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Tokenboy => "tokenboy",
            Self::Proxy => "proxy",
            Self::Cli => "cli",
            Self::Tray => "tray",
            Self::Metadata => "metadata",
        }
    }
}

/// Who took a token: the process as far as the kernel said, the label of the API key it
/// showed, and the way it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taker {
    pub process: Process,
    pub key: Option<String>,
    pub via: Via,
}

impl Taker {
    /// This process, taking a token for itself (the tray's Copy, a CLI with no engine).
    pub fn this_process(via: Via) -> Self {
        Self {
            process: Process::this(),
            key: None,
            via,
        }
    }
}

/// One program's use of one account's tokens, as `who` and `…/callers` show it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TakerRow {
    pub account: String,
    pub uid: Option<u32>,
    /// The pid it had the last time.
    pub pid: Option<u32>,
    pub exe: Option<String>,
    pub command: Option<String>,
    pub detail: Option<String>,
    /// The API key's label, when one was shown.
    pub key: Option<String>,
    pub via: Via,
    pub count: u64,
    pub first_at: Deadline,
    pub last_at: Deadline,
}

mod approving;
pub(crate) mod asking;
mod noting;

pub use asking::{Answer, Approval, Ask};
