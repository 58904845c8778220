//! WeChat accounts end to end: `serve` keeps an access token and the jsapi_ticket that depends on
//! it fresh, the ticket is only ever fetched with a live token, an errcode answered with HTTP 200
//! is a failure (permanent or transient by code), and the `stable` endpoint posts JSON.

use std::time::{Duration, Instant};

use tokenwarden_e2e::fakes::wechat::{Fault, WeChatConfig, WeChatFake};
use tokenwarden_e2e::{wait_until, Env};

const TICKET: &str =
    "[[account]]\nname = \"wx_ticket\"\nprovider = \"wechat-jsapi-ticket\"\ndepends_on = \"wx\"\n";

async fn setup(config: WeChatConfig, extra: &str, with_ticket: bool) -> (WeChatFake, Env) {
    let fake = WeChatFake::start(config).await;
    let mut accounts = fake.account_toml("wx", extra);
    if with_ticket {
        accounts.push_str(TICKET);
    }
    let env = Env::new(&accounts);
    let secret = fake.lock().config.secret.clone();
    env.set_secret("wx", &secret).await;
    (fake, env)
}

fn error_code_text(entry: &serde_json::Value) -> String {
    match &entry["error_code"] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_token_and_ticket_fresh_and_fetches_tickets_with_live_tokens_only() {
    // 20 s lifetimes, and the previous token dies 2 s after a new one: a ticket fetched with
    // a stale token shows up as a dead-token call.
    let config = WeChatConfig {
        expires_in: 20,
        overlap: Duration::from_secs(2),
        ticket_expires_in: 20,
        ..WeChatConfig::default()
    };
    let (fake, env) = setup(config, "", true).await;
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;
    wait_until(
        Duration::from_secs(15),
        "a first token and ticket",
        async || env.stored_tokens("wx_ticket").await.is_some(),
    )
    .await;

    let started = Instant::now();
    let mut samples = 0;
    while started.elapsed() < Duration::from_secs(45) {
        let token = env.token("wx").await;
        assert!(
            fake.lock().token_alive(&token),
            "`token wx` printed a dead token at {:?}",
            started.elapsed()
        );
        let ticket = env.token("wx_ticket").await;
        assert!(
            fake.lock().ticket_valid(&ticket),
            "`token wx_ticket` printed {ticket:?}, not a valid ticket, at {:?}",
            started.elapsed()
        );
        for account in env.list().await {
            let status = account["status"].as_str().unwrap_or("");
            assert!(["fresh", "refreshing"].contains(&status), "{account}");
        }
        samples += 1;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let out = serve.stop().await;
    assert_eq!(out.code, 0, "serve exits 0 on SIGTERM:\n{out}");
    assert!(samples >= 6);

    let st = fake.lock();
    let issued = st.tokens_issued();
    // ~60 s of 20 s tokens refreshed with 10 s left (half the lifetime) is about 6 tokens.
    assert!((4..=12).contains(&issued), "tokens issued: {issued}");
    let dead: Vec<_> = st.ticket_calls.iter().filter(|c| !c.token_alive).collect();
    assert!(
        dead.is_empty(),
        "getticket called with a dead token: {dead:?}"
    );
    // The ticket follows its token: every token but one issued at the very end got a ticket.
    let last = st.tokens.last().map(|t| t.issued_at);
    for token in st.tokens.iter().filter(|t| Some(t.issued_at) != last) {
        assert!(
            st.ticket_calls
                .iter()
                .any(|c| c.access_token == token.value),
            "no ticket was fetched with token {}",
            token.value
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errcode_in_an_http_200_answer_is_not_a_token_and_needs_reconnect() {
    let fake = WeChatFake::start(WeChatConfig::default()).await;
    let env = Env::new(&fake.account_toml("wx", ""));
    env.set_secret("wx", "not-the-appsecret").await;

    let out = env.run(&["token", "wx"], None).await;
    let line = out.failure_line();
    assert!(
        line.contains("40125"),
        "the reason names the errcode: {line}"
    );
    assert!(out.stdout.trim().is_empty(), "{out}");
    assert_eq!(
        env.keychain_get("tokens:wx").await,
        None,
        "an error answer was stored as a token"
    );
    assert_eq!(fake.lock().token_calls.len(), 1, "40125 is not retried");

    let account = env.account("wx").await;
    assert_eq!(account["status"], "needs_reconnect", "{account}");
    assert!(
        account["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("40125"),
        "{account}"
    );
    let log = env.log_entries(Some("wx")).await;
    let newest = log.first().expect("the failure is in the log");
    assert_eq!(newest["outcome"], "permanent_error", "{newest}");
    assert!(error_code_text(newest).contains("40125"), "{newest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errcode_minus_one_system_busy_is_retried() {
    let (fake, env) = setup(WeChatConfig::default(), "", false).await;
    fake.fail_next_tokens(2, Fault::busy());
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;

    let mut seen = Vec::new();
    wait_until(
        Duration::from_secs(20),
        "wx fresh after two busy answers",
        async || {
            let status = env.status("wx").await;
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            status == "fresh" && fake.lock().tokens_issued() == 1
        },
    )
    .await;
    assert!(
        seen.iter().any(|s| s == "retrying"),
        "statuses seen: {seen:?}"
    );
    assert!(
        !seen.iter().any(|s| s == "needs_reconnect"),
        "statuses seen: {seen:?}"
    );
    let codes: Vec<i64> = fake.lock().token_calls.iter().map(|c| c.errcode).collect();
    assert_eq!(codes, [-1, -1, 0]);
    let stored = env.stored_tokens("wx").await.expect("tokens:wx");
    assert_eq!(
        stored["access_token"].as_str(),
        fake.lock().tokens.last().map(|t| t.value.as_str())
    );

    let log = env.log_entries(Some("wx")).await;
    assert_eq!(
        log.first().map(|e| e["outcome"].clone()),
        Some("ok".into()),
        "{log:?}"
    );
    let transient: Vec<_> = log
        .iter()
        .filter(|e| e["outcome"] == "transient_error")
        .collect();
    assert_eq!(transient.len(), 2, "{log:?}");
    assert!(
        transient.iter().all(|e| error_code_text(e).contains("-1")),
        "{log:?}"
    );
    let out = serve.stop().await;
    assert_eq!(out.code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_endpoint_posts_json_credentials() {
    let (fake, env) = setup(WeChatConfig::default(), "endpoint = \"stable\"", false).await;
    env.run(&["refresh", "wx"], None).await.ok();

    let issued = {
        let st = fake.lock();
        assert_eq!(st.token_calls.len(), 1);
        assert_eq!(st.token_calls[0].endpoint, "stable_token");
        let body = &st.stable_bodies[0];
        assert_eq!(body["grant_type"], "client_credential", "{body}");
        assert_eq!(body["appid"], st.config.appid.as_str(), "{body}");
        assert_eq!(body["secret"], st.config.secret.as_str(), "{body}");
        assert_ne!(
            body["force_refresh"], true,
            "a scheduled refresh must not force: {body}"
        );
        st.stable_tokens[0].value.clone()
    };
    assert_eq!(
        env.stored_tokens("wx").await.unwrap()["access_token"],
        issued.as_str()
    );
}
