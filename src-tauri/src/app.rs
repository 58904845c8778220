//! `tokenwarden-app`: the tray app. A binary of its own, so that the CLI (`tokenwarden`)
//! does not load WebKitGTK and GTK for every command; `tokenwarden` with no command hands
//! over to it. Given a command, it runs the CLI like `tokenwarden` does.

// A release build on Windows is a GUI program: started from the Start menu or at login, it
// opens no console window.
#![cfg_attr(all(windows, not(debug_assertions)), windows_subsystem = "windows")]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tokenwarden::cli::Cli::parse(); // clap exits 2 on usage errors
    tokenwarden::logging::init();
    if cli.command.is_none() {
        // The tray app: Tauri owns the main thread and its own async runtime.
        return match tokenwarden::engine::Context::resolve(cli.config) {
            Ok(ctx) => tokenwarden::desktop::run(ctx, cli.hidden),
            Err(e) => {
                eprintln!("tokenwarden: {e}");
                ExitCode::FAILURE
            }
        };
    }
    tokenwarden::cli::run_to_exit(cli)
}
