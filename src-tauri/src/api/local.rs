//! The engine's Unix socket, beside its lock in the user's runtime dir. This user's
//! processes (the CLI) are let in there without a key, on the kernel's word for who they
//! are (the peer's credentials), so they need not read the engine's key from the keychain
//! on every call; pizauth answers its CLI the same way. Another user's process is closed
//! unanswered. Without the socket the CLI uses TCP and the key, as before.

use std::path::{Path, PathBuf};

use super::peer::Peer;
use super::taker::Identity;
use crate::engine::Engine;

/// The bound socket; its file goes when the engine stops serving.
pub struct LocalListener {
    #[cfg(unix)]
    listener: tokio::net::UnixListener,
    path: PathBuf,
}

impl LocalListener {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket of `engine`'s lock place. `None`, with a warning, when it cannot be made
/// (for example a path longer than a socket address holds), or when the engine holds no lock.
#[cfg(unix)]
pub fn bind(engine: &Engine) -> Option<LocalListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = engine.lock_place()?.socket_file();
    // We hold the lock, so a socket already there is a dead engine's.
    let _ = std::fs::remove_file(&path);
    let bound = tokio::net::UnixListener::bind(&path).and_then(|listener| {
        // Others are refused by their credentials anyway; this keeps them from connecting.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(listener)
    });
    match bound {
        Ok(listener) => Some(LocalListener { listener, path }),
        Err(e) => {
            tracing::warn!(socket = %path.display(), error = %e, "cannot make the API's Unix socket; the CLI will use TCP and the engine's key");
            let _ = std::fs::remove_file(&path);
            None
        }
    }
}

#[cfg(not(unix))]
pub fn bind(_engine: &Engine) -> Option<LocalListener> {
    None
}

#[cfg(unix)]
impl super::connections::Accept for LocalListener {
    type Stream = tokio::net::UnixStream;

    async fn accept(
        &self,
    ) -> std::io::Result<(tokio::net::UnixStream, Peer, std::sync::Arc<Identity>)> {
        let (stream, _) = self.listener.accept().await?;
        let cred = stream.peer_cred()?;
        let uid = cred.uid();
        let peer = if uid == rustix::process::geteuid().as_raw() {
            Peer::SameUser
        } else {
            Peer::OtherUser(uid)
        };
        let pid = cred.pid().and_then(|p| u32::try_from(p).ok());
        Ok((stream, peer, Identity::unix(pid)))
    }

    fn refuse(stream: &tokio::net::UnixStream) {
        let _ = stream.try_write(super::connections::REFUSAL);
    }
}

#[cfg(not(unix))]
impl super::connections::Accept for LocalListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(
        &self,
    ) -> std::io::Result<(tokio::net::TcpStream, Peer, std::sync::Arc<Identity>)> {
        std::future::pending().await
    }
}
