//! `tokenwarden` with no command: the tray app, which is the binary `tokenwarden-app` beside
//! this one (see `main.rs` for why it is separate). On Unix the process becomes the app
//! (same pid, arguments and environment), so whoever started `tokenwarden` holds the app; on
//! Windows the app starts on its own, as GUI programs do.

use std::process::ExitCode;

/// The tray app's file name, beside the CLI's.
pub const APP_BINARY: &str = if cfg!(windows) {
    "tokenwarden-app.exe"
} else {
    "tokenwarden-app"
};

pub fn start() -> ExitCode {
    let app = match std::env::current_exe() {
        Ok(me) => me.with_file_name(APP_BINARY),
        Err(e) => {
            eprintln!("tokenwarden: cannot find where this binary is ({e}), so not the tray app beside it either");
            return ExitCode::FAILURE;
        }
    };
    if !app.exists() {
        eprintln!(
            "tokenwarden: the tray app is not installed ({} does not exist; it is built with the `desktop` feature). `tokenwarden serve` runs the engine without it; `tokenwarden --help` lists the commands",
            app.display()
        );
        return ExitCode::FAILURE;
    }
    let mut command = std::process::Command::new(&app);
    command.args(std::env::args_os().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = command.exec(); // returns only on failure
        eprintln!(
            "tokenwarden: cannot start the tray app {}: {e}",
            app.display()
        );
        ExitCode::FAILURE
    }
    // Windows: the app is a GUI program with no console; like any started from a console, it
    // runs on its own and the console is given back at once.
    #[cfg(not(unix))]
    match command.spawn() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "tokenwarden: cannot start the tray app {}: {e}",
                app.display()
            );
            ExitCode::FAILURE
        }
    }
}
