//! One view of an account for every front end: `tokenwarden list --json` and `GET /v1/accounts`
//! print the same bytes for the same state, in every status the engine decides (not_connected,
//! fresh, refreshing, retrying, needs_reconnect, expired), with the new fields; and the CLI and
//! the API report the same failure with the same error code.

use std::time::Duration;

use serde_json::Value;
use tokenwarden_e2e::fakes::oauth::{Fault, OAuthConfig, OAuthFake};
use tokenwarden_e2e::harness::{free_port, unix_now};
use tokenwarden_e2e::{wait_until, Api, Env, Output};

const STATUSES: &[&str] = &[
    "not_connected",
    "fresh",
    "refreshing",
    "retrying",
    "needs_reconnect",
    "expired",
];

/// A legacy-Fitbit fake with its own account table `name` (a redirect_uri on a free port).
async fn fake_for(name: &str) -> (OAuthFake, String) {
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let fake = OAuthFake::start(OAuthConfig::fitbit_legacy(&redirect).expires_in(3600)).await;
    let table = fake.account_toml(
        name,
        "fitbit-legacy",
        &format!("redirect_uri = \"{redirect}\"\nrefresh_before = \"10s\""),
    );
    (fake, table)
}

async fn seed(env: &Env, fake: &OAuthFake, name: &str, left: i64) {
    let secret = fake.lock().config.client_secret.clone();
    env.set_secret(name, &secret).await;
    let (access, refresh) = fake.issue_grant();
    env.seed_tokens(name, &access, &refresh, unix_now() + left)
        .await;
}

