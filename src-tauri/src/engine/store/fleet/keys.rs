//! Where a host's store key comes from, first found wins: `TOKENWARDEN_STORE_KEY` (how
//! servers and containers take secrets), the file `store.key_file` names (mode 0600, as ssh
//! wants its keys), or the keychain item `store:key` (a desktop).

use std::path::{Path, PathBuf};

use super::FleetError;
use crate::engine::config::fleet::FleetSettings;
use crate::engine::secret::Secret;
use crate::engine::store::item::{SecretKey, SecretStore};

pub const KEY_ENV: &str = "TOKENWARDEN_STORE_KEY";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
    Keychain,
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env => write!(f, "{KEY_ENV}"),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Keychain => write!(f, "the keychain item `{}`", SecretKey::StoreKey.entry()),
        }
    }
}

/// Where this host's key would be read from (whether or not it is there yet).
pub fn key_source(settings: &FleetSettings) -> KeySource {
    if std::env::var_os(KEY_ENV).is_some_and(|v| !v.is_empty()) {
        KeySource::Env
    } else if let Some(path) = &settings.key_file {
        KeySource::File(path.clone())
    } else {
        KeySource::Keychain
    }
}

pub(super) fn store_key(
    settings: &FleetSettings,
    keychain: &dyn SecretStore,
) -> Result<(Secret, KeySource), FleetError> {
    let source = key_source(settings);
    let key = match &source {
        KeySource::Env => std::env::var(KEY_ENV)
            .ok()
            .map(|v| Secret::new(v.trim().to_owned())),
        KeySource::File(path) => read_key_file(path)?,
        KeySource::Keychain => keychain
            .get(&SecretKey::StoreKey)
            .map_err(|e| FleetError::Key(e.to_string()))?,
    };
    let key = key.ok_or_else(|| {
        FleetError::Key(format!(
            "no store key in {source}: run `tokenwarden store init` on one host, then give every host the same key ({KEY_ENV}, store.key_file or the keychain item store:key)"
        ))
    })?;
    Ok((key, source))
}

fn read_key_file(path: &Path) -> Result<Option<Secret>, FleetError> {
    let fail = |what: String| FleetError::Key(format!("store key file {}: {what}", path.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                return Err(fail(format!(
                    "mode {:o} lets other users read it; `chmod 600 {}`",
                    meta.permissions().mode() & 0o777,
                    path.display()
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(Secret::new(text.trim().to_owned()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// A new store key, as `TOKENWARDEN_STORE_KEY`, key files and the keychain item hold it.
pub fn new_key() -> Result<Secret, FleetError> {
    crate::engine::store::sealed::new_key_text(&ring::rand::SystemRandom::new())
        .ok_or_else(|| FleetError::Key("the system's random number generator failed".into()))
}

/// `store init`: a new key where this host reads it from (`service`'s keychain item, unless
/// the environment or `store.key_file` is where); never over one.
pub fn init_key(settings: &FleetSettings, service: &str) -> Result<KeySource, FleetError> {
    let keychain = crate::engine::store::keychain::os_store(service);
    write_new_key(settings, keychain.as_ref(), &new_key()?)
}

/// Writes a new key where this host reads it from; never replaces one.
pub(super) fn write_new_key(
    settings: &FleetSettings,
    keychain: &dyn SecretStore,
    key: &Secret,
) -> Result<KeySource, FleetError> {
    let source = key_source(settings);
    match &source {
        KeySource::Env => {
            return Err(FleetError::Key(format!(
                "{KEY_ENV} is already set; this host's key comes from there"
            )))
        }
        KeySource::File(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(|e| {
                FleetError::Key(format!(
                    "store key file {}: {e}{}",
                    path.display(),
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        " (a key is never replaced: the fleet's secrets are sealed with it)"
                    } else {
                        ""
                    }
                ))
            })?;
            std::io::Write::write_all(&mut file, format!("{}\n", key.expose()).as_bytes())
                .map_err(|e| FleetError::Key(format!("store key file {}: {e}", path.display())))?;
        }
        KeySource::Keychain => {
            let have = keychain
                .get(&SecretKey::StoreKey)
                .map_err(|e| FleetError::Key(e.to_string()))?;
            if have.is_some() {
                return Err(FleetError::Key(
                    "the keychain already holds a store key (a key is never replaced: the fleet's secrets are sealed with it)".into(),
                ));
            }
            keychain
                .set(&SecretKey::StoreKey, key)
                .map_err(|e| FleetError::Key(e.to_string()))?;
        }
    }
    Ok(source)
}
