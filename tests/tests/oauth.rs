//! OAuth accounts end to end: `connect` (PKCE, state, loopback listener), `token`, `refresh` with
//! single-use rotating refresh tokens, Google's non-rotating refresh, the `fitbit` preset's
//! authorization URL, legacy Fitbit's 410 Gone, `disconnect`. Each test asserts on what the fake
//! provider saw, what the OS keychain holds and what the CLI printed.

use std::collections::HashMap;
use std::time::Duration;

use tokenwarden_e2e::fakes::oauth::{Fault, OAuthConfig, OAuthFake};
use tokenwarden_e2e::harness::{
    authorize_in_browser, browser_get, unix_from_rfc3339, unix_now, LegacyAccount,
};
use tokenwarden_e2e::Env;

/// Account `fb` on a legacy-Fitbit fake (config through `config`), scopes activity and sleep,
/// client secret stored: `.start()` it, or `.connected(left)` to seed tokens too.
fn legacy(config: impl FnOnce(OAuthConfig) -> OAuthConfig + Send + 'static) -> LegacyAccount {
    LegacyAccount::new(config).extra("scopes = [\"activity\", \"sleep\"]")
}

/// The Google flavour behind the `fitbit` preset, account `fit`, client secret stored.
async fn google(scopes: &[&str]) -> (OAuthFake, Env) {
    let fake = OAuthFake::start(OAuthConfig::google()).await;
    let scopes: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
    let extra = format!("scopes = [{}]", scopes.join(", "));
    let env = Env::new(&fake.account_toml("fit", "fitbit", &extra));
    let secret = fake.lock().config.client_secret.clone();
    env.set_secret("fit", &secret).await;
    (fake, env)
}

fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_token_and_refresh_rotate_through_the_keychain() {
    let (fake, env) = legacy(|c| c).start().await;
    env.connect("fb").await;

    let secret = fake.lock().config.client_secret.clone();
    assert_eq!(
        env.keychain_get("client-secret:fb").await.as_deref(),
        Some(secret.as_str())
    );
    let stored = env
        .stored_tokens("fb")
        .await
        .expect("tokens:fb in the keychain after connect");
    let (access0, refresh0) = {
        let st = fake.lock();
        assert_eq!(st.code_grants, 1, "one code exchange");
        (
            st.current_access_token().unwrap(),
            st.latest_refresh_token().unwrap(),
        )
    };
    assert_eq!(stored["access_token"], access0.as_str());
    assert_eq!(stored["refresh_token"], refresh0.as_str());
    let expires_at = stored["expires_at"]
        .as_i64()
        .expect("expires_at: unix seconds");
    assert!(
        (expires_at - (unix_now() + 28_800)).abs() < 120,
        "expires_at {expires_at}"
    );

    let token = env.token("fb").await;
    assert_eq!(token, access0, "`token fb` prints the stored access token");
    assert_eq!(fake.profile_status(&token).await, 200);
    let header = env.run(&["token", "fb", "--header"], None).await.ok();
    assert_eq!(
        header.stdout_trimmed(),
        format!("Authorization: Bearer {access0}")
    );
    assert_eq!(
        fake.lock().refresh_grants,
        0,
        "a fresh token is served without refreshing"
    );

    let out = env.run(&["refresh", "fb"], None).await.ok();
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "refresh prints one line:\n{out}"
    );
    let stored = env
        .stored_tokens("fb")
        .await
        .expect("tokens:fb after refresh");
    let refresh1 = {
        let st = fake.lock();
        assert_eq!(st.refresh_grants, 1);
        assert!(
            !st.is_live_refresh_token(&refresh0),
            "the old refresh token was consumed"
        );
        st.latest_refresh_token().unwrap()
    };
    assert_ne!(refresh1, refresh0);
    assert_eq!(
        stored["refresh_token"],
        refresh1.as_str(),
        "the keychain holds the rotated one"
    );
    let token1 = env.token("fb").await;
    assert_ne!(token1, access0);
    assert_eq!(fake.profile_status(&token1).await, 200);
    assert_eq!(
        fake.profile_status(&access0).await,
        401,
        "the fake only accepts the current token"
    );

    // A second refresh can only work if the rotated refresh token was kept.
    env.run(&["refresh", "fb"], None).await.ok();
    {
        let st = fake.lock();
        assert_eq!(st.refresh_grants, 2);
        assert_eq!(
            st.reused_refresh_tokens, 0,
            "no refresh token was presented twice"
        );
        assert!(
            st.token_requests.iter().all(|r| r.status == 200),
            "every token request succeeded"
        );
    }

    let account = env.account("fb").await;
    for key in [
        "name",
        "provider",
        "status",
        "expires_at",
        "last_refresh",
        "last_error",
    ] {
        assert!(
            account.get(key).is_some(),
            "list --json has `{key}`: {account}"
        );
    }
    assert_eq!(account["status"], "fresh", "{account}");
    assert_eq!(account["provider"], "fitbit-legacy");
    assert!(account["last_error"].is_null(), "{account}");
    assert!(unix_from_rfc3339(account["expires_at"].as_str().expect("expires_at")) > unix_now());
    assert!(account["last_refresh"].is_string(), "{account}");

    let log = env.log_entries(Some("fb")).await;
    assert!(log.len() >= 2, "two refreshes in the log: {log:?}");
    assert!(
        log.iter()
            .take(2)
            .all(|e| e["outcome"] == "ok" && e["account"] == "fb"),
        "{log:?}"
    );
    let at = |e: &serde_json::Value| unix_from_rfc3339(e["at"].as_str().expect("at"));
    assert!(at(&log[0]) >= at(&log[1]), "newest first: {log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_with_wrong_or_missing_state_is_refused_and_the_listener_keeps_waiting() {
    let (fake, env) = legacy(|c| c).start().await;
    let flow = env.start_connect("fb").await;
    let auth = flow.url();
    let state = query(&auth)
        .get("state")
        .cloned()
        .expect("the authorization URL carries state");
    assert!(state.len() >= 16, "state looks random enough: {state:?}");

    let callback = url::Url::parse(&authorize_in_browser(&flow.auth_url).await).unwrap();
    let with_state = |value: Option<&str>| {
        let mut url = callback.clone();
        let pairs: Vec<(String, String)> = callback
            .query_pairs()
            .into_owned()
            .filter(|(k, _)| k != "state")
            .collect();
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(v) = value {
            q.append_pair("state", v);
        }
        drop(q);
        url.to_string()
    };
    for bad in [
        with_state(Some("forged-state-0000000000")),
        with_state(None),
    ] {
        let (status, body) = browser_get(&bad).await;
        assert!(
            (400..500).contains(&status),
            "{bad} must get an error page, got {status}: {body}"
        );
    }
    assert_eq!(
        fake.lock().token_requests.len(),
        0,
        "a bad callback's code is never exchanged"
    );

    let (status, body) = browser_get(callback.as_str()).await;
    assert_eq!(status, 200, "the real redirect still works: {body}");
    let lower = body.to_lowercase();
    assert!(
        [
            "connected",
            "success",
            "authorized",
            "authorised",
            "you can close"
        ]
        .iter()
        .any(|w| lower.contains(w)),
        "the page says it worked: {body}"
    );
    flow.finish().await.ok();
    assert_eq!(fake.lock().code_grants, 1);
    assert!(env.stored_tokens("fb").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fitbit_preset_authorization_url_asks_google_for_offline_access_with_pkce() {
    let scopes = [
        "googlehealth.activity_and_fitness.readonly",
        "googlehealth.sleep.readonly",
    ];
    let (fake, env) = google(&scopes).await;
    let url = env.connect("fit").await;

    assert_eq!(
        url.port(),
        Some(fake.addr.port()),
        "the overridden auth_url is used: {url}"
    );
    assert_eq!(url.path(), "/oauth2/authorize");
    let q = query(&url);
    let param = |k: &str| q.get(k).map(String::as_str).unwrap_or("<missing>");
    assert_eq!(param("access_type"), "offline", "{url}");
    assert_eq!(param("prompt"), "consent", "{url}");
    assert_eq!(param("code_challenge_method"), "S256", "{url}");
    assert_eq!(param("response_type"), "code", "{url}");
    assert_eq!(param("client_id"), fake.lock().config.client_id, "{url}");
    let asked: Vec<&str> = param("scope").split_whitespace().collect();
    for scope in scopes {
        assert!(
            asked
                .iter()
                .any(|a| *a == scope || a.ends_with(&format!("/{scope}"))),
            "scope {scope} in {asked:?}"
        );
    }
    let redirect = url::Url::parse(param("redirect_uri")).expect("redirect_uri");
    assert_eq!(
        redirect.host_str(),
        Some("127.0.0.1"),
        "loopback redirect: {redirect}"
    );
    assert_eq!(redirect.path(), "/callback");
    assert_eq!(fake.lock().authorize_queries.len(), 1);
    let stored = env.stored_tokens("fit").await.expect("tokens:fit");
    assert!(
        stored["refresh_token"].is_string(),
        "offline access gave a refresh token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_refresh_answer_without_refresh_token_keeps_the_old_one() {
    let (fake, env) = google(&["googlehealth.sleep.readonly"]).await;
    env.connect("fit").await;
    let refresh0 = fake.lock().latest_refresh_token().expect("offline access");

    for round in 1..=2 {
        env.run(&["refresh", "fit"], None).await.ok();
        let stored = env.stored_tokens("fit").await.expect("tokens:fit");
        assert_eq!(
            stored["refresh_token"],
            refresh0.as_str(),
            "round {round}: kept"
        );
        let token = env.token("fit").await;
        assert_eq!(fake.profile_status(&token).await, 200, "round {round}");
        assert_eq!(fake.lock().refresh_grants, round);
    }
    assert_eq!(fake.lock().issued_refresh_tokens.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_410_gone_needs_reconnect_and_names_the_fitbit_preset() {
    let (fake, env) = legacy(|c| c).start().await;
    env.connect("fb").await;
    let before = env.stored_tokens("fb").await.expect("tokens:fb");
    fake.fail_next(1, Fault::gone());

    let out = env.run(&["refresh", "fb"], None).await;
    let line = out.failure_line();
    let names_preset = |text: &str| text.replace("fitbit-legacy", "").contains("fitbit");
    assert!(
        names_preset(&line),
        "the reason names the `fitbit` preset: {line}"
    );
    assert_eq!(
        fake.lock().refresh_requests().len(),
        1,
        "410 is not retried"
    );

    let account = env.account("fb").await;
    assert_eq!(account["status"], "needs_reconnect", "{account}");
    let last_error = account["last_error"].as_str().expect("last_error");
    assert!(
        names_preset(last_error),
        "last_error names the `fitbit` preset: {last_error}"
    );
    assert_eq!(
        env.stored_tokens("fb").await,
        Some(before),
        "nothing stored was lost"
    );
    let log = env.log_entries(Some("fb")).await;
    assert_eq!(
        log.first().map(|e| e["outcome"].clone()),
        Some("permanent_error".into()),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_revokes_at_the_provider_and_deletes_the_secrets() {
    let (fake, env) = legacy(|c| c).start().await;
    env.connect("fb").await;
    let (access, refresh) = {
        let st = fake.lock();
        (
            st.current_access_token().unwrap(),
            st.latest_refresh_token().unwrap(),
        )
    };

    let out = env.run(&["disconnect", "fb"], None).await.ok();
    let revoked = fake.lock().revoked.clone();
    assert!(
        !revoked.is_empty(),
        "disconnect revoked at the provider:\n{out}"
    );
    assert!(
        revoked.iter().all(|t| *t == access || *t == refresh),
        "{revoked:?}"
    );
    assert_eq!(fake.profile_status(&access).await, 401, "the grant is dead");
    assert_eq!(env.keychain_get("tokens:fb").await, None);
    assert_eq!(env.keychain_get("client-secret:fb").await, None);
    assert_eq!(env.status("fb").await, "not_connected");
    let out = env.run(&["token", "fb"], None).await;
    out.failure_line();
    assert!(out.stdout.trim().is_empty(), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_honours_min_valid_and_never_prints_an_expired_token() {
    let (fake, env, access) = legacy(|c| c.expires_in(3600)).connected(100).await;

    assert_eq!(
        env.token("fb").await,
        access,
        "100 s left is enough by default"
    );
    assert_eq!(fake.lock().refresh_grants, 0);

    let out = env
        .run(&["token", "fb", "--min-valid", "200s"], None)
        .await
        .ok();
    let fresh = out.stdout_trimmed().to_string();
    assert_ne!(fresh, access, "--min-valid 200s forced a refresh");
    assert_eq!(fake.lock().refresh_grants, 1);
    assert_eq!(fake.profile_status(&fresh).await, 200);
    let expires_at = env.stored_tokens("fb").await.unwrap()["expires_at"]
        .as_i64()
        .unwrap();
    assert!(
        expires_at >= unix_now() + 3000,
        "the new token was stored: {expires_at}"
    );

    // An expired token and a provider that cannot refresh it: fail, print nothing.
    let (access, refresh) = fake.issue_grant();
    env.seed_tokens("fb", &access, &refresh, unix_now() - 5)
        .await;
    fake.fail_next(20, Fault::status(503));
    let out = tokio::time::timeout(Duration::from_secs(60), env.run(&["token", "fb"], None))
        .await
        .expect("token gives up");
    out.failure_line();
    assert!(
        !out.stdout.contains(&access),
        "an expired token was printed:\n{out}"
    );
}

/// Beside a running engine, `connect` hands it the new token at once (no 20 s recheck wait)
/// and `disconnect` makes it stop serving and refreshing the account at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_disconnect_beside_a_running_engine_take_effect_at_once() {
    let (fake, env) = legacy(|c| c).start().await;
    let (serve, api, _) = env.serve_with_new_key("beside").await;
    api.get("/v1/accounts/fb/token")
        .await
        .expect_error(409, "not_connected");

    env.connect("fb").await;
    let access = fake.lock().current_access_token().unwrap();
    assert_eq!(
        api.token("fb").await,
        access,
        "serve took the new token at once"
    );
    let refreshes = fake.lock().refresh_grants;

    env.run(&["disconnect", "fb"], None).await.ok();
    assert!(!fake.lock().revoked.is_empty(), "revoked at the provider");
    api.get("/v1/accounts/fb/token")
        .await
        .expect_error(409, "not_connected");
    let accounts = api.get("/v1/accounts").await.expect(200);
    assert_eq!(accounts[0]["status"], "not_connected");
    assert_eq!(
        fake.lock().refresh_grants,
        refreshes,
        "no refresh with the revoked grant"
    );
    assert_eq!(serve.stop().await.code, 0);
}
