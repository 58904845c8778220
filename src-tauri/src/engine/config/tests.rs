use super::*;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(Path::new("config.toml"), text).map_err(|e| e.to_string())
}

#[test]
fn two_accounts_fetching_one_appid_on_the_token_endpoint_are_refused() {
    let table = |name: &str, extra: &str| {
        format!(
            "[[account]]\nname = \"{name}\"\nprovider = \"wechat\"\nclient_id = \"wx1\"\n{extra}\n"
        )
    };
    let err = parse(&(table("a", "") + &table("b", ""))).unwrap_err();
    assert!(
        err.starts_with("config.toml:9:"),
        "points at b's client_id: {err}"
    );
    assert!(
        err.contains("`wx1` is already fetched by account `a`"),
        "{err}"
    );
    // The stable endpoint hands both the same token: no conflict.
    let stable = "endpoint = \"stable\"";
    parse(&(table("a", stable) + &table("b", stable))).unwrap();
    parse(&(table("a", "") + &table("b", "").replace("wx1", "wx2"))).unwrap();
}

#[test]
fn proxy_targets_come_from_the_preset_or_api_base() {
    let config = parse(
        r#"
[[account]]
name = "gh"
provider = "github"
client_id = "x"
[[account]]
name = "wx"
provider = "wechat"
client_id = "wx1"
[[account]]
name = "own"
provider = "oauth2"
client_id = "x"
token_url = "https://auth.example/token"
grant = "client_credentials"
api_base = "https://api.example/v2"
token_in = "query:key"
proxy_cookies = true
[[account]]
name = "none"
provider = "oauth2"
client_id = "x"
token_url = "https://auth.example/token"
grant = "client_credentials"
"#,
    )
    .unwrap();
    let target = |n: &str| config.account(&n.parse().unwrap()).unwrap().proxy.clone();
    let gh = target("gh").unwrap();
    assert_eq!(gh.base.as_str(), "https://api.github.com/");
    assert_eq!(gh.token_in, proxy_target::TokenIn::Header);
    let wx = target("wx").unwrap();
    assert_eq!(
        wx.token_in,
        proxy_target::TokenIn::Query("access_token".into())
    );
    assert!(wx.errcodes);
    let own = target("own").unwrap();
    assert_eq!(own.base.as_str(), "https://api.example/v2");
    assert_eq!(own.token_in, proxy_target::TokenIn::Query("key".into()));
    assert!(
        own.cookies && !gh.cookies && !wx.cookies,
        "cookies only when asked for"
    );
    assert_eq!(target("none"), None);
    let err = parse("[[account]]\nname = \"a\"\nprovider = \"oauth2\"\nclient_id = \"x\"\ntoken_url = \"https://auth.example/token\"\ngrant = \"client_credentials\"\nproxy_cookies = true\n").unwrap_err();
    assert!(
        err.contains("proxy_cookies") && err.contains("api_base"),
        "{err}"
    );
    let err = parse("[[account]]\nname = \"a\"\nprovider = \"github\"\nclient_id = \"x\"\napi_base = \"http://api.example\"\n").unwrap_err();
    assert!(
        err.contains("api_base") && err.contains("plain http"),
        "{err}"
    );
}

#[test]
fn example_parses_to_nothing() {
    assert!(parse(EXAMPLE).unwrap().accounts.is_empty());
}

#[test]
fn the_design_example_parses() {
    let text = r#"
[api]
listen = "127.0.0.1:8732"
[[account]]
name = "fitbit"
provider = "fitbit"
client_id = "1234-abc.apps.googleusercontent.com"
scopes = ["googlehealth.activity_and_fitness.readonly"]
[[account]]
name = "fitbit-old"
provider = "fitbit-legacy"
client_id = "22942C"
redirect_uri = "http://127.0.0.1:8733/callback"
[[account]]
name = "weixin"
provider = "wechat"
client_id = "wx1234567890"
base_url = "https://api.weixin.qq.com"
[[account]]
name = "weixin_jsticket"
provider = "wechat-jsapi-ticket"
depends_on = "weixin"
[[account]]
name = "custom"
provider = "http"
url = "https://api.example.com/token"
method = "GET"
query = { grant_type = "client_credential", appid = "abc", secret = "{{secret}}" }
token_field = "access_token"
expires_in_field = "expires_in"
error_field = "errcode"
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.accounts.len(), 5);
    let Provider::OAuth2(fitbit) = &config.accounts[0].provider else {
        panic!()
    };
    assert_eq!(
        fitbit.scopes[0],
        "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly"
    );
    assert!(fitbit
        .auth_params
        .contains(&("access_type".into(), "offline".into())));
    assert_eq!(
        config.accounts[3].upstream,
        vec!["weixin".parse::<AccountName>().unwrap()]
    );
    assert!(config.accounts[4].provider.needs_secret());
}

#[test]
fn errors_name_line_account_and_key() {
    let text = "[[account]]\nname = \"fb\"\nprovider = \"fitbt\"\n";
    let e = parse(text).unwrap_err();
    assert!(
        e.starts_with("config.toml:3:12: account `fb`: key `provider`: unknown provider `fitbt`"),
        "{e}"
    );

    let e = parse(
        "[[account]]\nname = \"a\"\nprovider = \"wechat\"\nclient_id = \"x\"\nclientid = \"y\"\n",
    )
    .unwrap_err();
    assert!(
        e.contains(":5:1: account `a`: key `clientid`: unknown field"),
        "{e}"
    );

    let e = parse("[[account]]\nname = \"a\"\nprovider = \"wechat\"\nclient_id = \"x\"\n[[account]]\nname = \"a\"\nprovider = \"wechat\"\nclient_id = \"x\"\n").unwrap_err();
    assert!(
        e.contains(":6:8: account `a`: key `name`: duplicate account name `a`"),
        "{e}"
    );

    let e = parse("[[account]\nname = 1").unwrap_err();
    assert!(e.starts_with("config.toml:1:"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn cycles_are_refused() {
    let text = r#"
[[account]]
name = "a"
provider = "wechat-jsapi-ticket"
depends_on = "b"
[[account]]
name = "b"
provider = "wechat-jsapi-ticket"
depends_on = "a"
"#;
    let e = parse(text).unwrap_err();
    assert!(
        e.contains("key `depends_on`: dependency cycle: a → b → a"),
        "{e}"
    );
}

#[test]
fn keys_a_provider_ignores_are_refused() {
    let e = parse(
        "[[account]]\nname = \"a\"\nprovider = \"wechat\"\nclient_id = \"x\"\nurl = \"http://x\"\n",
    )
    .unwrap_err();
    assert!(
        e.contains("account `a`: key `url`: provider `wechat` does not use this key"),
        "{e}"
    );
}

#[test]
fn remote_listen_needs_consent() {
    let e = parse("[api]\nlisten = \"0.0.0.0:8732\"\n").unwrap_err();
    assert!(e.contains("key `listen`"), "{e}");
    assert!(parse("[api]\nlisten = \"0.0.0.0:8732\"\nallow_remote = true\n").is_ok());
}
