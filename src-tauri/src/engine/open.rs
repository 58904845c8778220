//! Building an engine (config, lock, keychain reads, history) and changing what it was built
//! from while it runs: a config file edited by the window or by hand, an account added or
//! removed, an account's stored items re-read on request. A keychain item that cannot be read makes that one account wait
//! and retry; it never stops the engine from starting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::account::slot::{row_digest, Slot};
use super::account::state::{AccountState, Failure, Status};
use super::account::views::AccountView;
use super::config::edit;
use super::config::{Account, Config};
use super::events::EngineEvent;
use super::history::{History, SavedState};
use super::lock::{self, LockPlace};
use super::names::AccountName;
use super::paths::Context;
use super::secret::Secret;
use super::store::client::Keychain;
use super::store::item::SecretStore;
use super::store::{self, Opened, Sharing};
use super::{api_keys, metrics, Engine, EngineError, Mode, Shared};

/// How long a fetch may sit without receiving a byte. There is no limit on the whole
/// answer: a slow answer that is still arriving may carry a rotated refresh token.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an engine waits at start for its token journal to open before it answers anyway.
const JOURNAL_WAIT: Duration = Duration::from_secs(5);

/// This machine's store of secrets, as the config chooses it (a fleet's is reached and its
/// key proved: it blocks, so off the async workers).
async fn open_store(config: &Config, ctx: &Context) -> Result<Opened, EngineError> {
    let (kind, fleet) = (config.store, config.fleet.clone());
    let (service, data_dir) = (ctx.keychain_service.clone(), ctx.data_dir.clone());
    tokio::task::spawn_blocking(move || store::open(kind, fleet.as_ref(), &service, &data_dir))
        .await
        .map_err(|e| EngineError::Io(format!("opening the store: {e}")))?
        .map_err(|e| EngineError::Io(e.to_string()))
}

/// Everything an engine is built from; `Engine::open` gathers it for this machine, tests
/// of engine logic pass a memory store.
pub struct Parts {
    pub config: Config,
    pub mode: Mode,
    pub store: Arc<dyn SecretStore>,
    pub history_path: std::path::PathBuf,
    pub data_dir: std::path::PathBuf,
    pub lock_place: Option<LockPlace>,
    pub lock: Option<lock::EngineLock>,
    /// Whether the store is shared with other hosts (`[store] kind = "redis"`).
    pub sharing: Sharing,
}

/// How long a one-shot command waits for another to finish (a refresh may take a while).
const CLI_WAITS: Duration = Duration::from_secs(30);
/// How long `serve` and the tray app wait for a one-shot command (say a cron job's `token`
/// while systemd restarts `serve`) before giving up; a running engine is refused at once.
const ENGINE_WAITS: Duration = Duration::from_secs(10);

async fn take_lock(place: &LockPlace, role: lock::Role) -> Result<lock::EngineLock, EngineError> {
    let wait = match role {
        lock::Role::Cli => CLI_WAITS,
        lock::Role::Engine => ENGINE_WAITS,
    };
    let place = place.clone();
    tokio::task::spawn_blocking(move || lock::acquire(&place, role, wait))
        .await
        .map_err(|e| EngineError::Io(e.to_string()))?
        .map_err(EngineError::from)
}

/// Makes the data dir ours alone (0700, refused if another user owns it or can replace it), and
/// closes files an older version left readable to others, saying so once.
pub(crate) fn own_data_dir(dir: &std::path::Path) -> Result<(), EngineError> {
    super::system::private::own_dir(dir, super::paths::DATA_DIR_REMEDY)
        .map_err(|e| EngineError::Io(format!("data dir {e}")))?;
    let tightened = super::system::private::tighten(dir);
    if !tightened.is_empty() {
        let names: Vec<String> = tightened
            .iter()
            .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .collect();
        tracing::warn!(dir = %dir.display(), files = %names.join(", "), "files in the data dir were readable by other users; they are now yours alone (0600)");
    }
    Ok(())
}

