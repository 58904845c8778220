//! Engine: everything Tokenwarden does, with no window, server or terminal in sight. Every
//! front end (CLI, local API, tray app) is a thin adapter over the operations of [`Engine`].
//! * `open`      build an engine: config, keychain reads, lock; reload the config
//! * `state`     an account's state as one enum, transitions as pure functions
//! * `slot`      one account's live record: state, generation, gate, views
//! * `refresh`   refreshes owned by the engine: skip, share, fetch
//! * `commit`    an attempt's outcome → state: save first, install by generation, notices
//! * `saving`    keychain writes of token sets: retried under the gate, flushed at exit
//! * `serving`   tokens handed out: `min_valid`, 401 reports and their loop guard
//! * `connect`   consent flows (begin/progress/cancel), browser and device
//! * `manage`    disconnect, client secrets, re-reading the keychain
//! * `scheduler` sleeps until the next deadline     * `timing`  refresh lead and backoff
//! * `deadlines` the slots and the heap of their deadlines
//! * `hosts`     refreshes in flight per provider host
//! * `clock` "now", never turned back  * `config` config.toml → accounts  * `provider` per kind
//! * `secrets`   the keychain behind `SecretStore`   * `history` the refresh log (SQLite)
//! * `sealed`    `[store] kind = "database"`: secrets sealed in SQLite, the key in the keychain
//! * `migrate`   moves secrets between the two stores
//! * `fleet`     `[store] kind = "redis"`: hosts share accounts, one refresher each; `sharing`
//!   a refresh's turn in the fleet, and taking in what other hosts wrote
//! * `events`    what front ends redraw from         * `views`   what front ends read
//! * `error`     one table of error kinds and remedies
//! * `lock`      one refresher per keychain service  * `redirect` the consent redirect
//! * `inflight`  marks refreshes out, so one cut off by a crash is named when refused
//! * `journal`   a provider's answer sealed and fsync'd before the keychain write; replay at start
//!
//! [`Engine`] is a cheap-to-clone handle. State sits behind a std mutex that is never held
//! across `.await`; each account has an async gate so that one refresh (or connect, or
//! save) runs at a time, and a generation that every commit checks.

pub(crate) mod account;
pub(crate) mod api_keys;
pub(crate) mod bounds;
pub(crate) mod clock;
pub(crate) mod config;
mod connect;
mod doctor;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod history;
pub(crate) mod ledger;
pub(crate) mod lock;
pub(crate) mod metrics;
pub(crate) mod names;
pub(crate) mod net;
mod open;
pub(crate) mod paths;
pub(crate) mod provider;
mod refresh;
pub(crate) mod secret;
pub(crate) mod store;
pub(crate) mod system;
/// For front ends that make requests of their own: one wording for a request unanswered.
pub use net::network_detail;
pub(crate) use open::own_data_dir;
/// For front ends' own files and their checks of whom they talk to.
pub use system::peers::{connection_uid, listener_uid};
#[cfg(unix)]
pub use system::private::euid;
pub use system::private::replace as replace_private_file;

use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

// The facade: every type and value the front ends use, and nothing else.
pub use account::state::{Severity, Status};
pub use account::views::{AccountView, ConnectsWith, TokenView};
pub use api_keys::{ApiKeyError, ApiKeys, KeyHolder, KeyInfo, Scope, ENGINE_LABEL};
pub use bounds::{MAX_EVENT_SUBSCRIBERS, MAX_HISTORY_ROWS};
pub use config::catalog::{catalog, PresetInfo};
pub use config::clients::MetadataSettings;
pub use config::edit::NewAccount;
pub use config::proxy_target::{ProxyTarget, TokenIn};
pub use config::{asking::Allowed, ApiSettings, Config, ConfigError, StoreKind};
pub use connect::{ConnectFlow, ConnectStart, ConnectStatus};
pub use doctor::{private_dir, ClockCheck, ConsentProbe, Finding, Level, StoreProbe, TokenProbe};
pub use error::{EngineError, ErrorKind, Remedy};
pub use events::{ConnectStage, EngineEvent};
pub use history::Entry;
pub use ledger::{Answer, Approval, Ask, Taker, TakerRow, Via};
pub use lock::{holder as lock_holder, LockError, Role};
pub use metrics::RequestLabels;
pub use names::{parse_duration, AccountName, BadAccountName, Deadline};
pub use open::Parts;
pub use paths::{Context, DEFAULT_KEYCHAIN_SERVICE};
pub use secret::{Secret, TokenSet};
/// `store init`, `store migrate`; a shared store's secrets' variables (never passed on).
pub use store::fleet::{init_key as init_store_key, new_key as new_store_key};
pub use store::fleet::{KEY_ENV, PASSWORD_ENV};
pub use store::migrate::{migrate as migrate_store, Migrated};
pub use system::processes::Process;

use account::slot::Slot;
use config::Account;
use history::History;
use refresh::{foresight, quota, saving};
use store::client::Keychain;
use store::fleet::turns;

/// Whether this engine may write (it holds the lock of its keychain service) or only read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Refresher,
    Observer,
}

