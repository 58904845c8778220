//! Files we make are ours alone. The lock dir may sit in the shared temp dir (no
//! `XDG_RUNTIME_DIR` under ssh, su, containers and system units), where another user can make
//! it first, plant symlinks in it, or announce a server of theirs; the data dir holds the
//! history and the key index. So:
//! * [`own_dir`]: a folder is made 0700, and refused unless it is a real folder of ours that no
//!   one else can write, on a path whose symlinks and folders only we or root control;
//! * [`replace`]: a file is written to a new temporary name (never following a link, failing if
//!   the name exists), synced, renamed over the old one, and the rename made durable;
//! * [`move_aside`]: a damaged file is kept under a new name, never over an earlier one;
//! * [`create`]: a file that others open by name (SQLite's) is made 0600 before they do;
//! * [`tighten`]: what an older version left readable is closed at start, said once.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why a folder cannot be trusted with our files.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("{}: it belongs to uid {owner}, not to you (uid {me}): another user made it first; remove it (as root or as its owner) or {remedy}", path.display())]
    NotOurs {
        path: PathBuf,
        owner: u32,
        me: u32,
        remedy: &'static str,
    },
    #[error("{}: a symbolic link of uid {owner}, who could point it anywhere; remove it or {remedy}", path.display())]
    ForeignLink {
        path: PathBuf,
        owner: u32,
        remedy: &'static str,
    },
    #[error("{}: uid {owner} may write in it (mode {mode:o}) and so replace what is below it; {remedy}", path.display())]
    OpenAncestor {
        path: PathBuf,
        owner: u32,
        mode: u32,
        remedy: &'static str,
    },
    #[error("{}: not a folder; remove it or {remedy}", path.display())]
    NotAFolder { path: PathBuf, remedy: &'static str },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PlaceError + '_ {
    move |source| PlaceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Makes `dir` (and missing parents) 0700, or checks the one that is there: a real folder of
/// ours, closed to others (tightened to 0700 if it was not), on a path no one else controls.
/// `remedy` says which setting moves it elsewhere.
pub fn own_dir(dir: &Path, remedy: &'static str) -> Result<(), PlaceError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        let dir = absolute(dir).map_err(io(dir))?;
        check_ancestors(&dir, remedy)?;
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(io(&dir))?;
                check_ancestors(&dir, remedy)?;
            }
            Err(e) => return Err(io(&dir)(e)),
        }
        let meta = std::fs::symlink_metadata(&dir).map_err(io(&dir))?;
        let me = euid();
        if meta.file_type().is_symlink() {
            // A link of ours (say the data dir moved to another disk) leads to the real one,
            // which must pass too; another user's could lead anywhere.
            if meta.uid() != me && meta.uid() != 0 {
                return Err(PlaceError::ForeignLink {
                    path: dir,
                    owner: meta.uid(),
                    remedy,
                });
            }
            let target = std::fs::canonicalize(&dir).map_err(io(&dir))?;
            return own_dir(&target, remedy);
        }
        if !meta.is_dir() {
            return Err(PlaceError::NotAFolder { path: dir, remedy });
        }
        if meta.uid() != me {
            return Err(PlaceError::NotOurs {
                path: dir,
                owner: meta.uid(),
                me,
                remedy,
            });
        }
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(&dir))?;
            tracing::info!(dir = %dir.display(), was = format!("{:o}", meta.mode() & 0o777), "made a folder of ours private (0700)");
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = remedy;
        std::fs::create_dir_all(dir).map_err(io(dir))
    }
}

