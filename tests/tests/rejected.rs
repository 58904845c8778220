//! "The API said 401 with this token": `POST /v1/accounts/{name}/rejected` and `min_valid`.
//!
//! Many programs that see a 401 at the same moment must cause one refresh, not a stampede (the
//! fake's refresh tokens are single use, so a second refresh would also be caught as a reused
//! refresh token); a report about an older token, or about a token refreshed less than 5 s ago,
//! refreshes nothing. `min_valid` larger than what the token has left refreshes first, and when
//! that refresh fails the answer is 503 (transient) or 502 (permanent), never the old token.

use std::time::{Duration, Instant};

use serde_json::json;
use tokenwarden_e2e::fakes::oauth::{Fault, OAuthFake};
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{wait_until, Answer, Api, Env, Serve};

/// Legacy-Fitbit account `fb` connected with `access` expiring at now + `left` seconds (the
/// fake issues 1 h tokens), refresh_before 10 s so serve leaves it alone; serve running.
async fn setup(left: i64) -> (OAuthFake, Env, Serve, Api, String) {
    let (fake, env, access) = LegacyAccount::new(|c| c.expires_in(3600))
        .extra("refresh_before = \"10s\"")
        .connected(left)
        .await;
    let (serve, api, _) = env.serve_with_new_key("rejected").await;
    (fake, env, serve, api, access)
}

async fn reject(api: &Api, token: &str) -> Answer {
    api.post(
        "/v1/accounts/fb/rejected",
        &json!({ "access_token": token }),
    )
    .await
}

