//! Foresight: the refresh token's own deadline, from what the provider says
//! (`refresh_token_expires_in`) or from the account's `refresh_token_lifetime`, is in the
//! account view, `list`, `/metrics`, and one `reconnect_soon` event `reconnect_warning`
//! before it.

use std::time::Duration;

use tokenwarden_e2e::fakes::oauth::Fault;
use tokenwarden_e2e::harness::{unix_from_rfc3339, unix_now, LegacyAccount};
use tokenwarden_e2e::prometheus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_tokens_deadline_is_shown_measured_and_warned_about_once() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .refresh_settings("reconnect_warning = \"2h\"")
        .connected(3600)
        .await;
    let (serve, api, _) = env.serve_with_new_key("foresight").await;
    let events = api.events().await;
    let view = api.get("/v1/accounts").await.expect(200);
    assert_eq!(
        view[0]["refresh_token_expires_at"],
        serde_json::Value::Null,
        "nothing said yet"
    );

    // The provider says the new refresh token lives an hour: less than the 2 h warning.
    fake.fail_next(
        1,
        Fault::AnswerWith(serde_json::json!({"refresh_token_expires_in": 3600})),
    );
    api.post_empty("/v1/accounts/fb/refresh").await.expect(200);
    let view = api.get("/v1/accounts").await.expect(200);
    let by = unix_from_rfc3339(
        view[0]["refresh_token_expires_at"]
            .as_str()
            .expect("a deadline"),
    );
    assert!((by - (unix_now() + 3600)).abs() <= 5, "{view}");
    let (_, warning) = events
        .wait_for("reconnect_soon", "fb", 0, Duration::from_secs(5))
        .await;
    assert_eq!(unix_from_rfc3339(warning.data["by"].as_str().unwrap()), by);
    let metrics = api.get("/metrics").await;
    let left = prometheus::parse(&metrics.body).unwrap().sum(
        "tokenwarden_refresh_token_expiry_seconds",
        &[("account", "fb")],
    );
    assert!((3590.0..=3600.0).contains(&left), "{left}");
    let list = env.run(&["list"], None).await.ok();
    assert!(list.stdout.contains("reconnect needed by"), "{list}");

    // Another refresh without a word about it: the rotated token's deadline is unknown, so
    // the account has none, and no second warning goes out.
    api.post_empty("/v1/accounts/fb/refresh").await.expect(200);
    let view = api.get("/v1/accounts").await.expect(200);
    assert_eq!(
        view[0]["refresh_token_expires_at"],
        serde_json::Value::Null,
        "{view}"
    );
    serve.stop().await;

    // `refresh_token_lifetime` where the provider is silent (Google apps in "Testing": 7 days).
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    env.write_config(&config.replacen(
        "name = \"fb\"\n",
        "name = \"fb\"\nrefresh_token_lifetime = \"90m\"\n",
        1,
    ));
    let (serve, api) = env.serve_api(&api.key.clone().unwrap()).await;
    let events = api.events().await;
    api.post_empty("/v1/accounts/fb/refresh").await.expect(200);
    let view = api.get("/v1/accounts").await.expect(200);
    let by = unix_from_rfc3339(
        view[0]["refresh_token_expires_at"]
            .as_str()
            .expect("a deadline"),
    );
    assert!((by - (unix_now() + 5400)).abs() <= 5, "{view}");
    events
        .wait_for("reconnect_soon", "fb", 0, Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        events
            .events()
            .iter()
            .filter(|e| e.event == "reconnect_soon")
            .count(),
        1,
        "once per deadline"
    );
    serve.stop().await;
}
