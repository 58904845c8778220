//! WeChat's 2,000 token fetches per appid per Beijing day: every fetch is counted in the
//! history database, so a restart neither forgets the count nor fetches a token it holds;
//! the count shows in `list`, the API's account view and `/metrics`; one event at 80%;
//! refreshes callers ask for are refused past 95% while the engine's own fetches go on.

use std::time::Duration;

use tokenwarden_e2e::fakes::wechat::{WeChatConfig, WeChatFake};
use tokenwarden_e2e::{prometheus, Env};

/// Today in Beijing, as the binary names the day.
fn beijing_today() -> String {
    let beijing = time::UtcOffset::from_hms(8, 0, 0).unwrap();
    time::OffsetDateTime::now_utc()
        .to_offset(beijing)
        .date()
        .to_string()
}

/// Sets today's count for the appid, as if that many fetches had been made (serve stopped).
fn set_fetches(env: &Env, appid: &str, fetches: u32) {
    let db = rusqlite::Connection::open(env.data_dir.join("history.sqlite3")).unwrap();
    db.execute(
        "INSERT INTO wechat_fetches (allowance, day, fetches) VALUES (?1, ?2, ?3)
         ON CONFLICT (allowance, day) DO UPDATE SET fetches = excluded.fetches",
        rusqlite::params![appid, beijing_today(), fetches],
    )
    .unwrap();
}

async fn wx_view(api: &tokenwarden_e2e::Api) -> serde_json::Value {
    api.get("/v1/accounts").await.expect(200)[0].clone()
}

fn used(view: &serde_json::Value) -> u64 {
    view["quota"]["used"]
        .as_u64()
        .unwrap_or_else(|| panic!("no quota in {view}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_are_counted_across_restarts_warned_at_80_and_refused_past_95() {
    let fake = WeChatFake::start(WeChatConfig::default()).await;
    let appid = fake.lock().config.appid.clone();
    let env = Env::new(&fake.account_toml("wx", ""));
    let secret = fake.lock().config.secret.clone();
    env.set_secret("wx", &secret).await;
    env.run(&["list"], None).await.ok(); // makes the history database
    set_fetches(&env, &appid, 1_598);

    // Startup fetch: 1,599. A refresh asked for: 1,600, which is 80%: one event.
    let key = env.create_api_key("quota").await;
    let (serve, api) = env.serve_api(&key).await;
    let events = api.events().await;
    api.token("wx").await;
    assert_eq!(fake.lock().tokens_issued(), 1);
    let view = wx_view(&api).await;
    assert_eq!(used(&view), 1_599, "{view}");
    assert_eq!(view["quota"]["limit"], 2_000);
    api.post_empty("/v1/accounts/wx/refresh").await.expect(200);
    let (_, warning) = events
        .wait_for("quota_warning", "wx", 0, Duration::from_secs(5))
        .await;
    assert_eq!(warning.data["used"], 1_600, "{:?}", warning.data);
    assert_eq!(warning.data["limit"], 2_000);
    let metrics = api.get("/metrics").await;
    let exp = prometheus::parse(&metrics.body).unwrap();
    assert_eq!(
        exp.sum("tokenwarden_wechat_fetches_today", &[("account", "wx")]),
        1_600.0
    );
    assert_eq!(
        exp.sum("tokenwarden_wechat_fetch_limit", &[("account", "wx")]),
        2_000.0
    );
    let list = env.run(&["list"], None).await.ok();
    assert!(
        list.stdout
            .contains("WeChat fetches today: 1600 of 2000 (80%)"),
        "{list}"
    );
    serve.stop().await;

    // A restart neither fetches (the stored token is valid) nor forgets the count.
    let (serve, api) = env.serve_api(&key).await;
    api.token("wx").await;
    assert_eq!(fake.lock().tokens_issued(), 2, "no fetch at restart");
    assert_eq!(used(&wx_view(&api).await), 1_600);
    serve.stop().await;
    let json = env.run(&["list", "--json"], None).await.ok();
    let listed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        used(&listed[0]),
        1_600,
        "the CLI alone reads the same count"
    );

    // Past 95%: refreshes asked for are refused before anything is sent.
    set_fetches(&env, &appid, 1_900);
    let (serve, api) = env.serve_api(&key).await;
    // The stored token is valid: served without a refresh, so the quota is not in the way.
    let t = api.get("/v1/accounts/wx/token").await;
    assert_eq!(
        t.status,
        200,
        "{t}\nserve's log:\n{}\nhistory: {:?}",
        serve.stderr(),
        env.log_entries(Some("wx")).await
    );
    let a = api.post_empty("/v1/accounts/wx/refresh").await;
    a.expect_error(429, "quota_nearly_spent");
    assert!(a.header("retry-after").is_some(), "{a}");
    assert!(a.body.contains("1900 of today's 2000"), "{a}");
    let cli = env.run(&["refresh", "wx"], None).await;
    assert_eq!(cli.code, 1, "{cli}");
    assert!(cli.stderr.contains("quota_nearly_spent"), "{cli}");
    assert_eq!(fake.lock().tokens_issued(), 2, "nothing was fetched");
    serve.stop().await;

    // A fetch for an account with nothing to serve still goes (serve's own at start, or the
    // one a caller's request waits for, whichever comes first): it is not one on top.
    env.keychain_clear("tokens:wx").await;
    let (serve, api) = env.serve_api(&key).await;
    api.token("wx").await;
    assert_eq!(fake.lock().tokens_issued(), 3);
    assert_eq!(used(&wx_view(&api).await), 1_901);
    serve.stop().await;
}
