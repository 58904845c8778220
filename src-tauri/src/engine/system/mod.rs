//! What the engine asks of the operating system beyond files and sockets: private files
//! (owner-only, replaced atomically), who listens at the other end of a loopback port, and
//! which process is at the other end of a connection, and memory handed back after a start.

pub(crate) mod memory;
pub(crate) mod peers;
pub(crate) mod private;
pub(crate) mod processes;
#[cfg(target_os = "linux")]
mod sock_diag;
