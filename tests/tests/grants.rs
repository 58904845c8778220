//! Who owns a grant while an answer is in flight: the newest grant always wins and a rotated
//! refresh token is never lost. A connect that completes while a refresh's answer is still on
//! the wire keeps the connect's grant; a client that hangs up mid-refresh does not cancel the
//! refresh; a 2xx answer the engine cannot fully parse still has its new refresh token saved.
//! The fake's refresh tokens are single use, so a lost one shows up as a reused one (or as a
//! keychain that differs from the fake's latest).

use std::time::Duration;

use serde_json::{json, Value};
use tokenwarden_e2e::fakes::oauth::{Fault, OAuthFake};
use tokenwarden_e2e::harness::{authorize_in_browser, browser_get, LegacyAccount};
use tokenwarden_e2e::{wait_until, Api, Env};

/// `fb` connected with an hour left (the fake issues 1 h tokens), refresh_before 10 s so
/// serve leaves it alone unless asked.
async fn connected() -> (OAuthFake, Env, String) {
    LegacyAccount::new(|c| c.expires_in(3600))
        .extra("refresh_before = \"10s\"")
        .connected(3600)
        .await
}

async fn status(api: &Api, name: &str) -> Value {
    let accounts = api.get("/v1/accounts").await.expect(200);
    accounts
        .as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in GET /v1/accounts: {accounts}"))["status"]
        .clone()
}

