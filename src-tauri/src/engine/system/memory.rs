//! Memory the process freed, handed back to the system. Reading a config of 100,000 accounts
//! peaks at several times what the engine keeps (the TOML parser's tokens and tables); glibc
//! keeps such a peak in its heap unless asked to return it.

/// Returns the free pages of glibc's heaps to the system (a no-op elsewhere). Takes a few
/// milliseconds on a large heap: call it after a start or a reload, not per request.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn give_back() {
    // SAFETY: malloc_trim only releases free memory from the allocator's heaps; it takes the
    // allocator's own locks and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn give_back() {}
