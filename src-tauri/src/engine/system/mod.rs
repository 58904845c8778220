//! What the engine asks of the operating system beyond files and sockets: private files
//! (owner-only, replaced atomically) and who listens at the other end of a loopback port.

pub(crate) mod peers;
pub(crate) mod private;
