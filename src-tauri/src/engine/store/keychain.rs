//! The OS keychain behind [`SecretStore`]: one item per account token set, one per client
//! secret, one per API key, all under one service name. Calls block (D-Bus round trips of
//! ~0.2 s), so the engine runs them on the blocking pool through `client::Keychain`, a few at a
//! time: a thousand accounts at once make the Secret Service time out.

use std::sync::Arc;

use super::item::{SecretKey, SecretStore, StoreError};
use super::pieces::{Items, Limit, Pieces};
use crate::engine::secret::Secret;

pub struct OsKeychain {
    service: String,
}

impl OsKeychain {
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
        }
    }

    fn entry(&self, name: &str) -> Result<keyring::Entry, StoreError> {
        keyring::Entry::new(&self.service, name).map_err(|e| fail(name, e))
    }

    /// Where the platform's items are small (Windows), long values go in pieces.
    fn pieces(&self) -> Option<Pieces<&Self>> {
        Limit::of_this_platform().map(|limit| Pieces { items: self, limit })
    }
}

/// What makes this platform's keychain reachable, in its own words.
const UNREACHABLE_HINT: &str = if cfg!(target_os = "macos") {
    "the login keychain must be unlocked (Keychain Access), and its prompt answered with Allow"
} else if cfg!(windows) {
    "Credential Manager must be available to this user (it is not in some service accounts and sandboxes)"
} else {
    "on Linux a Secret Service (gnome-keyring, KWallet) must run and be unlocked"
};

fn fail(entry: &str, e: keyring::Error) -> StoreError {
    let message = match e {
        keyring::Error::NoStorageAccess(_) | keyring::Error::PlatformFailure(_) => {
            format!("the keychain is not reachable ({e}); {UNREACHABLE_HINT}")
        }
        keyring::Error::TooLong(what, most) => {
            return StoreError::too_large_for_keychain(
                entry,
                format!("the keychain refused a {what} longer than {most}; set `[store] kind = \"database\"` in the config, which keeps secrets of any size sealed in a file"),
            );
        }
        other => other.to_string(),
    };
    StoreError::keychain(entry, message)
}

/// Whether a failed call died with the Secret Service mid-call: gnome-keyring aborts on an
/// upstream bug under bursts of clients (GNOME gitlab gnome-keyring #190, #196, #199), and the
/// bus (or the desktop's session manager) starts it again for the next caller. A call in flight
/// sees D-Bus `NoReply`; a call that opened its session with the old daemon and sends the secret
/// to the new one hears that its session does not exist (`NoSession`).
fn service_died_mid_call(e: &keyring::Error) -> bool {
    const SIGNS: [&str; 2] = [
        "disconnected from message bus without replying",
        "The session wrapping the secret does not exist",
    ];
    matches!(e, keyring::Error::PlatformFailure(_)) && {
        let text = e.to_string();
        SIGNS.iter().any(|sign| text.contains(sign))
    }
}

/// Runs a keychain call, and once more after a moment if the service died during it. Every
/// call here may be repeated: a set writes the same value, a delete of what is gone is done.
fn once_more_if_the_service_died<T>(
    call: impl Fn() -> Result<T, keyring::Error>,
) -> Result<T, keyring::Error> {
    match call() {
        Err(e) if service_died_mid_call(&e) => {
            tracing::warn!(error = %e, "the Secret Service went away during a call; asking again once");
            std::thread::sleep(std::time::Duration::from_millis(200));
            call()
        }
        other => other,
    }
}

/// One item each, by its entry name.
impl Items for &OsKeychain {
    fn read(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        let entry = self.entry(name)?;
        match once_more_if_the_service_died(|| entry.get_password()) {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(fail(name, e)),
        }
    }
    fn write(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let entry = self.entry(name)?;
        once_more_if_the_service_died(|| entry.set_password(value)).map_err(|e| fail(name, e))
    }
    fn remove(&self, name: &str) -> Result<(), StoreError> {
        let entry = self.entry(name)?;
        match once_more_if_the_service_died(|| entry.delete_credential()) {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(fail(name, e)),
        }
    }
}

impl SecretStore for OsKeychain {
    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, StoreError> {
        match self.pieces() {
            Some(pieces) => pieces.get(&key.entry()),
            None => Items::read(&self, &key.entry()),
        }
    }
    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), StoreError> {
        match self.pieces() {
            Some(pieces) => pieces.set(&key.entry(), value),
            None => Items::write(&self, &key.entry(), value.expose()),
        }
    }
    fn delete(&self, key: &SecretKey) -> Result<(), StoreError> {
        match self.pieces() {
            Some(pieces) => pieces.delete(&key.entry()),
            None => Items::remove(&self, &key.entry()),
        }
    }
}

/// The OS keychain for this service. Debug builds honour a fault hook for end-to-end tests:
/// while a file exists at `TOKENWARDEN_FAULT_KEYCHAIN_WRITES`, every write fails as a
/// locked keychain's would (reads still work). Release builds have no such hook.
pub fn os_store(service: &str) -> Arc<dyn SecretStore> {
    let store: Arc<dyn SecretStore> = Arc::new(OsKeychain::new(service));
    #[cfg(debug_assertions)]
    if let Some(flag) = std::env::var_os("TOKENWARDEN_FAULT_KEYCHAIN_WRITES") {
        return Arc::new(FaultyWrites {
            inner: store,
            flag: flag.into(),
        });
    }
    store
}

#[cfg(debug_assertions)]
struct FaultyWrites {
    inner: Arc<dyn SecretStore>,
    flag: std::path::PathBuf,
}

#[cfg(debug_assertions)]
impl SecretStore for FaultyWrites {
    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, StoreError> {
        self.inner.get(key)
    }
    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), StoreError> {
        if self.flag.exists() {
            return Err(StoreError::keychain(
                key.entry(),
                "the keychain refused the write (fault injected by the test hook)",
            ));
        }
        self.inner.set(key, value)
    }
    fn delete(&self, key: &SecretKey) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn only_a_service_that_died_mid_call_is_asked_again() {
        let died = keyring::Error::PlatformFailure(Box::new(std::io::Error::other(
            "DBus error: Message recipient disconnected from message bus without replying",
        )));
        assert!(super::service_died_mid_call(&died));
        let session_lost = keyring::Error::PlatformFailure(Box::new(std::io::Error::other(
            "DBus error: The session wrapping the secret does not exist",
        )));
        assert!(super::service_died_mid_call(&session_lost));
        let locked =
            keyring::Error::NoStorageAccess(Box::new(std::io::Error::other("prompt dismissed")));
        assert!(!super::service_died_mid_call(&locked));
        assert!(!super::service_died_mid_call(&keyring::Error::NoEntry));
    }
}
