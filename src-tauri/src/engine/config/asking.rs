//! `[api] ask_first`, `ask_timeout` and `[api.allow]`: which programs take which accounts'
//! tokens without the user being asked. Programs are named by their executable's absolute
//! path, the one thing about a caller that the kernel vouches for and a script cannot
//! choose (its name and arguments it can).

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::Problem;
use super::raw::RawApi;
use crate::engine::names::AccountName;

#[derive(Clone, Debug, Default)]
pub struct AskSettings {
    /// Ask before a program not yet known takes an account's token.
    pub ask_first: bool,
    /// How long a request waits for the answer before it is refused.
    pub timeout: Duration,
    /// Programs allowed without asking, by executable path.
    pub allow: BTreeMap<String, Allowed>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// `"*"`: every account.
    Every,
    Only(Vec<AccountName>),
}

impl AskSettings {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    /// Whether the config lets `exe` take `account`'s token without asking.
    pub fn allows(&self, exe: Option<&str>, account: &AccountName) -> bool {
        match exe.and_then(|exe| self.allow.get(exe)) {
            Some(Allowed::Every) => true,
            Some(Allowed::Only(names)) => names.contains(account),
            None => false,
        }
    }
}

pub(super) fn resolve(api: &RawApi, names: &[AccountName]) -> Result<AskSettings, Problem> {
    let timeout = match &api.ask_timeout {
        None => AskSettings::DEFAULT_TIMEOUT,
        Some(v) => super::fields::duration_at_most(v, "ask_timeout", Duration::from_secs(600))?
            .max(Duration::from_secs(1)),
    };
    let mut allow = BTreeMap::new();
    if let Some(table) = &api.allow {
        let at = |message: String| Problem::new(table.span(), Some("allow"), message);
        for (exe, accounts) in table.get_ref() {
            if !std::path::Path::new(exe).is_absolute() {
                return Err(at(format!(
                    "`{exe}` is not an absolute path: programs are allowed by their executable's full path, e.g. \"/usr/bin/python3\""
                )));
            }
            let allowed = if accounts.iter().any(|a| a == "*") {
                Allowed::Every
            } else {
                let mut only = Vec::new();
                for raw in accounts {
                    let name: AccountName =
                        raw.parse()
                            .map_err(|e: crate::engine::names::BadAccountName| {
                                at(format!("`{exe}`: {e}"))
                            })?;
                    if !names.contains(&name) {
                        return Err(at(format!(
                            "`{exe}`: no account is named `{name}` (use \"*\" for every account)"
                        )));
                    }
                    only.push(name);
                }
                Allowed::Only(only)
            };
            allow.insert(exe.clone(), allowed);
        }
    }
    Ok(AskSettings {
        ask_first: api.ask_first.unwrap_or(false),
        timeout,
        allow,
    })
}

#[cfg(test)]
mod tests {
    use crate::engine::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(std::path::Path::new("config.toml"), text).map_err(|e| e.to_string())
    }

    const ACCOUNT: &str = "[[account]]\nname = \"fb\"\nprovider = \"fitbit\"\nclient_id = \"c\"\n";

    #[test]
    fn the_allow_list_names_programs_by_path_and_accounts_by_name() {
        let config = parse(&format!(
            "[api]\nask_first = true\nask_timeout = \"5s\"\n[api.allow]\n\"/usr/bin/python3\" = [\"fb\"]\n\"/opt/sync\" = [\"*\"]\n{ACCOUNT}"
        ))
        .unwrap();
        let asking = &config.api.asking;
        let fb = "fb".parse().unwrap();
        let other = "other".parse().unwrap();
        assert!(asking.ask_first);
        assert_eq!(asking.timeout, std::time::Duration::from_secs(5));
        assert!(asking.allows(Some("/usr/bin/python3"), &fb));
        assert!(!asking.allows(Some("/usr/bin/python3"), &other));
        assert!(asking.allows(Some("/opt/sync"), &other));
        assert!(!asking.allows(Some("/usr/bin/curl"), &fb));
        assert!(!asking.allows(None, &fb));
    }

    #[test]
    fn a_relative_program_or_an_unknown_account_is_refused_with_its_line() {
        let relative =
            parse(&format!("[api.allow]\n\"python3\" = [\"fb\"]\n{ACCOUNT}")).unwrap_err();
        assert!(
            relative.starts_with("config.toml:1:"),
            "names where: {relative}"
        );
        assert!(relative.contains("not an absolute path"), "{relative}");
        let unknown = parse(&format!(
            "[api.allow]\n\"/usr/bin/python3\" = [\"fitbit\"]\n{ACCOUNT}"
        ))
        .unwrap_err();
        assert!(
            unknown.contains("no account is named `fitbit`"),
            "{unknown}"
        );
    }
}
