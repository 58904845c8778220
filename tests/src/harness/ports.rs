//! Loopback ports for listeners the binary opens itself.

use std::net::TcpListener;

/// A port for a listener the binary opens itself.
///
/// Ports come from below the kernel's ephemeral range (32768 and up on Linux), never the same
/// one twice in a process. A port the kernel handed out for `127.0.0.1:0` could be handed out
/// again, or taken as the local end of any outgoing connection another test makes, before the
/// binary binds it; CI once saw `connect` fail with "Address already in use" that way.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    // Start each test process at its own place so two test binaries run side by side rarely meet.
    static NEXT: AtomicU16 = AtomicU16::new(u16::MAX);
    let _ = NEXT.compare_exchange(
        u16::MAX,
        (std::process::id() % u32::from(SPAN)) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 127.0.0.1:{FIRST}..{}", FIRST + SPAN)
}
