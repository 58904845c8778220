//! Canary secrets never leak. A client secret, refresh tokens and a WeChat appsecret that all
//! contain `tw-canary-77c9` go through `secret set`, `connect`, `refresh`, failing refreshes
//! (whose provider answers quote the refresh token back, as Fitbit's do) and `serve`, all with
//! `TOKENWARDEN_LOG=trace` (and `serve` with every dependency tracing too, and proxying
//! requests with tokens in a header and in a query). That canary must
//! never appear in any output, in the config file or in any file of the data dir (history
//! database included). Access tokens carry `tw-canary-4be1` and may appear only where the user
//! asked for them: the stdout of `token`, and of `git-credential get` and `kube-credential`,
//! whose stdout is read by git and kubectl.

use std::time::Duration;

use base64::Engine as _;
use tokenwarden_e2e::fakes::oauth::{Fault, OAuthConfig, OAuthFake};
use tokenwarden_e2e::fakes::wechat::{WeChatConfig, WeChatFake};
use tokenwarden_e2e::harness::{files_containing, free_port};
use tokenwarden_e2e::{wait_until, Env, Output};

/// In refresh tokens, client secrets and the appsecret: never printed or written anywhere.
const NEVER: &str = "tw-canary-77c9";
/// In access tokens: printed by `token` only.
const ACCESS: &str = "tw-canary-4be1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_never_leak() {
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let mut oauth = OAuthConfig::fitbit_legacy(&redirect).expires_in(12);
    oauth.client_secret = format!("{NEVER}-client-secret-5e6f");
    oauth.access_token_prefix = format!("{ACCESS}-at-");
    oauth.refresh_token_prefix = format!("{NEVER}-rt-");
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", oauth.client_id, oauth.client_secret));
    let fake = OAuthFake::start(oauth.clone()).await;
    let wechat = WeChatConfig {
        secret: format!("{NEVER}-appsecret-9a8b"),
        token_prefix: format!("{ACCESS}-wx-"),
        expires_in: 12,
        overlap: Duration::from_secs(2),
        ..WeChatConfig::default()
    };
    let wx = WeChatFake::start(wechat.clone()).await;
    let extra = format!(
        "redirect_uri = \"{redirect}\"\nrefresh_before = \"8s\"\napi_base = \"{}\"\ngit_hosts = [\"git.example.test\"]",
        fake.url("/api")
    );
    let mut env =
        Env::new(&(fake.account_toml("fb", "fitbit-legacy", &extra) + &wx.account_toml("wx", "")));
    env.log = "trace".into();

    env.set_secret("fb", &oauth.client_secret).await;
    env.set_secret("wx", &wechat.secret).await;
    env.connect("fb").await;
    env.token("fb").await;
    env.run(&["token", "fb", "--header"], None).await.ok();
    env.run(&["refresh", "fb"], None).await.ok();
    env.run(&["refresh", "wx"], None).await.ok();
    env.token("wx").await;

    // Not a bare level, so dependencies (hyper, reqwest, oauth2) trace too.
    env.log = "trace,tokenwarden=trace".into();
    let key = env.create_api_key("leaks").await;
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;
    // Proxied calls carry tokens in a header (fb) and in the query (wx), and one is refused
    // and retried with a new token: none of it may reach serve's trace log.
    let api = tokenwarden_e2e::Api::new(env.api_port, Some(&key));
    api.get("/v1/proxy/wx/cgi-bin/check?openid=o1")
        .await
        .expect(200);
    api.get("/v1/proxy/fb/profile?x=1").await.expect(200);
    fake.kill_access_token();
    let refused = api.get("/v1/proxy/fb/profile?x=2").await;
    // 401 passed on when the token is under 5 s old (a report then gets the same token).
    assert!(matches!(refused.status, 200 | 401), "{refused}");
    let (grants, wx_tokens) = (fake.lock().refresh_grants, wx.lock().tokens_issued());
    wait_until(
        Duration::from_secs(30),
        "serve refreshed both accounts",
        async || fake.lock().refresh_grants >= grants + 2 && wx.lock().tokens_issued() > wx_tokens,
    )
    .await;
    let served = serve.stop().await;
    assert!(
        served.stderr.lines().count() > 3,
        "serve logged at trace:\n{served}"
    );
    env.log = "trace".into();

    // The programs that take tokens in their own formats: on stdout when asked, nowhere else,
    // also when a token is refused (git's erase) or the account is not the kind asked for.
    let git = "protocol=https\nhost=git.example.test\n\n";
    env.run(&["git-credential", "get"], Some(git)).await.ok();
    let refused = fake.lock().current_access_token().expect("a token");
    let erase =
        format!("protocol=https\nhost=git.example.test\nusername=oauth2\npassword={refused}\n\n");
    env.run(&["git-credential", "erase"], Some(&erase))
        .await
        .ok();
    env.run(&["kube-credential", "fb", "--min-valid", "0s"], None)
        .await
        .ok();
    assert_eq!(env.run(&["mcp", "fb"], Some("")).await.code, 1);

    // Failing refreshes whose answers quote the refresh token back.
    let rt = fake.lock().latest_refresh_token().expect("a refresh token");
    let body =
        format!("{{\"error\":\"temporarily_unavailable\",\"error_description\":\"retry {rt}\"}}");
    fake.fail_next(
        1,
        Fault::Status {
            status: 503,
            retry_after: None,
            body,
        },
    );
    assert_eq!(env.run(&["refresh", "fb"], None).await.code, 1);
    fake.fail_next(1, Fault::OAuthError("invalid_grant"));
    assert_eq!(env.run(&["refresh", "fb"], None).await.code, 1);
    env.run(&["list", "--json"], None).await.ok();
    env.run(&["list"], None).await.ok();
    env.run(&["log", "--json"], None).await.ok();
    env.run(&["log", "fb"], None).await.ok();

    let mut outputs: Vec<Output> = env.transcript.lock().unwrap().clone();
    outputs.push(served);
    let never = [NEVER, basic.as_str()];
    for out in &outputs {
        for canary in never {
            assert!(
                !out.stdout.contains(canary) && !out.stderr.contains(canary),
                "{canary} leaked:\n{out}"
            );
        }
        assert!(
            !out.stderr.contains(ACCESS),
            "an access token in stderr:\n{out}"
        );
        let asked = ["token", "git-credential", "kube-credential"];
        if !out
            .args
            .first()
            .is_some_and(|a| asked.contains(&a.as_str()))
        {
            assert!(
                !out.stdout.contains(ACCESS),
                "an access token on stdout, unasked:\n{out}"
            );
        }
    }
    let printed = outputs
        .iter()
        .filter(|o| o.args[0] == "token" && o.stdout.contains(ACCESS))
        .count();
    assert_eq!(
        printed, 3,
        "`token` did print the access tokens it was asked for"
    );

    // The temp dir holds the config file and the data dir (history database, lock, ...).
    assert!(
        env.data_dir.join("history.sqlite3").exists(),
        "the history database was written"
    );
    for canary in [NEVER, ACCESS, basic.as_str()] {
        let files = files_containing(env.root(), canary);
        assert!(files.is_empty(), "{canary} written to {files:?}");
    }
}
