//! The fleet's one connection to Redis, shared by the coordinator and the store so that a
//! connection an outage broke fails once and is made again for whichever call comes next;
//! and how this host and its keys are named there.

use std::sync::Mutex;
use std::time::Duration;

use redis::IntoConnectionInfo as _;

use super::{FleetError, PASSWORD_ENV};
use crate::engine::config::fleet::FleetSettings;
use crate::engine::names::AccountName;
use crate::engine::secret::Secret;
use crate::engine::store::item::{SecretKey, SecretStore};

pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) struct Link {
    pub settings: FleetSettings,
    pub client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    /// This process in lease values and published messages: host name, pid, a random tag.
    pub me: String,
    pub host: String,
}

impl Link {
    /// The client for `settings.url`, with the password from the environment or the
    /// keychain (never from the config file). Connects at the first call.
    pub fn new(settings: &FleetSettings, keychain: &dyn SecretStore) -> Result<Self, FleetError> {
        let host = settings.host.clone().unwrap_or_else(host_name);
        let tag: u32 = rand::random();
        Ok(Self {
            settings: settings.clone(),
            client: client(settings, keychain)?,
            conn: Mutex::new(None),
            me: format!("{host}/{}/{tag:08x}", std::process::id()),
            host,
        })
    }

    /// The store's URL as configured (it never holds a password).
    pub fn url(&self) -> &str {
        &self.settings.url
    }

    pub fn redis_key(&self, what: &str) -> String {
        format!("{}:{what}", self.settings.namespace)
    }

    pub fn channel(&self) -> String {
        self.redis_key("changed")
    }

    /// `<namespace>:<what>:<account>`: an account's lease or fence counter.
    pub fn account_key(&self, what: &str, account: &AccountName) -> String {
        self.redis_key(&format!("{what}:{account}"))
    }

    /// `<namespace>:fetches:<allowance>:<day>`: a WeChat allowance's fetches that day.
    pub fn fetches_key(&self, allowance: &str, day: &str) -> String {
        self.redis_key(&format!("fetches:{allowance}:{day}"))
    }

    /// `<namespace>:secret:<entry>`: a sealed entry and the fence that wrote it.
    pub fn secret_key(&self, entry: &str) -> String {
        self.redis_key(&format!("secret:{entry}"))
    }

    pub fn fail(&self, e: &redis::RedisError) -> FleetError {
        FleetError::Redis {
            url: self.settings.url.clone(),
            detail: e.to_string(),
        }
    }

    /// Runs `f` on the shared connection, connecting first if there is none; a connection
    /// that failed is dropped so that the next call connects again. Blocks.
    pub fn call<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, FleetError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if conn.is_none() {
            *conn = Some(self.connect().map_err(|e| self.fail(&e))?);
        }
        let result = f(conn.as_mut().expect("just set"));
        if let Err(e) = &result {
            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                *conn = None;
            }
        }
        result.map_err(|e| self.fail(&e))
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let conn = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_read_timeout(Some(CALL_TIMEOUT))?;
        conn.set_write_timeout(Some(CALL_TIMEOUT))?;
        Ok(conn)
    }
}

/// The Redis client for `settings.url`, with the password from the environment or the
/// keychain (never from the config file).
fn client(
    settings: &FleetSettings,
    keychain: &dyn SecretStore,
) -> Result<redis::Client, FleetError> {
    let fail = |detail: String| FleetError::Redis {
        url: settings.url.clone(),
        detail,
    };
    let info = settings
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| fail(e.to_string()))?;
    let password = match std::env::var(PASSWORD_ENV) {
        Ok(p) if !p.is_empty() => Some(Secret::new(p)),
        // A server may have no keychain at all: then there is no password but the
        // environment's, and a Redis that wants one says so when it is reached.
        _ => keychain.get(&SecretKey::RedisPassword).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "no keychain to read the Redis password from");
            None
        }),
    };
    let info = match password {
        Some(p) => {
            let redis = info.redis_settings().clone().set_password(p.expose());
            info.set_redis_settings(redis)
        }
        None => info,
    };
    redis::Client::open(info).map_err(|e| fail(e.to_string()))
}

/// The machine's name, for leases and logs.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}
