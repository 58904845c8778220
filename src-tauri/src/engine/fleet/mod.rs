//! `[store] kind = "redis"`: several hosts share their accounts through one Redis, with one
//! refresher per account among them.
//! * token sets and client secrets live in Redis sealed with the store key (ChaCha20-Poly1305,
//!   the entry name as associated data), so Redis never holds a plaintext secret;
//! * a refresh takes the account's lease (`SET NX PX`, renewed while it runs) and with it a
//!   fencing number (`INCR`); a token set is written by a Lua script only if no newer fence
//!   wrote before it, so a host that stalled past its lease never overwrites a newer set;
//! * every write is published; the other hosts re-read that account at once, so serving
//!   stays in memory and never polls Redis.
//!
//! Calls block (like the keychain's), so the engine makes them on the blocking pool.
//! * `keys`    where the store key comes from      * `store`  the `SecretStore` over Redis
//! * `listen`  the subscription that hears other hosts' writes

mod keys;
mod listen;
mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use base64::Engine as _;
use redis::IntoConnectionInfo as _;
use ring::aead::LessSafeKey;
use ring::rand::SystemRandom;
use tokio::sync::broadcast;

pub use keys::{key_source, write_new_key, KeySource, KEY_ENV};
pub use listen::Heard;
pub use store::FleetStore;

use super::config::fleet::FleetSettings;
use super::names::AccountName;
use super::secret::Secret;
use super::secrets::{SecretKey, SecretStore};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The fixed text sealed as `<namespace>:check`: only the right key opens it.
const CHECK_TEXT: &str = "tokenwarden shared store v1";
const CHECK_ENTRY: &str = "store:check";

/// Takes the lease and a new fence in one step: 0 when another host holds it. The fence is
/// also above the stored set's, in case Redis lost its counter but hosts stored sets again.
static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = redis.call('INCR', KEYS[2])
  local stored = tonumber(redis.call('HGET', KEYS[3], 'fence') or '0')
  if fence <= stored then
    fence = stored + 1
    redis.call('SET', KEYS[2], fence)
  end
  return fence
end
return 0",
    )
});
/// Extends the lease, only while it is still ours.
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0",
    )
});
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0",
    )
});
/// Writes a sealed entry unless a newer fence wrote it (0: superseded), and tells the fleet.
static WRITE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local stored = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if tonumber(ARGV[1]) < stored then
  return 0
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'blob', ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1",
    )
});
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("shared store {url}: {detail}")]
    Redis { url: String, detail: String },
    #[error("shared store {url}: the store key does not open what is stored under `{namespace}` (another key wrote it); nothing was changed. Give this host the fleet's key (TOKENWARDEN_STORE_KEY, store.key_file or the keychain item store:key)")]
    WrongKey { url: String, namespace: String },
    #[error("{0}")]
    Key(String),
    #[error("another host has been refreshing `{account}` for longer than its lease; try again")]
    Busy { account: AccountName },
}

