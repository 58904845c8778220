//! The accounts a new key is limited to, checked against the config once, here, for every
//! front end that makes keys: a name the config lacks would make a key that opens nothing,
//! and nobody would notice until a program failed with it.

use crate::engine::config::Config;
use crate::engine::names::AccountName;

use super::ApiKeyError;

/// Some accounts, at least one, each named in the config when the key was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope(Vec<AccountName>);

impl Scope {
    pub fn new(accounts: Vec<AccountName>, config: &Config) -> Result<Self, ApiKeyError> {
        if accounts.is_empty() {
            return Err(ApiKeyError::NoAccounts);
        }
        if let Some(name) = accounts.iter().find(|n| config.account(n).is_none()) {
            return Err(ApiKeyError::NotInConfig {
                name: name.clone(),
                config: config.path.clone(),
            });
        }
        Ok(Self(accounts))
    }

    pub fn accounts(&self) -> &[AccountName] {
        &self.0
    }

    pub(super) fn into_accounts(self) -> Vec<AccountName> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "[[account]]\nname = \"fb\"\nprovider = \"wechat\"\nclient_id = \"wx1\"\n";
        Config::parse(std::path::Path::new("/etc/tw/config.toml"), text).unwrap()
    }

    fn names(list: &[&str]) -> Vec<AccountName> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn a_scope_names_only_accounts_the_config_has_and_at_least_one() {
        let scope = Scope::new(names(&["fb"]), &config()).unwrap();
        assert_eq!(scope.accounts(), names(&["fb"]).as_slice());
        let typo = Scope::new(names(&["fb", "wxx"]), &config()).unwrap_err();
        assert_eq!(
            typo.to_string(),
            "--accounts: no account is named `wxx` in /etc/tw/config.toml"
        );
        assert!(matches!(
            Scope::new(Vec::new(), &config()),
            Err(ApiKeyError::NoAccounts)
        ));
    }
}
