//! Crash safety: `serve` killed with SIGKILL right after a refresh comes back able to refresh.
//! The fake's refresh tokens are single use, so this only works if the rotated refresh token
//! reached the keychain before the refresh was recorded anywhere else (history, status).

use std::time::{Duration, Instant};

use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{wait_until, Env};

/// Successful refreshes recorded in the history; straight from SQLite when its schema has an
/// `outcome` column (fast, so the kill lands close to the write), else through `log --json`.
async fn ok_refreshes(env: &Env) -> usize {
    let rows = env.history_rows();
    if rows.first().is_some_and(|r| r.contains_key("outcome")) {
        return rows.iter().filter(|r| r["outcome"] == "ok").count();
    }
    let log = env.log_entries(Some("fb")).await;
    log.iter().filter(|e| e["outcome"] == "ok").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_right_after_a_refresh_can_still_refresh() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(8))
        .extra("refresh_before = \"5s\"")
        .connected(-5)
        .await;

    for round in 1..=2 {
        let seen = ok_refreshes(&env).await;
        let mut serve = env.spawn_serve();
        let deadline = Instant::now() + Duration::from_secs(20);
        while ok_refreshes(&env).await <= seen {
            assert!(
                serve.running(),
                "round {round}: serve exited:\n{}",
                serve.stderr()
            );
            assert!(
                Instant::now() < deadline,
                "round {round}: no refresh recorded in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        serve.kill9().await;

        let stored = env.stored_tokens("fb").await.expect("tokens:fb");
        let st = fake.lock();
        let latest = st.latest_refresh_token().unwrap();
        assert_eq!(
            stored["refresh_token"].as_str(),
            Some(latest.as_str()),
            "round {round}: the refresh was recorded before its refresh token reached the keychain"
        );
        assert!(st.is_live_refresh_token(&latest));
    }

    // After the last kill, a new serve refreshes with what the keychain holds.
    let grants = fake.lock().refresh_grants;
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;
    wait_until(
        Duration::from_secs(15),
        "a refresh after the restart",
        async || fake.lock().refresh_grants > grants,
    )
    .await;
    wait_until(Duration::from_secs(5), "status fresh", async || {
        env.status("fb").await == "fresh"
    })
    .await;
    {
        let st = fake.lock();
        assert_eq!(
            st.reused_refresh_tokens, 0,
            "a consumed refresh token was presented again"
        );
        let failed: Vec<_> = st
            .token_requests
            .iter()
            .filter(|r| r.status != 200)
            .collect();
        assert!(failed.is_empty(), "every refresh succeeded: {failed:?}");
    }
    assert_eq!(serve.stop().await.code, 0);
}
