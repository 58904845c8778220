//! `tokenwarden import tokenboy PATH/config.py`: TokenBoy's `token_sources` as Tokenwarden
//! accounts, printed for the config file, and the `secret set` commands that move its
//! secrets into the keychain. config.py is read as data, never run.
//! * `pyliteral` the literal subset of Python TokenBoy's config is written in
//! * `translate` sources → `[[account]]` tables   * `http` an `http` account and its secret
//! * `placeholder` `{{results.NAME.access_token}}` → `{{accounts.NAME.access_token}}`
//! * `source` a checked entry, import errors and TOML strings, shared by the others

mod http;
mod placeholder;
mod pyliteral;
mod source;
mod translate;

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

pub fn run(path: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let statements =
        pyliteral::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let imported = translate::translate(&statements)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# Imported from {} by `tokenwarden import tokenboy`. Append to your config file.",
        path.display()
    )?;
    if !imported.secrets.is_empty() {
        writeln!(
            out,
            "# Then move the secrets into the keychain (each command reads the secret from stdin):"
        )?;
        for (name, what, at) in &imported.secrets {
            writeln!(
                out,
                "#   tokenwarden secret set {name}   # {what}, config.py {at}"
            )?;
        }
    }
    writeln!(out)?;
    write!(out, "{}", imported.toml)?;
    Ok(())
}
