use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tokenwarden::cli::Cli::parse(); // clap exits 2 on usage errors
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
