//! The fleet's [`SecretStore`]: an account's secrets (see [`Scope`]) sealed in Redis, this
//! host's own in its keychain. A write of a token set carries the fence it is given (the
//! coordinator chooses it); a read answers with the fence a set was written with and leaves
//! judging it to the coordinator. The store knows no lease.

use std::sync::Arc;

use ring::aead::LessSafeKey;
use ring::rand::SystemRandom;

use super::link::Link;
use super::seal::{self, Opened, Place};
use super::FleetError;
use crate::engine::secret::Secret;
use crate::engine::store::item::{
    Backing, Fence, Found, Scope, SecretKey, SecretStore, StoreError,
};

/// The fixed text sealed as `<namespace>:check`: only the right key opens it. (Stores made
/// before blobs were bound to their namespace have it sealed the old way, which proves the
/// key as well.)
const CHECK_TEXT: &str = "tokenwarden shared store v1";
const CHECK_ENTRY: &str = "store:check";

pub struct FleetStore {
    pub(super) link: Arc<Link>,
    pub(super) key: LessSafeKey,
    pub(super) rng: SystemRandom,
    keychain: Arc<dyn SecretStore>,
}

impl FleetStore {
    pub(super) fn new(link: Arc<Link>, key: LessSafeKey, keychain: Arc<dyn SecretStore>) -> Self {
        Self {
            link,
            key,
            rng: SystemRandom::new(),
            keychain,
        }
    }

    fn fail(&self, key: &SecretKey, e: &FleetError) -> StoreError {
        e.about(self.link.url(), key.entry())
    }

    /// Proves the key against the store's check entry, sealing one into an empty store
    /// (also one that Redis lost).
    pub fn prove_key(&self) -> Result<(), FleetError> {
        let link = &self.link;
        let check = link.redis_key("check");
        let place = self.place(CHECK_ENTRY, 0);
        let stored: Option<String> = link.call(|c| redis::cmd("GET").arg(&check).query(c))?;
        let stored = match stored {
            Some(stored) => stored,
            None => {
                let sealed = self.seal(place, Some(&Secret::new(CHECK_TEXT)))?;
                // NX: two hosts starting at once with different keys cannot both win.
                let _: Option<String> = link.call(|c| {
                    redis::cmd("SET")
                        .arg(&check)
                        .arg(&sealed)
                        .arg("NX")
                        .query(c)
                })?;
                link.call(|c| redis::cmd("GET").arg(&check).query::<String>(c))?
            }
        };
        match seal::open(&self.key, place, &stored) {
            Some(Opened::Bound(Some(text)) | Opened::Unfenced(Some(text)))
                if text.expose() == CHECK_TEXT =>
            {
                Ok(())
            }
            _ => Err(FleetError::WrongKey {
                url: link.settings.url.clone(),
                namespace: link.settings.namespace.clone(),
            }),
        }
    }

    pub(super) fn place<'a>(&'a self, entry: &'a str, fence: u64) -> Place<'a> {
        Place {
            namespace: &self.link.settings.namespace,
            entry,
            fence,
        }
    }

    pub(super) fn seal(
        &self,
        place: Place<'_>,
        text: Option<&Secret>,
    ) -> Result<String, FleetError> {
        seal::seal(&self.rng, &self.key, place, text)
            .map_err(|what| FleetError::Key(format!("`{}` {what}", place.entry)))
    }
}

impl SecretStore for FleetStore {
    fn backing(&self, key: &SecretKey) -> Backing {
        match key.scope() {
            Scope::Account => Backing::SharedStore {
                url: self.link.url().to_owned(),
            },
            Scope::Machine => self.keychain.backing(key),
        }
    }

    /// What is stored, whatever its fence: the coordinator judges a token set's.
    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, StoreError> {
        Ok(self.read(key)?.and_then(|found| found.value))
    }

    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), StoreError> {
        self.write(key, Some(value), Fence::Unfenced).map(drop)
    }

    fn delete(&self, key: &SecretKey) -> Result<(), StoreError> {
        self.write(key, None, Fence::Unfenced).map(drop)
    }

    fn read(&self, key: &SecretKey) -> Result<Option<Found>, StoreError> {
        match key.scope() {
            Scope::Account => self.read_entry(key).map_err(|e| self.fail(key, &e)),
            Scope::Machine => self.keychain.read(key),
        }
    }

    fn write(
        &self,
        key: &SecretKey,
        value: Option<&Secret>,
        fence: Fence,
    ) -> Result<bool, StoreError> {
        match (key.scope(), key, fence) {
            (Scope::Machine, ..) => self.keychain.write(key, value, fence),
            // Without its fence a set could replace a newer one another host fetched.
            (Scope::Account, SecretKey::Tokens(_), Fence::Unfenced) => Err(StoreError {
                backing: self.backing(key),
                entry: key.entry(),
                message: "a token set is written to a shared store only with its fence".into(),
                too_large: false,
            }),
            (Scope::Account, ..) => self
                .write_entry(key, value, fence)
                .map_err(|e| self.fail(key, &e)),
        }
    }
}
