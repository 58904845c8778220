//! `tokenwarden doctor`: each fault the fakes can make is named with what to do. WeChat's IP
//! whitelist (40164, with the address WeChat saw), a wrong appsecret (40125), a revoked grant
//! (invalid_grant), this machine's clock off (libfaketime) against the provider's `Date`, a
//! token the API refuses (with the scopes asked and granted, and one on another site named),
//! a redirect the provider does not know (its consent page says so); a healthy account, its
//! token and the store pass; `--bundle` writes a report with no secret in it.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::Value;
use tokenwarden_e2e::fakes::oauth::{Fault as OAuthFault, OAuthConfig, OAuthFake};
use tokenwarden_e2e::fakes::wechat::{Fault, WeChatConfig, WeChatFake};
use tokenwarden_e2e::harness::{free_port, LegacyAccount};
use tokenwarden_e2e::Env;

async fn doctor(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> (i32, Vec<Value>) {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    all.push("--json");
    let mut cmd = tokio::process::Command::from(env.command(&all));
    cmd.envs(extra.iter().copied());
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("doctor answers within 60 s")
        .unwrap();
    let findings = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor's JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), findings)
}

/// `fb`'s API is the fake's (`api_base`), so the token probe asks it, not api.fitbit.com.
fn api_on_the_fake(env: &Env, fake: &OAuthFake) {
    let mut config = std::fs::read_to_string(&env.config_path).unwrap();
    assert_eq!(
        config.matches("[[account]]").count(),
        1,
        "fb's table is the last"
    );
    config.push_str(&format!("api_base = \"{}\"\n", fake.url("/")));
    env.write_config(&config);
}

fn finding<'a>(findings: &'a [Value], check: &str) -> &'a Value {
    findings
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no `{check}` finding: {findings:#?}"))
}

