//! Who is at the other end of an API connection, as the accept loop learned it.

use std::net::SocketAddr;

/// Who is at the other end of an API connection; every request carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A client over TCP: it must show a key.
    Tcp(SocketAddr),
    /// A process of this engine's own user on its Unix socket, as the kernel vouches (the
    /// peer's credentials): let in as the engine's own key would be, without one, so that
    /// the CLI need not read that key from the keychain on every call.
    SameUser,
    /// A process of another user on the Unix socket: never served.
    OtherUser(u32),
}
