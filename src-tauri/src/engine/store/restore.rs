//! "The shared store lost it: store my copy again", in one place. Redis may restart empty,
//! or from a snapshot, a promoted replica or a backup older than what the hosts hold; a host
//! that holds an account's token set or client secret then keeps its own and writes it back
//! rather than forget it or give up a live refresh token. A set fetched since by another
//! host still wins: the write is a restore (see `Fence::Restore`), which never replaces one.

use super::client::Keychain;
use super::item::{SecretKey, StoreError};
use super::sharing::Judged;
use crate::engine::names::AccountName;
use crate::engine::secret::{Secret, TokenSet};
use crate::engine::store::journal::seq;

/// What a read that keeps this host's copy found.
pub enum Kept<T> {
    /// What the store holds (`None`: nothing).
    Read(Option<T>),
    /// The shared store had lost it (or held an older set): this host's copy, and how its
    /// write back went (a failed one is tried again at the next read).
    Restored(T, Result<(), StoreError>),
}

impl Keychain {
    /// Reads `name`'s token set; where the shared store lost it or holds an older one, the
    /// set `mine` gives (this host's) is stored again.
    pub async fn tokens_keeping(
        &self,
        name: &AccountName,
        mine: impl FnOnce() -> Option<TokenSet>,
    ) -> Result<Kept<TokenSet>, StoreError> {
        let key = SecretKey::Tokens(name.clone());
        let json = match self.read(&key).await? {
            Judged::Value(json) => json,
            Judged::Behind => match mine() {
                Some(set) => {
                    tracing::warn!(account = %name, "the shared store has lost this account's token set or holds an older one; storing this host's copy again");
                    let written = self.store_tokens_retrying(name, &set, seq::next()).await;
                    return Ok(Kept::Restored(set, written));
                }
                None => None,
            },
        };
        self.parse(&key, json).map(Kept::Read)
    }

    /// Reads `name`'s client secret; where the shared store lost it, the one `mine` gives
    /// (read before, kept in memory) is stored again.
    pub async fn client_secret_keeping(
        &self,
        name: &AccountName,
        mine: impl FnOnce() -> Option<Secret>,
    ) -> Result<Kept<Secret>, StoreError> {
        let key = SecretKey::ClientSecret(name.clone());
        match self.read(&key).await? {
            Judged::Value(secret) => Ok(Kept::Read(secret)),
            Judged::Behind => match mine() {
                Some(kept) => {
                    tracing::warn!(account = %name, "the shared store has lost this account's client secret; storing this host's copy again");
                    let written = self.set(key, kept.clone()).await;
                    Ok(Kept::Restored(kept, written))
                }
                None => Ok(Kept::Read(None)),
            },
        }
    }
}