#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

struct Shared {
    config: RwLock<Arc<Config>>,
    keychain: Keychain,
    history: Arc<History>,
    log: history::Writer,
    http: reqwest::Client,
    /// Refreshes in flight per provider host.
    hosts: refresh::hosts::HostLimits,
    accounts: Mutex<account::deadlines::Accounts>,
    /// "Deadlines changed, recompute."
    wake: Notify,
    events: broadcast::Sender<EngineEvent>,
    tasks: TaskTracker,
    metrics: metrics::Metrics,
    api_keys: api_keys::ApiKeys,
    /// Which refreshes are out (see `inflight`).
    inflight: refresh::inflight::Markers,
    lock_place: Option<lock::LockPlace>,
    mode: Mutex<Mode>,
    /// Held while this engine may write; a CLI `connect` takes it only once the browser is done.
    lock: Mutex<Option<lock::EngineLock>>,
    /// Cancelled at shutdown: ends consent flows waiting for a browser.
    stop: CancellationToken,
    /// Why the scheduler stopped while it should be running; `/healthz` reports it.
    failed: Mutex<Option<String>>,
    /// Today's WeChat token fetches per allowance.
    quota: refresh::quota::Counts,
    /// Whether, and with which hosts, this one shares its accounts (`[store] kind = "redis"`).
    sharing: store::Sharing,
    asks: ledger::asking::Asks,
    /// Where a provider's answer is durable before the keychain has it (a refresher only),
    /// once it has opened.
    journal: store::journal::Settling,
}

impl Engine {
    pub fn config(&self) -> Arc<Config> {
        self.shared.config.read().expect("poisoned").clone()
    }

    pub fn mode(&self) -> Mode {
        *self.shared.mode.lock().expect("poisoned")
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.shared.metrics
    }

    /// Waits until the token journal has opened (or is known to be off): tests that make the
    /// store fail afterwards must not fail the journal's own key with it.
    #[cfg(test)]
    pub(crate) async fn journal_settled(&self) {
        self.shared.journal.wait().await;
    }

    pub fn api_keys(&self) -> &api_keys::ApiKeys {
        &self.shared.api_keys
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.shared.events.subscribe()
    }

    fn emit(&self, event: EngineEvent) {
        let _ = self.shared.events.send(event); // no subscribers is fine
    }

    /// Tells other processes where this engine's API listens.
    pub fn announce(
        &self,
        listen: std::net::SocketAddr,
        socket: Option<std::path::PathBuf>,
    ) -> Result<(), EngineError> {
        match &self.shared.lock_place {
            Some(place) => Ok(lock::announce(place, Some(listen), socket)?),
            None => Ok(()),
        }
    }

    /// Where this engine's lock lives (`None` for an engine that does not hold one).
    pub fn lock_place(&self) -> Option<&lock::LockPlace> {
        self.shared.lock_place.as_ref()
    }

    fn account(&self, name: &AccountName) -> Result<Arc<Account>, EngineError> {
        self.config()
            .account(name)
            .cloned()
            .ok_or_else(|| EngineError::UnknownAccount(name.clone()))
    }

    /// Changes a slot, then tells subscribers if its status changed and saves the state for
    /// other processes when it differs from the one saved. Every state change goes through here.
    pub(crate) fn update<T>(
        &self,
        name: &AccountName,
        f: impl FnOnce(&mut Slot) -> T,
    ) -> Result<T, EngineError> {
        let now = clock::now();
        let (result, from, to, row) = self.with_slot(name, |s| {
            let from = s.status(now);
            let result = f(s);
            let to = s.status(now);
            (result, from, to, s.row_to_save(to))
        })?;
        if let Some((last_error, last_refresh)) = row {
            let log = &self.shared.log;
            log.save_state(name, to.as_str(), last_error, last_refresh);
        }
        if from != to {
            self.emit(EngineEvent::StatusChanged {
                account: name.clone(),
                from,
                to,
            });
        }
        Ok(result)
    }

    /// The window in which a crash loses a provider's answer: from its arrival until it is
    /// durable (`via` says where). Measured for `/metrics` and for the bench, which reads
    /// the debug line.
    pub(crate) fn durable(
        &self,
        name: &AccountName,
        received: std::time::Instant,
        via: &'static str,
    ) {
        let window = received.elapsed();
        self.shared
            .metrics
            .answer_durable_seconds
            .observe(window.as_secs_f64());
        tracing::debug!(account = %name, via, micros = window.as_micros() as u64, "answer durable");
    }

    pub(crate) fn record(&self, record: history::Record) {
        self.shared.metrics.refresh(
            record.account.as_str(),
            record.outcome.as_str(),
            record.elapsed.as_secs_f64(),
        );
        self.shared.log.record(record);
    }

    fn with_slot<T>(
        &self,
        name: &AccountName,
        f: impl FnOnce(&mut Slot) -> T,
    ) -> Result<T, EngineError> {
        let changed = self
            .shared
            .accounts
            .lock()
            .expect("poisoned")
            .change(name, f);
        let (result, woke) = changed.ok_or_else(|| EngineError::UnknownAccount(name.clone()))?;
        if woke {
            self.shared.wake.notify_one();
        }
        Ok(result)
    }

