//! A rotated token set that cannot be written to the keychain (the debug builds' fault hook,
//! [`Env::fail_keychain_writes`]): the CLI alone fails loudly; `serve` reports the failure
//! (history `keychain_write_failed`, an SSE event), keeps serving the new token from memory,
//! writes it as soon as the keychain works again, and writes it on SIGTERM at the latest.
//! The fake's refresh tokens are single use: a set that was never saved cannot refresh again.

use std::time::Duration;

use serde_json::Value;
use tokenwarden_e2e::fakes::oauth::OAuthFake;
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{wait_until, Api, Env};

async fn connected() -> (OAuthFake, Env, String) {
    LegacyAccount::new(|c| c.expires_in(3600))
        .extra("refresh_before = \"10s\"")
        .connected(3600)
        .await
}

async fn stored_refresh(env: &Env) -> Option<String> {
    env.stored_tokens("fb")
        .await
        .and_then(|t| t["refresh_token"].as_str().map(str::to_string))
}

async fn view(api: &Api) -> Value {
    let accounts = api.get("/v1/accounts").await.expect(200);
    accounts
        .as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == "fb"))
        .cloned()
        .unwrap_or_else(|| panic!("no fb: {accounts}"))
}

/// History entries of `fb` (newest first) through the API.
async fn history(api: &Api) -> Vec<Value> {
    let h = api.get("/v1/history?account=fb").await.expect(200);
    h.as_array().cloned().unwrap_or_default()
}

fn is_write_failure(entry: &Value) -> bool {
    entry["outcome"] == "transient_error" && entry["error_code"] == "keychain_write_failed"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_without_an_engine_fails_when_the_new_set_cannot_be_saved() {
    let (fake, env, _) = connected().await;
    let before = env.stored_tokens("fb").await;
    env.fail_keychain_writes(true);
    let out = env.run(&["refresh", "fb"], None).await;
    let line = out.failure_line();
    assert!(
        line.to_lowercase().contains("keychain"),
        "the reason names the keychain: {line}"
    );
    assert_eq!(fake.lock().refresh_grants, 1, "the provider did rotate");
    assert_eq!(
        env.stored_tokens("fb").await,
        before,
        "the fault hook let a write through"
    );
    assert!(
        line.contains("the token journal holds it"),
        "the set is not lost, and the line says so: {line}"
    );
    let rotated = fake.lock().latest_refresh_token().unwrap();
    let access = fake.lock().current_access_token().unwrap();
    for secret in [&rotated, &access] {
        assert!(
            !out.stderr.contains(secret.as_str()),
            "a secret in stderr:\n{out}"
        );
    }
    // The next command writes it from the journal, fetching nothing.
    env.fail_keychain_writes(false);
    assert_eq!(env.token("fb").await, access);
    let stored = env.stored_tokens("fb").await.expect("tokens:fb");
    assert_eq!(stored["refresh_token"].as_str(), Some(rotated.as_str()));
    assert_eq!(fake.lock().refresh_grants, 1, "nothing fetched again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reports_an_unsaved_set_serves_it_and_saves_it_when_the_keychain_works_again() {
    let (fake, env, seeded) = connected().await;
    let seeded_refresh = stored_refresh(&env).await.expect("seeded");
    let (serve, api, _) = env.serve_with_new_key("unsaved").await;
    let events = api.events().await;
    env.fail_keychain_writes(true);

    let answer = api.post_empty("/v1/accounts/fb/refresh").await;
    println!("refresh while writes fail: {answer}");
    let (access, rotated) = {
        let st = fake.lock();
        assert_eq!(st.refresh_grants, 1, "{:?}", st.token_requests);
        (
            st.current_access_token().unwrap(),
            st.latest_refresh_token().unwrap(),
        )
    };
    events
        .wait_for("keychain_write_failed", "fb", 0, Duration::from_secs(10))
        .await;
    wait_until(
        Duration::from_secs(5),
        "a keychain_write_failed history entry",
        async || history(&api).await.iter().any(is_write_failure),
    )
    .await;
    assert_eq!(
        stored_refresh(&env).await.as_deref(),
        Some(seeded_refresh.as_str()),
        "the fault hook let a write through"
    );
    // Served from memory meanwhile, and the view says it is not saved.
    let served = api.token("fb").await;
    assert_ne!(served, seeded);
    assert_eq!(served, access);
    assert_eq!(fake.profile_status(&served).await, 200);
    assert_eq!(view(&api).await["unsaved"], true, "{}", view(&api).await);

    env.fail_keychain_writes(false);
    wait_until(
        Duration::from_secs(60),
        "the unsaved set written once the keychain works",
        async || stored_refresh(&env).await.as_deref() == Some(rotated.as_str()),
    )
    .await;
    events
        .wait_for("saved", "fb", 0, Duration::from_secs(10))
        .await;
    wait_until(Duration::from_secs(5), "unsaved false", async || {
        view(&api).await["unsaved"] == false
    })
    .await;
    {
        let st = fake.lock();
        assert_eq!(st.refresh_grants, 1, "saving needs no new refresh");
        assert_eq!(st.reused_refresh_tokens, 0);
    }
    assert_eq!(api.token("fb").await, access);
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_saves_an_unsaved_set_on_sigterm() {
    let (fake, env, _) = connected().await;
    let seeded_refresh = stored_refresh(&env).await.expect("seeded");
    let (serve, api, _) = env.serve_with_new_key("sigterm").await;
    env.fail_keychain_writes(true);
    let answer = api.post_empty("/v1/accounts/fb/refresh").await;
    println!("refresh while writes fail: {answer}");
    wait_until(
        Duration::from_secs(10),
        "a keychain_write_failed history entry",
        async || history(&api).await.iter().any(is_write_failure),
    )
    .await;
    let rotated = fake.lock().latest_refresh_token().unwrap();
    assert_eq!(
        stored_refresh(&env).await.as_deref(),
        Some(seeded_refresh.as_str())
    );

    // The keychain works again just before SIGTERM: serve saves the set on its way out.
    env.fail_keychain_writes(false);
    let out = serve.stop().await;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        stored_refresh(&env).await.as_deref(),
        Some(rotated.as_str()),
        "serve exited without saving the set it held:\n{out}"
    );

    // And the saved set refreshes.
    env.run(&["refresh", "fb"], None).await.ok();
    let st = fake.lock();
    let last = st.refresh_requests().last().cloned().expect("refresh");
    assert_eq!(last.refresh_token.as_deref(), Some(rotated.as_str()));
    assert_eq!(last.status, 200);
    assert_eq!(st.reused_refresh_tokens, 0);
}
