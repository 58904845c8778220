//! Moving from TokenBoy: `tokenwarden import tokenboy config.py` turns a TokenBoy config
//! (a WeChat token and a jsapi ticket that uses it) into accounts without copying its
//! secret, the result serves both, `GET /token?name=` answers each in the field a TokenBoy
//! client reads, and `[api] keyless_tokenboy` lets one account be read without a key.
//! No argument named like a secret (WeCom's `corpsecret`, a `refresh_token`, a
//! `client_assertion`, a password, a key) is printed: each is left as a `secret set`
//! command that names it, while a template naming another source stays a template. A
//! hostile file (20,000 nested brackets) is one line of error, not a crash.

use tokenwarden_e2e::fakes::wechat::{WeChatConfig, WeChatFake};
use tokenwarden_e2e::{Env, Output};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokenboy_config_becomes_accounts_that_serve_what_its_clients_read() {
    let fake = WeChatFake::start(WeChatConfig::default()).await;
    let (appid, secret) = {
        let st = fake.lock();
        (st.config.appid.clone(), st.config.secret.clone())
    };
    let base = fake.base_url();
    let old = Env::without_config();
    let config_py = old.root().join("config.py");
    std::fs::write(
        &config_py,
        format!(
            "token_sources = {{}}\nbind_ip = '0.0.0.0'\nbind_port = 8888\n\n\
             #A example config for weixin token\n\
             token_sources['weixin'] = {{\n    'url':'{base}/cgi-bin/token',\n    'method':'GET',\n    'args':{{\n        'grant_type':'client_credential',\n        'appid':'{appid}',\n        'secret':'{secret}'\n    }},\n}}\n\n\
             token_sources['weixin_jsticket'] = {{\n    'url':'{base}/cgi-bin/ticket/getticket',\n    'method':'GET',\n    'args':{{\n        'type':'jsapi',\n        'access_token':'{{{{results.weixin.access_token}}}}' #this means the args is the access_token or weixin group\n    }},\n}}\n"
        ),
    )
    .unwrap();

    let out = old
        .run(&["import", "tokenboy", config_py.to_str().unwrap()], None)
        .await
        .ok();
    assert!(
        !out.stdout.contains(&secret) && !out.stderr.contains(&secret),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("tokenwarden secret set weixin   # the appsecret, config.py line 12"),
        "{out}"
    );

    // The printed tables are the config (with keyless_tokenboy for one of them).
    let env = Env::new(&out.stdout);
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    env.write_config(&config.replacen("[api]\n", "[api]\nkeyless_tokenboy = [\"weixin\"]\n", 1));
    env.set_secret("weixin", &secret).await;
    let (serve, api, _) = env.serve_with_new_key("tokenboy").await;
    serve.logged("without a key", 1).await;

    let token = api.get("/token?name=weixin").await.expect(200);
    let access = token["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    assert!(fake.lock().token_alive(&access));
    assert!(token["expires_in"].as_u64().unwrap() > 7000);
    let ticket = api.get("/token?name=weixin_jsticket").await.expect(200);
    assert_eq!(ticket["errcode"], 0, "{ticket}");
    let value = ticket["ticket"]
        .as_str()
        .expect("a ticket client reads `ticket`");
    assert!(fake.lock().ticket_valid(value));
    {
        let st = fake.lock();
        assert_eq!(st.ticket_calls.last().unwrap().access_token, access);
    }

    // Without a key: only weixin's /token, and nothing else.
    let nokey = api.with_key(None);
    assert_eq!(
        nokey.get("/token?name=weixin").await.expect(200)["access_token"],
        access.as_str()
    );
    nokey
        .get("/token?name=weixin_jsticket")
        .await
        .expect_error(401, "unauthorized");
    nokey
        .get("/v1/accounts/weixin/token")
        .await
        .expect_error(401, "unauthorized");
    nokey
        .get("/v1/accounts")
        .await
        .expect_error(401, "unauthorized");
    serve.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_or_an_unknown_placeholder_in_config_py_is_refused_with_its_position() {
    let env = Env::without_config();
    let path = env.root().join("config.py");
    for (text, expected) in [
        (
            "token_sources = {}\ntoken_sources['a'] = {'url': 'https://x.example/t', 'args': {'t': '{{env.HOME}}'}}\n",
            "line 2, column",
        ),
        ("import os\ntoken_sources = {}\n", "line 1, column 8"),
        (
            "token_sources = {}\ntoken_sources['a'] = {'url': open('/etc/passwd').read()}\n",
            "line 2, column 30",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let out = env
            .run(&["import", "tokenboy", path.to_str().unwrap()], None)
            .await;
        assert_eq!(out.code, 1, "{out}");
        assert!(out.stdout.is_empty(), "{out}");
        assert!(out.stderr.contains(expected), "{expected}: {out}");
    }
}

/// Runs `import tokenboy` on `text` written to config.py.
async fn import(env: &Env, text: &str) -> Output {
    let path = env.root().join("config.py");
    std::fs::write(&path, text).unwrap();
    env.run(&["import", "tokenboy", path.to_str().unwrap()], None)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_argument_named_like_a_secret_is_left_behind_and_a_template_stays() {
    let env = Env::without_config();
    let out = import(
        &env,
        "token_sources = {}\n\
         token_sources['wecom'] = {'url': 'https://qyapi.weixin.qq.com/cgi-bin/gettoken', 'method': 'GET',\n\
         \x20   'args': {'corpid': 'ww1', 'corpsecret': 'tw-canary-corpsecret'}}\n\
         token_sources['wecom_ticket'] = {'url': 'https://qyapi.weixin.qq.com/cgi-bin/get_jsapi_ticket',\n\
         \x20   'args': {'access_token': '{{results.wecom.access_token}}', 'type': 'jsapi'}}\n\
         token_sources['renew'] = {'url': 'https://auth.example.com/token', 'method': 'POST',\n\
         \x20   'args': {'grant_type': 'refresh_token', 'client_id': 'c1', 'Refresh_Token': 'tw-canary-refresh'}}\n\
         token_sources['jwt'] = {'url': 'https://auth.example.com/token', 'method': 'POST',\n\
         \x20   'args': {'client_assertion_type': 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',\n\
         \x20            'client_assertion': 'tw-canary-assertion'}}\n\
         token_sources['vendor'] = {'url': 'https://api.example.com/auth', 'args': {'user': 'me', 'PassWord': 'tw-canary-password'}}\n\
         token_sources['pin'] = {'url': 'https://api.example.com/auth', 'args': {'AppKey': 424242}}\n",
    )
    .await
    .ok();
    for canary in [
        "tw-canary-corpsecret",
        "tw-canary-refresh",
        "tw-canary-assertion",
        "tw-canary-password",
        "424242",
    ] {
        assert!(
            !out.stdout.contains(canary) && !out.stderr.contains(canary),
            "{canary} was printed: {out}"
        );
    }
    for line in [
        "tokenwarden secret set wecom   # the `corpsecret` argument, config.py line 3",
        "tokenwarden secret set renew   # the `Refresh_Token` argument, config.py line 7",
        "tokenwarden secret set jwt   # the `client_assertion` argument, config.py line 10",
        "tokenwarden secret set vendor   # the `PassWord` argument, config.py line 11",
        "tokenwarden secret set pin   # the `AppKey` argument, config.py line 12",
    ] {
        assert!(out.stdout.contains(line), "no `{line}`: {out}");
    }
    // What is not a secret is copied: a template naming another source (translated), a grant
    // type whose value is a word with `token` in it, the type of an assertion.
    for kept in [
        "access_token = \"{{accounts.wecom.access_token}}\"",
        "grant_type = \"refresh_token\"",
        "client_assertion_type = \"urn:ietf:params:oauth:client-assertion-type:jwt-bearer\"",
        "corpsecret = \"{{secret}}\"",
    ] {
        assert!(out.stdout.contains(kept), "no `{kept}`: {out}");
    }
    assert!(
        !out.stdout.contains("tokenwarden secret set wecom_ticket"),
        "a template is not a secret: {out}"
    );
    // The printed tables are a config the binary runs with.
    let env = Env::new(&out.stdout);
    let list = env.run(&["list", "--json"], None).await.ok();
    for name in ["wecom", "wecom_ticket", "renew", "jwt", "vendor", "pin"] {
        assert!(list.stdout.contains(&format!("\"{name}\"")), "{list}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_with_two_secrets_or_a_password_in_its_url_is_refused_without_printing_them() {
    let env = Env::without_config();
    for (text, expected) in [
        (
            "token_sources = {}\ntoken_sources['a'] = {'url': 'https://x.example/t', 'method': 'POST',\n    'args': {'client_secret': 'tw-canary-one', 'refresh_token': 'tw-canary-two'}}\n",
            "line 3, column",
        ),
        (
            "token_sources = {}\ntoken_sources['a'] = {'url': 'https://me:tw-canary-url@x.example/t'}\n",
            "line 2, column 30",
        ),
        (
            "token_sources = {}\ntoken_sources['a'] = {'url': 'https://x.example/t', 'args': {'t': 'tw-canary-{{open'}}\n",
            "line 2, column",
        ),
    ] {
        let out = import(&env, text).await;
        assert_eq!(out.code, 1, "{out}");
        assert!(out.stdout.is_empty(), "{out}");
        assert!(out.stderr.contains(expected), "{expected}: {out}");
        assert!(!out.stderr.contains("tw-canary"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_nested_brackets_are_one_line_of_error_not_a_crash() {
    let env = Env::without_config();
    // The 65th bracket is refused: on line 2, at column 5 + 64.
    let out = import(
        &env,
        &format!(
            "token_sources = {{}}\nx = {}{}\n",
            "[".repeat(20_000),
            "]".repeat(20_000)
        ),
    )
    .await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {out}");
    assert!(
        out.stderr.contains("line 2, column 69") && out.stderr.contains("64"),
        "{out}"
    );
}
