//! `[store] kind = "redis"`: several hosts share their accounts through one Redis, with one
//! refresher per account among them.
//! * token sets and client secrets live in Redis sealed with the store key, bound to their
//!   namespace, entry name and fence, so Redis never holds a plaintext secret and a blob
//!   cannot be moved or passed off as newer without the key;
//! * a refresh takes the account's lease (`SET NX PX`, renewed while it runs) and with it a
//!   fencing number, above every fence the host has seen; a token set is written by a Lua
//!   script only if no newer fence wrote before it, so a host that stalled past its lease
//!   never overwrites a newer set;
//! * a host never adopts a stored set older than the one it holds (Redis restarted from a
//!   snapshot, a replica promoted, a backup restored): it keeps its own and stores it again;
//! * every write is published; the other hosts re-read that account at once, so serving
//!   stays in memory and never polls Redis.
//!
//! Calls block (like the keychain's), so the engine makes them on the blocking pool.
//! * `keys`    where the store key comes from      * `store`   the `SecretStore` over Redis
//! * `listen`  hears other hosts' writes           * `seal`    what a blob is bound to
//! * `fences`  what this host knows of fences      * `scripts` the Lua that checks and writes
//! * `entries` reading and writing sealed entries

mod entries;
mod fences;
mod keys;
mod listen;
mod scripts;
mod seal;
pub(crate) mod sharing;
mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::IntoConnectionInfo as _;
use ring::aead::LessSafeKey;
use ring::rand::SystemRandom;
use tokio::sync::broadcast;

pub use keys::{key_source, write_new_key, KeySource, KEY_ENV};

/// The password of the shared Redis, before the keychain item `store:redis-password`.
pub const PASSWORD_ENV: &str = "TOKENWARDEN_REDIS_PASSWORD";
pub use listen::Heard;
pub use store::FleetStore;

use entries::Behind;
use fences::Fences;
use scripts::{ACQUIRE, RELEASE, RENEW};
use seal::{Opened, Place};

use crate::engine::config::fleet::FleetSettings;
use crate::engine::names::AccountName;
use crate::engine::secret::Secret;
use crate::engine::store::item::{Backing, SecretKey, SecretStore, StoreError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The fixed text sealed as `<namespace>:check`: only the right key opens it. (Stores made
/// before blobs were bound to their namespace have it sealed the old way, which proves the
/// key as well.)
const CHECK_TEXT: &str = "tokenwarden shared store v1";
const CHECK_ENTRY: &str = "store:check";

#[derive(Debug)]
pub enum FleetError {
    Redis { url: String, detail: String },
    WrongKey { url: String, namespace: String },
    Key(String),
    Busy { account: AccountName },
    Unopened { url: String, entry: String },
}

impl FleetError {
    /// What went wrong, without saying which store: a [`StoreError`] names it itself.
    fn detail(&self) -> String {
        match self {
            Self::Redis { detail, .. } => detail.clone(),
            Self::WrongKey { namespace, .. } => format!("the store key does not open what is stored under `{namespace}` (another key wrote it); nothing was changed. Give this host the fleet's key (TOKENWARDEN_STORE_KEY, store.key_file or the keychain item store:key)"),
            Self::Key(what) => what.clone(),
            Self::Busy { account } => format!("another host has been refreshing `{account}` for longer than its lease; try again"),
            Self::Unopened { .. } => "does not open with the store key (damaged, written with another key, or copied from another entry, fleet or fence); nothing was taken from it".into(),
        }
    }

    /// This failure as a call about `entry` that failed in the store at `url`.
    pub fn about(&self, url: &str, entry: String) -> StoreError {
        StoreError {
            backing: Backing::SharedStore {
                url: url.to_owned(),
            },
            entry,
            message: self.detail(),
        }
    }
}

impl std::fmt::Display for FleetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Redis { url, .. } | Self::WrongKey { url, .. } => {
                write!(f, "shared store {url}: {}", self.detail())
            }
            Self::Unopened { url, entry } => {
                write!(f, "shared store {url}: `{entry}` {}", self.detail())
            }
            Self::Key(_) | Self::Busy { .. } => f.write_str(&self.detail()),
        }
    }
}

impl std::error::Error for FleetError {}

