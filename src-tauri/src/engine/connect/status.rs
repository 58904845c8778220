//! Where an account's latest consent flow is: a leaf, read by the slot that keeps it and by
//! every front end that follows a flow.

use serde::{Deserialize, Serialize};

use crate::engine::events::ConnectStage;
use crate::engine::names::AccountName;

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
