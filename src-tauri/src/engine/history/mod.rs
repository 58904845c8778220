//! The refresh log and the last known state of each account, in SQLite in the data dir.
//! Rows hold times, names, outcomes and error codes: never a secret. Other processes (the
//! CLI while an engine runs) read it too, so it uses WAL and a busy timeout.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use super::names::{AccountName, Deadline};

mod approvals;
mod takers;
mod writer;
pub use writer::Writer;

/// Rows kept: enough for months of a dozen accounts refreshed every hour.
const KEEP_ROWS: i64 = 50_000;
/// Writes the history thread puts in one transaction at most.
const BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
#[error("history database {path}: {source}")]
pub struct HistoryError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

impl HistoryError {
    /// The file is damaged (not a database, or corrupt pages), not merely busy or unwritable.
    pub fn is_damage(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        matches!(
            self.source.sqlite_error_code(),
            Some(DatabaseCorrupt | NotADatabase)
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Scheduled,
    Manual,
    MinValid,
    Retry,
    Dependency,
    Connect,
    Startup,
    /// A client reported the token was rejected upstream (HTTP 401).
    Rejected,
    /// A token set that was kept in memory is finally written to the keychain.
    Save,
}

impl Trigger {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Manual => "manual",
            Self::MinValid => "min_valid",
            Self::Retry => "retry",
            Self::Dependency => "dependency",
            Self::Connect => "connect",
            Self::Startup => "startup",
            Self::Rejected => "rejected",
            Self::Save => "save",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    TransientError,
    PermanentError,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::TransientError => "transient_error",
            Self::PermanentError => "permanent_error",
        }
    }
}

/// One row of `log` and `GET /v1/history`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub at: Deadline,
    pub account: String,
    pub trigger: String,
    pub outcome: String,
    pub duration_ms: i64,
    pub expires_at: Option<Deadline>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    /// The host that did it, in a fleet (`[store] kind = "redis"`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One row to add to the refresh log.
#[derive(Clone, Debug)]
pub struct Record {
    pub account: AccountName,
    pub trigger: Trigger,
    pub outcome: Outcome,
    pub elapsed: Duration,
    pub expires_at: Option<Deadline>,
    /// The error code and message of a failure.
    pub error: Option<(String, String)>,
}

/// What survives a restart of an account's health, for `list` from another process.
#[derive(Clone, Debug)]
pub struct SavedState {
    pub status: String,
    pub last_error: Option<String>,
    pub last_refresh: Option<Deadline>,
    pub updated: Deadline,
}

pub struct History {
    conn: Mutex<Connection>,
    path: String,
    /// Written into every row: this host's name in a fleet.
    host: Option<String>,
}

