//! Values longer than one keychain item holds, kept whole across several. Windows' Credential
//! Manager keeps at most 2,560 bytes per item (UTF-16, so 1,280 characters: keyring-rs#270),
//! and one token set with a Microsoft or Google JWT, its refresh token and an id_token is
//! longer. Such a value is written as pieces, then a manifest in the value's own item naming
//! them with the whole value's SHA-256; a reader checks the sum, so a value is read whole or
//! not at all, never truncated.
//!
//! The pieces of each value are named by its sum, so a new value never writes over the
//! pieces the manifest in place still names: a crash between the pieces and the manifest
//! leaves the old value readable (and a few orphan pieces), never a torn one.

use sha2::{Digest, Sha256};

use super::item::StoreError;
use crate::engine::secret::Secret;

/// The first words of a manifest. A value that itself begins so is always kept as pieces,
/// so that a read is never in doubt.
const MANIFEST: &str = "tokenwarden-pieces/1 ";

/// More pieces than this is a value no keychain should be asked to keep (320 kB on Windows).
pub const MOST_PIECES: usize = 128;

/// The items of one keychain service, by entry name: what [`Pieces`] splits values across.
pub trait Items {
    fn read(&self, entry: &str) -> Result<Option<Secret>, StoreError>;
    fn write(&self, entry: &str, value: &str) -> Result<(), StoreError>;
    /// Removing an item that is not there is done, not an error.
    fn remove(&self, entry: &str) -> Result<(), StoreError>;
}

/// How much one item holds, in the units the platform counts.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    /// The most units one item holds.
    pub units: usize,
    /// How many units a character takes.
    pub measure: fn(char) -> usize,
}

impl Limit {
    /// Windows' Credential Manager: `CRED_MAX_CREDENTIAL_BLOB_SIZE` bytes of UTF-16.
    pub const CREDENTIAL_MANAGER: Limit = Limit {
        units: 2560,
        measure: |c| 2 * c.len_utf16(),
    };

    /// The limit of this platform's keychain, where it has one worth splitting for (the
    /// Secret Service and the macOS Keychain keep megabytes in an item).
    pub fn of_this_platform() -> Option<Limit> {
        cfg!(windows).then_some(Self::CREDENTIAL_MANAGER)
    }

    fn size(&self, value: &str) -> usize {
        value.chars().map(self.measure).sum()
    }
}

/// `items` with values of any length.
pub struct Pieces<I> {
    pub items: I,
    pub limit: Limit,
}

/// What an item holds: a value, or the manifest of one kept in pieces.
enum Held {
    Whole(Secret),
    Split(Manifest),
}

#[derive(Debug, PartialEq)]
struct Manifest {
    count: usize,
    sum: String,
}

impl Manifest {
    fn of(value: &str, count: usize) -> Self {
        Self {
            count,
            sum: hex(&Sha256::digest(value.as_bytes())),
        }
    }

    fn parse(entry: &str, text: &str) -> Result<Self, StoreError> {
        let bad = || {
            StoreError::keychain(
                entry,
                "the item says its value is kept in pieces, but its list of them is damaged; connect the account again (or set the secret again)",
            )
        };
        let rest = text.strip_prefix(MANIFEST).ok_or_else(bad)?;
        let (mut count, mut sum) = (None, None);
        for field in rest.split(' ') {
            match field.split_once('=') {
                Some(("pieces", n)) => count = n.parse::<usize>().ok(),
                Some(("sha256", s)) if s.len() == 64 => sum = Some(s.to_owned()),
                _ => return Err(bad()),
            }
        }
        match (count, sum) {
            (Some(count), Some(sum)) if (1..=MOST_PIECES).contains(&count) => {
                Ok(Self { count, sum })
            }
            _ => Err(bad()),
        }
    }

    fn text(&self) -> String {
        format!("{MANIFEST}pieces={} sha256={}", self.count, self.sum)
    }

    /// The entry of piece `index` (from 1): named by the sum, so no other value's pieces
    /// share it.
    fn piece(&self, entry: &str, index: usize) -> String {
        format!("{entry}#{}.{index}", &self.sum[..16])
    }
}

