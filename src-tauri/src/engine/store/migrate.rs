//! `tokenwarden store migrate --to KIND`: moves every account's token set and client secret
//! between the per-item keychain and the sealed database, losing nothing. It runs with the
//! refresher lock (no engine may rotate a token meanwhile) and in an order that leaves a
//! whole copy wherever it stops: copy and read back every item, then point the config at
//! the new store, and only then delete the old copies (a stale copy left behind would hold
//! a refresh token that rotation has already spent).

use std::time::{Duration, Instant};

use crate::engine::config::{edit, Config, StoreKind};
use crate::engine::lock::{self, Role};
use crate::engine::paths::Context;
use crate::engine::store::item::{SecretKey, SecretStore, StoreError};

#[derive(Debug)]
pub struct Migrated {
    pub from: StoreKind,
    pub to: StoreKind,
    /// Items copied (token sets and client secrets).
    pub items: usize,
    pub accounts: usize,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Config(#[from] crate::engine::config::ConfigError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("data dir {0}; nothing was changed")]
    DataDir(#[from] crate::engine::system::private::PlaceError),
    #[error("{0}; nothing was changed")]
    Open(#[from] crate::engine::store::OpenError),
    #[error("a shared (redis) store cannot be moved to or from; `store migrate` moves between keychain and database; nothing was changed")]
    NotMovable,
    #[error("reading from the {from} store: {source}; nothing was changed")]
    Read {
        from: &'static str,
        source: StoreError,
    },
    #[error("writing to the {to} store: {source}; the {from} store still holds everything and the config is unchanged")]
    Write {
        from: &'static str,
        to: &'static str,
        source: StoreError,
    },
    #[error("`{entry}` read back from the {to} store differs from what was written; the {from} store still holds everything and the config is unchanged")]
    Mismatch {
        entry: String,
        from: &'static str,
        to: &'static str,
    },
    #[error("everything is in the {to} store and the config uses it, but the old copies in the {from} store could not all be deleted ({source}); delete them by hand, their refresh tokens may be spent")]
    Cleanup {
        from: &'static str,
        to: &'static str,
        source: StoreError,
    },
}

/// Moves the secrets of every account in the config to `to`. Blocking: run it off the
/// async workers.
pub fn migrate(ctx: &Context, to: StoreKind) -> Result<Migrated, MigrateError> {
    let started = Instant::now();
    let config = Config::load(&ctx.config_path)?;
    let from = config.store;
    let mut done = Migrated {
        from,
        to,
        items: 0,
        accounts: config.accounts.len(),
        elapsed: Duration::ZERO,
    };
    if from == to {
        return Ok(done);
    }
    let _lock = lock::acquire(&ctx.lock_place(), Role::Cli, Duration::from_secs(30))?;
    crate::engine::system::private::own_dir(&ctx.data_dir, crate::engine::paths::DATA_DIR_REMEDY)?;
    if from == StoreKind::Redis || to == StoreKind::Redis {
        return Err(MigrateError::NotMovable);
    }
    let open = |kind: StoreKind| {
        crate::engine::store::open(kind, None, &ctx.keychain_service, &ctx.data_dir)
            .map(|opened| opened.store)
    };
    let source = open(from)?;
    let target = open(to)?;
    let keys: Vec<SecretKey> = config
        .accounts
        .iter()
        .flat_map(|a| {
            [
                SecretKey::Tokens(a.name.clone()),
                SecretKey::ClientSecret(a.name.clone()),
            ]
        })
        .collect();
    let mut copied = Vec::new();
    for key in keys {
        let value = source.get(&key).map_err(|source| MigrateError::Read {
            from: from.as_str(),
            source,
        })?;
        let Some(value) = value else { continue };
        copy(&*target, &key, &value).map_err(|e| match e {
            Copy::Write(source) => MigrateError::Write {
                from: from.as_str(),
                to: to.as_str(),
                source,
            },
            Copy::Mismatch => MigrateError::Mismatch {
                entry: key.entry(),
                from: from.as_str(),
                to: to.as_str(),
            },
        })?;
        copied.push(key);
    }
    edit::set_store_kind(&ctx.config_path, to)?;
    for key in &copied {
        source.delete(key).map_err(|source| MigrateError::Cleanup {
            from: from.as_str(),
            to: to.as_str(),
            source,
        })?;
    }
    done.items = copied.len();
    done.elapsed = started.elapsed();
    Ok(done)
}

enum Copy {
    Write(StoreError),
    Mismatch,
}

fn copy(
    target: &dyn SecretStore,
    key: &SecretKey,
    value: &crate::engine::secret::Secret,
) -> Result<(), Copy> {
    target.set(key, value).map_err(Copy::Write)?;
    match target.get(key).map_err(Copy::Write)? {
        Some(back) if back.expose() == value.expose() => Ok(()),
        _ => Err(Copy::Mismatch),
    }
}