/// Every folder above `dir` and every link on the way must be ours or root's; a folder others
/// may write in must have the sticky bit (like /tmp), so they cannot rename ours away.
#[cfg(unix)]
fn check_ancestors(dir: &Path, remedy: &'static str) -> Result<(), PlaceError> {
    use std::os::unix::fs::MetadataExt;
    let me = euid();
    let trusted = |uid: u32| uid == me || uid == 0;
    let mut walked = PathBuf::new();
    for part in dir.components() {
        walked.push(part);
        if walked == dir {
            break;
        }
        let meta = match std::fs::symlink_metadata(&walked) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&walked)(e)),
        };
        if meta.file_type().is_symlink() {
            if !trusted(meta.uid()) {
                return Err(PlaceError::ForeignLink {
                    path: walked,
                    owner: meta.uid(),
                    remedy,
                });
            }
            // Where it leads must pass the same checks.
            let target = std::fs::canonicalize(&walked).map_err(io(&walked))?;
            check_ancestors(&target.join("x"), remedy)?;
            continue;
        }
        let open_to_others = meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0;
        if !trusted(meta.uid()) || open_to_others {
            return Err(PlaceError::OpenAncestor {
                path: walked,
                owner: meta.uid(),
                mode: meta.mode() & 0o7777,
                remedy,
            });
        }
    }
    Ok(())
}

#[cfg(unix)]
fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    std::path::absolute(path)
}

#[cfg(unix)]
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Replaces `path` with `bytes` in one rename, as a file of `mode`: written to a fresh
/// temporary name beside it (created, never opened through a link or over an existing file),
/// synced, renamed, and the folder synced. A crash leaves the old file or the new one, never
/// half of one (and a few leftover temporary files, which [`remove_temporaries`] clears).
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = temporary_name(path);
    let written = (|| {
        let mut file = new_file(&tmp, mode)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Keeps a damaged file (and its `companions`, such as SQLite's `-wal`) under
/// `NAME.damaged-UNIXTIME`, never over an earlier one; returns the new name.
pub fn move_aside(path: &Path, companions: &[&str]) -> std::io::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let with = |base: &Path, suffix: &str| {
        let mut name = base.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let aside = (0..)
        .map(|n| match n {
            0 => with(path, &format!(".damaged-{stamp}")),
            n => with(path, &format!(".damaged-{stamp}-{n}")),
        })
        .find(|aside| std::fs::symlink_metadata(aside).is_err())
        .expect("a free name");
    std::fs::rename(path, &aside)?;
    for suffix in companions {
        let from = with(path, suffix);
        if std::fs::symlink_metadata(&from).is_ok() {
            std::fs::rename(&from, with(&aside, suffix))?;
        }
    }
    sync_dir(path)?;
    Ok(aside)
}

/// Removes the temporary files a crash in the middle of [`replace`] left beside `path`.
pub fn remove_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && file.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Open options that never follow a link at the path itself.
pub fn no_follow() -> std::fs::OpenOptions {
    #[allow(unused_mut)]
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        rustix::fs::OFlags::NOFOLLOW.bits() as i32,
    );
    options
}

/// A rename is durable once the folder that holds the name is.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Makes `path` as an empty file of ours (0600) unless it exists; never through a link.
pub fn create(path: &Path) -> std::io::Result<()> {
    match new_file(path, 0o600) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(path)?;
            if meta.file_type().is_symlink() {
                return Err(std::io::Error::other(format!(
                    "{} is a symbolic link, not a file of ours",
                    path.display()
                )));
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn new_file(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    let mut options = no_follow();
    // create_new is O_CREAT|O_EXCL: it fails on any existing name, a dangling link included.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

/// `.<name>.<pid>.<random>.tmp` beside `path`: no other process can guess it in advance.
pub(crate) fn temporary_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ))
}

/// Closes files in `dir` (not below it) that others may read or write to 0600; returns those
/// it changed, so the caller can say so once.
pub fn tighten(dir: &Path) -> Vec<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let me = euid();
        entries
            .flatten()
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                let open = meta.mode() & 0o077 != 0 && meta.uid() == me;
                let mode = if meta.is_dir() { 0o700 } else { 0o600 };
                (open && (meta.is_file() || meta.is_dir()))
                    .then(|| {
                        std::fs::set_permissions(
                            entry.path(),
                            std::fs::Permissions::from_mode(mode),
                        )
                    })?
                    .ok()
                    .map(|()| entry.path())
            })
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Vec::new()
    }
}

#[cfg(all(test, unix))]
mod tests;
