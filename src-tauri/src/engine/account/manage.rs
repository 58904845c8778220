//! The other operations that change what an account holds, all by the engine that owns the
//! keychain service: disconnect (revoke, then delete), client secrets, and re-reading the
//! keychain on request or after a failed read.

use crate::engine::account::state::AccountState;
use crate::engine::account::views::AccountView;
use crate::engine::config::edit;
use crate::engine::names::AccountName;
use crate::engine::provider::Provider;
use crate::engine::secret::Secret;
use crate::engine::store::item::SecretKey;
use crate::engine::store::Kept;
use crate::engine::{Engine, EngineError, Mode};

impl Engine {
    /// Revokes at the provider where it can, then deletes the account's secrets. A failed
    /// revocation is reported but does not keep the secrets.
    pub async fn disconnect(&self, name: &AccountName) -> Result<Option<String>, EngineError> {
        let account = self.account(name)?;
        self.writer_only(name)?;
        self.cancel_connect(name)?;
        let gate = self.with_slot(name, |s| s.gate.clone())?;
        let _turn = gate.lock().await;
        let tokens = self.with_slot(name, |s| s.state.tokens().cloned())?;
        let tokens = match tokens {
            Some(t) => Some(t),
            None => self.shared.keychain.tokens(name).await.ok().flatten(),
        };
        let mut warning = None;
        if let (Provider::OAuth2(spec), Some(tokens)) = (&account.provider, &tokens) {
            // Revoking without the secret may still work (public clients): try anyway.
            let secret = self.client_secret(&account).await.ok().flatten();
            let request = self.request(&account, secret.as_ref(), Some(tokens), None);
            let (token, is_refresh) = match &tokens.refresh {
                Some(r) => (r, true),
                None => (&tokens.access, false),
            };
            warning = match spec.revoke(&request, token, is_refresh).await {
                Ok(true) => None,
                Ok(false) => Some(format!(
                    "{}: has no revocation endpoint; revoke access in the provider's settings too",
                    account.provider_name
                )),
                Err(e) => Some(format!(
                    "revocation failed ({e}); revoke access in the provider's settings"
                )),
            };
        }
        let keychain = &self.shared.keychain;
        keychain.delete(SecretKey::Tokens(name.clone())).await?;
        keychain
            .delete(SecretKey::ClientSecret(name.clone()))
            .await?;
        self.update(name, |s| {
            s.state = AccountState::NotConnected;
            s.generation += 1;
            s.unsaved = None;
            s.last_outcome = None;
            s.report_refreshes.clear();
            s.fetch_unasked = false;
            s.client_secret = None;
        })?;
        tracing::info!(account = %name, "disconnected");
        Ok(warning)
    }

    /// Saves a client secret (`secret set`, the window, `PUT …/secret`). An account that
    /// waited for it is fetched at once.
    pub async fn set_client_secret(
        &self,
        name: &AccountName,
        value: Secret,
    ) -> Result<AccountView, EngineError> {
        let account = self.account(name)?;
        self.writer_only(name)?;
        if value.expose().trim().is_empty() {
            return Err(EngineError::usage(
                name,
                "the secret is empty; nothing was stored",
            ));
        }
        self.shared
            .keychain
            .set(SecretKey::ClientSecret(name.clone()), value)
            .await?;
        if !account.provider.needs_consent() {
            let now = crate::engine::clock::now();
            self.update(name, |s| {
                s.last_outcome = None;
                s.fetch_unasked = true;
                let state = std::mem::replace(&mut s.state, AccountState::NotConnected);
                s.state = state.retry_now(now);
            })?;
            self.shared.wake.notify_one();
        }
        self.view(name)
    }

    /// Re-reads the account's token set from the keychain (another tool wrote it, or a read
    /// failed before). A set only this engine holds (unsaved) is newer and is kept.
    pub async fn reload_account(&self, name: &AccountName) -> Result<AccountView, EngineError> {
        self.account(name)?;
        let gate = self.with_slot(name, |s| s.gate.clone())?;
        let _turn = gate.lock().await;
        self.reread(name).await?;
        self.view(name)
    }

    /// Reads an account the engine has not read from the keychain yet (just after start, or
    /// after a failed read), so a caller is never told "no token" about one the keychain holds.
    pub(crate) async fn read_if_unread(&self, name: &AccountName) -> Result<(), EngineError> {
        if !self.is_unread(name)? {
            return Ok(());
        }
        let gate = self.with_slot(name, |s| s.gate.clone())?;
        let _turn = gate.lock().await;
        if self.is_unread(name)? {
            self.reread(name).await?;
        }
        Ok(())
    }

    pub(crate) fn is_unread(&self, name: &AccountName) -> Result<bool, EngineError> {
        self.with_slot(name, |s| matches!(s.state, AccountState::Unread { .. }))
    }

    /// The keychain read itself (call under the gate).
    pub(crate) async fn reread(&self, name: &AccountName) -> Result<(), EngineError> {
        if self.with_slot(name, |s| s.unsaved.is_some())? {
            return Ok(());
        }
        let now = crate::engine::clock::now();
        // What this host holds, should the shared store have lost the set or gone back to an
        // older one: it goes back in (see `store::restore`).
        let mine = || {
            self.with_slot(name, |s| s.state.tokens().cloned())
                .ok()
                .flatten()
        };
        match self.shared.keychain.tokens_keeping(name, mine).await {
            Ok(Kept::Restored(_, written)) => written.map_err(EngineError::from),
            Ok(Kept::Read(stored)) => self.take_stored(name, stored),
            Err(e) => {
                self.update(name, |s| {
                    if matches!(s.state, AccountState::Unread { .. }) {
                        let state = std::mem::replace(&mut s.state, AccountState::NotConnected);
                        s.state = state.unreadable(e.to_string(), now, rand::random());
                    }
                })?;
                Err(e.into())
            }
        }
    }

    /// Installs what the store holds, unless it is what this engine already has. In a fleet,
    /// a stored set older than the one this host holds never gets here: the store compares
    /// fences and stores this host's again instead (see `store::restore`).
    fn take_stored(
        &self,
        name: &AccountName,
        stored: Option<crate::engine::secret::TokenSet>,
    ) -> Result<(), EngineError> {
        let fleet = self.shared.keychain.is_shared();
        self.update(name, |s| {
            // A set from the journal (replayed while this read was out) is newer than what
            // the keychain held; its own save compares them by sequence number.
            if s.unsaved.as_ref().is_some_and(|u| u.journaled) {
                return;
            }
            let same = match (&stored, s.state.tokens()) {
                (Some(a), Some(b)) => a.access.same_as(b.access.expose()),
                (None, None) => !matches!(s.state, AccountState::Unread { .. }),
                _ => false,
            };
            if !same {
                // In a fleet, a set replacing one this host served is another host's refresh:
                // reports of it get the same grace as after a refresh of this host's own.
                if fleet && stored.is_some() && s.state.tokens().is_some() {
                    s.mark_refreshed(crate::engine::clock::now());
                }
                let lead = s.account.schedule;
                let gave_up = s.restored.take();
                s.state = AccountState::from_stored(stored, gave_up, lead, name);
                s.generation += 1;
                s.last_outcome = None;
            }
        })?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Writes to an account's secrets are for the engine that owns the keychain service.
    pub(crate) fn writer_only(&self, name: &AccountName) -> Result<(), EngineError> {
        if self.mode() == Mode::Observer {
            return Err(EngineError::usage(
                name,
                "another Tokenwarden engine owns this account's secrets; ask it (the CLI does so through its API)",
            ));
        }
        Ok(())
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
