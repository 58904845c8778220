//! Reports of rejected tokens (`POST /v1/accounts/{name}/rejected`) under failure: reports that
//! queue behind a failing refresh share its outcome (one upstream call for a hundred), an
//! account in backoff or needing a reconnect answers reports without calling the provider, and a
//! client that rejects every fresh token is refused after three refreshes (`rejected_loop`)
//! instead of burning the provider's rate limit. `min_valid` longer than a token's lifetime is
//! a bad request, not a refresh.

use std::time::{Duration, Instant};

use serde_json::json;
use tokenwarden_e2e::fakes::oauth::{Fault, OAuthFake};
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{wait_until, Answer, Api, Env, Serve};

/// `fb` connected for an hour (1 h tokens), left alone by the scheduler, retries 60 s apart
/// so a test can look at the account while it is in backoff; serve running.
async fn setup() -> (OAuthFake, Env, Serve, Api, String) {
    let (fake, env, access) = LegacyAccount::new(|c| c.expires_in(3600))
        .extra("refresh_before = \"10s\"")
        .refresh_settings("retry_initial = \"60s\"\nretry_max = \"120s\"")
        .connected(3600)
        .await;
    let (serve, api, _) = env.serve_with_new_key("reports").await;
    (fake, env, serve, api, access)
}

async fn reject(api: &Api, token: &str) -> Answer {
    api.post(
        "/v1/accounts/fb/rejected",
        &json!({ "access_token": token }),
    )
    .await
}

async fn status(api: &Api) -> serde_json::Value {
    api.get("/v1/accounts").await.expect(200)[0]["status"].clone()
}

fn upstream_calls(fake: &OAuthFake) -> usize {
    fake.lock().token_requests.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_reports_behind_a_failing_refresh_share_its_failure_and_backoff_is_respected() {
    let (fake, _env, serve, api, current) = setup().await;
    // The refresh takes 1.5 s and fails: the reports pile up behind it.
    fake.fail_next(
        1,
        Fault::after(Duration::from_millis(1500), Fault::status(503)),
    );
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (api, token) = (api.clone(), current.clone());
            tokio::spawn(async move { reject(&api, &token).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("report task"));
    }
    assert_eq!(
        upstream_calls(&fake),
        1,
        "100 reports, one upstream call: {:?}",
        fake.lock().token_requests
    );
    for a in &answers {
        a.expect_error(503, "provider_unavailable");
        assert!(
            !a.body.contains(&current),
            "the rejected token in the answer:\n{a}"
        );
    }
    let first = answers[0].json();
    for a in &answers {
        assert_eq!(a.json()["error"], first["error"], "{a}");
    }

    // In backoff: a report is answered 503 without calling the provider.
    wait_until(Duration::from_secs(5), "status retrying", async || {
        status(&api).await == "retrying"
    })
    .await;
    for _ in 0..5 {
        reject(&api, &current)
            .await
            .expect_error(503, "provider_unavailable");
    }
    assert_eq!(
        upstream_calls(&fake),
        1,
        "reports during backoff called the provider"
    );
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_while_needs_reconnect_are_409_without_an_upstream_call() {
    let (fake, _env, serve, api, current) = setup().await;
    fake.fail_next(1, Fault::OAuthError("invalid_grant"));
    api.post_empty("/v1/accounts/fb/refresh")
        .await
        .expect_error(502, "refresh_failed");
    wait_until(
        Duration::from_secs(5),
        "status needs_reconnect",
        async || status(&api).await == "needs_reconnect",
    )
    .await;
    let calls = upstream_calls(&fake);
    for token in [current.as_str(), "never-issued-token"] {
        let a = reject(&api, token).await;
        a.expect_error(409, "needs_reconnect");
        assert!(!a.body.contains(&current), "{a}");
    }
    assert_eq!(upstream_calls(&fake), calls, "a report called the provider");
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_rejects_every_fresh_token_gets_at_most_three_refreshes() {
    let (fake, _env, serve, api, seeded) = setup().await;
    let events = api.events().await;
    let started = Instant::now();
    let mut current = seeded;
    let (mut ok, mut refused) = (0, 0);
    while started.elapsed() < Duration::from_secs(60) {
        let a = reject(&api, &current).await;
        match a.status {
            200 => {
                current = a.access_token();
                ok += 1;
            }
            409 => {
                a.expect_error(409, "rejected_loop");
                refused += 1;
            }
            _ => panic!("a report is answered 200 or 409 rejected_loop:\n{a}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refreshes = fake.lock().refresh_requests();
    println!(
        "{ok} reports answered with a token, {refused} refused, {} refreshes",
        refreshes.len()
    );
    assert!(
        (1..=3).contains(&refreshes.len()),
        "a report loop caused {} refreshes in 60 s: {refreshes:?}",
        refreshes.len()
    );
    assert!(refused > 0, "no report was refused with rejected_loop");
    let (_, e) = events
        .wait_for("reports_refused", "fb", 0, Duration::from_secs(5))
        .await;
    assert!(e.data["message"].is_string(), "{}", e.raw);
    assert_eq!(fake.lock().reused_refresh_tokens, 0);
    // Refusing reports does not stop serving: the current token is still handed out.
    assert_eq!(api.token("fb").await, current);
    assert_eq!(fake.profile_status(&current).await, 200);
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_valid_longer_than_the_lifetime_is_a_bad_request() {
    let (fake, _env, serve, api, _) = setup().await;
    // The first such request may refresh once (the provider may have lengthened its
    // lifetime); when the new 3600 s token still falls short, it is a bad request.
    let first = api.get("/v1/accounts/fb/token?min_valid=4000").await;
    first.expect_error(400, "bad_request");
    let calls = upstream_calls(&fake);
    // From then on such requests fail at once: no refresh on every call.
    for _ in 0..5 {
        api.get("/v1/accounts/fb/token?min_valid=4000")
            .await
            .expect_error(400, "bad_request");
    }
    assert_eq!(
        upstream_calls(&fake),
        calls,
        "min_valid > lifetime refreshed again"
    );
    // A request the token can meet is still served.
    api.get("/v1/accounts/fb/token?min_valid=60")
        .await
        .access_token();
    assert_eq!(serve.stop().await.code, 0);
}
