//! The config file made at first run: comments and commented examples, no account.

use std::path::Path;

use super::ConfigError;

pub(super) fn create_example(path: &Path) -> Result<(), ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // create_new: never replace a file that appeared meanwhile.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => std::io::Write::write_all(&mut file, EXAMPLE.as_bytes()).map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// Written when no config exists: every example commented out, so nothing runs until the
/// user chooses.
pub const EXAMPLE: &str = r#"# Tokenwarden configuration. Secrets never go here: `tokenwarden secret set NAME` puts an
# account's client secret in the OS keychain. Uncomment and edit an example to start.

# [api]
# listen = "127.0.0.1:8732"          # loopback only unless allow_remote = true
# max_connections = 1024             # served at once; past it the one idle longest is closed
#                                    # (503 only when all are mid-request)
# idle_timeout = "10s"               # to send a request's headers, or to sit idle between requests
# ask_first = true                   # the tray app asks before a new program takes a token
# ask_timeout = "60s"                # unanswered by then: refused (403 not_approved)
# [api.allow]                        # allowed without asking, by executable path ("*": every account)
# "/usr/bin/curl" = ["fitbit"]

# [refresh]
# per_host = 8                       # refreshes in flight at once against one provider host

# [store]
# kind = "keychain"                  # one OS keychain item per secret (the default); "database"
#                                    # seals them in the data dir under one key kept in the
#                                    # keychain, for thousands of accounts (`tokenwarden store migrate`)

# [[account]]
# name = "fitbit"                     # unique, [a-z0-9_-]+
# provider = "fitbit"                 # Google Health API (Google OAuth), loopback redirect on any port
# client_id = "1234-abc.apps.googleusercontent.com"
# scopes = ["googlehealth.activity_and_fitness.readonly", "googlehealth.sleep.readonly"]

# [[account]]
# name = "weixin"
# provider = "wechat"                 # cgi-bin/token; endpoint = "stable" for cgi-bin/stable_token
# client_id = "wx1234567890"          # the appid; the appsecret goes in the keychain

# [[account]]
# name = "weixin_jsticket"
# provider = "wechat-jsapi-ticket"
# depends_on = "weixin"

# [[account]]
# name = "custom"
# provider = "http"
# url = "https://api.example.com/token"
# method = "GET"
# query = { grant_type = "client_credential", appid = "abc", secret = "{{secret}}" }
# token_field = "access_token"
# expires_in_field = "expires_in"
# error_field = "errcode"
"#;
