//! The engine's side of the ledger: noting a take (on the history thread) and reading who
//! took what.

use super::{Taker, TakerRow};
use crate::engine::names::AccountName;
use crate::engine::{Engine, EngineError};

impl Engine {
    /// Notes that `taker` got `account`'s token (on the history thread: never waits).
    pub fn took(&self, account: &AccountName, taker: Taker) {
        self.took_times(account, taker, 1);
    }

    /// Notes `times` takes at once (the API counts a connection's takes and hands them over
    /// now and then, not one message per request).
    pub fn took_times(&self, account: &AccountName, taker: Taker, times: u64) {
        if times > 0 {
            self.shared.log.took(account.clone(), taker, times);
        }
    }

    /// Who took these accounts' tokens (`None`: all), most recent first.
    pub async fn takers(
        &self,
        accounts: Option<&[AccountName]>,
    ) -> Result<Vec<TakerRow>, EngineError> {
        if let [name] = accounts.unwrap_or_default() {
            self.account(name)?;
        }
        let (shared, accounts) = (self.shared.clone(), accounts.map(<[_]>::to_vec));
        tokio::task::spawn_blocking(move || {
            shared.log.flush();
            shared.history.takers(accounts.as_deref())
        })
        .await
        .map_err(|e| EngineError::Io(format!("history task: {e}")))?
        .map_err(EngineError::from)
    }
}
