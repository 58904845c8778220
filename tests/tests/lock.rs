//! One refresher per data dir: a second `serve` is refused, the CLI beside a running `serve`
//! reads the keychain instead of refreshing, and concurrent CLI calls without an engine share
//! one refresh (the fake's refresh tokens are single use, so a second refresh would fail).

use std::time::Duration;

use tokenwarden_e2e::fakes::oauth::OAuthFake;
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{wait_until, Env};

/// Account `fb` on a legacy-Fitbit fake, connected with a token that expires `left` seconds
/// from now; returns the seeded access token too.
async fn connected(left: i64) -> (OAuthFake, Env, String) {
    LegacyAccount::new(|c| c.expires_in(3600))
        .connected(left)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_the_same_data_dir_exits_saying_one_is_running() {
    let (_fake, env, _) = connected(3600).await;
    let mut first = env.spawn_serve();
    first.wait_ready().await;

    let second = env.run_for(&["serve"], None, Duration::from_secs(15)).await;
    let line = second.failure_line().to_lowercase();
    assert!(
        line.contains("already running"),
        "says one is already running: {line}"
    );
    assert!(first.running(), "the first serve is unaffected");
    assert_eq!(first.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_beside_a_running_serve_reads_the_keychain_and_never_refreshes() {
    // Expired: serve refreshes it once at start; the CLI must then print serve's new token.
    let (fake, env, seeded) = connected(-5).await;
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;
    wait_until(
        Duration::from_secs(10),
        "serve's first refresh",
        async || fake.lock().refresh_grants == 1,
    )
    .await;
    wait_until(Duration::from_secs(5), "status fresh", async || {
        env.status("fb").await == "fresh"
    })
    .await;

    let current = fake.lock().current_access_token().unwrap();
    for _ in 0..3 {
        let token = env.token("fb").await;
        assert_ne!(token, seeded);
        assert_eq!(token, current, "`token` prints the token serve stored");
    }
    let header = env.run(&["token", "fb", "--header"], None).await.ok();
    assert_eq!(
        header.stdout_trimmed(),
        format!("Authorization: Bearer {current}")
    );
    assert_eq!(fake.profile_status(&current).await, 200);
    assert_eq!(
        fake.lock().token_requests.len(),
        1,
        "no refresh besides serve's own"
    );
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_token_calls_without_an_engine_refresh_once() {
    let (fake, env, seeded) = connected(-5).await;
    let (a, b, c, d) = tokio::join!(
        env.run(&["token", "fb"], None),
        env.run(&["token", "fb"], None),
        env.run(&["token", "fb"], None),
        env.run(&["token", "fb"], None),
    );
    let printed: Vec<String> = [a, b, c, d]
        .into_iter()
        .map(|o| o.ok().stdout_trimmed().to_string())
        .collect();
    let st = fake.lock();
    assert_eq!(st.refresh_grants, 1, "one refresh for four callers");
    assert_eq!(st.reused_refresh_tokens, 0);
    assert_eq!(st.token_requests.len(), 1, "{:?}", st.token_requests);
    let current = st.current_access_token().unwrap();
    assert!(
        printed.iter().all(|t| *t == current && *t != seeded),
        "{printed:?}"
    );
}