/// The refresh history, or a new one when the file is damaged: a log must never stop the
/// refreshing. The damaged file is kept beside it under a new name, said once.
fn open_history(path: &std::path::Path) -> Result<History, EngineError> {
    if let Err(e) = super::system::private::create(path) {
        return Err(EngineError::Io(format!("history {}: {e}", path.display())));
    }
    match History::open(path) {
        Err(e) if e.is_damage() => {
            let aside =
                super::system::private::move_aside(path, &["-wal", "-shm"]).map_err(|io| {
                    EngineError::Io(format!(
                        "history {} is damaged ({e}) and cannot be moved aside: {io}",
                        path.display()
                    ))
                })?;
            tracing::warn!(damaged = %aside.display(), error = %e, "the refresh history was damaged: it was moved aside and a new one started (refreshing goes on)");
            super::system::private::create(path)
                .map_err(|io| EngineError::Io(format!("history {}: {io}", path.display())))?;
            Ok(History::open(path)?)
        }
        other => Ok(other?),
    }
}

/// A permanent failure saved before a restart stays one: retrying would only fail again.
fn gave_up(saved: &SavedState) -> Option<Failure> {
    (saved.status == Status::NeedsReconnect.as_str()).then(|| restored_failure(saved))
}

fn restored_failure(saved: &SavedState) -> Failure {
    Failure {
        code: String::new(),
        message: saved
            .last_error
            .clone()
            .unwrap_or_else(|| "the provider refused the grant".to_owned()),
        remedy: Some(super::Remedy::Reconnect),
    }
}

/// An observer shows what the running (or last) engine saved: retrying, refreshing.
fn observed(state: AccountState, saved: &SavedState) -> AccountState {
    let failure = || Failure {
        code: String::new(),
        message: saved.last_error.clone().unwrap_or_default(),
        remedy: None,
    };
    match saved.status.as_str() {
        "retrying" => AccountState::Retrying {
            tokens: state.tokens().cloned(),
            attempt: 1,
            next_try: saved.updated,
            error: failure(),
        },
        "refreshing" => state.begin_refresh(),
        _ => state,
    }
}

impl Engine {
    /// Opens the engine for this machine. `Refresher` takes the lock of the keychain service
    /// (a CLI command waits a little for another CLI command, never for a running engine);
    /// `Observer` reads only, until it asks to write (`become_writer`).
    pub async fn open(ctx: &Context, mode: Mode, role: lock::Role) -> Result<Self, EngineError> {
        let config = Config::load(&ctx.config_path)?;
        own_data_dir(&ctx.data_dir)?;
        let place = ctx.lock_place();
        let lock = match mode {
            Mode::Refresher => Some(take_lock(&place, role).await?),
            Mode::Observer => None,
        };
        let Opened { store, sharing } = open_store(&config, ctx).await?;
        Self::with_parts(Parts {
            config,
            mode,
            store,
            history_path: ctx.history_path(),
            data_dir: ctx.data_dir.clone(),
            lock_place: Some(place),
            lock,
            sharing,
        })
        .await
    }

