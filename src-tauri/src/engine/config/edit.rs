//! Changes to the config file made by the window: add an account, remove one. The user's
//! comments, order and formatting are kept (toml_edit); the new text is checked by the same
//! loader before anything is written, and a file that does not parse is never rewritten, so
//! a mistake made by hand is shown with its line and nothing is lost.

use std::path::Path;

use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

use super::{Config, ConfigError};
use crate::engine::names::AccountName;

/// An account as the window's form describes it: a preset and its few fields.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub name: String,
    pub provider: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub depends_on: Option<String>,
    #[serde(default)]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub auth_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
}

/// Appends an `[[account]]` table. Refused (nothing written) if the file has an error, the
/// name is taken, or the new account does not resolve.
pub fn add_account(path: &Path, new: &NewAccount) -> Result<AccountName, ConfigError> {
    let (current, mut doc) = read(path)?;
    let name: AccountName = new
        .name
        .trim()
        .parse()
        .map_err(|e| invalid(path, format!("{e}")))?;
    if current.account(&name).is_some() {
        return Err(invalid(
            path,
            format!("an account named `{name}` already exists; pick another name"),
        ));
    }
    let mut table = Table::new();
    table.insert("name", value(name.as_str()));
    table.insert("provider", value(new.provider.trim()));
    let texts = [
        ("client_id", &new.client_id),
        ("issuer", &new.issuer),
        ("url", &new.url),
        ("base_url", &new.base_url),
        ("depends_on", &new.depends_on),
        ("redirect_uri", &new.redirect_uri),
        ("auth_url", &new.auth_url),
        ("token_url", &new.token_url),
    ];
    for (key, text) in texts {
        if let Some(text) = text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            table.insert(key, value(text));
        }
    }
    let scopes: Array = new
        .scopes
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if !scopes.is_empty() {
        table.insert("scopes", value(scopes));
    }
    match doc.get_mut("account") {
        Some(Item::ArrayOfTables(accounts)) => accounts.push(table),
        Some(_) => return Err(invalid(path, "`account` is not an array of tables".into())),
        None => {
            let mut accounts = ArrayOfTables::new();
            accounts.push(table);
            doc.insert("account", Item::ArrayOfTables(accounts));
        }
    }
    write_checked(path, &doc.to_string())?;
    Ok(name)
}

/// Removes an account's table (its keychain items are the engine's business).
pub fn remove_account(path: &Path, name: &AccountName) -> Result<(), ConfigError> {
    let (_, mut doc) = read(path)?;
    let Some(Item::ArrayOfTables(accounts)) = doc.get_mut("account") else {
        return Err(invalid(path, format!("no account is named `{name}`")));
    };
    let index = accounts
        .iter()
        .position(|t| t.get("name").and_then(Item::as_str) == Some(name.as_str()))
        .ok_or_else(|| invalid(path, format!("no account is named `{name}`")))?;
    accounts.remove(index);
    write_checked(path, &doc.to_string())
}

/// Sets `[store] kind`, keeping everything else (comments included) as written.
pub fn set_store_kind(path: &Path, kind: super::StoreKind) -> Result<(), ConfigError> {
    let (_, mut doc) = read(path)?;
    if !doc.contains_table("store") {
        doc.insert("store", Item::Table(toml_edit::Table::new()));
    }
    doc["store"]["kind"] = toml_edit::value(kind.as_str());
    write_checked(path, &doc.to_string())
}

/// Sets `[api] ask_first`, keeping everything else as written.
pub fn set_ask_first(path: &Path, on: bool) -> Result<(), ConfigError> {
    let (_, mut doc) = read(path)?;
    if !doc.contains_table("api") {
        doc.insert("api", Item::Table(toml_edit::Table::new()));
    }
    doc["api"]["ask_first"] = toml_edit::value(on);
    write_checked(path, &doc.to_string())
}

/// The file as the loader reads it and as an editable document; a file the loader refuses
/// is an error (located, one line; nothing written).
fn read(path: &Path) -> Result<(Config, DocumentMut), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    let config = Config::parse(path, &text)?;
    let doc = text
        .parse::<DocumentMut>()
        .map_err(|e| invalid(path, e.to_string()))?;
    Ok((config, doc))
}

/// Checks the new text with the loader, then replaces the file in one rename.
fn write_checked(path: &Path, text: &str) -> Result<(), ConfigError> {
    Config::parse(path, text)?;
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    // The user chose who may read their config: its mode stays.
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o777)
    };
    #[cfg(not(unix))]
    let mode = 0o600;
    crate::engine::system::private::replace(path, text.as_bytes(), mode).map_err(io)
}

fn invalid(path: &Path, message: String) -> ConfigError {
    ConfigError::Invalid(Box::new(super::error::Located {
        path: path.to_owned(),
        line: 0,
        column: 0,
        account: None,
        key: None,
        message,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAND_WRITTEN: &str = "# my tokens\n[api]\nlisten = \"127.0.0.1:8732\" # the port\n\n[[account]]\nname = \"wx\" # prod appid\nprovider = \"wechat\"\nclient_id = \"wx1\"\n";

    #[test]
    fn adding_and_removing_keeps_comments_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, HAND_WRITTEN).unwrap();
        let new = NewAccount {
            name: "fitbit".into(),
            provider: "fitbit".into(),
            client_id: Some("123.apps.googleusercontent.com".into()),
            scopes: vec!["googlehealth.sleep.readonly".into()],
            ..NewAccount::default()
        };
        add_account(&path, &new).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HAND_WRITTEN), "{text}");
        let config = Config::load(&path).unwrap();
        assert_eq!(config.accounts.len(), 2);
        assert_eq!(config.accounts[1].name.as_str(), "fitbit");
        // The same name again is refused and nothing changes.
        let before = std::fs::read(&path).unwrap();
        assert!(add_account(&path, &new)
            .unwrap_err()
            .to_string()
            .contains("already exists"));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        remove_account(&path, &"fitbit".parse().unwrap()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), HAND_WRITTEN);
    }

    #[test]
    fn a_broken_file_or_a_bad_account_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let broken = "[[account]]\nname = \"a\"\nprovider = \"fitbt\"\n";
        std::fs::write(&path, broken).unwrap();
        let new = NewAccount {
            name: "b".into(),
            provider: "wechat".into(),
            client_id: Some("wx".into()),
            ..NewAccount::default()
        };
        let err = add_account(&path, &new).unwrap_err().to_string();
        assert!(err.contains(":3:"), "names the line: {err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
        std::fs::write(&path, "").unwrap();
        let bad = NewAccount {
            name: "c".into(),
            provider: "nope".into(),
            ..NewAccount::default()
        };
        assert!(add_account(&path, &bad).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }
}
