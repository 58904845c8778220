//! Engine: everything Tokenwarden does, with no window, server or terminal in sight.
//! * `config`    config.toml → resolved accounts     * `provider`  one submodule per kind
//! * `secrets`   the keychain behind `SecretStore`   * `scheduler` sleeps until the next deadline
//! * `history`   the refresh log (SQLite)            * `events`    what front ends redraw from
//! * `timing`    refresh lead and backoff            * `lock`      one refresher per machine
//! * `redirect`  the consent flow's loopback listener * `health`    states and views
//!
//! [`Engine`] is a cheap-to-clone handle. State sits behind a std mutex that is never held
//! across `.await`; each account has an async gate so that one refresh runs at a time.

pub mod api_keys;
pub mod config;
pub mod events;
pub mod health;
pub mod history;
pub mod lock;
pub mod metrics;
pub mod names;
pub mod paths;
pub mod provider;
mod redirect;
mod scheduler;
pub mod secret;
pub mod secrets;
pub mod timing;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use config::{Account, Config, ConfigError};
use events::EngineEvent;
use health::{AccountView, Health, TokenView};
use history::{History, HistoryError, Outcome, Trigger};
use names::{AccountName, Deadline};
use paths::Context;
use provider::oauth2::{GrantKind, Redirect};
use provider::{FetchRequest, Provider, RefreshError};
use secret::{Secret, TokenSet};
use secrets::{Keychain, KeychainError, SecretKey, SecretStore};

/// How long a fetch may take before it counts as a network failure.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a consent flow waits for the browser.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Keychain writes of a new token set are tried this many times before the engine keeps
/// the set in memory and reports the failure.
const KEYCHAIN_TRIES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no account is named `{0}` in the config")]
    UnknownAccount(AccountName),
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    #[error(transparent)]
    Keychain(#[from] KeychainError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error(transparent)]
    ApiKey(#[from] api_keys::ApiKeyError),
    #[error("{account}: {message}")]
    NotValid {
        account: AccountName,
        /// The account's status when it was asked: says whether the user must act.
        status: String,
        message: String,
    },
    #[error("{account}: {message}")]
    Usage {
        account: AccountName,
        message: String,
    },
    #[error("{0}")]
    Io(String),
}

impl EngineError {
    /// The error code of the HTTP API and the UI.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::UnknownAccount(_) => "unknown_account",
            Self::Refresh(e) if e.is_transient() => "provider_unavailable",
            Self::Refresh(_) => "refresh_failed",
            Self::Keychain(_) => "keychain",
            Self::History(_) => "history",
            Self::Lock(_) => "locked",
            Self::ApiKey(_) => "api_key",
            Self::NotValid { .. } => "no_valid_token",
            Self::Usage { .. } => "bad_request",
            Self::Io(_) => "io",
        }
    }
}

/// Whether this engine may refresh (it holds the machine's lock) or only read.
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
    config: Config,
    mode: Mode,
    keychain: Keychain,
    history: History,
    http: reqwest::Client,
    accounts: Mutex<HashMap<AccountName, Slot>>,
    wake: Notify,
    events: broadcast::Sender<EngineEvent>,
    tasks: TaskTracker,
    metrics: metrics::Metrics,
    api_keys: api_keys::ApiKeys,
    data_dir: std::path::PathBuf,
    _lock: Option<lock::EngineLock>,
}

/// What a refresh may skip, decided under the account's gate.
#[derive(Clone, Debug)]
enum Skip {
    /// Always refresh.
    Never,
    /// Skip if the token is (now) valid for this long: someone refreshed while we waited.
    IfValidFor(Duration),
    /// Skip unless this is still the current token and it was not refreshed just now:
    /// reports of a 401 share one refresh and cannot loop.
    UnlessCurrent(Secret),
}

/// A token refreshed this recently is not refreshed again because a client reports it
/// rejected: the upstream API may keep rejecting it for reasons a new token will not fix.
const REJECT_GRACE: Duration = Duration::from_secs(5);

/// One account's state. `gate` serializes refreshes; a refresh decides under it (see
/// [`Skip`]) whether the wait already gave it what it needed.
struct Slot {
    account: Arc<Account>,
    tokens: Option<TokenSet>,
    health: Health,
    refresh_at: Option<SystemTime>,
    last_refresh: Option<Deadline>,
    last_error: Option<String>,
    /// The in-memory set is newer than the keychain's (a write failed); retry the write.
    unsaved: bool,
    /// A scheduled task is already on its way.
    in_flight: bool,
    /// When the keychain was last re-read for a connect or `secret set` from another process.
    last_recheck: Option<Instant>,
    /// The client secret the last fetch used, to notice a new one set by another process.
    last_secret: Option<Secret>,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    fn view(&self) -> AccountView {
        AccountView {
            name: self.account.name.clone(),
            provider: self.account.provider_name.clone(),
            status: self.health.status().to_owned(),
            expires_at: self.tokens.as_ref().map(|t| t.expires_at),
            last_refresh: self.last_refresh,
            last_error: self.last_error.clone(),
        }
    }

