//! The journal's bytes on disk: records `length (u32, little endian) | nonce (12) | sealed`,
//! appended and fdatasync'd. The file is replaced by `engine::private` (a new 0600 file under
//! a temporary name, never through a symlink, renamed into place with its folder synced), so
//! a crash leaves either the old file or the new one; it is opened with `O_NOFOLLOW`. What
//! the records say is `super`'s business: this module only frames them.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _};
use std::path::Path;

use ring::aead::NONCE_LEN;

/// A token set is a few KiB at most; anything longer is not a record of ours.
const MAX_RECORD: usize = 1 << 20;
/// The AEAD tag's length: a record shorter than nonce + tag cannot be one.
const TAG_LEN: usize = 16;

/// One record as stored: its nonce and its sealed bytes.
pub(super) struct Sealed<'a> {
    pub nonce: &'a [u8],
    pub sealed: &'a [u8],
}

/// What a read of the file found.
pub(super) struct Parsed<'a> {
    pub records: Vec<Sealed<'a>>,
    /// The last record was cut short: an append that a crash interrupted before its fsync
    /// returned (so before anything relied on it). Not damage.
    pub torn: bool,
    /// A length that no record of ours has: the bytes after it cannot be framed.
    pub broken: bool,
}

/// The bytes of one record.
pub(super) fn frame(nonce: &[u8], sealed: &[u8]) -> Vec<u8> {
    let len = u32::try_from(nonce.len() + sealed.len()).expect("a record is far below 4 GiB");
    let mut out = Vec::with_capacity(4 + len as usize);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(nonce);
    out.extend_from_slice(sealed);
    out
}

pub(super) fn parse(bytes: &[u8]) -> Parsed<'_> {
    let mut parsed = Parsed {
        records: Vec::new(),
        torn: false,
        broken: false,
    };
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some((len, body)) = rest.split_first_chunk::<4>() else {
            parsed.torn = true;
            break;
        };
        let len = u32::from_le_bytes(*len) as usize;
        if !(NONCE_LEN + TAG_LEN..=MAX_RECORD).contains(&len) {
            parsed.broken = true;
            break;
        }
        if body.len() < len {
            parsed.torn = true;
            break;
        }
        let (record, next) = body.split_at(len);
        let (nonce, sealed) = record.split_at(NONCE_LEN);
        parsed.records.push(Sealed { nonce, sealed });
        rest = next;
    }
    parsed
}

/// The file's bytes, or `None` when there is none. A symlink in its place is refused.
pub(super) fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut file = match options().read(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Replaces the file with `contents` (`private::replace`: a new 0600 file synced, renamed,
/// the folder synced) and returns it open for appending.
pub(super) fn replace(path: &Path, contents: &[u8]) -> io::Result<File> {
    crate::engine::system::private::replace(path, contents, 0o600)?;
    open_append(path)
}

/// The file, open for appending; a symlink in its place is refused.
pub(super) fn open_append(path: &Path) -> io::Result<File> {
    options().append(true).open(path)
}

/// Open options that never follow a symlink at the path itself.
fn options() -> OpenOptions {
    crate::engine::system::private::no_follow()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_frame_and_parse_and_a_torn_tail_is_told_from_damage() {
        let mut bytes = frame(&[1; NONCE_LEN], &[2; 20]);
        bytes.extend(frame(&[3; NONCE_LEN], &[4; 30]));
        let parsed = parse(&bytes);
        assert_eq!(parsed.records.len(), 2);
        assert_eq!(parsed.records[1].sealed, &[4; 30]);
        assert!(!parsed.torn && !parsed.broken);

        let cut = &bytes[..bytes.len() - 5];
        let parsed = parse(cut);
        assert_eq!(parsed.records.len(), 1);
        assert!(parsed.torn && !parsed.broken);

        let mut garbage = frame(&[1; NONCE_LEN], &[2; 20]);
        garbage.extend_from_slice(&u32::MAX.to_le_bytes());
        garbage.extend_from_slice(&[0; 64]);
        let parsed = parse(&garbage);
        assert_eq!(parsed.records.len(), 1);
        assert!(parsed.broken);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_made_0600_a_symlink_in_its_place_is_never_followed_and_crash_litter_goes() {
        use std::io::Write as _;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.journal");
        std::fs::write(
            crate::engine::system::private::temporary_name(&path),
            b"left by a crash",
        )
        .unwrap();
        let mut file = replace(&path, b"abc").unwrap();
        crate::engine::system::private::remove_temporaries(&path);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        file.write_all(b"def").unwrap();
        assert_eq!(read(&path).unwrap().unwrap(), b"abcdef");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"not ours").unwrap();
        let link = dir.path().join("linked.journal");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(read(&link).is_err(), "a symlink is not read through");
        // Replacing renames over the link itself; the file it pointed to is untouched.
        replace(&link, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"not ours");
        assert!(!std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