fn by_name(list: &Value, name: &str) -> Value {
    list.as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

/// `list --json` and `GET /v1/accounts` taken back to back until they are the same JSON (the state may
/// change between the two); panics with both after five tries. Returns the parsed list.
async fn identical_views(env: &Env, api: &Api) -> Value {
    let mut last = None;
    for _ in 0..5 {
        let listed = env.run(&["list", "--json"], None).await.ok();
        let answer = api.get("/v1/accounts").await;
        assert_eq!(answer.status, 200, "{answer}");
        // The same JSON value (the CLI pretty-prints it for people).
        let printed: Value = serde_json::from_str(&listed.stdout).expect("list --json is JSON");
        if printed == answer.json() {
            return answer.json();
        }
        last = Some((listed, answer));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (listed, answer) = last.expect("tried");
    panic!(
        "list --json and GET /v1/accounts differ:\n--- list --json\n{}\n--- GET /v1/accounts\n{}",
        listed.stdout, answer.body
    );
}

/// Panics unless `view` has the contract's fields with the contract's types.
#[track_caller]
fn check_fields(view: &Value) {
    let s = |k: &str| view[k].is_string();
    let s_or_null = |k: &str| view[k].is_string() || view[k].is_null();
    assert!(s("name") && s("provider") && s("status"), "{view}");
    assert!(
        STATUSES.contains(&view["status"].as_str().unwrap_or("")),
        "{view}"
    );
    for k in ["expires_at", "last_refresh", "last_error", "next_refresh"] {
        assert!(s_or_null(k), "{k}: {view}");
    }
    assert!(view["attempt"].is_u64(), "attempt: {view}");
    assert_eq!(
        view["connects_with"], "browser",
        "a fitbit-legacy account: {view}"
    );
    assert_eq!(view["refresh_token_expires_at"], Value::Null, "{view}");
    assert!(view["unsaved"].is_boolean(), "unsaved: {view}");
    assert!(
        view["remedy"].is_null() || view["remedy"]["kind"].is_string(),
        "remedy: {view}"
    );
}

/// The CLI's failure and the API's error for the same thing name the same code: the CLI's one
/// line carries the API's code or its message.
#[track_caller]
fn same_failure(cli: &Output, api_error: &Value) {
    let line = cli.failure_line();
    let code = api_error["error"].as_str().unwrap_or("?");
    let message = api_error["message"].as_str().unwrap_or("?");
    assert!(
        line.contains(code) || line.contains(message),
        "the CLI's `{line}` names neither the API's code {code} nor its message {message:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_json_and_the_api_show_the_same_view_in_every_status() {
    let (ok, fb) = fake_for("fb").await;
    let nc_table = ok.account_toml(
        "nc",
        "fitbit-legacy",
        &format!(
            "redirect_uri = \"http://127.0.0.1:{}/callback\"",
            free_port()
        ),
    );
    let (nr_fake, nr) = fake_for("nr").await;
    let (rt_fake, rt) = fake_for("rt").await;
    let (sl_fake, sl) = fake_for("sl").await;
    let env = Env::with_refresh(
        "retry_initial = \"60s\"\nretry_max = \"120s\"",
        &[fb, nc_table, nr, rt, sl].concat(),
    );
    seed(&env, &ok, "fb", 3600).await;
    seed(&env, &nr_fake, "nr", -60).await;
    seed(&env, &rt_fake, "rt", -60).await;
    seed(&env, &sl_fake, "sl", -60).await;
    nr_fake.fail_next(100, Fault::OAuthError("invalid_grant"));
    rt_fake.fail_next(100, Fault::status(503));
    sl_fake.fail_next(1, Fault::DelayAfterIssue(Duration::from_secs(12)));

    let (serve, api, _) = env.serve_with_new_key("views").await;
    wait_until(Duration::from_secs(8), "every status settled", async || {
        let list = api.get("/v1/accounts").await.expect(200);
        by_name(&list, "nr")["status"] == "needs_reconnect"
            && ["retrying", "expired"]
                .contains(&by_name(&list, "rt")["status"].as_str().unwrap_or(""))
            && by_name(&list, "sl")["status"] == "refreshing"
    })
    .await;

    let views = identical_views(&env, &api).await;
    let status = |name: &str| by_name(&views, name)["status"].clone();
    assert_eq!(status("nc"), "not_connected", "{views}");
    assert_eq!(status("fb"), "fresh", "{views}");
    assert_eq!(status("nr"), "needs_reconnect", "{views}");
    assert_eq!(status("sl"), "refreshing", "{views}");
    // Ambiguous in the contract: an expired token in backoff is `retrying` or `expired`.
    assert!(
        ["retrying", "expired"].contains(&status("rt").as_str().unwrap_or("")),
        "{views}"
    );
    for view in views.as_array().expect("array") {
        check_fields(view);
    }
    assert_eq!(by_name(&views, "fb")["remedy"], Value::Null, "{views}");
    assert!(by_name(&views, "fb")["next_refresh"].is_string(), "{views}");
    assert!(
        by_name(&views, "nr")["remedy"]["kind"].is_string(),
        "{views}"
    );
    assert!(
        by_name(&views, "rt")["attempt"].as_u64() >= Some(1),
        "{views}"
    );
    assert!(
        rt_fake.lock().refresh_requests().len() <= 2,
        "retries 60 s apart: {:?}",
        rt_fake.lock().token_requests
    );

    // The same failures through the API and the CLI beside serve.
    let unknown = api.get("/v1/accounts/zz/token").await;
    unknown.expect_error(404, "unknown_account");
    let not_connected = api.get("/v1/accounts/nc/token").await;
    not_connected.expect_error(409, "not_connected");
    let cli_unknown = env.run(&["token", "zz"], None).await;
    let cli_nc = env.run(&["token", "nc"], None).await;
    same_failure(&cli_unknown, &unknown.json());
    same_failure(&cli_nc, &not_connected.json());
    let last_api = api.get("/v1/accounts").await.expect(200);
    drop(api);
    let out = serve.stop().await;
    assert_eq!(out.code, 0, "{out}");

    // Without an engine: the same failures, and `expired` decided for the expired token.
    let alone_unknown = env.run(&["token", "zz"], None).await;
    let alone_nc = env.run(&["token", "nc"], None).await;
    assert_eq!(alone_unknown.failure_line(), cli_unknown.failure_line());
    assert_eq!(alone_nc.failure_line(), cli_nc.failure_line());
    let alone = env.run(&["list", "--json"], None).await.ok();
    let alone: Value = serde_json::from_str(&alone.stdout).expect("list --json");
    assert_eq!(by_name(&alone, "rt")["status"], "expired", "{alone}");
    assert_eq!(by_name(&alone, "nc"), by_name(&last_api, "nc"));
    for view in alone.as_array().expect("array") {
        check_fields(view);
    }
}