pub struct Fleet {
    settings: FleetSettings,
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    key: LessSafeKey,
    rng: SystemRandom,
    /// This process in lease values and published messages: host name, pid, a random tag.
    me: String,
    host: String,
    /// Per account, the highest fence this host knows for the set it holds: its newest lease,
    /// or the fence the stored set was written with when it read it. Its token writes carry
    /// it, also a write retried after the lease ended, and a set stored again after Redis
    /// lost it, so that of two hosts storing theirs again the newer set wins.
    fences: Mutex<HashMap<AccountName, u64>>,
    heard: broadcast::Sender<Heard>,
    stop: Arc<AtomicBool>,
    /// Entries whose last read found nothing at all (not even a deletion's empty entry).
    lost: Mutex<std::collections::HashSet<String>>,
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
        let key = super::sealed::decode_key(&key_text).ok_or_else(|| {
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
            fences: Mutex::new(HashMap::new()),
            heard: broadcast::channel(4096).0,
            stop: Arc::new(AtomicBool::new(false)),
            lost: Mutex::new(Default::default()),
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
        let stored: Option<String> = self.call(|c| redis::cmd("GET").arg(&check).query(c))?;
        let stored = match stored {
            Some(stored) => stored,
            None => {
                let sealed = self.seal(CHECK_ENTRY, CHECK_TEXT)?;
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
        match self.open_blob(CHECK_ENTRY, &stored) {
            Some(text) if text.expose() == CHECK_TEXT => Ok(()),
            _ => Err(FleetError::WrongKey {
                url: self.settings.url.clone(),
                namespace: self.settings.namespace.clone(),
            }),
        }
    }

    fn seal(&self, entry: &str, text: &str) -> Result<String, FleetError> {
        let (mut nonce, sealed) = super::sealed::seal_text(&self.rng, &self.key, entry, text)
            .map_err(|e| FleetError::Key(e.to_string()))?;
        nonce.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(nonce))
    }

    fn open_blob(&self, entry: &str, blob: &str) -> Option<Secret> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .ok()?;
        let nonce_len = ring::aead::NONCE_LEN;
        if bytes.len() < nonce_len {
            return None;
        }
        super::sealed::open_row(&self.key, entry, bytes.split_at(nonce_len)).map(Secret::new)
    }

    /// Takes `account`'s lease with a new fence, or `None` while another host holds it.
    pub fn acquire(&self, account: &AccountName) -> Result<Option<u64>, FleetError> {
        let ttl = millis(self.settings.lease);
        let fence: u64 = self.call(|c| {
            ACQUIRE
                .key(self.account_key("lease", account))
                .key(self.account_key("fence", account))
                .key(self.secret_key(&SecretKey::Tokens(account.clone()).entry()))
                .arg(&self.me)
                .arg(ttl)
                .invoke(c)
        })?;
        if fence == 0 {
            return Ok(None);
        }
        self.note_fence(account, fence);
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

    pub fn release(&self, account: &AccountName) -> Result<(), FleetError> {
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

    /// A new consent replaces whatever is stored, newer or not: its write takes a fence of
    /// its own instead of the one of this host's last refresh.
    pub fn forget_fence(&self, account: &AccountName) {
        self.fences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
    }

    fn note_fence(&self, account: &AccountName, fence: u64) {
        let mut fences = self.fences.lock().unwrap_or_else(|e| e.into_inner());
        let known = fences.entry(account.clone()).or_insert(fence);
        *known = (*known).max(fence);
    }

    fn fence_of(&self, account: &AccountName) -> Option<u64> {
        self.fences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
            .copied()
    }

    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, FleetError> {
        let entry = key.entry();
        let redis_key = self.secret_key(&entry);
        let (blob, fence): (Option<String>, Option<u64>) = self.call(|c| {
            redis::cmd("HMGET")
                .arg(&redis_key)
                .arg("blob")
                .arg("fence")
                .query(c)
        })?;
        {
            let mut lost = self.lost.lock().unwrap_or_else(|e| e.into_inner());
            if blob.is_none() {
                lost.insert(entry.clone());
            } else {
                lost.remove(&entry);
            }
        }
        match blob {
            None => Ok(None),
            Some(blob) if blob.is_empty() => Ok(None),
            Some(blob) => {
                let text = self.open_blob(&entry, &blob).ok_or_else(|| {
                    FleetError::Key(format!(
                        "shared store {}: `{entry}` does not open with the store key (damaged, or written with another key)",
                        self.settings.url
                    ))
                })?;
                if let (SecretKey::Tokens(account), Some(fence)) = (key, fence) {
                    self.note_fence(account, fence);
                }
                Ok(Some(text))
            }
        }
    }

    /// Whether the last read of `key` found no entry at all: never stored, or lost by Redis
    /// (a disconnect leaves an empty entry instead).
    pub fn lost(&self, key: &SecretKey) -> bool {
        self.lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key.entry())
    }

    /// Writes `entry` unless a newer fence already did; `false` when superseded.
    fn write(&self, entry: &str, fence: u64, text: &Secret) -> Result<bool, FleetError> {
        let blob = self.seal(entry, text.expose())?;
        self.write_blob(entry, fence, &blob)
    }

    /// Marks `entry` deleted (an empty blob) under `fence`: a set fetched under an older
    /// lease cannot bring a disconnected account back, and "deleted" does not read like
    /// "Redis lost it" (which hosts answer by storing their copy again).
    fn tombstone(&self, entry: &str, fence: u64) -> Result<bool, FleetError> {
        self.write_blob(entry, fence, "")
    }

    fn write_blob(&self, entry: &str, fence: u64, blob: &str) -> Result<bool, FleetError> {
        let written: i64 = self.call(|c| {
            WRITE
                .key(self.secret_key(entry))
                .key(self.channel())
                .arg(fence)
                .arg(blob)
                .arg(listen::message(entry, &self.me))
                .invoke(c)
        })?;
        Ok(written == 1)
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
    let password = match std::env::var("TOKENWARDEN_REDIS_PASSWORD") {
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

#[cfg(test)]
mod tests {
    //! The lease and the fence against a real `redis-server` (make test installs it).

    use super::*;
    use crate::engine::secrets::MemoryStore;

    struct Redis(std::process::Child);

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A redis-server on a loopback port below the ephemeral range.
    fn redis() -> (Redis, u16) {
        let port = 20_000 + (rand::random::<u16>() % 12_000);
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; make test installs it)");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        (Redis(child), port)
    }

    fn host(port: u16, name: &str, key_file: &std::path::Path) -> Arc<Fleet> {
        let settings = FleetSettings {
            url: format!("redis://127.0.0.1:{port}"),
            key_file: Some(key_file.to_owned()),
            lease: Duration::from_secs(1),
            namespace: "unit".into(),
            host: Some(name.into()),
        };
        let keychain: Arc<dyn SecretStore> = Arc::new(MemoryStore::default());
        Fleet::open(&settings, &keychain).unwrap()
    }

    #[test]
    fn a_host_that_outlived_its_lease_cannot_overwrite_a_newer_set() {
        let (_redis, port) = redis();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("store.key");
        let settings = FleetSettings {
            url: String::new(),
            key_file: Some(key_file.clone()),
            lease: Duration::from_secs(1),
            namespace: String::new(),
            host: None,
        };
        let key = crate::engine::sealed::new_key_text(&SystemRandom::new()).unwrap();
        keys::write_new_key(&settings, &MemoryStore::default(), &key).unwrap();
        let (a, b) = (host(port, "a", &key_file), host(port, "b", &key_file));
        let name: AccountName = "fb".parse().unwrap();
        let entry = SecretKey::Tokens(name.clone()).entry();

        let fa = a.acquire(&name).unwrap().expect("a free lease");
        assert_eq!(b.acquire(&name).unwrap(), None, "a holds it");
        assert!(a.write(&entry, fa, &Secret::new("first")).unwrap());
        // `a` stalls past its lease; `b` takes over and stores a newer set.
        std::thread::sleep(Duration::from_millis(1300));
        let fb = b.acquire(&name).unwrap().expect("a lapsed lease");
        assert!(fb > fa);
        assert!(b.write(&entry, fb, &Secret::new("newer")).unwrap());
        // `a` wakes up with its answer: its lease is gone and its write is refused.
        assert!(!a.renew(&name).unwrap());
        assert!(!a.write(&entry, fa, &Secret::new("older")).unwrap());
        assert_eq!(
            a.get(&SecretKey::Tokens(name.clone()))
                .unwrap()
                .unwrap()
                .expose(),
            "newer"
        );
        // Releasing someone else's lease does nothing.
        a.release(&name).unwrap();
        assert_eq!(a.acquire(&name).unwrap(), None, "b still holds it");
        b.release(&name).unwrap();
        assert!(a.acquire(&name).unwrap().unwrap() > fb);
    }

    #[test]
    fn after_redis_lost_everything_the_newer_of_two_copies_wins_in_either_order() {
        let (_redis, port) = redis();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("store.key");
        let key = crate::engine::sealed::new_key_text(&SystemRandom::new()).unwrap();
        std::fs::write(&key_file, key.expose()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let name: AccountName = "fb".parse().unwrap();
        let tokens = SecretKey::Tokens(name.clone());
        for newer_first in [true, false] {
            let store = |fleet: Arc<Fleet>| FleetStore {
                fleet,
                keychain: Arc::new(MemoryStore::default()),
            };
            let (a, b, c) = (
                host(port, "a", &key_file),
                host(port, "b", &key_file),
                host(port, "c", &key_file),
            );
            let (sa, sb, sc) = (store(a.clone()), store(b.clone()), store(c.clone()));
            // `c` refreshes and stores X, which `a` and `b` read; `b` refreshes and stores Y,
            // which `a` (that never refreshed) does not hear of.
            c.acquire(&name).unwrap().unwrap();
            sc.set(&tokens, &Secret::new("X")).unwrap();
            c.release(&name).unwrap();
            assert_eq!(sa.get(&tokens).unwrap().unwrap().expose(), "X");
            assert_eq!(sb.get(&tokens).unwrap().unwrap().expose(), "X");
            b.acquire(&name).unwrap().unwrap();
            sb.set(&tokens, &Secret::new("Y")).unwrap();
            b.release(&name).unwrap();
            // Redis restarts empty; both hosts store their copy again.
            a.call(|c| redis::cmd("FLUSHALL").query::<()>(c)).unwrap();
            assert!(sa.get(&tokens).unwrap().is_none() && a.lost(&tokens));
            if newer_first {
                sb.set(&tokens, &Secret::new("Y")).unwrap();
                sa.set(&tokens, &Secret::new("X")).unwrap();
            } else {
                sa.set(&tokens, &Secret::new("X")).unwrap();
                sb.set(&tokens, &Secret::new("Y")).unwrap();
            }
            assert_eq!(
                sa.get(&tokens).unwrap().unwrap().expose(),
                "Y",
                "newer first: {newer_first}"
            );
        }
    }

    #[test]
    fn a_key_file_others_can_read_is_refused_and_a_key_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("store.key");
        let settings = FleetSettings {
            url: String::new(),
            key_file: Some(key_file.clone()),
            lease: Duration::from_secs(1),
            namespace: String::new(),
            host: None,
        };
        let key = crate::engine::sealed::new_key_text(&SystemRandom::new()).unwrap();
        let keychain = MemoryStore::default();
        keys::write_new_key(&settings, &keychain, &key).unwrap();
        let e = keys::write_new_key(&settings, &keychain, &key).unwrap_err();
        assert!(e.to_string().contains("never replaced"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = keys::store_key(&settings, &keychain).unwrap_err();
            assert!(e.to_string().contains("chmod 600"), "{e}");
            assert!(!e.to_string().contains(key.expose()), "{e}");
        }
    }
}