    pub async fn with_parts(parts: Parts) -> Result<Self, EngineError> {
        let metrics = metrics::Metrics::default();
        let kind = parts.config.store;
        let service = parts
            .lock_place
            .as_ref()
            .map_or("tokenwarden".to_owned(), |p| p.stem.clone());
        let journal: super::store::journal::Settling = Arc::new(tokio::sync::SetOnce::new());
        let keychain = Keychain::new(parts.store.clone())
            .sharing(parts.sharing.clone())
            .counting(metrics.secret_writes.clone())
            .journaled(journal.clone());
        let history = Arc::new(open_history(&parts.history_path)?);
        let host = parts.sharing.host().map(str::to_owned);
        let log =
            super::history::Writer::start(History::open(&parts.history_path)?.with_host(host));
        let (today, _) = super::refresh::quota::beijing_day(super::clock::now());
        let fetches = history.fetches_on(&today).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read today's WeChat fetch counts; counting from 0");
            Default::default()
        });
        // Its own keychain queue: checking an API key never waits behind account reads.
        let (mode, data_dir, store) = (parts.mode, parts.data_dir.clone(), parts.store.clone());
        let api_keys = api_keys::ApiKeys::new(&parts.data_dir, Keychain::new(parts.store));
        // Token, revoke and discovery endpoints are called with secrets in the body or the
        // query: a redirect must never carry them elsewhere (reqwest would re-post a 307's
        // body to any host, and send the query in Referer), so none is followed. A whole
        // call is bounded too: a read timeout alone restarts with each byte a slow provider
        // trickles.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .user_agent(concat!("tokenwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::Io(format!("HTTP client: {e}")))?;
        let approvals = history.approvals().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the programs allowed always");
            Vec::new()
        });
        let engine = Self {
            shared: Arc::new(Shared {
                config: RwLock::new(Arc::new(parts.config)),
                keychain,
                history,
                log,
                http,
                hosts: Default::default(),
                accounts: Mutex::new(Default::default()),
                wake: Notify::new(),
                events: broadcast::channel(1024).0,
                tasks: TaskTracker::new(),
                metrics,
                api_keys,
                inflight: super::refresh::inflight::Markers::new(&parts.data_dir),
                lock_place: parts.lock_place,
                mode: Mutex::new(parts.mode),
                lock: Mutex::new(parts.lock),
                stop: CancellationToken::new(),
                failed: Mutex::new(None),
                quota: super::refresh::quota::Counts::starting(today, fetches),
                sharing: parts.sharing,
                journal,
                asks: super::ledger::asking::Asks::new(approvals),
            }),
        };
        let accounts = engine.config().accounts.clone();
        engine.add_slots(&accounts).await;
        // The config parser's peak, handed back to the system.
        super::system::memory::give_back();
        // The journal's key is in the keychain, which may wait for an unlock prompt: past a
        // few seconds the engine and its API answer, and refreshes wait for the journal. Not
        // a tracked task: a stop never waits for a keychain that does not answer.
        let opener = engine.clone();
        tokio::spawn(async move {
            let (journal, entries) =
                super::store::journal::replay::open(mode, kind, &service, &data_dir, store).await;
            super::store::journal::replay::replay(&opener, entries);
            let _ = opener.shared.journal.set(journal);
            opener.shared.wake.notify_one();
        });
        let _ = tokio::time::timeout(JOURNAL_WAIT, engine.shared.journal.wait()).await;
        Ok(engine)
    }

    /// Adds slots for new accounts with their saved state. An observer reads the keychain now
    /// (concurrently: each read is a D-Bus round trip, and `Keychain` bounds how many run at
    /// once); a refresher leaves the reads to the scheduler.
    async fn add_slots(&self, accounts: &[Arc<Account>]) {
        // An observer shows "retrying" or "refreshing" only while an engine runs to do it;
        // with none running, a token past its expiry is simply expired.
        let observer = self.mode() == Mode::Observer
            && self
                .shared
                .lock_place
                .as_ref()
                .and_then(lock::holder)
                .is_some();
        let history = self.shared.history.clone();
        // One scan of the saved states rather than a query per account.
        let mut saved: HashMap<String, SavedState> =
            tokio::task::spawn_blocking(move || history.saved_states().unwrap_or_default())
                .await
                .unwrap_or_default();
        self.shared
            .accounts
            .lock()
            .expect("poisoned")
            .reserve(accounts.len());
        let now = crate::engine::clock::now();
        if self.mode() == Mode::Refresher {
            // The scheduler reads the keychain right away, a few accounts at a time: the
            // engine and its API answer at once, whatever the number of accounts.
            for account in accounts {
                let saved = saved.remove(account.name.as_str());
                let restored = saved.as_ref().and_then(gave_up);
                self.insert_slot(account, AccountState::unread(now), saved.as_ref(), restored);
            }
            self.shared.wake.notify_one();
            return;
        }
        let reads = accounts.iter().map(|a| {
            let saved = saved.remove(a.name.as_str());
            async move { (a.clone(), self.shared.keychain.tokens(&a.name).await, saved) }
        });
        for (account, stored, saved) in futures_util::future::join_all(reads).await {
            let state = match stored {
                Ok(tokens) => {
                    let state = AccountState::from_stored(
                        tokens,
                        saved.as_ref().and_then(gave_up),
                        account.schedule,
                        &account.name,
                    );
                    match (&saved, observer) {
                        (Some(saved), true) => observed(state, saved),
                        _ => state,
                    }
                }
                Err(e) => {
                    tracing::warn!(account = %account.name, error = %e, "cannot read the keychain yet; retrying");
                    AccountState::NotConnected.unreadable(e.to_string(), now, rand::random())
                }
            };
            self.insert_slot(&account, state, saved.as_ref(), None);
        }
        self.shared.wake.notify_one();
    }

    /// Adds an account's slot with what survived the last run (`restored`: a permanent
    /// failure to apply when the keychain is first read).
    fn insert_slot(
        &self,
        account: &Arc<Account>,
        state: AccountState,
        saved: Option<&SavedState>,
        restored: Option<Failure>,
    ) {
        let mut slot = Slot::new(account.clone(), state);
        slot.last_refresh = saved.and_then(|s| s.last_refresh);
        if let Some(s) = saved {
            slot.saved_row = row_digest(&s.status, s.last_error.as_deref(), s.last_refresh);
        }
        slot.restored = restored;
        self.shared
            .accounts
            .lock()
            .expect("poisoned")
            .insert(account.name.clone(), slot);
    }

    /// Re-reads the config file. A bad file changes nothing and says what is wrong where.
    /// New accounts are read from the keychain; removed ones stop being refreshed (their
    /// keychain items stay); changed ones keep their tokens.
    pub async fn reload_config(&self) -> Result<usize, EngineError> {
        let path = self.config().path.clone();
        let config = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|e| EngineError::Io(format!("config task: {e}")))??;
        let count = config.accounts.len();
        let added: Vec<Arc<Account>> = {
            let mut slots = self.shared.accounts.lock().expect("poisoned");
            slots.retain(|name| config.account(name).is_some());
            for account in &config.accounts {
                slots.change(&account.name, |slot| slot.account = account.clone());
            }
            let added = config
                .accounts
                .iter()
                .filter(|a| !slots.contains(&a.name))
                .cloned()
                .collect();
            *self.shared.config.write().expect("poisoned") = Arc::new(config);
            added
        };
        self.add_slots(&added).await;
        super::system::memory::give_back();
        tracing::info!(accounts = count, "config reloaded");
        self.emit(EngineEvent::ConfigReloaded { accounts: count });
        Ok(count)
    }

    /// Becomes the writer of this keychain service if it is not yet (a CLI `connect` that
    /// waited for the browser without holding the lock). Fails if an engine took it meanwhile.
    pub(super) async fn become_writer(&self) -> Result<(), EngineError> {
        if self.mode() == Mode::Refresher {
            return Ok(());
        }
        let Some(place) = self.shared.lock_place.clone() else {
            return Ok(());
        };
        let lock = take_lock(&place, lock::Role::Cli).await?;
        *self.shared.lock.lock().expect("poisoned") = Some(lock);
        *self.shared.mode.lock().expect("poisoned") = Mode::Refresher;
        Ok(())
    }

    /// Re-reads the account's token set from the keychain (another tool wrote it, or a read
    /// failed before). A set only this engine holds (unsaved) is newer and is kept.
    pub async fn reload_account(&self, name: &AccountName) -> Result<AccountView, EngineError> {
        self.account(name)?;
        let gate = self.with_slot(name, |s| s.gate.clone())?;
        let _turn = gate.lock().await;
        crate::engine::account::reading::reread(self, name).await?;
        self.view(name)
    }

    /// Adds an account to the config file (comments and order kept; checked before it is
    /// written), takes it into the running engine, and stores its client secret if given.
    pub async fn add_account(
        &self,
        new: &crate::engine::config::edit::NewAccount,
        secret: Option<Secret>,
    ) -> Result<AccountView, EngineError> {
        let path = self.config().path.clone();
        let name = crate::engine::config::edit::add_account(&path, new)?;
        self.reload_config().await?;
        if let Some(secret) = secret.filter(|s| !s.expose().trim().is_empty()) {
            self.set_client_secret(&name, secret).await?;
        }
        self.view(&name)
    }

    /// Disconnects an account (revoke, delete its secrets), then removes it from the config
    /// file. Returns a warning when the provider could not revoke.
    pub async fn remove_account(&self, name: &AccountName) -> Result<Option<String>, EngineError> {
        let warning = self.disconnect(name).await?;
        edit::remove_account(&self.config().path, name)?;
        self.reload_config().await?;
        Ok(warning)
    }
}
