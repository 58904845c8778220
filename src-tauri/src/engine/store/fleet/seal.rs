//! How the fleet seals what it keeps in Redis: ChaCha20-Poly1305 under the store key, a fresh
//! random nonce per blob, and associated data that binds the blob to where it belongs: the
//! namespace (which fleet), the entry name (which account, which secret) and the fence it
//! was written with. Someone who can write to Redis but has no key can still delete entries,
//! but a blob copied to another entry or another fleet's namespace, or set beside another
//! fence, does not open. So an old set cannot be passed off as a newer one.
//!
//! A blob is `v2:` and the base64 of nonce and sealed text. A deletion is a sealed empty
//! text, so it is bound like a set (an empty deletion could be set anywhere, by anyone).
//!
//! Blobs from before this format (v1: base64 alone, only the entry name bound; a deletion
//! was an empty string) may still be in a fleet's Redis. They are read as a migration:
//! [`Opened::Unfenced`], whose fence nobody can vouch for, so the fleet treats it as the
//! oldest there is. A host that holds any set never adopts one; a host that holds nothing
//! (just started, first run after the upgrade) takes it, and the next write seals it anew.

use base64::Engine as _;
use ring::aead::{LessSafeKey, NONCE_LEN};
use ring::rand::SystemRandom;

use crate::engine::secret::Secret;
use crate::engine::store::sealed::{open_bound, seal_bound};

const V2: &str = "v2:";
/// Starts the associated data, so that nothing else sealed with the same key (the database
/// store's rows, whose associated data is their entry name) opens as a fleet blob.
const LABEL: &[u8] = b"tokenwarden fleet blob v2\0";

/// Where a blob belongs.
#[derive(Clone, Copy, Debug)]
pub(super) struct Place<'a> {
    pub namespace: &'a str,
    pub entry: &'a str,
    pub fence: u64,
}

impl Place<'_> {
    /// Length-prefixed, so that no two places give the same bytes.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = LABEL.to_vec();
        for part in [self.namespace, self.entry] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            aad.extend_from_slice(&len.to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad.extend_from_slice(&self.fence.to_be_bytes());
        aad
    }
}

/// What a blob held.
#[derive(Debug)]
pub(super) enum Opened {
    /// Sealed for this place; `None` is a deletion.
    Bound(Option<Secret>),
    /// Sealed before fences and namespaces were bound (v1): only its entry name is vouched
    /// for; `None` is a deletion.
    Unfenced(Option<Secret>),
}

/// Seals `text` (`None`: a deletion) for `place`; the error says what failed.
pub(super) fn seal(
    rng: &SystemRandom,
    key: &LessSafeKey,
    place: Place<'_>,
    text: Option<&Secret>,
) -> Result<String, &'static str> {
    let text = text.map_or("", Secret::expose);
    let (mut bytes, sealed) = seal_bound(rng, key, &place.associated_data(), text)?;
    bytes.extend_from_slice(&sealed);
    Ok(format!(
        "{V2}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// Opens a blob stored at `place`; `None` when it does not open there (another key, damaged,
/// or moved from another entry, fleet or fence).
pub(super) fn open(key: &LessSafeKey, place: Place<'_>, blob: &str) -> Option<Opened> {
    let text = |t: String| (!t.is_empty()).then(|| Secret::new(t));
    match blob.strip_prefix(V2) {
        Some(sealed) => {
            let opened = open_base64(key, &place.associated_data(), sealed)?;
            Some(Opened::Bound(text(opened)))
        }
        None if blob.is_empty() => Some(Opened::Unfenced(None)),
        None => {
            let opened = open_base64(key, place.entry.as_bytes(), blob)?;
            Some(Opened::Unfenced(text(opened)))
        }
    }
}

fn open_base64(key: &LessSafeKey, aad: &[u8], blob: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    if bytes.len() < NONCE_LEN {
        return None;
    }
    open_bound(key, aad, bytes.split_at(NONCE_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::store::sealed::{decode_key, new_key_text, seal_text};

    fn key() -> LessSafeKey {
        decode_key(&new_key_text(&SystemRandom::new()).unwrap()).unwrap()
    }

    fn at(namespace: &'static str, entry: &'static str, fence: u64) -> Place<'static> {
        Place {
            namespace,
            entry,
            fence,
        }
    }

    fn bound(opened: Option<Opened>) -> Option<String> {
        match opened {
            Some(Opened::Bound(text)) => Some(text.map_or(String::new(), |t| t.expose().into())),
            _ => None,
        }
    }

    #[test]
    fn a_blob_opens_only_at_its_own_namespace_entry_and_fence() {
        let (rng, key) = (SystemRandom::new(), key());
        let place = at("tw", "tokens:fb", 7);
        let blob = seal(&rng, &key, place, Some(&Secret::new("set"))).unwrap();
        assert!(!blob.contains("set"));
        assert_eq!(bound(open(&key, place, &blob)).as_deref(), Some("set"));
        for elsewhere in [
            at("tw", "tokens:fb", 8),
            at("tw", "tokens:fb", 6),
            at("tw", "tokens:other", 7),
            at("tw2", "tokens:fb", 7),
            // Length prefixes: moving a byte between namespace and entry is another place.
            at("tw:", "okens:fb", 7),
        ] {
            assert!(open(&key, elsewhere, &blob).is_none(), "{elsewhere:?}");
        }
        assert!(open(&self::key(), place, &blob).is_none(), "another key");
    }

    #[test]
    fn a_deletion_is_sealed_and_bound_like_a_set() {
        let (rng, key) = (SystemRandom::new(), key());
        let place = at("tw", "tokens:fb", 3);
        let blob = seal(&rng, &key, place, None).unwrap();
        assert!(blob.len() > V2.len());
        assert!(matches!(
            open(&key, place, &blob),
            Some(Opened::Bound(None))
        ));
        assert!(open(&key, at("tw", "tokens:fb", 4), &blob).is_none());
        assert!(open(&key, at("tw", "tokens:wx", 3), &blob).is_none());
    }

    #[test]
    fn an_old_format_blob_opens_as_unfenced_and_only_under_its_entry_name() {
        let (rng, key) = (SystemRandom::new(), key());
        let (mut bytes, sealed) = seal_text(&rng, &key, "tokens:fb", "old set").unwrap();
        bytes.extend_from_slice(&sealed);
        let v1 = base64::engine::general_purpose::STANDARD.encode(bytes);
        match open(&key, at("any", "tokens:fb", 99), &v1) {
            Some(Opened::Unfenced(Some(text))) => assert_eq!(text.expose(), "old set"),
            other => panic!("{other:?}"),
        }
        assert!(open(&key, at("any", "tokens:wx", 99), &v1).is_none());
        assert!(matches!(
            open(&key, at("any", "tokens:fb", 1), ""),
            Some(Opened::Unfenced(None))
        ));
        // A v2 blob stripped of its prefix is no v1 blob.
        let v2 = seal(
            &rng,
            &key,
            at("tw", "tokens:fb", 1),
            Some(&Secret::new("x")),
        )
        .unwrap();
        assert!(open(&key, at("tw", "tokens:fb", 1), &v2[V2.len()..]).is_none());
    }
}
