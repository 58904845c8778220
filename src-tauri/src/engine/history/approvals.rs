//! The programs the user allowed "always" to take an account's token (`[api] ask_first`),
//! in the history database: one row per executable and account, until revoked.

use rusqlite::params;

use super::{History, HistoryError};
use crate::engine::ledger::Approval;
use crate::engine::names::{AccountName, Deadline};

pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS approvals (
    exe TEXT NOT NULL,
    account TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (exe, account)
);";

impl History {
    pub fn approve(
        &self,
        exe: &str,
        account: &AccountName,
        at: Deadline,
    ) -> Result<(), HistoryError> {
        let conn = self.conn.lock().expect("poisoned");
        conn.execute(
            "INSERT INTO approvals (exe, account, since_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            params![exe, account.as_str(), at.unix_millis()],
        )
        .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Whether there was such an approval.
    pub fn revoke(&self, exe: &str, account: &AccountName) -> Result<bool, HistoryError> {
        let conn = self.conn.lock().expect("poisoned");
        let removed = conn
            .execute(
                "DELETE FROM approvals WHERE exe = ?1 AND account = ?2",
                params![exe, account.as_str()],
            )
            .map_err(|e| self.fail(e))?;
        Ok(removed > 0)
    }

    /// Every approval, oldest first. A row whose account name no longer parses is skipped.
    pub fn approvals(&self) -> Result<Vec<Approval>, HistoryError> {
        let conn = self.conn.lock().expect("poisoned");
        let mut stmt = conn
            .prepare("SELECT exe, account, since_ms FROM approvals ORDER BY since_ms, exe")
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .map_err(|e| self.fail(e))?;
        let mut approvals = Vec::new();
        for row in rows {
            let (exe, account, since) = row.map_err(|e| self.fail(e))?;
            if let Ok(account) = account.parse() {
                approvals.push(Approval {
                    exe,
                    account,
                    since: Deadline::from_unix_millis(since),
                });
            }
        }
        Ok(approvals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_is_kept_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite3");
        let fb: AccountName = "fb".parse().unwrap();
        let history = History::open(&path).unwrap();
        history
            .approve("/usr/bin/python3", &fb, Deadline::from_unix_millis(5))
            .unwrap();
        history
            .approve("/usr/bin/python3", &fb, Deadline::from_unix_millis(9))
            .unwrap();
        drop(history);
        let history = History::open(&path).unwrap();
        let approvals = history.approvals().unwrap();
        assert_eq!(approvals.len(), 1);
        assert_eq!(
            (approvals[0].exe.as_str(), approvals[0].since.unix_millis()),
            ("/usr/bin/python3", 5)
        );
        assert!(history.revoke("/usr/bin/python3", &fb).unwrap());
        assert!(!history.revoke("/usr/bin/python3", &fb).unwrap());
        assert!(history.approvals().unwrap().is_empty());
    }
}