    pub fn view(&self, name: &AccountName) -> Result<AccountView, EngineError> {
        self.with_slot(name, |s| self.view_of(s, crate::engine::clock::now()))
    }

    /// A slot's view with what the engine keeps for it elsewhere: today's WeChat fetches,
    /// which are counted per appid, not per slot.
    fn view_of(&self, slot: &Slot, now: std::time::SystemTime) -> AccountView {
        let mut view = slot.view(now);
        view.quota = quota::usage(self, &slot.account);
        view
    }

    /// The refresh log of these accounts (`None`: all), newest first, read off the async
    /// workers.
    pub async fn history(
        &self,
        accounts: Option<&[AccountName]>,
        limit: usize,
    ) -> Result<Vec<history::Entry>, EngineError> {
        if let [name] = accounts.unwrap_or_default() {
            self.account(name)?;
        }
        let (shared, accounts) = (self.shared.clone(), accounts.map(<[_]>::to_vec));
        tokio::task::spawn_blocking(move || {
            shared.log.flush(); // what this engine recorded so far is in the answer
            shared.history.entries(accounts.as_deref(), limit)
        })
        .await
        .map_err(|e| EngineError::Io(format!("history task: {e}")))?
        .map_err(EngineError::from)
    }

    /// Sets the seconds-until-expiry gauges from the current tokens (called when scraped).
    pub fn update_expiry_gauges(&self) {
        if let Some((url, up)) = self.shared.sharing.subscription() {
            let labels = metrics::StoreLabels {
                url: url.to_owned(),
            };
            self.shared
                .metrics
                .shared_store_up
                .get_or_create(&labels)
                .set(i64::from(up));
        }
        let accounts = self.shared.accounts.lock().expect("poisoned");
        let now = crate::engine::clock::now();
        for (name, slot) in accounts.iter() {
            let left = slot
                .state
                .tokens()
                .map_or(0.0, |t| t.expires_at.remaining(now).as_secs_f64());
            let labels = metrics::AccountLabels {
                account: name.to_string(),
            };
            self.shared
                .metrics
                .expiry_seconds
                .get_or_create(&labels)
                .set(left);
            if let Some(by) = slot
                .state
                .tokens()
                .and_then(|t| slot.account.reconnect_by(t))
            {
                self.shared
                    .metrics
                    .refresh_token_expiry_seconds
                    .get_or_create(&labels)
                    .set(by.remaining(now).as_secs_f64());
            }
            if let Some(usage) = quota::usage(self, &slot.account) {
                let metrics = &self.shared.metrics;
                metrics
                    .wechat_fetches
                    .get_or_create(&labels)
                    .set(i64::from(usage.used));
                metrics
                    .wechat_fetch_limit
                    .get_or_create(&labels)
                    .set(i64::from(usage.limit));
            }
        }
    }

    /// Runs the scheduler until `stop`, then waits for in-flight work (refreshes finishing
    /// their keychain writes, consent flows) and saves what is still only in memory.
    pub async fn run(&self, stop: CancellationToken) -> Vec<EngineError> {
        let watch = Watch(self, &stop);
        if self.mode() == Mode::Refresher {
            let foresight = {
                let (engine, stop) = (self.clone(), stop.clone());
                tokio::spawn(async move { foresight::watch_reconnects(&engine, stop).await })
            };
            let fleet = {
                let (engine, stop) = (self.clone(), stop.clone());
                tokio::spawn(async move { turns::hear_fleet(&engine, stop).await })
            };
            refresh::scheduler::run(self.clone(), stop.clone()).await;
            foresight.abort();
            fleet.abort();
            self.shared.sharing.stop_listening();
        } else {
            stop.cancelled().await;
        }
        drop(watch);
        self.close().await
    }

    /// `Ok` while the engine does its job: the scheduler runs and no panic has left the
    /// accounts' state half-changed. Else why not (`/healthz` answers 503 with it).
    pub fn health(&self) -> Result<(), String> {
        if let Some(why) = self
            .shared
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(why);
        }
        if self.shared.accounts.is_poisoned() {
            return Err("a panic interrupted a change to the accounts' state".to_owned());
        }
        Ok(())
    }

    /// Ends consent flows, waits for every task, writes unsaved token sets and the history.
    /// Returns the accounts whose newest token set could still not be saved.
    pub async fn close(&self) -> Vec<EngineError> {
        self.shared.stop.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        let failures = saving::flush_unsaved(self).await;
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.log.flush()).await;
        failures
    }
}

/// Records a scheduler that ends before it was told to stop (a panic unwinds through here).
struct Watch<'a>(&'a Engine, &'a CancellationToken);

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if !self.1.is_cancelled() {
            let why = if std::thread::panicking() {
                "the scheduler panicked"
            } else {
                "the scheduler stopped by itself"
            };
            tracing::error!("{why}; the engine no longer refreshes");
            *self
                .0
                .shared
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(why.to_owned());
        }
    }
}

#[cfg(test)]
mod tests;