/// Panics unless every refresh the fake saw succeeded and none presented a consumed token.
fn assert_no_reuse(fake: &OAuthFake) {
    let st = fake.lock();
    assert_eq!(
        st.reused_refresh_tokens, 0,
        "a consumed refresh token was presented again: {:?}",
        st.token_requests
    );
    let failed: Vec<_> = st
        .token_requests
        .iter()
        .filter(|r| r.status != 200)
        .collect();
    assert!(failed.is_empty(), "failed token requests: {failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_that_completes_during_a_refresh_keeps_the_new_grant() {
    let (fake, env, _) = connected().await;
    let (serve, api, _) = env.serve_with_new_write_key("grants").await;
    let seeded_refresh = fake.lock().latest_refresh_token().expect("seeded");

    // The fake rotates at once but answers 4 s later: the refresh is in flight meanwhile.
    fake.fail_next(1, Fault::DelayAfterIssue(Duration::from_secs(4)));
    let refresh = {
        let api = api.clone();
        tokio::spawn(async move { api.post_empty("/v1/accounts/fb/refresh").await })
    };
    wait_until(
        Duration::from_secs(5),
        "the refresh reached the provider",
        async || !fake.lock().refresh_requests().is_empty(),
    )
    .await;
    let late_refresh = fake.lock().refresh_requests()[0]
        .issued_refresh_token
        .clone()
        .expect("the refresh rotated");
    assert_eq!(
        fake.lock().refresh_requests()[0].refresh_token.as_deref(),
        Some(seeded_refresh.as_str())
    );

    // The user connects again through the engine while that answer is on the wire.
    let begun = api
        .post("/v1/accounts/fb/connect", &json!({}))
        .await
        .expect(200);
    assert_eq!(begun["account"], "fb", "{begun}");
    assert_eq!(begun["flow"], "browser", "{begun}");
    let auth_url = begun["authorization_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no authorization_url: {begun}"));
    let redirect_uri = begun["redirect_uri"].as_str().unwrap_or("");
    let callback = authorize_in_browser(auth_url).await;
    assert!(
        !redirect_uri.is_empty() && callback.starts_with(redirect_uri),
        "the provider sends the browser to {callback}, not to the engine's {redirect_uri}"
    );
    let (code, body) = browser_get(&callback).await;
    assert_eq!(code, 200, "the engine's redirect listener: {body}");
    let progress = api.get("/v1/accounts/fb/connect?wait=15").await.expect(200);
    assert_eq!(progress["stage"], "completed", "{progress}");
    assert_eq!(progress["error"], Value::Null, "{progress}");

    let (connect_refresh, connect_access) = {
        let st = fake.lock();
        assert_eq!(st.code_grants, 1, "one code exchange");
        let exchange = st
            .token_requests
            .iter()
            .find(|r| r.grant_type == "authorization_code")
            .expect("the code exchange");
        (
            exchange
                .issued_refresh_token
                .clone()
                .expect("a refresh token"),
            st.current_access_token()
                .expect("the connect's access token"),
        )
    };
    assert_ne!(connect_refresh, late_refresh);

    // The late refresh answer arrives after the connect: it must not overwrite the new grant.
    let answered = refresh.await.expect("refresh task");
    println!("the late refresh was answered: {answered}");
    wait_until(Duration::from_secs(10), "status fresh", async || {
        status(&api, "fb").await == "fresh"
    })
    .await;
    let stored = env.stored_tokens("fb").await.expect("tokens:fb");
    assert_eq!(
        stored["refresh_token"],
        connect_refresh.as_str(),
        "the keychain must hold the connect's grant, not the late refresh's ({late_refresh})"
    );
    assert_eq!(stored["access_token"], connect_access.as_str());
    let served = api.token("fb").await;
    assert_eq!(served, connect_access, "serve serves the connect's token");
    assert_eq!(fake.profile_status(&served).await, 200);

    // The next refresh presents the connect's refresh token.
    api.post_empty("/v1/accounts/fb/refresh")
        .await
        .access_token();
    let last = fake
        .lock()
        .refresh_requests()
        .last()
        .cloned()
        .expect("refresh");
    assert_eq!(
        last.refresh_token.as_deref(),
        Some(connect_refresh.as_str())
    );
    assert_no_reuse(&fake);
    assert_eq!(
        env.stored_tokens("fb").await.expect("tokens:fb")["refresh_token"].as_str(),
        fake.lock().latest_refresh_token().as_deref()
    );
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_mid_refresh_does_not_cancel_it() {
    let (fake, env, seeded) = connected().await;
    let (serve, api, key) = env.serve_with_new_key("impatient").await;
    fake.fail_next(1, Fault::DelayAfterIssue(Duration::from_secs(3)));

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let hung_up = client
        .post(format!("{}/v1/accounts/fb/refresh", api.base_url()))
        .bearer_auth(&key)
        .send()
        .await;
    match hung_up {
        Err(e) if e.is_timeout() => {}
        other => panic!("expected the 1 s client timeout to fire, got {other:?}"),
    }
    let latest = {
        let st = fake.lock();
        assert_eq!(st.refresh_requests().len(), 1, "{:?}", st.token_requests);
        st.latest_refresh_token().expect("rotated")
    };

    wait_until(
        Duration::from_secs(10),
        "the rotated set in the keychain",
        async || {
            env.stored_tokens("fb")
                .await
                .and_then(|t| t["refresh_token"].as_str().map(str::to_string))
                == Some(latest.clone())
        },
    )
    .await;
    wait_until(
        Duration::from_secs(5),
        "status fresh (not stuck in refreshing)",
        async || status(&api, "fb").await == "fresh",
    )
    .await;
    let current = fake.lock().current_access_token().expect("current");
    let served = api.token("fb").await;
    assert_ne!(served, seeded);
    assert_eq!(served, current);
    assert_eq!(fake.profile_status(&served).await, 200);

    // Still the engine's grant: a new refresh presents the rotated token.
    api.post_empty("/v1/accounts/fb/refresh")
        .await
        .access_token();
    let last = fake
        .lock()
        .refresh_requests()
        .last()
        .cloned()
        .expect("refresh");
    assert_eq!(last.refresh_token.as_deref(), Some(latest.as_str()));
    assert_no_reuse(&fake);
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_answer_with_a_string_expires_in_keeps_its_new_refresh_token() {
    let (fake, env, _) = connected().await;
    let seeded_refresh = fake.lock().latest_refresh_token().expect("seeded");
    fake.fail_next(1, Fault::ExpiresInAsString);

    // Whatever the command reports, the rotated refresh token must not be lost.
    let out = env.run(&["refresh", "fb"], None).await;
    let rotated = {
        let st = fake.lock();
        assert_eq!(st.refresh_grants, 1, "{out}");
        st.latest_refresh_token().expect("rotated")
    };
    assert_ne!(rotated, seeded_refresh);
    let stored = env.stored_tokens("fb").await.expect("tokens:fb");
    assert_eq!(
        stored["refresh_token"],
        rotated.as_str(),
        "the new refresh token of an answer with \"expires_in\": \"3600\" was dropped:\n{out}"
    );

    // The next refresh presents it and works.
    env.run(&["refresh", "fb"], None).await.ok();
    let last = fake
        .lock()
        .refresh_requests()
        .last()
        .cloned()
        .expect("refresh");
    assert_eq!(last.refresh_token.as_deref(), Some(rotated.as_str()));
    assert_eq!(last.status, 200);
    assert_eq!(fake.lock().reused_refresh_tokens, 0);
    assert_eq!(
        env.stored_tokens("fb").await.expect("tokens:fb")["refresh_token"].as_str(),
        fake.lock().latest_refresh_token().as_deref()
    );
    let token = env.token("fb").await;
    assert_eq!(fake.profile_status(&token).await, 200);
}
