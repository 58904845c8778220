//! Writes what the packages ship beside the binaries, generated from the CLI's own clap
//! definitions so that they can never disagree with `--help`: shell completions (bash, zsh,
//! fish) and a man page for `tokenwarden` and for every command (`tokenwarden-serve.1`, …).
//!
//! `cargo run --example package-docs -- OUT_DIR` (the Makefile's `package` and `install`)
//! writes `OUT_DIR/completions/{tokenwarden.bash,_tokenwarden,tokenwarden.fish}` and
//! `OUT_DIR/man/*.1`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: package-docs OUT_DIR");
        return ExitCode::from(2);
    };
    match write(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("package-docs: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn write(out: &std::path::Path) -> std::io::Result<()> {
    let completions = out.join("completions");
    let man = out.join("man");
    std::fs::create_dir_all(&completions)?;
    std::fs::create_dir_all(&man)?;
    let mut cli = tokenwarden::cli::Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        // bash: tokenwarden.bash, zsh: _tokenwarden, fish: tokenwarden.fish.
        clap_complete::generate_to(shell, &mut cli, "tokenwarden", &completions)?;
    }
    cli.build();
    pages(&cli, "tokenwarden", &man)
}

/// One page per command, named the way `man tokenwarden-serve` finds them (clap's own
/// `help` commands get none: `man tokenwarden` already is that).
fn pages(cmd: &clap::Command, name: &str, man: &std::path::Path) -> std::io::Result<()> {
    // A one-shot program: the few names leaked here live as long as it does anyway.
    let page = cmd.clone().name(&*name.to_owned().leak());
    let mut text = Vec::new();
    clap_mangen::Man::new(page).render(&mut text)?;
    std::fs::write(man.join(format!("{name}.1")), text)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        pages(sub, &format!("{name}-{}", sub.get_name()), man)?;
    }
    Ok(())
}
