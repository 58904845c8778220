//! One writer per account, one refresher per keychain service. Beside a running `serve`:
//! a second installation (other data dir, same keychain service) never refreshes by itself;
//! `disconnect` and `connect --no-browser` go through the engine, so it never trips over its
//! own deleted secrets and serves a new grant at once. Without an engine, a waiting `connect`
//! does not hold the refresher lock.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use tokenwarden_e2e::fakes::oauth::OAuthFake;
use tokenwarden_e2e::fakes::wechat::{WeChatConfig, WeChatFake};
use tokenwarden_e2e::harness::{authorize_in_browser, browser_get, LegacyAccount};
use tokenwarden_e2e::{wait_until, Api, Env, Output};

async fn status(api: &Api, name: &str) -> Value {
    let accounts = api.get("/v1/accounts").await.expect(200);
    accounts
        .as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no {name}: {accounts}"))["status"]
        .clone()
}

/// A command of the second installation: routed to the engine (0) or refused (1, one line).
#[track_caller]
fn routed_or_refused(out: &Output) {
    match out.code {
        0 => {}
        1 => {
            out.failure_line();
        }
        _ => panic!("expected 0 (routed to the engine) or 1 (refused):\n{out}"),
    }
}

async fn wechat(config: WeChatConfig) -> (WeChatFake, Env) {
    let fake = WeChatFake::start(config).await;
    let env = Env::new(&fake.account_toml("wx", ""));
    let secret = fake.lock().config.secret.clone();
    env.set_secret("wx", &secret).await;
    (fake, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_data_dir_on_the_same_keychain_never_refreshes_beside_serve() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .extra("refresh_before = \"10s\"")
        .connected(3600)
        .await;
    let (serve, api, _) = env.serve_with_new_key("a").await;
    let other = env.sibling();
    assert_ne!(other.data_dir, env.data_dir);

    for _ in 0..2 {
        routed_or_refused(&other.run(&["refresh", "fb"], None).await);
    }
    // At the same moment as serve's own refresh.
    let (out, answer) = tokio::join!(
        other.run(&["refresh", "fb"], None),
        api.post_empty("/v1/accounts/fb/refresh")
    );
    routed_or_refused(&out);
    answer.access_token();
    // serve refreshes again: it must still hold the live refresh token.
    let served = api
        .post_empty("/v1/accounts/fb/refresh")
        .await
        .access_token();
    assert_eq!(fake.profile_status(&served).await, 200);

    let (refreshes, reused, latest) = {
        let st = fake.lock();
        (
            st.refresh_requests(),
            st.reused_refresh_tokens,
            st.latest_refresh_token(),
        )
    };
    assert_eq!(reused, 0, "two refreshers on one keychain: {refreshes:?}");
    assert!(refreshes.iter().all(|r| r.status == 200), "{refreshes:?}");
    let presented: HashSet<_> = refreshes.iter().map(|r| r.refresh_token.clone()).collect();
    assert_eq!(
        presented.len(),
        refreshes.len(),
        "a refresh token presented twice: {refreshes:?}"
    );
    assert_eq!(
        env.stored_tokens("fb").await.expect("tokens:fb")["refresh_token"].as_str(),
        latest.as_deref()
    );
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_data_dir_on_the_same_keychain_never_kills_serves_wechat_token() {
    // A new token kills the previous one at once: a second refresher would kill serve's.
    let (fake, env) = wechat(WeChatConfig {
        overlap: Duration::ZERO,
        ..WeChatConfig::default()
    })
    .await;
    let (serve, api, _) = env.serve_with_new_key("a").await;
    wait_until(Duration::from_secs(10), "serve's first token", async || {
        fake.lock().tokens_issued() == 1 && status(&api, "wx").await == "fresh"
    })
    .await;
    let other = env.sibling();
    for _ in 0..3 {
        let out = other.run(&["refresh", "wx"], None).await;
        routed_or_refused(&out);
        let served = api.token("wx").await;
        assert!(
            fake.lock().token_alive(&served),
            "serve's token died at the provider after the other installation's refresh:\n{out}"
        );
        let out = other.run(&["token", "wx"], None).await;
        routed_or_refused(&out);
        if out.code == 0 {
            assert!(fake.lock().token_alive(out.stdout_trimmed()), "{out}");
        }
    }
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_of_a_wechat_account_beside_serve_is_not_a_failure() {
    let (fake, env) = wechat(WeChatConfig::default()).await;
    let (serve, api, _) = env.serve_with_new_key("a").await;
    let events = api.events().await;
    wait_until(Duration::from_secs(10), "wx fresh", async || {
        status(&api, "wx").await == "fresh"
    })
    .await;
    assert!(env.keychain_get("tokens:wx").await.is_some());
    let issued = fake.lock().tokens_issued();

    env.run(&["disconnect", "wx"], None).await.ok();
    events
        .wait_for("status_changed", "wx", 0, Duration::from_secs(5))
        .await;
    // Time for a scheduled or retried refresh to trip over the deleted secret, had there been one.
    tokio::time::sleep(Duration::from_secs(3)).await;

    assert_eq!(status(&api, "wx").await, "not_connected");
    assert_eq!(env.status("wx").await, "not_connected");
    assert_eq!(env.keychain_get("tokens:wx").await, None);
    assert_eq!(env.keychain_get("client-secret:wx").await, None);
    api.get("/v1/accounts/wx/token")
        .await
        .expect_error(409, "not_connected");
    let failed: Vec<_> = events
        .events()
        .into_iter()
        .filter(|e| e.event == "refresh_failed")
        .map(|e| e.raw)
        .collect();
    assert!(
        failed.is_empty(),
        "refresh_failed after disconnect: {failed:?}"
    );
    // The token request above tried a fetch (not_connected → refreshing → not_connected);
    // its events may still be on their way.
    let last_change = || {
        events
            .events()
            .into_iter()
            .rfind(|e| e.event == "status_changed" && e.data["account"] == "wx")
            .expect("a status change")
    };
    wait_until(
        Duration::from_secs(5),
        "wx's last status change is to not_connected",
        async || last_change().data["to"] == "not_connected",
    )
    .await;
    assert_eq!(
        last_change().data["to"],
        "not_connected",
        "{}",
        last_change().raw
    );
    let history = api.get("/v1/history?account=wx").await.expect(200);
    let failures: Vec<_> = history
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["outcome"] != "ok")
        .collect();
    assert!(failures.is_empty(), "failure rows: {failures:?}");
    assert_eq!(
        fake.lock().tokens_issued(),
        issued,
        "no fetch after disconnect"
    );
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_no_browser_beside_serve_is_the_engines_flow() {
    let (fake, env) = LegacyAccount::new(|c| c).start().await;
    let (serve, api, _) = env.serve_with_new_key("beside").await;
    let events = api.events().await;

    let flow = env.start_connect("fb").await;
    let url = flow.url();
    assert_eq!(
        flow.first_line.lines().count(),
        1,
        "the URL alone on one line: {:?}",
        flow.first_line
    );
    // The pending flow is the engine's.
    let progress = api.get("/v1/accounts/fb/connect").await.expect(200);
    assert_eq!(progress["stage"], "waiting", "{progress}");
    let (_, e) = events
        .wait_for("connect_progress", "fb", 0, Duration::from_secs(5))
        .await;
    assert_eq!(e.data["stage"], "waiting", "{}", e.raw);

    let callback = authorize_in_browser(url.as_str()).await;
    let (code, body) = browser_get(&callback).await;
    assert_eq!(code, 200, "{body}");
    let out = flow.finish().await;
    assert_eq!(out.code, 0, "{out}");

    let access = fake.lock().current_access_token().expect("issued");
    assert_eq!(api.token("fb").await, access, "served at once, no restart");
    assert_eq!(fake.profile_status(&access).await, 200);
    let progress = api.get("/v1/accounts/fb/connect").await.expect(200);
    assert_eq!(progress["stage"], "completed", "{progress}");
    let done = events
        .events()
        .into_iter()
        .any(|e| e.event == "connect_progress" && e.data["stage"] == "completed");
    assert!(done, "{:?}", events.events());
    let history = api.get("/v1/history?account=fb&limit=1").await.expect(200);
    assert_eq!(history[0]["trigger"], "connect", "{history}");
    assert_eq!(history[0]["outcome"], "ok", "{history}");
    assert_eq!(
        env.stored_tokens("fb").await.expect("tokens:fb")["refresh_token"].as_str(),
        fake.lock().latest_refresh_token().as_deref()
    );
    assert_eq!(fake.lock().code_grants, 1);
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_connect_without_an_engine_does_not_hold_the_lock() {
    let (fake, env): (OAuthFake, Env) = LegacyAccount::new(|c| c).start().await;
    let flow = env.start_connect("fb").await;
    let url = flow.url();

    // serve starts while connect waits for the browser.
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        serve.running(),
        "serve refused to start:\n{}",
        serve.stderr()
    );

    let callback = authorize_in_browser(url.as_str()).await;
    let (code, body) = browser_get(&callback).await;
    assert_eq!(code, 200, "{body}");
    let out = flow.finish().await;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(fake.lock().code_grants, 1);
    assert_eq!(
        env.stored_tokens("fb").await.expect("tokens:fb")["refresh_token"].as_str(),
        fake.lock().latest_refresh_token().as_deref()
    );
    assert!(serve.running(), "{}", serve.stderr());
    assert_eq!(serve.stop().await.code, 0);
}
