//! How an account gets its first token. A leaf: the provider decides it, the config catalog
//! and the views show it.

use serde::{Deserialize, Serialize};

/// How an account gets its first token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectsWith {
    /// A consent flow in the browser (authorization code).
    Browser,
    /// The device authorization grant: a code typed on another device.
    Device,
    /// No consent: the client secret (or another account's token) is enough.
    None,
}
