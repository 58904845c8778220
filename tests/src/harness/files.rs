//! What the binary leaves on disk: the engine lock and its holder file, the refresh history
//! database, and a search of files for a secret.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::Env;
use crate::proc;

impl Env {
    /// The folder of this service's engine lock, by the binary's rule:
    /// `$XDG_RUNTIME_DIR/tokenwarden`, else `<temp>/tokenwarden-$USER`.
    pub fn lock_dir(&self) -> PathBuf {
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("tokenwarden"),
            None => {
                let uid = proc::current_uid().expect("/proc");
                std::env::temp_dir().join(format!("tokenwarden-{uid}"))
            }
        }
    }

    /// The lock file of this service's refresher.
    pub fn lock_file(&self) -> PathBuf {
        self.lock_dir().join(format!("{}.lock", self.lock_stem()))
    }

    /// The service's name as the lock's files are named.
    fn lock_stem(&self) -> String {
        self.service
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The engine lock's holder file (`{"pid","role","listen","socket"}`), if there is one.
    pub fn engine_holder(&self) -> Option<Value> {
        let path = self.lock_dir().join(format!("{}.json", self.lock_stem()));
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Rows of the `refreshes` table as JSON objects (column → value), read-only.
    /// Empty when the database or the table does not exist yet.
    pub fn history_rows(&self) -> Vec<serde_json::Map<String, Value>> {
        use rusqlite::{types::ValueRef, OpenFlags};
        let path = self.data_dir.join("history.sqlite3");
        let Ok(db) = rusqlite::Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ) else {
            return Vec::new();
        };
        let _ = db.busy_timeout(Duration::from_secs(2));
        let Ok(mut stmt) = db.prepare("SELECT * FROM refreshes") else {
            return Vec::new();
        };
        let names: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let rows = stmt.query_map([], |row| {
            let mut map = serde_json::Map::new();
            for (i, name) in names.iter().enumerate() {
                let value = match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => n.into(),
                    ValueRef::Real(x) => x.into(),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned().into()
                    }
                };
                map.insert(name.clone(), value);
            }
            Ok(map)
        });
        rows.map(|r| r.filter_map(Result::ok).collect())
            .unwrap_or_default()
    }
}

/// Files under `dir` (recursively) whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path);
            }
        }
    }
    found
}