async fn wechat_failing(code: i64, errmsg: &'static str) -> (WeChatFake, Env) {
    let config = WeChatConfig::default();
    let fake = WeChatFake::start(config.clone()).await;
    let env = Env::new(&fake.account_toml("wx", ""));
    env.set_secret("wx", &config.secret).await;
    fake.fail_next_tokens(5, Fault::Errcode(code, errmsg));
    assert_eq!(env.run(&["refresh", "wx"], None).await.code, 1);
    (fake, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_outside_the_whitelist_is_told_the_address_wechat_saw() {
    let (_fake, env) = wechat_failing(
        40164,
        "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist rid: 6756-1",
    )
    .await;
    let (code, findings) = doctor(&env, &["wx"], &[]).await;
    assert_eq!(code, 1, "a refused account fails the doctor: {findings:#?}");
    let status = finding(&findings, "wx: status");
    assert_eq!(status["level"], "fail");
    assert!(
        status["what"].as_str().unwrap().contains("203.0.113.7"),
        "{status}"
    );
    assert!(
        status["remedy"].as_str().unwrap().contains("whitelist"),
        "{status}"
    );
    assert_eq!(finding(&findings, "store")["level"], "ok");
    assert!(
        !status.to_string().contains("rid"),
        "nothing of errmsg but the address: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_appsecret_is_told_to_set_it_again() {
    let (_fake, env) = wechat_failing(40125, "invalid appsecret").await;
    let (_, findings) = doctor(&env, &[], &[]).await;
    let status = finding(&findings, "wx: status");
    assert!(
        status["remedy"]
            .as_str()
            .unwrap()
            .contains("tokenwarden secret set wx"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_is_told_to_connect_again_and_a_healthy_one_passes() {
    let (fake, env, _token) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    api_on_the_fake(&env, &fake);
    let (code, findings) = doctor(&env, &["fb"], &[]).await;
    assert_eq!(
        finding(&findings, "fb: status")["level"],
        "ok",
        "{findings:#?}"
    );
    assert!(finding(&findings, "fb: redirect")["what"]
        .as_str()
        .unwrap()
        .contains("exactly http://127.0.0.1:"));
    assert_eq!(finding(&findings, "fb: clock")["level"], "ok");
    let token = finding(&findings, "fb: token");
    assert_eq!(token["level"], "ok", "{token}");
    assert!(
        token["what"]
            .as_str()
            .unwrap()
            .contains("/1/user/-/profile.json answered 200"),
        "{token}"
    );
    assert_eq!(code, 0, "{findings:#?}");
    fake.fail_next(1, OAuthFault::OAuthError("invalid_grant"));
    assert_eq!(env.run(&["refresh", "fb"], None).await.code, 1);
    let (code, findings) = doctor(&env, &["fb"], &[]).await;
    assert_eq!(code, 1);
    let status = finding(&findings, "fb: status");
    assert!(
        status["remedy"]
            .as_str()
            .unwrap()
            .contains("tokenwarden connect fb"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_machines_clock_off_is_named_against_the_providers_date() {
    let (_fake, env, _token) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(
        std::path::Path::new(faketime).exists(),
        "libfaketime (make test installs it)"
    );
    let (_, findings) = doctor(
        &env,
        &["fb"],
        &[
            ("LD_PRELOAD", faketime),
            ("FAKETIME", "+300s"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    )
    .await;
    let clock = finding(&findings, "fb: clock");
    assert_eq!(clock["level"], "warn", "{clock}");
    let what = clock["what"].as_str().unwrap();
    assert!(what.contains("behind ours"), "{what}");
    let secs: i64 = what
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("a number of seconds");
    assert!((290..=310).contains(&secs), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundle_holds_what_an_issue_needs_and_no_secret() {
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let mut oauth = OAuthConfig::fitbit_legacy(&redirect).expires_in(3600);
    oauth.client_secret = "tw-canary-bundle-client-secret".into();
    oauth.access_token_prefix = "tw-canary-bundle-at-".into();
    oauth.refresh_token_prefix = "tw-canary-bundle-rt-".into();
    let fake = OAuthFake::start(oauth.clone()).await;
    let env = Env::new(&fake.account_toml(
        "fb",
        "fitbit-legacy",
        &format!("redirect_uri = \"{redirect}\""),
    ));
    env.set_secret("fb", &oauth.client_secret).await;
    env.connect("fb").await;
    env.token("fb").await;
    env.run(&["refresh", "fb"], None).await.ok();
    let bundle = env.root().join("report.json");
    let (_, findings) = doctor(&env, &["--bundle", bundle.to_str().unwrap()], &[]).await;
    assert!(!findings.is_empty());
    let text = std::fs::read_to_string(&bundle).expect("the bundle is written");
    let report: Value = serde_json::from_str(&text).unwrap();
    for key in [
        "tokenwarden",
        "os",
        "config",
        "findings",
        "accounts",
        "history",
    ] {
        assert!(!report[key].is_null(), "the bundle has `{key}`");
    }
    assert!(
        report["history"].as_array().unwrap().len() >= 2,
        "connect and a refresh at least"
    );
    assert!(!text.contains("tw-canary"), "a secret in the bundle");
    let mode = std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_names_the_scopes_and_the_one_on_another_site() {
    let google_scope = "https://www.googleapis.com/auth/fitness.activity.read";
    let (fake, env, _token) = LegacyAccount::new(|c| c.expires_in(3600))
        .extra(&format!("scopes = [\"activity\", \"{google_scope}\"]"))
        .connected(3600)
        .await;
    api_on_the_fake(&env, &fake);
    fake.kill_access_token();
    let (code, findings) = doctor(&env, &["fb"], &[]).await;
    assert_eq!(code, 1, "{findings:#?}");
    let token = finding(&findings, "fb: token");
    assert_eq!(token["level"], "fail", "{token}");
    let what = token["what"].as_str().unwrap();
    assert!(what.contains("answered 401"), "{what}");
    assert!(
        what.contains(&format!("scopes asked: activity {google_scope}")),
        "{what}"
    );
    let remedy = token["remedy"].as_str().unwrap();
    assert!(
        remedy.contains(&format!(
            "`{google_scope}` is a scope of www.googleapis.com"
        )),
        "names the scope on another site: {remedy}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_the_provider_does_not_know_is_named_with_what_to_register() {
    let registered = format!("http://127.0.0.1:{}/registered", free_port());
    let fake = OAuthFake::start(OAuthConfig::fitbit_legacy(&registered)).await;
    let ours = format!("http://127.0.0.1:{}/callback", free_port());
    let env =
        Env::new(&fake.account_toml("fb", "fitbit-legacy", &format!("redirect_uri = \"{ours}\"")));
    let secret = fake.lock().config.client_secret.clone();
    env.set_secret("fb", &secret).await;
    let (code, findings) = doctor(&env, &["fb"], &[]).await;
    assert_eq!(code, 1, "{findings:#?}");
    let redirect = finding(&findings, "fb: redirect");
    assert_eq!(redirect["level"], "fail", "{redirect}");
    let what = redirect["what"].as_str().unwrap();
    assert!(
        what.contains(&ours) && what.contains("HTTP 400") && what.contains("redirect_uri mismatch"),
        "{what}"
    );
    assert!(
        redirect["remedy"]
            .as_str()
            .unwrap()
            .contains(&format!("exactly {ours}")),
        "{redirect}"
    );
    // The provider saw the redirect asked for, as a browser would have brought it.
    let asked = fake.lock().authorize_queries.clone();
    assert_eq!(asked.last().unwrap()["redirect_uri"], ours);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_others_could_tamper_with_is_named_and_nothing_is_opened_there() {
    let (_fake, env, _token) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let (code, findings) = doctor(&env, &["fb"], &[]).await;
    assert_eq!(
        finding(&findings, "data dir")["level"],
        "ok",
        "{findings:#?}"
    );
    assert_eq!(code, 0, "{findings:#?}");
    // A folder anyone may write in, without the sticky bit: another user could swap ours.
    let open = env.root().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let data = open.join("data");
    let (code, findings) = doctor(
        &env,
        &["fb"],
        &[("TOKENWARDEN_DATA_DIR", data.to_str().unwrap())],
    )
    .await;
    assert_eq!(code, 1, "{findings:#?}");
    let place = finding(&findings, "data dir");
    assert_eq!(place["level"], "fail", "{place}");
    assert!(
        place["what"]
            .as_str()
            .unwrap()
            .contains(open.to_str().unwrap()),
        "names the folder: {place}"
    );
    assert!(
        findings.iter().all(|f| f["check"] != "store"),
        "nothing is opened in a place others could tamper with: {findings:#?}"
    );
    assert!(!data.exists(), "nothing was made there");
}