/// The newest history entry, through the API.
async fn newest_entry(api: &Api) -> serde_json::Value {
    let history = api.get("/v1/history?account=fb&limit=1").await.expect(200);
    history[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_reports_share_one_refresh() {
    let (fake, _env, serve, api, old) = setup(3600).await;
    assert_eq!(api.token("fb").await, old);
    // The refresh takes 1.5 s, so the reports pile up while it runs.
    fake.fail_next(1, Fault::Delay(Duration::from_millis(1500)));

    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let api = api.clone();
            let old = old.clone();
            tokio::spawn(async move { reject(&api, &old).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("report task"));
    }
    let refreshed_at = Instant::now();
    let new = fake.lock().current_access_token().expect("a current token");
    assert_ne!(new, old, "the fake issued a new token");
    for a in &answers {
        assert_eq!(
            a.access_token(),
            new,
            "every report gets the new token:\n{a}"
        );
    }
    {
        let st = fake.lock();
        assert_eq!(
            st.refresh_grants, 1,
            "200 reports, one refresh: {:?}",
            st.token_requests
        );
        assert_eq!(st.token_requests.len(), 1, "{:?}", st.token_requests);
        assert_eq!(st.reused_refresh_tokens, 0);
    }
    assert_eq!(
        fake.profile_status(&new).await,
        200,
        "the provider accepts it"
    );
    assert_eq!(fake.profile_status(&old).await, 401);
    let entry = newest_entry(&api).await;
    assert_eq!(entry["outcome"], "ok", "{entry}");
    assert_eq!(entry["trigger"], "rejected", "{entry}");

    // A late report about the old token, and one about a token the API never issued.
    for token in [old.as_str(), "never-issued-token"] {
        assert_eq!(reject(&api, token).await.access_token(), new);
    }
    // The new token reported within 5 s of its refresh: no second refresh.
    assert_eq!(reject(&api, &new).await.access_token(), new);
    assert!(
        refreshed_at.elapsed() < Duration::from_secs(4),
        "the checks above were too slow to be inside the 5 s window"
    );
    assert_eq!(fake.lock().refresh_grants, 1, "no refresh within 5 s");

    // Once 5 s have passed, a report of the current token does refresh.
    tokio::time::sleep(
        Duration::from_secs(5).saturating_sub(refreshed_at.elapsed()) + Duration::from_millis(700),
    )
    .await;
    let newer = reject(&api, &new).await.access_token();
    assert_ne!(newer, new, "a report after 5 s refreshes");
    assert_eq!(fake.lock().refresh_grants, 2);
    assert_eq!(fake.profile_status(&newer).await, 200);
    assert_eq!(api.token("fb").await, newer);
    assert_eq!(fake.lock().reused_refresh_tokens, 0);
    let out = serve.stop().await;
    assert_eq!(out.code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_valid_refreshes_first_and_a_transient_failure_is_503_without_the_old_token() {
    let (fake, env, serve, api, seeded) = setup(100).await;

    let a = api.get("/v1/accounts/fb/token?min_valid=50").await;
    assert_eq!(
        a.access_token(),
        seeded,
        "100 s left is enough for 50:\n{a}"
    );
    let left = a.json()["expires_in"].as_i64().unwrap_or(-1);
    assert!((80..=100).contains(&left), "expires_in {left}:\n{a}");
    assert_eq!(fake.lock().token_requests.len(), 0);

    let a = api.get("/v1/accounts/fb/token?min_valid=200").await;
    let fresh = a.access_token();
    assert_ne!(fresh, seeded, "100 s left is not enough for 200:\n{a}");
    assert_eq!(fake.lock().refresh_grants, 1);
    assert!(a.json()["expires_in"].as_i64().unwrap_or(0) >= 3500, "{a}");
    assert_eq!(fake.profile_status(&fresh).await, 200);
    assert_eq!(newest_entry(&api).await["trigger"], "min_valid");
    // The same min_valid again: the token now has an hour, nothing to do.
    assert_eq!(api.token("fb").await, fresh);
    assert_eq!(
        api.get("/v1/accounts/fb/token?min_valid=200")
            .await
            .access_token(),
        fresh
    );
    assert_eq!(fake.lock().token_requests.len(), 1);

    // An hour left, 9999 s asked: refresh first; the provider is down → 503, not the old token.
    fake.fail_next(1, Fault::status(503));
    let a = api.get("/v1/accounts/fb/token?min_valid=9999").await;
    a.expect_error(503, "provider_unavailable");
    assert!(!a.body.contains(&fresh), "the old token in a failure:\n{a}");
    assert_eq!(
        fake.lock().refresh_requests().len(),
        2,
        "the refresh was tried"
    );
    let out = serve.stop().await;
    assert!(!out.stderr.contains(&fresh), "{out}");
    drop(env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_valid_with_a_permanent_failure_is_502_and_then_never_the_old_token() {
    let (fake, env, serve, api, seeded) = setup(3600).await;
    let refresh = fake.lock().latest_refresh_token().expect("refresh token");
    // The grant is dead from now on; legacy Fitbit's invalid_grant answer quotes the refresh
    // token back.
    fake.fail_next(100, Fault::OAuthError("invalid_grant"));
    let a = api.get("/v1/accounts/fb/token?min_valid=9999").await;
    a.expect_error(502, "refresh_failed");
    for secret in [&seeded, &refresh] {
        assert!(
            !a.body.contains(secret.as_str()),
            "a secret in the failure:\n{a}"
        );
    }
    assert_eq!(fake.lock().refresh_requests().len(), 1);
    assert_eq!(newest_entry(&api).await["outcome"], "permanent_error");
    wait_until(
        Duration::from_secs(5),
        "status needs_reconnect",
        async || api.get("/v1/accounts").await.expect(200)[0]["status"] == "needs_reconnect",
    )
    .await;

    // The user must act now: 409 needs_reconnect (or 502 again), still never the old token.
    for target in [
        "/v1/accounts/fb/token?min_valid=9999",
        "/v1/accounts/fb/refresh",
    ] {
        let a = if target.ends_with("refresh") {
            api.post_empty(target).await
        } else {
            api.get(target).await
        };
        assert!(
            (a.status == 409 && a.json()["error"] == "needs_reconnect")
                || (a.status == 502 && a.json()["error"] == "refresh_failed"),
            "expected 409 needs_reconnect or 502 refresh_failed:\n{a}"
        );
        a.assert_error_shape();
        for secret in [&seeded, &refresh] {
            assert!(
                !a.body.contains(secret.as_str()),
                "a secret in the failure:\n{a}"
            );
        }
    }
    let rejected = reject(&api, &seeded).await;
    assert!(
        rejected.status == 409 || rejected.status == 502,
        "a rejected token cannot be replaced: 409/502:\n{rejected}"
    );
    assert!(!rejected.body.contains(&seeded), "{rejected}");
    let out = serve.stop().await;
    assert!(!out.stderr.contains(&refresh), "{out}");
    drop(env);
}