impl History {
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        let name = path.display().to_string();
        let fail = |source| HistoryError {
            path: name.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(fail)?;
        // Every page read once (milliseconds: the log is bounded), so damage shows here and
        // not in the middle of a refresh.
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(fail)?;
        if check != "ok" {
            return Err(fail(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(check.lines().next().unwrap_or_default().to_owned()),
            )));
        }
        conn.busy_timeout(Duration::from_secs(5)).map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS refreshes (
                id INTEGER PRIMARY KEY,
                at_ms INTEGER NOT NULL,
                account TEXT NOT NULL,
                trigger TEXT NOT NULL,
                outcome TEXT NOT NULL,
                duration_ms INTEGER NOT NULL,
                expires_at INTEGER,
                error_code TEXT,
                message TEXT
            );
            CREATE INDEX IF NOT EXISTS refreshes_account ON refreshes(account, id);
            CREATE TABLE IF NOT EXISTS state (
                account TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                last_error TEXT,
                last_refresh_ms INTEGER,
                updated_ms INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS wechat_fetches (
                allowance TEXT NOT NULL,
                day TEXT NOT NULL,
                fetches INTEGER NOT NULL,
                PRIMARY KEY (allowance, day)
            );",
        )
        .map_err(fail)?;
        conn.execute_batch(takers::SCHEMA).map_err(fail)?;
        conn.execute_batch(approvals::SCHEMA).map_err(fail)?;
        // Logs written before fleets existed have no `host` column.
        let has_host: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM pragma_table_info('refreshes') WHERE name = 'host')",
                [],
                |row| row.get(0),
            )
            .map_err(fail)?;
        if !has_host {
            conn.execute_batch("ALTER TABLE refreshes ADD COLUMN host TEXT")
                .map_err(fail)?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            path: name,
            host: None,
        })
    }

    /// Names this host in every row it records (a fleet's hosts each keep their own log).
    pub fn with_host(mut self, host: Option<String>) -> Self {
        self.host = host;
        self
    }

    fn fail(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError {
            path: self.path.clone(),
            source,
        }
    }

    pub fn record(&self, r: &Record) -> Result<(), HistoryError> {
        let conn = self.conn.lock().expect("poisoned");
        let (error_code, message) = match &r.error {
            Some((code, message)) => (Some(code.as_str()), Some(message.as_str())),
            None => (None, None),
        };
        conn.prepare_cached(
            "INSERT INTO refreshes (at_ms, account, trigger, outcome, duration_ms, expires_at, error_code, message, host)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut insert| insert.execute(
            params![
                Deadline::now().unix_millis(),
                r.account.as_str(),
                r.trigger.as_str(),
                r.outcome.as_str(),
                r.elapsed.as_millis() as i64,
                r.expires_at.map(|d| d.unix()),
                error_code,
                message,
                self.host
            ],
        ))
        .map_err(|e| self.fail(e))?;
        let id = conn.last_insert_rowid();
        if id % 500 == 0 {
            conn.execute(
                "DELETE FROM refreshes WHERE id <= ?1",
                params![id - KEEP_ROWS],
            )
            .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// The newest `limit` entries of these accounts (`None`: all).
    pub fn entries(
        &self,
        accounts: Option<&[AccountName]>,
        limit: usize,
    ) -> Result<Vec<Entry>, HistoryError> {
        let conn = self.conn.lock().expect("poisoned");
        let mut stmt = conn
            .prepare(
                "SELECT at_ms, account, trigger, outcome, duration_ms, expires_at, error_code, message, host
                 FROM refreshes WHERE (?1 IS NULL OR account IN (SELECT value FROM json_each(?1)))
                 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(|e| self.fail(e))?;
        let accounts = accounts.map(|a| serde_json::to_string(a).expect("names serialize"));
        let rows = stmt
            .query_map(params![accounts, limit as i64], |row| {
                Ok(Entry {
                    at: Deadline::from_unix_millis(row.get(0)?),
                    account: row.get(1)?,
                    trigger: row.get(2)?,
                    outcome: row.get(3)?,
                    duration_ms: row.get(4)?,
                    expires_at: row.get::<_, Option<i64>>(5)?.map(Deadline::from_unix),
                    error_code: row.get(6)?,
                    message: row.get(7)?,
                    host: row.get(8)?,
                })
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.fail(e))
    }

    pub fn save_state(
        &self,
        account: &AccountName,
        status: &str,
        last_error: Option<&str>,
        last_refresh: Option<Deadline>,
    ) -> Result<(), HistoryError> {
        let conn = self.conn.lock().expect("poisoned");
        conn.prepare_cached(
            "INSERT INTO state (account, status, last_error, last_refresh_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(account) DO UPDATE SET status = ?2, last_error = ?3, last_refresh_ms = ?4, updated_ms = ?5",
        )
        .and_then(|mut upsert| upsert.execute(
            params![account.as_str(), status, last_error, last_refresh.map(|d| d.unix_millis()), Deadline::now().unix_millis()],
        ))
        .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// `BEGIN` or `COMMIT` for the writer's batches.
    /// Token fetches per WeChat allowance (`engine::quota`) on a Beijing day.
    pub fn fetches_on(&self, day: &str) -> Result<HashMap<String, u32>, HistoryError> {
        let conn = self.conn.lock().expect("poisoned");
        let mut statement = conn
            .prepare("SELECT allowance, fetches FROM wechat_fetches WHERE day = ?1")
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map([day], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, u32>(1)?))
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(e))
    }

    fn save_fetches(&self, allowance: &str, day: &str, fetches: u32) -> Result<(), HistoryError> {
        let conn = self.conn.lock().expect("poisoned");
        conn.prepare_cached(
            "INSERT INTO wechat_fetches (allowance, day, fetches) VALUES (?1, ?2, ?3)
             ON CONFLICT (allowance, day) DO UPDATE SET fetches = max(fetches, excluded.fetches)",
        )
        .and_then(|mut s| s.execute(rusqlite::params![allowance, day, fetches]))
        .map(drop)
        .map_err(|e| self.fail(e))
    }

    fn transaction(&self, statement: &str) -> Result<(), HistoryError> {
        let conn = self.conn.lock().expect("poisoned");
        conn.execute_batch(statement).map_err(|e| self.fail(e))
    }

    /// Every account's saved state, by account name, in one scan (a start of 100,000
    /// accounts made 100,000 queries before).
    pub fn saved_states(&self) -> Result<HashMap<String, SavedState>, HistoryError> {
        let conn = self.conn.lock().expect("poisoned");
        let mut statement = conn
            .prepare("SELECT account, status, last_error, last_refresh_ms, updated_ms FROM state")
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map([], |row| {
                let state = SavedState {
                    status: row.get(1)?,
                    last_error: row.get(2)?,
                    last_refresh: row
                        .get::<_, Option<i64>>(3)?
                        .map(Deadline::from_unix_millis),
                    updated: Deadline::from_unix_millis(row.get(4)?),
                };
                Ok((row.get::<_, String>(0)?, state))
            })
            .and_then(|rows| rows.collect::<Result<HashMap<_, _>, _>>())
            .map_err(|e| self.fail(e));
        rows
    }
}

#[cfg(test)]
mod tests;