impl<I: Items> Pieces<I> {
    pub fn get(&self, entry: &str) -> Result<Option<Secret>, StoreError> {
        match self.held(entry)? {
            None => Ok(None),
            Some(Held::Whole(value)) => Ok(Some(value)),
            Some(Held::Split(manifest)) => self.join(entry, &manifest).map(Some),
        }
    }

    pub fn set(&self, entry: &str, value: &Secret) -> Result<(), StoreError> {
        let text = value.expose();
        let before = self.held(entry).ok().flatten();
        if self.limit.size(text) <= self.limit.units && !text.starts_with(MANIFEST) {
            self.items.write(entry, text)?;
        } else {
            let parts = self.split(entry, text)?;
            let manifest = Manifest::of(text, parts.len());
            for (index, part) in parts.iter().enumerate() {
                self.items.write(&manifest.piece(entry, index + 1), part)?;
            }
            // The switch: until here, readers see the old value whole.
            self.items.write(entry, &manifest.text())?;
            if let Some(Held::Split(old)) = &before {
                if old.sum == manifest.sum {
                    return Ok(());
                }
            }
        }
        if let Some(Held::Split(old)) = before {
            self.remove_pieces(entry, &old);
        }
        Ok(())
    }

    pub fn delete(&self, entry: &str) -> Result<(), StoreError> {
        let before = self.held(entry).ok().flatten();
        self.items.remove(entry)?;
        if let Some(Held::Split(old)) = before {
            self.remove_pieces(entry, &old);
        }
        Ok(())
    }

    fn held(&self, entry: &str) -> Result<Option<Held>, StoreError> {
        Ok(match self.items.read(entry)? {
            None => None,
            Some(value) if value.expose().starts_with(MANIFEST) => {
                Some(Held::Split(Manifest::parse(entry, value.expose())?))
            }
            Some(value) => Some(Held::Whole(value)),
        })
    }

    fn join(&self, entry: &str, manifest: &Manifest) -> Result<Secret, StoreError> {
        let mut whole = String::new();
        for index in 1..=manifest.count {
            let piece = manifest.piece(entry, index);
            let part = self.items.read(&piece)?.ok_or_else(|| {
                StoreError::keychain(
                    entry,
                    format!(
                        "its value is kept in {} pieces and piece {index} (`{piece}`) is missing; connect the account again (or set the secret again)",
                        manifest.count
                    ),
                )
            })?;
            whole.push_str(part.expose());
        }
        if Manifest::of(&whole, manifest.count) != *manifest {
            return Err(StoreError::keychain(
                entry,
                format!(
                    "its value is kept in {} pieces that do not add up to what was written (the checksum differs); connect the account again (or set the secret again)",
                    manifest.count
                ),
            ));
        }
        Ok(Secret::new(whole))
    }

    /// `text` in pieces that each fit one item, cut between characters.
    fn split<'t>(&self, entry: &str, text: &'t str) -> Result<Vec<&'t str>, StoreError> {
        let mut parts = Vec::new();
        let (mut start, mut units) = (0, 0);
        for (at, c) in text.char_indices() {
            let size = (self.limit.measure)(c);
            if units + size > self.limit.units {
                parts.push(&text[start..at]);
                (start, units) = (at, 0);
            }
            units += size;
        }
        parts.push(&text[start..]);
        if parts.len() > MOST_PIECES {
            return Err(StoreError::too_large_for_keychain(
                entry,
                format!(
                    "a value of {} bytes is more than the keychain keeps ({MOST_PIECES} items of {} bytes); set `[store] kind = \"database\"` in the config, which keeps token sets of any size sealed in a file",
                    text.len(),
                    self.limit.units
                ),
            ));
        }
        Ok(parts)
    }

    /// Pieces no manifest names any more. Best effort: one left behind is an orphan,
    /// never part of a value.
    fn remove_pieces(&self, entry: &str, manifest: &Manifest) {
        for index in 1..=manifest.count {
            let piece = manifest.piece(entry, index);
            if let Err(e) = self.items.remove(&piece) {
                tracing::warn!(item = %piece, error = %e, "cannot remove a piece of an old value; it stays as an orphan");
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