pub struct Fleet {
    settings: FleetSettings,
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    key: LessSafeKey,
    rng: SystemRandom,
    /// This process in lease values and published messages: host name, pid, a random tag.
    me: String,
    host: String,
    /// Per account: the fences this host has seen, holds and leased (see `fences`).
    fences: Mutex<Fences>,
    heard: broadcast::Sender<Heard>,
    stop: Arc<AtomicBool>,
    /// Entries whose last read found nothing at all (not even a deletion), or, for token
    /// sets, one older than this host holds: this host's copy is to be stored again.
    behind: Mutex<HashMap<String, Behind>>,
    /// Whether the subscription is up (for `/metrics`).
    subscribed: AtomicBool,
}

impl Fleet {
    /// Connects, finds the store key and proves it against the store's check entry (sealing
    /// one into an empty store). A wrong key is an error before anything is written.
    pub fn open(
        settings: &FleetSettings,
        keychain: &Arc<dyn SecretStore>,
    ) -> Result<Arc<Self>, FleetError> {
        let (key_text, _) = keys::store_key(settings, keychain.as_ref())?;
        let key = crate::engine::store::sealed::decode_key(&key_text).ok_or_else(|| {
            FleetError::Key(
                "the store key is not one `tokenwarden store init` makes (base64 of 32 bytes)"
                    .into(),
            )
        })?;
        let client = client(settings, keychain.as_ref())?;
        let host = settings.host.clone().unwrap_or_else(host_name);
        let tag: u32 = rand::random();
        let fleet = Arc::new(Self {
            settings: settings.clone(),
            client,
            conn: Mutex::new(None),
            key,
            rng: SystemRandom::new(),
            me: format!("{host}/{}/{tag:08x}", std::process::id()),
            host,
            fences: Mutex::new(Fences::default()),
            heard: broadcast::channel(4096).0,
            stop: Arc::new(AtomicBool::new(false)),
            behind: Mutex::new(HashMap::new()),
            subscribed: AtomicBool::new(false),
        });
        fleet.prove_key()?;
        Ok(fleet)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The store's URL as configured (it never holds a password).
    pub fn url(&self) -> &str {
        &self.settings.url
    }

    /// Whether this host's subscription to the fleet's channel is up right now.
    pub fn heard_lately(&self) -> bool {
        self.subscribed.load(Ordering::SeqCst)
    }

    pub fn lease_time(&self) -> Duration {
        self.settings.lease
    }

    /// What other hosts wrote (and when the subscription came back after a gap).
    pub fn heard(&self) -> broadcast::Receiver<Heard> {
        self.heard.subscribe()
    }

    /// Starts hearing other hosts' writes on a thread of its own, until the fleet is dropped.
    pub fn listen(self: &Arc<Self>) {
        listen::start(self);
    }

    fn redis_key(&self, what: &str) -> String {
        format!("{}:{what}", self.settings.namespace)
    }

    fn channel(&self) -> String {
        self.redis_key("changed")
    }

    /// `<namespace>:<what>:<account>`: an account's lease or fence counter.
    fn account_key(&self, what: &str, account: &AccountName) -> String {
        self.redis_key(&format!("{what}:{account}"))
    }

    /// `<namespace>:fetches:<allowance>:<day>`: a WeChat allowance's fetches that day.
    fn fetches_key(&self, allowance: &str, day: &str) -> String {
        self.redis_key(&format!("fetches:{allowance}:{day}"))
    }

    /// `<namespace>:secret:<entry>`: a sealed entry and the fence that wrote it.
    fn secret_key(&self, entry: &str) -> String {
        self.redis_key(&format!("secret:{entry}"))
    }

    fn fail(&self, e: &redis::RedisError) -> FleetError {
        FleetError::Redis {
            url: self.settings.url.clone(),
            detail: e.to_string(),
        }
    }

    /// Runs `f` on the shared connection, connecting first if there is none; a connection
    /// that failed is dropped so that the next call connects again.
    fn call<T>(
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

    /// Proves the key against the store's check entry, sealing one into an empty store
    /// (also one that Redis lost).
    pub fn prove_key(&self) -> Result<(), FleetError> {
        let check = self.redis_key("check");
        let place = self.place(CHECK_ENTRY, 0);
        let stored: Option<String> = self.call(|c| redis::cmd("GET").arg(&check).query(c))?;
        let stored = match stored {
            Some(stored) => stored,
            None => {
                let sealed = self.seal(place, Some(&Secret::new(CHECK_TEXT)))?;
                // NX: two hosts starting at once with different keys cannot both win.
                let _: Option<String> = self.call(|c| {
                    redis::cmd("SET")
                        .arg(&check)
                        .arg(&sealed)
                        .arg("NX")
                        .query(c)
                })?;
                self.call(|c| redis::cmd("GET").arg(&check).query::<String>(c))?
            }
        };
        match seal::open(&self.key, place, &stored) {
            Some(Opened::Bound(Some(text)) | Opened::Unfenced(Some(text)))
                if text.expose() == CHECK_TEXT =>
            {
                Ok(())
            }
            _ => Err(FleetError::WrongKey {
                url: self.settings.url.clone(),
                namespace: self.settings.namespace.clone(),
            }),
        }
    }

    fn place<'a>(&'a self, entry: &'a str, fence: u64) -> Place<'a> {
        Place {
            namespace: &self.settings.namespace,
            entry,
            fence,
        }
    }

    fn seal(&self, place: Place<'_>, text: Option<&Secret>) -> Result<String, FleetError> {
        seal::seal(&self.rng, &self.key, place, text)
            .map_err(|what| FleetError::Key(format!("`{}` {what}", place.entry)))
    }

    fn fences(&self) -> std::sync::MutexGuard<'_, Fences> {
        self.fences.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `account`'s lease with a new fence, or `None` while another host holds it.
    pub fn acquire(&self, account: &AccountName) -> Result<Option<u64>, FleetError> {
        let ttl = millis(self.settings.lease);
        let floor = self.fences().floor(account);
        let fence: u64 = self.call(|c| {
            ACQUIRE
                .key(self.account_key("lease", account))
                .key(self.account_key("fence", account))
                .key(self.secret_key(&SecretKey::Tokens(account.clone()).entry()))
                .arg(&self.me)
                .arg(ttl)
                .arg(floor)
                .invoke(c)
        })?;
        if fence == 0 {
            return Ok(None);
        }
        self.fences().leased(account, fence);
        Ok(Some(fence))
    }

    /// Extends the lease; `false` when it is no longer this host's.
    pub fn renew(&self, account: &AccountName) -> Result<bool, FleetError> {
        let ttl = millis(self.settings.lease);
        let renewed: i64 = self.call(|c| {
            RENEW
                .key(self.account_key("lease", account))
                .arg(&self.me)
                .arg(ttl)
                .invoke(c)
        })?;
        Ok(renewed == 1)
    }

    /// Ends the lease taken with `fence` (a release that comes late, after this host took a
    /// newer lease, leaves the newer one's fence alone).
    pub fn release(&self, account: &AccountName, fence: u64) -> Result<(), FleetError> {
        self.fences().released(account, fence);
        let _: i64 = self.call(|c| {
            RELEASE
                .key(self.account_key("lease", account))
                .arg(&self.me)
                .invoke(c)
        })?;
        Ok(())
    }

    /// Counts one WeChat fetch against `allowance` today (a Beijing day), for the whole
    /// fleet; the count is kept two days.
    pub fn count_fetch(&self, allowance: &str, day: &str) -> Result<u32, FleetError> {
        let key = self.fetches_key(allowance, day);
        let (count,): (u32,) = self.call(|c| {
            redis::pipe()
                .atomic()
                .cmd("INCR")
                .arg(&key)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(2 * 24 * 3600)
                .ignore()
                .query(c)
        })?;
        Ok(count)
    }

    /// The fleet's count of `allowance` fetches on `day`.
    pub fn fetches(&self, allowance: &str, day: &str) -> Result<u32, FleetError> {
        let key = self.fetches_key(allowance, day);
        let count: Option<u32> = self.call(|c| redis::cmd("GET").arg(&key).query(c))?;
        Ok(count.unwrap_or(0))
    }

    /// A new consent or a deletion replaces whatever is stored, newer or not: its write takes
    /// a lease of its own instead of carrying the fence of the set this host holds.
    pub fn forget_fence(&self, account: &AccountName) {
        self.fences().forget(account);
    }

    /// Ends the subscription's thread (it holds the fleet while it listens).
    pub fn stop_listening(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
