//! An OpenID Connect issuer whose discovery document names endpoints that no browser should
//! open and no secret should go to: a `file:` URL, a `javascript:` URL, plain `http://` to
//! another machine. The real binary against a fake issuer: `connect` (with and without
//! `--no-browser`) fails with one line naming the field and the endpoint, prints no URL and
//! opens nothing, and the engine's `POST /v1/accounts/{name}/connect` refuses the same way, so
//! no front end ever gets such a URL. The opener is watched where the binary would find one: a
//! logging `xdg-open` first on PATH, and `BROWSER` set to the same logger.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokenwarden_e2e::fakes::oidc::OidcIssuer;
use tokenwarden_e2e::harness::Output;
use tokenwarden_e2e::Env;

/// Endpoints a discovery document may not name, and the field that names each.
const REFUSED: [(&str, &str); 4] = [
    ("authorization_endpoint", "file:///etc/passwd"),
    (
        "authorization_endpoint",
        "javascript:alert(document.cookie)",
    ),
    (
        "authorization_endpoint",
        "http://login.example.com/authorize",
    ),
    ("token_endpoint", "http://tokens.example.com/token"),
];

/// A discovery document that is fine but for `field` = `endpoint`.
fn document(issuer: &str, field: &str, endpoint: &str) -> Value {
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
    });
    doc[field] = json!(endpoint);
    doc
}

/// An `oidc` account `idp` on a fake issuer, with every opener the binary could use logging
/// what it was handed to the returned file instead of opening it.
async fn idp() -> (OidcIssuer, Env, PathBuf) {
    let issuer = OidcIssuer::start().await;
    let mut env = Env::new(&issuer.account_toml("idp"));
    let bin = env.root().join("opener-bin");
    std::fs::create_dir_all(&bin).expect("opener dir");
    let log = env.root().join("opened.log");
    let logger = bin.join("xdg-open");
    std::fs::write(
        &logger,
        format!("#!/bin/sh\necho \"$0 $*\" >>'{}'\n", log.display()),
    )
    .expect("write the logging opener");
    std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = std::env::var("PATH").unwrap_or_default();
    env.extra_vars
        .push(("PATH", format!("{}:{path}", bin.display()).into()));
    env.extra_vars.push(("BROWSER", logger.into()));
    (issuer, env, log)
}

/// `tokenwarden args`, cut off after 30 s (`None`: a flow that began waits minutes for a
/// redirect).
async fn run_briefly(env: &Env, args: &[&str]) -> Option<Output> {
    tokio::time::timeout(Duration::from_secs(30), env.run(args, None))
        .await
        .ok()
}

/// Panics if anything was handed to the opener.
fn assert_nothing_opened(log: &Path, when: &str) {
    let handed = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        handed.is_empty(),
        "{when}: the opener was handed:\n{handed}"
    );
}

fn finished(out: Option<Output>, when: &str) -> Output {
    out.unwrap_or_else(|| panic!("{when}: `connect` still waits for a redirect after 30 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refuses_discovered_endpoints_a_browser_must_not_open_and_opens_nothing() {
    let (issuer, env, opened) = idp().await;
    for (field, endpoint) in REFUSED {
        let when = format!("{field} = {endpoint}");
        issuer.set_document(document(&issuer.url(), field, endpoint));

        let out = run_briefly(&env, &["connect", "idp"]).await;
        assert_nothing_opened(&opened, &when);
        let line = finished(out, &when).failure_line();
        assert!(
            line.contains(field) && line.contains(endpoint),
            "{when}: the error names the field and the endpoint: {line}"
        );
        println!("{line}");

        let out = finished(
            run_briefly(&env, &["connect", "idp", "--no-browser"]).await,
            &when,
        );
        assert_eq!(out.stdout, "", "{when}: no URL is printed:\n{out}");
        assert!(out.failure_line().contains(endpoint), "{when}:\n{out}");
    }
    assert_eq!(issuer.other_requests(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_hands_no_front_end_a_file_url_to_open() {
    let (issuer, env, opened) = idp().await;
    let (field, endpoint) = REFUSED[0];
    issuer.set_document(document(&issuer.url(), field, endpoint));
    let (serve, api, _) = env.serve_with_new_write_key("connect").await;

    let answer = api.post("/v1/accounts/idp/connect", &json!({})).await;
    assert!(answer.status >= 400, "refused: {answer:?}");
    assert!(
        !answer.body.contains("authorization_url"),
        "no URL to open: {answer:?}"
    );
    assert!(
        answer.body.contains(field) && answer.body.contains(endpoint),
        "the error names the field and the endpoint: {answer:?}"
    );
    // The CLI beside the running engine gets the same refusal, and opens nothing.
    let out = run_briefly(&env, &["connect", "idp"]).await;
    assert_nothing_opened(&opened, "beside serve");
    let out = finished(out, "beside serve");
    assert!(out.failure_line().contains(endpoint), "{out}");
    assert_eq!(serve.stop().await.code, 0);
}
