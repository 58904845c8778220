//! How `serve` handles a provider that fails: transient errors (503) are retried with doubling
//! backoff and jitter, 429 waits for Retry-After, permanent ones (invalid_grant) stop retrying
//! and ask for a reconnect. Gaps are measured where the provider received the attempts.

use std::time::Duration;

use tokenwarden_e2e::fakes::oauth::{Fault, OAuthFake};
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{wait_until, Env};

/// A legacy-Fitbit account `fb` whose stored token has just expired, so `serve` refreshes at once.
async fn expired_account() -> (OAuthFake, Env) {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(-5)
        .await;
    (fake, env)
}

fn gaps(fake: &OAuthFake) -> Vec<f64> {
    let attempts = fake.lock().refresh_requests();
    attempts
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_503_is_retried_with_doubling_backoff() {
    let (fake, env) = expired_account().await;
    fake.fail_next(3, Fault::status(503));
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;

    wait_until(Duration::from_secs(6), "status retrying", async || {
        env.status("fb").await == "retrying"
    })
    .await;
    let account = env.account("fb").await;
    assert!(
        account["last_error"].is_string(),
        "a retrying account says why: {account}"
    );
    wait_until(
        Duration::from_secs(25),
        "a refresh after three 503s",
        async || fake.lock().refresh_grants == 1,
    )
    .await;

    let gaps = gaps(&fake);
    assert_eq!(gaps.len(), 3, "three failures, one success: gaps {gaps:?}");
    for (gap, expected) in gaps.iter().zip([1.0, 2.0, 4.0]) {
        // ±10% jitter, plus a little time for the engine's own work between attempts.
        assert!(
            *gap >= expected * 0.85 && *gap <= expected * 1.1 + 0.7,
            "gap {gap:.2} s, expected {expected} s ±10%: all gaps {gaps:?}"
        );
    }
    wait_until(Duration::from_secs(5), "status fresh", async || {
        env.status("fb").await == "fresh"
    })
    .await;
    let stored = env.stored_tokens("fb").await.expect("tokens:fb");
    assert_eq!(
        stored["refresh_token"].as_str(),
        fake.lock().latest_refresh_token().as_deref()
    );
    let log = env.log_entries(Some("fb")).await;
    let outcomes: Vec<&str> = log
        .iter()
        .take(4)
        .map(|e| e["outcome"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        outcomes,
        [
            "ok",
            "transient_error",
            "transient_error",
            "transient_error"
        ],
        "{log:?}"
    );
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_needs_reconnect_and_is_not_retried() {
    let (fake, env) = expired_account().await;
    let before = env.stored_tokens("fb").await;
    fake.fail_next(1, Fault::OAuthError("invalid_grant"));
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;

    wait_until(
        Duration::from_secs(10),
        "status needs_reconnect",
        async || env.status("fb").await == "needs_reconnect",
    )
    .await;
    // Long enough for several retries at retry_initial = 1 s, had there been any.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        fake.lock().refresh_requests().len(),
        1,
        "no attempt after invalid_grant"
    );
    let account = env.account("fb").await;
    assert_eq!(account["status"], "needs_reconnect", "{account}");
    let last_error = account["last_error"].as_str().unwrap_or("");
    assert!(
        last_error.contains("invalid_grant"),
        "last_error quotes the code: {account}"
    );
    assert!(
        last_error.contains("connect"),
        "last_error says what to do: {account}"
    );
    assert_eq!(
        env.stored_tokens("fb").await,
        before,
        "the stored tokens were not touched"
    );
    let log = env.log_entries(Some("fb")).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["outcome"], "permanent_error", "{log:?}");
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_waits_for_retry_after() {
    let (fake, env) = expired_account().await;
    fake.fail_next(1, Fault::too_many_requests(3));
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;

    wait_until(
        Duration::from_secs(15),
        "a refresh after the 429",
        async || fake.lock().refresh_grants == 1,
    )
    .await;
    let gaps = gaps(&fake);
    assert_eq!(gaps.len(), 1, "one 429, then success: {gaps:?}");
    assert!(
        gaps[0] >= 2.95,
        "retried {:.2} s after `Retry-After: 3`",
        gaps[0]
    );
    assert!(
        gaps[0] <= 5.0,
        "retried {:.2} s after `Retry-After: 3`: too late",
        gaps[0]
    );
    assert_eq!(serve.stop().await.code, 0);
}
