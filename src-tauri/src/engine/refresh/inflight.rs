//! A marker file per account while a refresh is out: written before the request is sent,
//! removed once the new token set is in the keychain. If the process dies in between (a
//! kill, a crash, a lost answer) after the provider rotated a single-use refresh token, the
//! new one existed only in the dead process and the keychain holds a spent one. Nothing can
//! bring it back; the marker lets the next refusal say exactly that instead of a bare
//! `invalid_grant`, so the user reconnects knowing why (and nothing retries in a loop: a
//! refusal is permanent). The files hold no secret, only their names.

use std::path::PathBuf;

use crate::engine::names::AccountName;

pub(crate) struct Markers {
    dir: PathBuf,
}

impl Markers {
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            dir: data_dir.join("in-flight"),
        }
    }

    /// Inside the data dir, which is ours alone already.
    fn make_dir(&self) -> std::io::Result<()> {
        #[cfg(unix)]
        let dir = {
            let mut dir = std::fs::DirBuilder::new();
            std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
            dir
        };
        #[cfg(not(unix))]
        let dir = std::fs::DirBuilder::new();
        match dir.create(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    }

    fn path(&self, name: &AccountName) -> PathBuf {
        self.dir.join(name.as_str())
    }

    /// Marks a refresh of `name` as out; true when an earlier one never came back.
    pub fn begin(&self, name: &AccountName) -> bool {
        let path = self.path(name);
        let cut_off = path.exists();
        let written = self
            .make_dir()
            .and_then(|()| crate::engine::system::private::create(&path));
        if let Err(e) = written {
            // Only the wording of a later refusal depends on it.
            tracing::debug!(account = %name, error = %e, "could not mark a refresh in flight");
        }
        cut_off
    }

    /// The new token set is in the keychain (or nothing was rotated).
    pub fn end(&self, name: &AccountName) {
        let _ = std::fs::remove_file(self.path(name));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refresh_that_never_ended_is_seen_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let markers = super::Markers::new(dir.path());
        let fb = "fb".parse().unwrap();
        assert!(!markers.begin(&fb), "nothing was out");
        // The process dies here; the next one starts.
        let next = super::Markers::new(dir.path());
        assert!(next.begin(&fb), "the cut-off refresh is seen");
        next.end(&fb);
        assert!(!next.begin(&fb));
    }
}
