//! `tokenwarden`: the CLI and the headless engine (`serve`). It links none of the tray app's
//! libraries (WebKitGTK, GTK: 169 shared objects that took 50 ms to load for every command);
//! with no command it hands over to the tray app, `tokenwarden-app`, installed beside it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tokenwarden::cli::Cli::parse(); // clap exits 2 on usage errors
    if cli.command.is_none() {
        return tokenwarden::cli::tray_app::start();
    }
    tokenwarden::logging::init();
    tokenwarden::cli::run_to_exit(cli)
}
