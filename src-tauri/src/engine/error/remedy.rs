//! What the user (or a script) can do about a state or an error. A leaf, so that states and
//! views can name a remedy without depending on every error type.

use serde::{Deserialize, Serialize};

use crate::engine::names::Deadline;

/// What the user (or a script) can do about an error. Worded by each front end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Remedy {
    /// Run the consent flow again.
    Reconnect,
    /// Store the (right) client secret.
    SetSecret,
    /// Fix the config file, at this line when known.
    FixConfig { line: Option<usize> },
    /// Nothing to do but wait: the engine tries again at this time.
    WaitUntil { until: Deadline },
    /// The OS keychain must run and be unlocked.
    UnlockKeychain,
    /// A store other than the keychain failed (the sealed database, or the shared store in
    /// Redis), named here in words with where it is: unlocking the keychain would not help.
    CheckStore { store: String },
    /// Another engine already refreshes on this machine.
    StopOtherEngine { pid: u32 },
}