    fn schedule(&mut self) {
        self.refresh_at = self.tokens.as_ref().map(|t| {
            timing::refresh_at(
                t.obtained_at,
                t.expires_at,
                self.account.refresh_before,
                rand::random::<f64>(),
            )
        });
    }
}

impl Engine {
    /// Opens the engine for this machine. `Refresher` takes the lock (a CLI command waits a
    /// little for another CLI command, never for a running engine); `Observer` reads only.
    pub async fn open(ctx: &Context, mode: Mode, role: lock::Role) -> Result<Self, EngineError> {
        let config = Config::load(&ctx.config_path)?;
        std::fs::create_dir_all(&ctx.data_dir)
            .map_err(|e| EngineError::Io(format!("data dir {}: {e}", ctx.data_dir.display())))?;
        let lock = match mode {
            Mode::Refresher => {
                let wait = if role == lock::Role::Cli {
                    Duration::from_secs(30)
                } else {
                    Duration::ZERO
                };
                let dir = ctx.data_dir.clone();
                Some(
                    tokio::task::spawn_blocking(move || lock::acquire(&dir, role, wait))
                        .await
                        .map_err(|e| EngineError::Io(e.to_string()))??,
                )
            }
            Mode::Observer => None,
        };
        let store: Arc<dyn SecretStore> = Arc::new(secrets::OsKeychain::new(&ctx.keychain_service));
        Self::with_parts(
            config,
            mode,
            store,
            History::open(&ctx.history_path())?,
            &ctx.data_dir,
            lock,
        )
        .await
    }

