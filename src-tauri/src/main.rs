//! `tokenwarden`: the CLI and the headless engine (`serve`). It links none of the tray app's
//! libraries (WebKitGTK, GTK: 169 shared objects that took 50 ms to load for every command);
//! with no command it hands over to the tray app, `tokenwarden-app`, installed beside it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = tokenwarden::cli::Cli::parse(); // clap exits 2 on usage errors
    if cli.command.is_none() {
        return tokenwarden::cli::tray_app::start();
    }
    tokenwarden::logging::init();
    tokenwarden::cli::run_to_exit(cli)
}

/// glibc gives each thread that allocates while the others hold their arenas an arena of its
/// own, up to eight per core, and keeps each one's high-water mark. The engine's work is
/// spread over tokio's workers and blocking threads (keychain, SQLite), so with 10,000
/// accounts the arenas, not the data, made the difference between 85 and 97 MiB resident
/// (BENCHMARKS.md). Two arenas are plenty for a process whose hot path is one atomic read.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a malloc parameter; it is called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
