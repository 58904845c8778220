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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokenwarden: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tokenwarden::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tokenwarden: {err:#}"); // one line, whole chain
            ExitCode::FAILURE
        }
    }
}