    /// Builds an engine from parts; tests of engine logic pass a memory store.
    pub async fn with_parts(
        config: Config,
        mode: Mode,
        store: Arc<dyn SecretStore>,
        history: History,
        data_dir: &std::path::Path,
        lock: Option<lock::EngineLock>,
    ) -> Result<Self, EngineError> {
        let keychain = Keychain::new(store);
        let api_keys = api_keys::ApiKeys::new(data_dir, keychain.clone());
        let mut accounts = HashMap::new();
        // Concurrently: each keychain read is a D-Bus round trip.
        let stored = futures_util::future::join_all(
            config.accounts.iter().map(|a| keychain.tokens(&a.name)),
        )
        .await;
        for (account, tokens) in config.accounts.iter().zip(stored) {
            let tokens = tokens?;
            let saved = history.saved_state(&account.name)?;
            let health = match (&tokens, saved.as_ref().map(|s| s.status.as_str())) {
                // A permanent failure stays one across restarts: retrying it would only fail again.
                (_, Some("needs_reconnect")) => Health::NeedsReconnect,
                (Some(_), _) => Health::Fresh,
                (None, _) => Health::NotConnected,
            };
            let mut slot = Slot {
                account: account.clone(),
                tokens,
                health,
                refresh_at: None,
                last_refresh: saved.as_ref().and_then(|s| s.last_refresh),
                last_error: saved.as_ref().and_then(|s| s.last_error.clone()),
                unsaved: false,
                in_flight: false,
                last_recheck: None,
                last_secret: None,
                gate: Arc::new(tokio::sync::Mutex::new(())),
            };
            slot.schedule();
            if mode == Mode::Observer {
                if let Some(saved) = &saved {
                    slot.health = match saved.status.as_str() {
                        "retrying" => Health::Retrying {
                            attempt: 0,
                            next_try: saved.updated,
                        },
                        "refreshing" => Health::Refreshing,
                        _ => slot.health,
                    };
                }
            }
            accounts.insert(account.name.clone(), slot);
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("tokenwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::Io(format!("HTTP client: {e}")))?;
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                mode,
                keychain,
                history,
                http,
                accounts: Mutex::new(accounts),
                wake: Notify::new(),
                events: broadcast::channel(256).0,
                tasks: TaskTracker::new(),
                metrics: metrics::Metrics::default(),
                api_keys,
                data_dir: data_dir.to_owned(),
                _lock: lock,
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.shared.metrics
    }

    pub fn api_keys(&self) -> &api_keys::ApiKeys {
        &self.shared.api_keys
    }

    /// Sets the seconds-until-expiry gauges from the current tokens (called when scraped).
    pub fn update_expiry_gauges(&self) {
        let accounts = self.shared.accounts.lock().expect("poisoned");
        let now = SystemTime::now();
        for (name, slot) in accounts.iter() {
            let left = slot
                .tokens
                .as_ref()
                .map_or(0.0, |t| t.expires_at.remaining(now).as_secs_f64());
            let labels = metrics::AccountLabels {
                account: name.to_string(),
            };
            self.shared
                .metrics
                .expiry_seconds
                .get_or_create(&labels)
                .set(left);
        }
    }

    /// Tells other processes on this machine where this engine's API listens.
    pub fn announce(&self, listen: std::net::SocketAddr) -> Result<(), EngineError> {
        Ok(lock::announce(&self.shared.data_dir, Some(listen))?)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.shared.events.subscribe()
    }

    fn emit(&self, event: EngineEvent) {
        let _ = self.shared.events.send(event); // no subscribers is fine
    }

    fn account(&self, name: &AccountName) -> Result<Arc<Account>, EngineError> {
        self.shared
            .config
            .account(name)
            .cloned()
            .ok_or_else(|| EngineError::UnknownAccount(name.clone()))
    }

    fn with_slot<T>(
        &self,
        name: &AccountName,
        f: impl FnOnce(&mut Slot) -> T,
    ) -> Result<T, EngineError> {
        let mut accounts = self.shared.accounts.lock().expect("poisoned");
        accounts
            .get_mut(name)
            .map(f)
            .ok_or_else(|| EngineError::UnknownAccount(name.clone()))
    }

    /// Every account's view, in config order.
    pub fn snapshot(&self) -> Vec<AccountView> {
        let accounts = self.shared.accounts.lock().expect("poisoned");
        self.shared
            .config
            .accounts
            .iter()
            .filter_map(|a| accounts.get(&a.name).map(Slot::view))
            .collect()
    }

    pub fn history(
        &self,
        account: Option<&AccountName>,
        limit: usize,
    ) -> Result<Vec<history::Entry>, EngineError> {
        if let Some(name) = account {
            self.account(name)?;
        }
        Ok(self.shared.history.entries(account, limit)?)
    }

    /// The current token if it stays valid for `min_valid`: the only way tokens are served,
    /// so "never after expires_at" holds everywhere.
    fn valid_token(
        &self,
        name: &AccountName,
        min_valid: Duration,
    ) -> Result<Option<TokenView>, EngineError> {
        self.with_slot(name, |slot| {
            let now = SystemTime::now();
            slot.tokens.as_ref().and_then(|t| {
                let left = t.expires_at.remaining(now);
                (left > Duration::ZERO && left >= min_valid).then(|| TokenView {
                    access_token: t.access.clone(),
                    token_type: t.token_type.clone(),
                    expires_at: t.expires_at,
                    expires_in: left.as_secs(),
                    scope: t.scope.clone(),
                })
            })
        })
    }

    /// A token valid for at least `min_valid`, refreshed first if needed (and allowed).
    pub async fn token(
        &self,
        name: &AccountName,
        min_valid: Duration,
    ) -> Result<TokenView, EngineError> {
        if let Some(view) = self.valid_token(name, min_valid)? {
            return Ok(view);
        }
        if self.shared.mode == Mode::Observer {
            // The running engine may have refreshed since we loaded: the keychain is the truth.
            let fresh = self.shared.keychain.tokens(name).await?;
            self.with_slot(name, |slot| slot.tokens = fresh)?;
            return self
                .valid_token(name, min_valid)?
                .ok_or_else(|| self.not_valid(name, min_valid));
        }
        self.refresh_with(name, Trigger::MinValid, Skip::IfValidFor(min_valid))
            .await?;
        self.valid_token(name, min_valid)?
            .ok_or_else(|| self.not_valid(name, min_valid))
    }

    fn not_valid(&self, name: &AccountName, min_valid: Duration) -> EngineError {
        let view = self.with_slot(name, |s| s.view()).ok();
        let why = match view
            .as_ref()
            .map(|v| (v.status.as_str(), v.last_error.as_deref()))
        {
            Some((_, Some(error))) => {
                format!("no token valid for {}s: {error}", min_valid.as_secs())
            }
            Some(("not_connected", None)) => {
                format!("not connected; run `tokenwarden connect {name}`")
            }
            _ if self.shared.mode == Mode::Observer => {
                format!(
                    "no token valid for {}s yet; the running engine refreshes it",
                    min_valid.as_secs()
                )
            }
            _ => format!("no token valid for {}s", min_valid.as_secs()),
        };
        EngineError::NotValid {
            account: name.clone(),
            status: view.map_or_else(|| "unknown".to_owned(), |v| v.status),
            message: why,
        }
    }

    /// Refreshes now, whatever the token's age.
    pub async fn refresh(&self, name: &AccountName) -> Result<TokenView, EngineError> {
        self.refresh_with(name, Trigger::Manual, Skip::Never)
            .await?;
        self.valid_token(name, Duration::ZERO)?
            .ok_or_else(|| self.not_valid(name, Duration::ZERO))
    }

    /// A client says an upstream API answered 401 to `reported`. If that is still the
    /// current token, refresh once; reports arriving meanwhile wait for that refresh and
    /// share it. An older token, or one refreshed moments ago, just gets the current one.
    pub async fn rejected(
        &self,
        name: &AccountName,
        reported: &str,
    ) -> Result<TokenView, EngineError> {
        self.account(name)?;
        let is_current = self.with_slot(name, |s| {
            s.tokens
                .as_ref()
                .is_some_and(|t| t.access.same_as(reported))
        })?;
        if is_current {
            let skip = Skip::UnlessCurrent(Secret::new(reported.to_owned()));
            self.refresh_with(name, Trigger::Rejected, skip).await?;
        }
        self.valid_token(name, Duration::ZERO)?
            .ok_or_else(|| self.not_valid(name, Duration::ZERO))
    }

    /// One refresh under the account's gate, unless `skip` says the wait made it needless.
    async fn refresh_with(
        &self,
        name: &AccountName,
        trigger: Trigger,
        skip: Skip,
    ) -> Result<(), EngineError> {
        let account = self.account(name)?;
        if self.shared.mode == Mode::Observer {
            return Err(EngineError::Usage {
                account: name.clone(),
                message: "another Tokenwarden engine is running and refreshes this account".into(),
            });
        }
        let gate = self.with_slot(name, |s| s.gate.clone())?;
        let _turn = gate.lock().await;
        if self.can_skip(name, &skip)? {
            return Ok(());
        }
        if self.adopt_stored(name).await? {
            self.persist_state(name);
            let status = self.with_slot(name, |s| s.health.status())?;
            self.emit(EngineEvent::HealthChanged {
                account: name.clone(),
                status,
            });
        }
        if self.can_skip(name, &skip)? {
            return Ok(());
        }
        if trigger == Trigger::MinValid {
            // A caller's need for a token does not override backoff or a permanent failure:
            // hammering a failing provider helps no one (a manual refresh still goes through).
            let health = self.with_slot(name, |s| s.health.clone())?;
            match health {
                Health::Retrying { next_try, .. } if !next_try.has_passed(SystemTime::now()) => {
                    return Err(self.not_valid(name, Duration::ZERO));
                }
                Health::NeedsReconnect => return Err(self.not_valid(name, Duration::ZERO)),
                _ => {}
            }
        }
        // Without a running scheduler (a CLI command), a dependency may have lapsed: refresh
        // it first so that this fetch never uses a dead token.
        for up in &account.upstream {
            if self.valid_token(up, Duration::from_secs(5))?.is_none() {
                Box::pin(self.refresh_with(
                    up,
                    Trigger::Dependency,
                    Skip::IfValidFor(Duration::from_secs(5)),
                ))
                .await?;
            }
        }
        let never_connected = self.with_slot(name, |s| s.tokens.is_none())?;
        if never_connected && account.provider.needs_consent() {
            // Nothing to refresh and nothing failed: not a refresh attempt worth logging.
            return Err(RefreshError::NotConnected {
                account: name.clone(),
            }
            .into());
        }
        let result = self.fetch_and_store(&account, trigger).await;
        if result.is_ok() {
            self.refresh_dependents(name);
        }
        self.shared.wake.notify_one();
        result
    }

    fn can_skip(&self, name: &AccountName, skip: &Skip) -> Result<bool, EngineError> {
        Ok(match skip {
            Skip::Never => false,
            Skip::IfValidFor(min_valid) => self.valid_token(name, *min_valid)?.is_some(),
            Skip::UnlessCurrent(reported) => self.with_slot(name, |s| {
                let current = s
                    .tokens
                    .as_ref()
                    .is_some_and(|t| t.access.same_as(reported.expose()));
                let recent = s
                    .last_refresh
                    .is_some_and(|at| at.time().elapsed().unwrap_or_default() < REJECT_GRACE);
                !current || recent
            })?,
        })
    }

    /// Takes a token set that another process (a `connect` or `disconnect`) wrote to the
    /// keychain, unless ours is newer and not yet saved.
    async fn adopt_stored(&self, name: &AccountName) -> Result<bool, EngineError> {
        if self.with_slot(name, |s| s.unsaved)? {
            return Ok(false);
        }
        let stored = self.shared.keychain.tokens(name).await?;
        self.with_slot(name, |slot| {
            let same = match (&stored, &slot.tokens) {
                (Some(a), Some(b)) => a.access.same_as(b.access.expose()),
                (None, None) => true,
                _ => false,
            };
            if same {
                return false;
            }
            let connected = stored.is_some();
            slot.tokens = stored;
            slot.health = if connected {
                Health::Fresh
            } else {
                Health::NotConnected
            };
            if connected {
                slot.last_error = None;
            }
            slot.schedule();
            true
        })
    }

    /// The heart of a refresh: fetch, then the keychain write before anything else sees
    /// the new token, then state, history and events.
    async fn fetch_and_store(
        &self,
        account: &Arc<Account>,
        trigger: Trigger,
    ) -> Result<(), EngineError> {
        let name = &account.name;
        let started = Instant::now();
        let (current, previous_health) = self.with_slot(name, |slot| {
            let previous = slot.health.clone();
            slot.health = Health::Refreshing;
            (slot.tokens.clone(), previous)
        })?;
        self.emit(EngineEvent::HealthChanged {
            account: name.clone(),
            status: "refreshing",
        });
        let issued = self.fetch(account, current.as_ref()).await;
        let elapsed = started.elapsed();
        match issued {
            Ok(issued) => {
                let set = TokenSet {
                    access: issued.access,
                    // No new refresh token (Google) means the old one stays valid.
                    refresh: issued
                        .refresh
                        .or_else(|| current.as_ref().and_then(|c| c.refresh.clone())),
                    token_type: issued.token_type,
                    scope: issued
                        .scope
                        .or_else(|| current.as_ref().and_then(|c| c.scope.clone())),
                    expires_at: issued.expires_at,
                    obtained_at: Deadline::now(),
                };
                self.commit(account, set, trigger, elapsed).await;
                Ok(())
            }
            Err(error) => {
                self.fail(account, &error, trigger, elapsed, previous_health);
                Err(error.into())
            }
        }
    }

    async fn fetch(
        &self,
        account: &Account,
        current: Option<&TokenSet>,
    ) -> Result<provider::Issued, RefreshError> {
        let name = &account.name;
        if account.provider.needs_consent() && current.and_then(|c| c.refresh.as_ref()).is_none() {
            return Err(RefreshError::NotConnected {
                account: name.clone(),
            });
        }
        let secret = match self.client_secret_if_needed(account).await {
            Ok(None) if account.provider.needs_secret() => {
                return Err(RefreshError::MissingSecret {
                    account: name.clone(),
                })
            }
            Ok(secret) => secret,
            Err(e) => {
                return Err(RefreshError::Setup {
                    account: name.clone(),
                    what: e.to_string(),
                })
            }
        };
        self.with_slot(name, |s| s.last_secret = secret.clone())
            .ok();
        let upstream = self.upstream_tokens(account);
        let request = FetchRequest {
            account: name,
            provider: &account.provider_name,
            client_secret: secret.as_ref(),
            current,
            upstream: &upstream,
            http: &self.shared.http,
        };
        account.provider.fetch(&request).await
    }

    /// Valid tokens of the accounts this one depends on. A dead one is left out, so a
    /// dependent is never fetched with it.
    fn upstream_tokens(&self, account: &Account) -> HashMap<AccountName, Secret> {
        let accounts = self.shared.accounts.lock().expect("poisoned");
        let now = SystemTime::now();
        account
            .upstream
            .iter()
            .filter_map(|up| {
                let t = accounts.get(up)?.tokens.as_ref()?;
                (!t.expires_at.has_passed(now + Duration::from_secs(1)))
                    .then(|| (up.clone(), t.access.clone()))
            })
            .collect()
    }

    async fn commit(&self, account: &Account, set: TokenSet, trigger: Trigger, elapsed: Duration) {
        let saved = self.save_tokens(&account.name, &set).await;
        self.install(&account.name, set, saved, trigger, elapsed);
    }

    /// Makes a new token set the current one, after its keychain write was tried: state,
    /// history, metrics and events. A failed write leaves it marked unsaved for the
    /// scheduler to retry.
    fn install(
        &self,
        name: &AccountName,
        set: TokenSet,
        saved: Result<(), KeychainError>,
        trigger: Trigger,
        elapsed: Duration,
    ) {
        let expires_at = set.expires_at;
        self.with_slot(name, |slot| {
            slot.tokens = Some(set);
            slot.health = Health::Fresh;
            slot.last_refresh = Some(Deadline::now());
            slot.unsaved = saved.is_err();
            slot.last_error = saved
                .as_ref()
                .err()
                .map(|e| format!("the new token is not saved yet: {e}"));
            slot.schedule();
        })
        .ok();
        if let Err(e) = &saved {
            tracing::error!(account = %name, error = %e, "keychain write failed; the new token is kept in memory and the write retried");
            self.emit(EngineEvent::KeychainWriteFailed {
                account: name.clone(),
                message: e.to_string(),
            });
        }
        tracing::info!(account = %name, trigger = trigger.as_str(), expires_at = %expires_at, "refreshed");
        self.record(
            name,
            trigger,
            Outcome::Ok,
            elapsed,
            Some(expires_at),
            None,
            None,
        );
        self.persist_state(name);
        self.emit(EngineEvent::Refreshed {
            account: name.clone(),
            expires_at,
        });
        self.emit(EngineEvent::HealthChanged {
            account: name.clone(),
            status: "fresh",
        });
    }

    /// Writes a token set, retrying a few times: a rotated refresh token that is not stored
    /// is lost at the next crash.
    async fn save_tokens(&self, name: &AccountName, set: &TokenSet) -> Result<(), KeychainError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.shared.keychain.store_tokens(name, set).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= KEYCHAIN_TRIES => return Err(e),
                Err(e) => {
                    tracing::warn!(account = %name, error = %e, attempt, "keychain write failed, retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
    }

    fn fail(
        &self,
        account: &Account,
        error: &RefreshError,
        trigger: Trigger,
        elapsed: Duration,
        previous: Health,
    ) {
        let name = &account.name;
        let message = error.to_string();
        let transient = error.is_transient();
        let retry = self.shared.config.retry;
        let health = self
            .with_slot(name, |slot| {
                slot.health = if transient {
                    let attempt = match previous {
                        Health::Retrying { attempt, .. } => attempt + 1,
                        _ => 1,
                    };
                    let delay =
                        timing::backoff(attempt, retry, error.wait_hint(), rand::random::<f64>());
                    Health::Retrying {
                        attempt,
                        next_try: Deadline::after(SystemTime::now(), delay),
                    }
                } else if matches!(error, RefreshError::NotConnected { .. })
                    && slot.tokens.is_none()
                {
                    Health::NotConnected
                } else {
                    Health::NeedsReconnect
                };
                slot.last_error = Some(message.clone());
                slot.health.clone()
            })
            .unwrap_or(Health::NeedsReconnect);
        let outcome = if transient {
            Outcome::TransientError
        } else {
            Outcome::PermanentError
        };
        tracing::warn!(account = %name, trigger = trigger.as_str(), code = %error.code(), status = health.status(), "{message}");
        self.record(
            name,
            trigger,
            outcome,
            elapsed,
            None,
            Some(&error.code()),
            Some(&message),
        );
        self.persist_state(name);
        // One notification per episode: the first failure, and giving up. Retries are silent.
        let first = !matches!(previous, Health::Retrying { .. });
        if first || !transient {
            self.emit(EngineEvent::RefreshFailed {
                account: name.clone(),
                message,
                gave_up: !transient,
            });
        }
        self.emit(EngineEvent::HealthChanged {
            account: name.clone(),
            status: health.status(),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        name: &AccountName,
        trigger: Trigger,
        outcome: Outcome,
        elapsed: Duration,
        expires_at: Option<Deadline>,
        code: Option<&str>,
        message: Option<&str>,
    ) {
        self.shared
            .metrics
            .refresh(name.as_str(), outcome.as_str(), elapsed.as_secs_f64());
        if let Err(e) = self
            .shared
            .history
            .record(name, trigger, outcome, elapsed, expires_at, code, message)
        {
            tracing::error!(error = %e, "could not write the refresh log");
        }
    }

    fn persist_state(&self, name: &AccountName) {
        let Ok(view) = self.with_slot(name, |s| s.view()) else {
            return;
        };
        if let Err(e) = self.shared.history.save_state(
            name,
            &view.status,
            view.last_error.as_deref(),
            view.last_refresh,
        ) {
            tracing::error!(error = %e, "could not save account state");
        }
    }

    /// Accounts that use this one's token are refreshed right after it changes.
    fn refresh_dependents(&self, name: &AccountName) {
        for account in &self.shared.config.accounts {
            if account.upstream.contains(name) {
                self.spawn_refresh(account.name.clone(), Trigger::Dependency);
            }
        }
    }

    fn spawn_refresh(&self, name: AccountName, trigger: Trigger) {
        let engine = self.clone();
        self.shared.tasks.spawn(async move {
            // Failures are already recorded, logged and broadcast by the refresh itself.
            let _ = engine.refresh_with(&name, trigger, Skip::Never).await;
            engine.with_slot(&name, |s| s.in_flight = false).ok();
            engine.shared.wake.notify_one();
        });
    }

    /// Saves a client secret (`secret set`, the UI).
    pub async fn set_client_secret(
        &self,
        name: &AccountName,
        value: Secret,
    ) -> Result<(), EngineError> {
        self.account(name)?;
        if value.expose().trim().is_empty() {
            return Err(EngineError::Usage {
                account: name.clone(),
                message: "the secret is empty; nothing was stored".into(),
            });
        }
        self.shared
            .keychain
            .set(SecretKey::ClientSecret(name.clone()), value)
            .await?;
        // A `needs_reconnect` caused by a missing or wrong secret may now succeed.
        self.with_slot(name, |s| s.last_recheck = None)?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Runs the consent flow for an authorization-code account: `show` gets the URL to
    /// open; the redirect arrives on a loopback listener. Writes the first token set.
    pub async fn connect(
        &self,
        name: &AccountName,
        show: impl FnOnce(&Url),
    ) -> Result<AccountView, EngineError> {
        let account = self.account(name)?;
        let usage = |message: &str| EngineError::Usage {
            account: name.clone(),
            message: message.to_owned(),
        };
        let Provider::OAuth2(spec) = &account.provider else {
            return Err(usage("this provider needs no consent: it fetches tokens with the client secret alone (`tokenwarden secret set`)"));
        };
        if spec.grant != GrantKind::AuthorizationCode {
            return Err(usage("this account uses a grant without a browser consent (set grant = \"authorization_code\", or use --device)"));
        }
        let (bind, path) = match &spec.redirect {
            Redirect::Exact(url) => (
                format!("127.0.0.1:{}", url.port().unwrap_or(80)),
                url.path().to_owned(),
            ),
            Redirect::AnyLoopbackPort => ("127.0.0.1:0".to_owned(), "/callback".to_owned()),
        };
        let listener = tokio::net::TcpListener::bind(&bind).await.map_err(|e| {
            usage(&format!(
                "cannot listen on {bind} for the redirect ({e}); is another connect running?"
            ))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| EngineError::Io(e.to_string()))?
            .port();
        let redirect_uri = match &spec.redirect {
            Redirect::Exact(url) => url.clone(),
            Redirect::AnyLoopbackPort => {
                Url::parse(&format!("http://127.0.0.1:{port}{path}")).expect("valid")
            }
        };
        let consent = spec
            .begin_consent(
                &self.shared.http,
                name,
                &account.provider_name,
                &redirect_uri,
            )
            .await?;
        show(&consent.url);
        let redirected = tokio::time::timeout(CONSENT_TIMEOUT, redirect::receive(&listener, &path, consent.state.secret()))
            .await
            .map_err(|_| usage(&format!("no authorization arrived within {} minutes; run `tokenwarden connect {name}` again", CONSENT_TIMEOUT.as_secs() / 60)))?
            .map_err(|e| EngineError::Io(format!("redirect listener: {e}")))?;
        drop(listener);
        let code = match redirected {
            redirect::Redirected::Code(code) => code,
            redirect::Redirected::Refused(error) => {
                return Err(usage(&format!(
                    "the provider did not grant access ({error})"
                )))
            }
        };
        let secret = self.client_secret_if_needed(&account).await?;
        let started = Instant::now();
        let upstream = HashMap::new();
        let request = FetchRequest {
            account: name,
            provider: &account.provider_name,
            client_secret: secret.as_ref(),
            current: None,
            upstream: &upstream,
            http: &self.shared.http,
        };
        let issued = spec
            .exchange_code(&request, code, consent.verifier, &redirect_uri)
            .await;
        self.store_first_tokens(name, issued, started).await
    }

    /// Connects with the device authorization grant (RFC 8628): `show` gets the URL and
    /// the code for the user; this polls until they approve, deny, or the code expires.
    pub async fn connect_device(
        &self,
        name: &AccountName,
        show: impl FnOnce(&provider::oauth2::DeviceStart),
    ) -> Result<AccountView, EngineError> {
        let account = self.account(name)?;
        let Provider::OAuth2(spec) = &account.provider else {
            return Err(EngineError::Usage {
                account: name.clone(),
                message: "the device flow needs an OAuth 2.0 provider".into(),
            });
        };
        let secret = self.client_secret_if_needed(&account).await?;
        let upstream = HashMap::new();
        let request = FetchRequest {
            account: name,
            provider: &account.provider_name,
            client_secret: secret.as_ref(),
            current: None,
            upstream: &upstream,
            http: &self.shared.http,
        };
        let start = spec.begin_device(&request).await?;
        show(&start);
        let started = Instant::now();
        let issued = spec.finish_device(&request, &start).await;
        self.store_first_tokens(name, issued, started).await
    }

    async fn client_secret_if_needed(
        &self,
        account: &Account,
    ) -> Result<Option<Secret>, EngineError> {
        if !account.provider.needs_secret() {
            return Ok(None);
        }
        Ok(self
            .shared
            .keychain
            .get(SecretKey::ClientSecret(account.name.clone()))
            .await?)
    }

    /// The end of a consent flow: the first token set goes to the keychain before anything
    /// else, then state, history and events.
    async fn store_first_tokens(
        &self,
        name: &AccountName,
        issued: Result<provider::Issued, RefreshError>,
        started: Instant,
    ) -> Result<AccountView, EngineError> {
        let issued = match issued {
            Ok(issued) => issued,
            Err(e) => {
                let (code, message) = (e.code(), e.to_string());
                let elapsed = started.elapsed();
                self.record(
                    name,
                    Trigger::Connect,
                    Outcome::PermanentError,
                    elapsed,
                    None,
                    Some(&code),
                    Some(&message),
                );
                return Err(e.into());
            }
        };
        let set = TokenSet {
            access: issued.access,
            refresh: issued.refresh,
            token_type: issued.token_type,
            scope: issued.scope,
            expires_at: issued.expires_at,
            obtained_at: Deadline::now(),
        };
        // A refresh token that is only in memory is one crash from lost: a consent flow
        // whose token cannot be stored fails, and the user connects again.
        self.save_tokens(name, &set).await?;
        self.install(name, set, Ok(()), Trigger::Connect, started.elapsed());
        self.shared.wake.notify_one();
        self.with_slot(name, |s| s.view())
    }

    /// Revokes at the provider where it can, then deletes the account's secrets. A failed
    /// revocation is reported but does not keep the secrets.
    pub async fn disconnect(&self, name: &AccountName) -> Result<Option<String>, EngineError> {
        let account = self.account(name)?;
        let gate = self.with_slot(name, |s| s.gate.clone())?;
        let _turn = gate.lock().await;
        let tokens = self.shared.keychain.tokens(name).await.ok().flatten();
        let mut warning = None;
        if let (Provider::OAuth2(spec), Some(tokens)) = (&account.provider, &tokens) {
            // Revoking without the secret may still work (public clients): try anyway.
            let secret = self.client_secret_if_needed(&account).await.ok().flatten();
            let upstream = HashMap::new();
            let request = FetchRequest {
                account: name,
                provider: &account.provider_name,
                client_secret: secret.as_ref(),
                current: Some(tokens),
                upstream: &upstream,
                http: &self.shared.http,
            };
            let (token, is_refresh) = match &tokens.refresh {
                Some(r) => (r, true),
                None => (&tokens.access, false),
            };
            match spec.revoke(&request, token, is_refresh).await {
                Ok(true) => {}
                Ok(false) => {
                    warning = Some(format!(
                    "{}: has no revocation endpoint; revoke access in the provider's settings too",
                    account.provider_name
                ))
                }
                Err(e) => {
                    warning = Some(format!(
                        "revocation failed ({e}); revoke access in the provider's settings"
                    ))
                }
            }
        }
        self.shared
            .keychain
            .delete(SecretKey::Tokens(name.clone()))
            .await?;
        self.shared
            .keychain
            .delete(SecretKey::ClientSecret(name.clone()))
            .await?;
        self.with_slot(name, |slot| {
            slot.tokens = None;
            slot.health = Health::NotConnected;
            slot.last_error = None;
            slot.unsaved = false;
            slot.refresh_at = None;
        })?;
        self.persist_state(name);
        self.emit(EngineEvent::HealthChanged {
            account: name.clone(),
            status: "not_connected",
        });
        Ok(warning)
    }

    /// Runs the scheduler until `stop`, then waits for in-flight refreshes to finish their
    /// keychain writes.
    pub async fn run(&self, stop: CancellationToken) {
        if self.shared.mode != Mode::Refresher {
            return;
        }
        scheduler::run(self.clone(), stop).await;
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }
}

#[cfg(test)]
mod tests;
