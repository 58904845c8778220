//! Keys limited to some accounts (`api-key create LABEL --accounts a,b`), and the floor
//! between refreshes a caller asks for. The real `serve`, the real keychain, one fake
//! provider with two connected accounts, `fb` and `wx`; a key to `fb` alone must not learn
//! anything of `wx`: not its token, its state, its history, its metrics or its events.

use std::time::Duration;

use serde_json::Value;
use tokenwarden_e2e::fakes::oauth::OAuthFake;
use tokenwarden_e2e::harness::{unix_now, LegacyAccount};
use tokenwarden_e2e::{wait_until, Api, Env, Request, Serve};

/// `fb` and `wx` connected on one fake, `serve` running, a key to all accounts and one to
/// `fb` alone, both write keys (so that the scope, not the permission, is what refuses).
/// `refresh` is the `[refresh]` table.
async fn two_accounts(refresh: &str) -> (OAuthFake, Env, Serve, Api, Api) {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .refresh_settings(refresh)
        .another_account("wx")
        .connected(3600)
        .await;
    let secret = fake.lock().config.client_secret.clone();
    env.set_secret("wx", &secret).await;
    let (access, refresh_token) = fake.issue_grant();
    env.seed_tokens("wx", &access, &refresh_token, unix_now() + 3600)
        .await;
    let out = env
        .run(
            &[
                "api-key",
                "create",
                "fb-only",
                "--accounts",
                "fb",
                "--write",
            ],
            None,
        )
        .await
        .ok();
    let scoped_key = out.stdout_trimmed().to_owned();
    assert!(out.stderr.contains("for fb"), "{out}");
    let (serve, all, _) = env.serve_with_new_write_key("all").await;
    let scoped = all.with_key(Some(&scoped_key));
    (fake, env, serve, all, scoped)
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|v| v["name"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limited_to_one_account_sees_nothing_of_the_others() {
    let (_fake, env, serve, all, scoped) =
        two_accounts("retry_initial = \"1s\"\nmin_interval = \"1s\"").await;
    let scoped_events = scoped.events().await;
    let all_events = all.events().await;
    // Both accounts refresh once (history rows, metrics, events for each).
    all.post_empty("/v1/accounts/fb/refresh").await.expect(200);
    all.post_empty("/v1/accounts/wx/refresh").await.expect(200);
    all.post_empty("/v1/reload").await.expect(200);
    all_events
        .wait_for("refreshed", "wx", 0, Duration::from_secs(10))
        .await;
    wait_until(Duration::from_secs(10), "the reload heard", async || {
        all_events.text().contains("config_reloaded")
    })
    .await;

    // The key to all accounts sees both.
    assert_eq!(
        names(&all.get("/v1/accounts").await.expect(200)),
        ["fb", "wx"]
    );

    // The limited key sees fb as usual ...
    assert_eq!(names(&scoped.get("/v1/accounts").await.expect(200)), ["fb"]);
    scoped.get("/v1/accounts/fb/token").await.expect(200);
    scoped.get("/token?name=fb").await.expect(200);
    let fb_rows = scoped.get("/v1/history").await.expect(200);
    let accounts: Vec<&str> = fb_rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["account"].as_str().expect("account"))
        .collect();
    assert!(
        !accounts.is_empty() && accounts.iter().all(|a| *a == "fb"),
        "{fb_rows}"
    );

    // ... and wx not at all: every route answers as for an account in no config.
    let wx_token = all.token("wx").await;
    for (method, target) in [
        ("GET", "/v1/accounts/wx/token"),
        ("GET", "/v1/accounts/wx/token?min_valid=10"),
        ("POST", "/v1/accounts/wx/refresh"),
        ("POST", "/v1/accounts/wx/rejected"),
        ("POST", "/v1/accounts/wx/connect"),
        ("GET", "/v1/accounts/wx/connect"),
        ("DELETE", "/v1/accounts/wx/connect"),
        ("POST", "/v1/accounts/wx/disconnect"),
        ("POST", "/v1/accounts/wx/reload"),
        ("PUT", "/v1/accounts/wx/secret"),
        ("GET", "/token?name=wx"),
        ("GET", "/v1/history?account=wx"),
    ] {
        let mut req = Request::new(method, target);
        if target.ends_with("/rejected") {
            req = req.json(&serde_json::json!({ "access_token": "x" }));
        } else if target.ends_with("/secret") {
            req = req.json(&serde_json::json!({ "secret": "s" }));
        }
        let answer = scoped.send(req).await;
        answer.expect_error(404, "unknown_account");
        assert!(answer.body.contains("`wx`"), "{answer}");
    }
    scoped
        .post_empty("/v1/reload")
        .await
        .expect_error(403, "forbidden");
    let metrics = scoped.get("/metrics").await;
    assert_eq!(metrics.status, 200, "{metrics}");
    assert!(metrics.body.contains("account=\"fb\""), "{}", metrics.body);
    assert!(!metrics.body.contains("\"wx\""), "{}", metrics.body);
    assert!(all.get("/metrics").await.body.contains("account=\"wx\""));

    // The limited stream heard fb's refresh and nothing of wx or of the reload.
    scoped_events
        .wait_for("refreshed", "fb", 0, Duration::from_secs(10))
        .await;
    let heard = scoped_events.text();
    assert!(!heard.contains("\"wx\""), "{heard}");
    assert!(!heard.contains("config_reloaded"), "{heard}");
    assert!(!heard.contains(&wx_token), "no token on the stream");

    // wx was left alone by all of this: still connected, its token unchanged.
    assert_eq!(env.status("wx").await, "fresh");
    assert_eq!(all.token("wx").await, wx_token);
    // The key list shows the scope; a name the config lacks is refused.
    let list = env.run(&["api-key", "list", "--json"], None).await.ok();
    let keys: Value = serde_json::from_str(&list.stdout).expect("json");
    let fb_only = keys
        .as_array()
        .and_then(|k| k.iter().find(|k| k["label"] == "fb-only"))
        .expect("fb-only listed");
    assert_eq!(fb_only["accounts"], serde_json::json!(["fb"]));
    let typo = env
        .run(&["api-key", "create", "typo", "--accounts", "fb,wxx"], None)
        .await;
    assert_eq!(typo.code, 1, "{typo}");
    assert!(typo.failure_line().contains("`wxx`"), "{typo}");
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_asked_for_are_ten_in_a_row_then_one_per_min_interval() {
    // The default min_interval: 30 s.
    let (fake, env, mut serve, all, scoped) = two_accounts("retry_initial = \"1s\"").await;
    let grants = fake.lock().refresh_grants;
    let (mut ok, mut refused) = (0, 0);
    for i in 0..30 {
        let answer = scoped.post_empty("/v1/accounts/fb/refresh").await;
        if answer.status == 200 {
            assert_eq!(
                refused, 0,
                "ask {i}: once refused, refused until the interval passes"
            );
            ok += 1;
            continue;
        }
        answer.expect_error(429, "too_soon");
        let wait: u64 = answer
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("ask {i}: a Retry-After header:\n{answer}"));
        assert!((1..=30).contains(&wait), "ask {i}: Retry-After {wait}");
        assert!(answer.body.contains("min_interval"), "{answer}");
        refused += 1;
    }
    assert_eq!((ok, refused), (10, 20), "ten in a row, then refused");
    assert_eq!(
        fake.lock().refresh_grants,
        grants + 10,
        "only the ten reached the provider"
    );
    // min_valid beyond the token's life asks for a refresh too: refused the same way, by
    // any key.
    let needy = all.get("/v1/accounts/fb/token?min_valid=3600").await;
    needy.expect_error(429, "too_soon");
    assert_eq!(fake.lock().refresh_grants, grants + 10);
    // The token itself is still served, and the other account is not held back.
    scoped.get("/v1/accounts/fb/token").await.expect(200);
    all.post_empty("/v1/accounts/wx/refresh").await.expect(200);
    assert_eq!(fake.lock().refresh_grants, grants + 11);
    // The CLI says the same, naming the setting.
    let cli = env.run(&["refresh", "fb"], None).await;
    assert_eq!(cli.code, 1, "{cli}");
    assert!(cli.failure_line().contains("min_interval"), "{cli}");
    assert!(serve.running(), "{}", serve.stderr());
}
