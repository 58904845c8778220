//! The OS keychain behind [`SecretStore`]: one item per account token set, one per client
//! secret, one per API key, all under one service name. Calls block (D-Bus round trips of
//! ~0.2 s), so the engine runs them on the blocking pool through `client::Keychain`, a few at a
//! time: a thousand accounts at once make the Secret Service time out.

use std::sync::Arc;

use super::item::{SecretKey, SecretStore, StoreError};
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

    fn entry(&self, key: &SecretKey) -> Result<keyring::Entry, StoreError> {
        keyring::Entry::new(&self.service, &key.entry()).map_err(|e| fail(key, e))
    }
}

fn fail(key: &SecretKey, e: keyring::Error) -> StoreError {
    let message = match e {
        keyring::Error::NoStorageAccess(_) | keyring::Error::PlatformFailure(_) => format!(
            "the keychain is not reachable ({e}); on Linux a Secret Service (gnome-keyring, KWallet) must run and be unlocked"
        ),
        other => other.to_string(),
    };
    StoreError::keychain(key.entry(), message)
}

/// Whether a failed call died with the Secret Service mid-call (D-Bus `NoReply`): gnome-keyring
/// aborts on an upstream bug under bursts of clients (GNOME gitlab gnome-keyring #190, #196,
/// #199), and the bus (or the desktop's session manager) starts it again for the next caller.
fn service_died_mid_call(e: &keyring::Error) -> bool {
    matches!(e, keyring::Error::PlatformFailure(_))
        && e.to_string()
            .contains("disconnected from message bus without replying")
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

impl SecretStore for OsKeychain {
    fn get(&self, key: &SecretKey) -> Result<Option<Secret>, StoreError> {
        let entry = self.entry(key)?;
        match once_more_if_the_service_died(|| entry.get_password()) {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(fail(key, e)),
        }
    }
    fn set(&self, key: &SecretKey, value: &Secret) -> Result<(), StoreError> {
        let entry = self.entry(key)?;
        once_more_if_the_service_died(|| entry.set_password(value.expose()))
            .map_err(|e| fail(key, e))
    }
    fn delete(&self, key: &SecretKey) -> Result<(), StoreError> {
        let entry = self.entry(key)?;
        match once_more_if_the_service_died(|| entry.delete_credential()) {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(fail(key, e)),
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
        let locked =
            keyring::Error::NoStorageAccess(Box::new(std::io::Error::other("prompt dismissed")));
        assert!(!super::service_died_mid_call(&locked));
        assert!(!super::service_died_mid_call(&keyring::Error::NoEntry));
    }
}
