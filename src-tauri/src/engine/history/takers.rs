//! The ledger of who took each token (`engine::ledger`), in the history database: one row
//! per account, program (uid, executable, name, script), API key and way, with a count and
//! the first and last time. Bounded: past [`KEEP_TAKERS`] rows, the longest unused go.

use rusqlite::params;

use super::{History, HistoryError};
use crate::engine::ledger::{Taker, TakerRow, Via};
use crate::engine::names::{AccountName, Deadline};

/// Rows kept: programs × accounts, far more than a desktop's.
const KEEP_TAKERS: i64 = 5_000;

pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS takers (
    account TEXT NOT NULL,
    uid INTEGER NOT NULL,
    exe TEXT NOT NULL,
    command TEXT NOT NULL,
    detail TEXT NOT NULL,
    key TEXT NOT NULL,
    via TEXT NOT NULL,
    pid INTEGER,
    count INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    PRIMARY KEY (account, uid, exe, command, detail, key, via)
);
CREATE INDEX IF NOT EXISTS takers_last ON takers(last_ms);";

/// Unknown parts are stored as '' (and uid -1): SQLite's keys treat NULLs as all different.
fn blank(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn unblank(v: String) -> Option<String> {
    (!v.is_empty()).then_some(v)
}

impl History {
    /// `taker` took `account`'s token `n` times, the last at `at`.
    pub fn took(
        &self,
        account: &AccountName,
        taker: &Taker,
        n: u64,
        at: Deadline,
    ) -> Result<(), HistoryError> {
        let conn = self.conn.lock().expect("poisoned");
        let p = &taker.process;
        conn.prepare_cached(
            "INSERT INTO takers (account, uid, exe, command, detail, key, via, pid, count, first_ms, last_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10, ?9, ?9)
             ON CONFLICT DO UPDATE SET count = count + ?10, pid = ?8, last_ms = max(last_ms, ?9)",
        )
        .and_then(|mut upsert| {
            upsert.execute(params![
                account.as_str(),
                p.uid.map_or(-1, i64::from),
                blank(&p.exe),
                blank(&p.command),
                blank(&p.detail),
                blank(&taker.key),
                taker.via.as_str(),
                p.pid,
                at.unix_millis(),
                i64::try_from(n).unwrap_or(i64::MAX),
            ])
        })
        .map_err(|e| self.fail(e))?;
        // A new row now and then: keep the table bounded.
        if conn.changes() == 1 && conn.last_insert_rowid() % 100 == 0 {
            conn.execute(
                "DELETE FROM takers WHERE rowid IN (SELECT rowid FROM takers ORDER BY last_ms DESC LIMIT -1 OFFSET ?1)",
                params![KEEP_TAKERS],
            )
            .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    pub fn takers(&self, accounts: Option<&[AccountName]>) -> Result<Vec<TakerRow>, HistoryError> {
        let conn = self.conn.lock().expect("poisoned");
        let mut stmt = conn
            .prepare(
                "SELECT account, uid, pid, exe, command, detail, key, via, count, first_ms, last_ms
                 FROM takers WHERE (?1 IS NULL OR account IN (SELECT value FROM json_each(?1)))
                 ORDER BY last_ms DESC",
            )
            .map_err(|e| self.fail(e))?;
        let accounts = accounts.map(|a| serde_json::to_string(a).expect("names serialize"));
        let rows = stmt
            .query_map(params![accounts], |row| {
                let via: String = row.get(7)?;
                Ok(TakerRow {
                    account: row.get(0)?,
                    uid: u32::try_from(row.get::<_, i64>(1)?).ok(),
                    pid: row.get(2)?,
                    exe: unblank(row.get(3)?),
                    command: unblank(row.get(4)?),
                    detail: unblank(row.get(5)?),
                    key: unblank(row.get(6)?),
                    via: serde_json::from_value(serde_json::Value::String(via)).unwrap_or(Via::Api),
                    count: row.get::<_, i64>(8)?.try_into().unwrap_or_default(),
                    first_at: Deadline::from_unix_millis(row.get(9)?),
                    last_at: Deadline::from_unix_millis(row.get(10)?),
                })
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::system::processes::Process;

    #[test]
    fn one_row_per_program_counted_and_no_more_than_kept() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(&dir.path().join("h.sqlite3")).unwrap();
        let fb: AccountName = "fb".parse().unwrap();
        let curl = Taker {
            process: Process {
                pid: Some(7),
                uid: Some(1000),
                exe: Some("/usr/bin/curl".into()),
                command: Some("curl".into()),
                detail: None,
            },
            key: Some("scripts".into()),
            via: Via::Api,
        };
        for at in [1_000, 3_000] {
            history
                .took(&fb, &curl, 1, Deadline::from_unix_millis(at))
                .unwrap();
        }
        history
            .took(&fb, &curl, 1, Deadline::from_unix_millis(2_000))
            .unwrap();
        let unknown = Taker {
            process: Process::default(),
            key: None,
            via: Via::Tokenboy,
        };
        history
            .took(&fb, &unknown, 1, Deadline::from_unix_millis(500))
            .unwrap();
        let rows = history.takers(None).unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].exe.as_deref(), Some("/usr/bin/curl"));
        assert_eq!(
            (
                rows[0].count,
                rows[0].first_at.unix_millis(),
                rows[0].last_at.unix_millis()
            ),
            (3, 1_000, 3_000)
        );
        assert_eq!(
            (rows[1].uid, rows[1].exe.as_deref(), rows[1].via),
            (None, None, Via::Tokenboy)
        );
        assert!(history
            .takers(Some(&["other".parse().unwrap()]))
            .unwrap()
            .is_empty());
    }
}
