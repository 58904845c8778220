//! `ANY /v1/proxy/{name}/{path…}` against the fake providers' APIs: the token goes where the
//! provider wants it, a refusal is reported and the request sent once more with the new token,
//! refusals of many callers share one refresh, a provider that refuses everything costs one
//! refresh and not a loop, and nothing outside the account's `api_base` is reachable.

use std::time::Duration;

use futures_util::future::join_all;
use tokenwarden_e2e::api::Request;
use tokenwarden_e2e::fakes::oauth::OAuthFake;
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{Api, Env, Serve};

/// `fb` connected on the legacy fake, `api_base` its `/api`, serve running with a key.
async fn legacy() -> (OAuthFake, Env, Serve, Api, String) {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .another_account("nc")
        .connected(3600)
        .await;
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    let with_base = config.replacen(
        "name = \"fb\"\n",
        &format!("name = \"fb\"\napi_base = \"{}\"\n", fake.url("/api")),
        1,
    );
    assert_ne!(with_base, config);
    env.write_config(&with_base);
    let (serve, api, key) = env.serve_with_new_key("proxy").await;
    (fake, env, serve, api, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_renewed_once_and_the_caller_sees_only_the_second_answer() {
    let (fake, _env, _serve, api, key) = legacy().await;
    let before = fake.lock().current_access_token().unwrap();

    // A valid token: one call, the token in the header, the caller's key not forwarded.
    let body = vec![b'z'; 300_000];
    let a = api
        .send(
            Request::new("POST", "/v1/proxy/fb/v1/items?x=1&y=a%20b")
                .header("X-Custom", "kept")
                .body("application/octet-stream", body.clone()),
        )
        .await;
    let echo = a.expect(200);
    assert_eq!(echo["path"], "/api/v1/items");
    assert_eq!(echo["query"]["x"], "1");
    assert_eq!(echo["query"]["y"], "a b");
    assert_eq!(echo["body_len"], 300_000);
    {
        let st = fake.lock();
        assert_eq!(st.api_calls.len(), 1);
        let call = &st.api_calls[0];
        assert_eq!(call.bearer.as_deref(), Some(before.as_str()));
        assert!(call
            .headers
            .iter()
            .any(|(k, v)| k == "x-custom" && v == "kept"));
        assert!(
            call.headers.iter().all(|(_, v)| !v.contains(&key)),
            "the API key reached the provider: {:?}",
            call.headers
        );
        assert_eq!(st.refresh_grants, 0);
    }

    // The provider revokes the token on its side: refused, renewed once, sent again.
    fake.kill_access_token();
    let a = api.get("/v1/proxy/fb/profile").await;
    assert_eq!(a.expect(200)["path"], "/api/profile", "{a}");
    let st = fake.lock();
    assert_eq!(st.refresh_grants, 1, "one refresh");
    let after = st.current_access_token().unwrap();
    assert_ne!(after, before);
    let bearers: Vec<_> = st.api_calls[1..]
        .iter()
        .map(|c| (c.bearer.clone().unwrap_or_default(), c.answered))
        .collect();
    assert_eq!(bearers, vec![(before, 401), (after, 200)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_refuses_everything_costs_one_refresh_not_a_loop() {
    let (fake, _env, _serve, api, _) = legacy().await;
    fake.lock().api_refuses_everything = true;
    let a = api.get("/v1/proxy/fb/profile").await;
    assert_eq!(
        a.status, 401,
        "the provider's own refusal is passed on: {a}"
    );
    assert!(a.body.contains("expired_token"), "{a}");
    let st = fake.lock();
    assert_eq!(st.refresh_grants, 1);
    assert_eq!(st.api_calls.len(), 2, "the first try and one retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_refused_calls_share_one_refresh() {
    let (fake, _env, _serve, api, _) = legacy().await;
    let before = fake.lock().current_access_token().unwrap();
    fake.kill_access_token();
    let answers = join_all((0..100).map(|i| {
        let api = api.clone();
        async move { api.get(&format!("/v1/proxy/fb/n/{i}")).await }
    }))
    .await;
    for a in &answers {
        assert_eq!(a.status, 200, "{a}");
    }
    let st = fake.lock();
    assert_eq!(st.refresh_grants, 1, "one refresh for 100 refusals");
    assert_eq!(st.reused_refresh_tokens, 0);
    let refused = st.api_calls.iter().filter(|c| c.answered == 401).count();
    let ok = st.api_calls.iter().filter(|c| c.answered == 200).count();
    assert_eq!(ok, 100);
    assert!(refused <= 100, "{refused} refusals for 100 calls");
    assert!(st
        .api_calls
        .iter()
        .filter(|c| c.answered == 401)
        .all(|c| c.bearer.as_deref() == Some(before.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_and_redirects_never_leave_the_api_base_and_a_key_is_needed() {
    let (fake, env, _serve, api, _) = legacy().await;
    // Another server the redirect points at: it must never be asked.
    let elsewhere = OAuthFake::start(tokenwarden_e2e::fakes::oauth::OAuthConfig::google()).await;
    fake.lock().redirect_to = elsewhere.url("/api/stolen");

    for target in [
        "/v1/proxy/fb/../../oauth2/token",
        "/v1/proxy/fb/%2e%2e/oauth2/token",
        "/v1/proxy/fb/%2E%2E%2Foauth2/token",
        "/v1/proxy/fb/x/..%2f..%2foauth2/token",
        "/v1/proxy/fb/a%2fb",
        "/v1/proxy/fb/a%5cb",
        "/v1/proxy/fb//evil.example/x",
        "/v1/proxy/fb/./profile",
    ] {
        let a = api.get(target).await;
        assert_eq!(a.status, 400, "{a}");
        assert_eq!(a.json()["error"], "outside_api_base", "{a}");
    }
    // A URL in the path is only a path under the base.
    let a = api.get("/v1/proxy/fb/http://evil.example/x").await;
    assert_eq!(a.status, 400, "an empty segment: {a}");
    let a = api.get("/v1/proxy/fb/http:/evil.example/x").await;
    assert_eq!(a.expect(200)["path"], "/api/http:/evil.example/x");
    // A request in absolute form (RFC 9112 3.2.2) names our route; its host is not a target.
    let a = api
        .send(Request::new(
            "GET",
            "http://evil.example/v1/proxy/fb/profile",
        ))
        .await;
    assert_eq!(a.expect(200)["path"], "/api/profile");
    assert!(
        fake.lock().token_requests.is_empty(),
        "the token endpoint was reached"
    );

    let a = api.get("/v1/proxy/fb/redirect").await;
    assert_eq!(a.status, 302, "handed back, not followed: {a}");
    assert_eq!(
        a.header("location"),
        Some(elsewhere.url("/api/stolen").as_str())
    );
    assert!(elsewhere.lock().api_calls.is_empty());

    // No key, a wrong key, a key to other accounts: nothing reaches the provider.
    let calls = fake.lock().api_calls.len();
    api.with_key(None)
        .get("/v1/proxy/fb/profile")
        .await
        .expect_error(401, "unauthorized");
    api.with_key(Some("twk_wrong"))
        .get("/v1/proxy/fb/profile")
        .await
        .expect_error(401, "unauthorized");
    let other = env
        .run(&["api-key", "create", "other", "--accounts", "nc"], None)
        .await
        .ok()
        .stdout_trimmed()
        .to_owned();
    let a = api.with_key(Some(&other)).get("/v1/proxy/fb/profile").await;
    assert_eq!(a.status, 404, "{a}");
    assert_eq!(
        fake.lock().api_calls.len(),
        calls,
        "refused calls reach nothing"
    );

    // Too large a body is refused before anything is sent; a large answer streams back whole.
    let a = api
        .send(
            Request::new("PUT", "/v1/proxy/fb/upload")
                .body("application/octet-stream", vec![0u8; 8 * 1024 * 1024 + 1]),
        )
        .await;
    assert_eq!(a.status, 413, "{a}");
    assert_eq!(fake.lock().api_calls.len(), calls);
    let a = api
        .send_within(
            Request::new("GET", "/v1/proxy/fb/big?bytes=20000000"),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.len(), 20_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_errcodes_in_a_200_are_refusals_and_the_token_goes_in_the_query() {
    let fake = tokenwarden_e2e::fakes::wechat::WeChatFake::start(
        tokenwarden_e2e::fakes::wechat::WeChatConfig::default(),
    )
    .await;
    let env = Env::new(&fake.account_toml("wx", ""));
    let secret = fake.lock().config.secret.clone();
    env.set_secret("wx", &secret).await;
    let (_serve, api, key) = env.serve_with_new_key("proxy").await;
    let first = api.token("wx").await;

    let a = api
        .get("/v1/proxy/wx/cgi-bin/check?access_token=not-mine&openid=o1")
        .await;
    assert_eq!(a.expect(200)["errcode"], 0, "{a}");
    // A report about a token fetched less than 5 s ago is answered with that token (a storm
    // of reports right after a refresh must not start another); a real revocation comes later.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    fake.kill_tokens();
    let a = api.get("/v1/proxy/wx/cgi-bin/check").await;
    assert_eq!(a.expect(200)["errcode"], 0, "renewed and sent again: {a}");
    let st = fake.lock();
    assert_eq!(st.tokens_issued(), 2, "one more fetch");
    let seen: Vec<_> = st
        .check_calls
        .iter()
        .map(|(t, alive)| (t == &first, *alive))
        .collect();
    assert_eq!(seen, vec![(true, true), (true, false), (false, true)]);
    assert!(st
        .check_calls
        .iter()
        .all(|(t, _)| t != "not-mine" && !t.contains(&key)));
}

/// The last call the fake's API received, as (header name, value) pairs.
fn last_call_headers(fake: &OAuthFake) -> Vec<(String, String)> {
    fake.lock()
        .api_calls
        .last()
        .expect("a call reached the API")
        .headers
        .clone()
}

fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_pass_only_for_an_account_that_allows_them_and_path_parameters_are_refused() {
    let (fake, env, serve, api, key) = legacy().await;
    let cookied = || {
        Request::new("GET", "/v1/proxy/fb/cookie")
            .header("Cookie", "local_app_session=for-127-0-0-1-only")
            .header("User-Agent", "build-bot/1.0 (host ci-7; user alice)")
    };

    // By default no cookie goes either way, and the caller's User-Agent stays here.
    let a = api.send(cookied()).await;
    a.expect(200);
    assert_eq!(
        a.header("set-cookie"),
        None,
        "the provider's cookie came back: {a}"
    );
    let seen = last_call_headers(&fake);
    assert_eq!(
        header_of(&seen, "cookie"),
        None,
        "a cookie reached the provider: {seen:?}"
    );
    let agent = header_of(&seen, "user-agent").unwrap_or_default();
    assert!(
        agent.starts_with("tokenwarden/"),
        "User-Agent sent: {agent:?}"
    );

    // `;` path parameters (`..;` is `..` to some servers) never reach the provider.
    let calls = fake.lock().api_calls.len();
    for target in [
        "/v1/proxy/fb/x/..;/oauth2/token",
        "/v1/proxy/fb/..;/oauth2/token",
        "/v1/proxy/fb/x/..;a=b/oauth2/token",
        "/v1/proxy/fb/profile;jsessionid=abc",
        "/v1/proxy/fb/x/..%3b/oauth2/token",
    ] {
        let a = api.get(target).await;
        assert!(
            a.error_problem(400, "outside_api_base").is_none(),
            "{target} must be refused:\n{a}"
        );
    }
    assert_eq!(
        fake.lock().api_calls.len(),
        calls,
        "refused paths reach nothing"
    );

    // `proxy_cookies = true` on the account lets them through both ways; the User-Agent is
    // still ours.
    assert_eq!(serve.stop().await.code, 0);
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    env.write_config(&config.replacen(
        "name = \"fb\"\n",
        "name = \"fb\"\nproxy_cookies = true\n",
        1,
    ));
    let (_serve, api) = env.serve_api(&key).await;
    let a = api.send(cookied()).await;
    a.expect(200);
    assert_eq!(
        a.header("set-cookie"),
        Some("provider_session=fake-session; HttpOnly"),
        "{a}"
    );
    let seen = last_call_headers(&fake);
    assert_eq!(
        header_of(&seen, "cookie"),
        Some("local_app_session=for-127-0-0-1-only")
    );
    assert!(header_of(&seen, "user-agent").is_some_and(|a| a.starts_with("tokenwarden/")));
}
