//! The local HTTP API's perimeter and error contract, against a running `serve`: bearer keys
//! (401, and 429 after 20 failures from one address while a valid key still works), DNS
//! rebinding (foreign `Host` → 403) and browsers (`Origin` → 403, no CORS headers anywhere),
//! API keys created and revoked while serve runs, garbage paths/queries/bodies/methods (4xx JSON,
//! never a 500), the TokenBoy-compatible `/token`, and `/v1/accounts` and `/v1/history` against
//! `list --json` and `log --json`.
//!
//! The client secret and refresh tokens carry a canary; every test ends in [`finish`], which
//! checks every answer it received: no `Access-Control-*` header, no canary, no access token
//! outside a token answer, and serve's stderr free of secrets and of the API keys.

use serde_json::{json, Value};
use tokenwarden_e2e::fakes::oauth::{Fault, OAuthFake};
use tokenwarden_e2e::harness::{
    files_containing, free_port, unix_from_rfc3339, unix_now, LegacyAccount,
};
use tokenwarden_e2e::{Answer, Api, Env, Request, Serve};

/// In the client secret and refresh tokens: never in an answer or a log.
const CANARY: &str = "tw-canary-api-5c1d";
/// Prefix of access tokens: only in token answers.
const AT: &str = "tw-at-api-";

struct Setup {
    fake: OAuthFake,
    env: Env,
    serve: Serve,
    api: Api,
    key: String,
    /// The access token seeded for `fb` (valid for an hour).
    access: String,
}

/// Account `fb` (legacy-Fitbit fake, connected, an hour left) and `nc` (configured, never
/// connected); API key `tests`; serve running and answering /healthz.
async fn setup() -> Setup {
    let (fake, env, access) = LegacyAccount::new(|c| c.expires_in(3600).canaries(CANARY, AT))
        .another_account("nc")
        .connected(3600)
        .await;
    let (serve, api, key) = env.serve_with_new_key("tests").await;
    Setup {
        fake,
        env,
        serve,
        api,
        key,
        access,
    }
}

/// True for answers that may carry an access token: 200 from the token routes.
fn token_answer(a: &Answer) -> bool {
    a.status == 200
        && (a.target.starts_with("/token?")
            || ["/token", "/refresh", "/rejected"]
                .iter()
                .any(|r| a.target.split('?').next().unwrap_or("").ends_with(r)))
}

/// The checks every test of this file ends with, over every answer it received.
async fn finish(s: Setup, extra_secrets: &[&str]) {
    let answers = s.api.answers();
    assert!(!answers.is_empty());
    for a in &answers {
        let cors: Vec<_> = a
            .headers
            .iter()
            .filter(|(k, _)| k.starts_with("access-control-"))
            .collect();
        assert!(cors.is_empty(), "a CORS header in an answer:\n{a}");
        assert!(!a.body.contains(CANARY), "a secret in an answer:\n{a}");
        assert!(!a.body.contains(&s.key), "the API key in an answer:\n{a}");
        for secret in extra_secrets {
            assert!(!a.body.contains(secret), "{secret} in an answer:\n{a}");
        }
        if !token_answer(a) {
            assert!(!a.body.contains(AT), "an access token in this answer:\n{a}");
        }
        assert_ne!(a.status, 500, "a 500:\n{a}");
        if a.status >= 400 {
            a.assert_error_shape();
        }
    }
    let mut serve = s.serve;
    assert!(serve.running(), "serve died:\n{}", serve.stderr());
    let out = serve.stop().await;
    for secret in [CANARY, AT, s.key.as_str()]
        .iter()
        .chain(extra_secrets.iter())
    {
        assert!(
            !out.stderr.contains(secret) && !out.stdout.contains(secret),
            "serve printed {secret}:\n{out}"
        );
    }
    for secret in [CANARY, AT, s.key.as_str()] {
        let files = files_containing(s.env.root(), secret);
        assert!(files.is_empty(), "{secret} written to {files:?}");
    }
    drop(s.env);
    drop(s.fake);
}

/// A token answer's contract: fields, types, and `expires_in` consistent with `expires_at`.
#[track_caller]
fn check_token_answer(a: &Answer) -> Value {
    let v = a.expect(200);
    assert!(
        v["access_token"].as_str().is_some_and(|t| !t.is_empty()),
        "{a}"
    );
    assert!(v["token_type"].is_string(), "token_type:\n{a}");
    assert!(v.get("scope").is_some(), "scope:\n{a}");
    let expires_at = unix_from_rfc3339(v["expires_at"].as_str().expect("expires_at string"));
    let expires_in = v["expires_in"]
        .as_i64()
        .unwrap_or_else(|| panic!("expires_in is an integer:\n{a}"));
    assert!(
        (expires_at - unix_now() - expires_in).abs() <= 3,
        "expires_in {expires_in} agrees with expires_at:\n{a}"
    );
    assert!(expires_in > 0, "{a}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_key_get_401_and_do_nothing() {
    let s = setup().await;
    let anonymous = s.api.with_key(None);
    let health = anonymous.get("/healthz").await;
    assert_eq!(health.status, 200, "{health}");
    assert_eq!(health.body.trim(), "ok", "{health}");

    let routes = [
        ("GET", "/v1/accounts"),
        ("GET", "/v1/accounts/fb/token"),
        ("POST", "/v1/accounts/fb/refresh"),
        ("GET", "/v1/history"),
        ("GET", "/metrics"),
        ("GET", "/token?name=fb"),
        ("GET", "/v1/events"),
    ];
    for (method, path) in routes {
        anonymous
            .send(Request::new(method, path))
            .await
            .expect_error(401, "unauthorized");
    }
    let near_miss = format!("{}x", s.key);
    let wrong = [
        "Bearer tw-wrong-key-0000000000000000".to_string(),
        format!("Bearer {near_miss}"),
        format!("Bearer {}", &s.key[..s.key.len() - 1]),
        "Bearer ".to_string(),
        s.key.clone(), // no scheme
        format!("Basic {}", s.key),
        "Bearer ünïcödé".to_string(),
        format!("Bearer {}", "a".repeat(10_000)),
    ];
    for value in &wrong {
        let a = s
            .api
            .send(Request::new("GET", "/v1/accounts/fb/token").authorization(value))
            .await;
        a.expect_error(401, "unauthorized");
        assert!(!a.body.contains(AT), "{a}");
    }
    assert_eq!(
        s.fake.lock().token_requests.len(),
        0,
        "an unauthenticated refresh reached the provider"
    );
    // 15 failures so far: below the limit of 20, so the valid key is still welcome.
    let token = s.api.get("/v1/accounts/fb/token").await;
    assert_eq!(
        check_token_answer(&token)["access_token"],
        s.access.as_str()
    );
    finish(s, &[&near_miss]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_and_any_origin_are_forbidden_and_nothing_answers_with_cors_headers() {
    let s = setup().await;
    let port = s.env.api_port;
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1:{}", free_port()),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        "127.0.0.1".to_string(),
    ] {
        for path in ["/v1/accounts/fb/token", "/v1/accounts", "/healthz"] {
            let a = s.api.send(Request::new("GET", path).host(&host)).await;
            a.expect_error(403, "forbidden_host");
        }
    }
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let a = s
            .api
            .send(Request::new("GET", "/v1/accounts/fb/token").host(&host))
            .await;
        assert_eq!(check_token_answer(&a)["access_token"], s.access.as_str());
    }
    for origin in [
        "http://evil.example".to_string(),
        "null".to_string(),
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        for path in [
            "/v1/accounts/fb/token",
            "/v1/accounts",
            "/healthz",
            "/metrics",
        ] {
            let a = s
                .api
                .send(Request::new("GET", path).header("Origin", &origin))
                .await;
            a.expect_error(403, "forbidden_origin");
        }
        let a = s
            .api
            .send(
                Request::new("POST", "/v1/accounts/fb/refresh")
                    .header("Origin", &origin)
                    .json(&json!({})),
            )
            .await;
        a.expect_error(403, "forbidden_origin");
    }
    // CORS preflights, with and without a key, and a bare OPTIONS.
    for (key, origin) in [(true, true), (false, true), (true, false)] {
        let api = if key {
            s.api.clone()
        } else {
            s.api.with_key(None)
        };
        let mut req = Request::new("OPTIONS", "/v1/accounts/fb/token")
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization");
        if origin {
            req = req.header("Origin", "http://evil.example");
        }
        let a = api.send(req).await;
        assert!(
            [401, 403, 405].contains(&a.status),
            "a preflight gets 403/405 (or 401 without a key):\n{a}"
        );
        if origin {
            assert!(
                [403, 401].contains(&a.status),
                "a preflight with Origin is forbidden:\n{a}"
            );
        }
        a.assert_error_shape();
    }
    assert_eq!(
        s.fake.lock().token_requests.len(),
        0,
        "a forbidden request reached the provider"
    );
    finish(s, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_accounts_and_garbage_get_json_4xx_never_500_and_change_nothing() {
    let s = setup().await;
    let before = s.env.stored_tokens("fb").await;
    let long_lower = "a".repeat(3000);
    let long_upper = "A".repeat(5000);

    // Well-formed but not configured.
    for req in [
        Request::new("GET", "/v1/accounts/nope/token"),
        Request::new("GET", "/v1/accounts/nope/token?min_valid=60"),
        Request::new("POST", "/v1/accounts/nope/refresh"),
        Request::new("POST", "/v1/accounts/nope/rejected")
            .json(&json!({"access_token": "whatever"})),
        Request::new("GET", "/token?name=nope"),
    ] {
        s.api.send(req).await.expect_error(404, "unknown_account");
    }
    // Configured, never connected: the user must act.
    for req in [
        Request::new("GET", "/v1/accounts/nc/token"),
        Request::new("POST", "/v1/accounts/nc/refresh"),
        Request::new("GET", "/token?name=nc"),
    ] {
        s.api.send(req).await.expect_error(409, "not_connected");
    }

    let mut cases: Vec<(Request, u16, &str)> = Vec::new();
    for name in [
        "..",
        "%2e%2e",
        "%00",
        "fb%00",
        "FB",
        "fb%2Ftoken",
        "fb%20x",
        "fb;rm",
        "%F0%9F%92%A9",
        "f%C3%A9",
        "fb%0d%0aX-Injected:%201",
        "%zz",
        "fb%",
        long_upper.as_str(),
    ] {
        cases.push((
            Request::new("GET", &format!("/v1/accounts/{name}/token")),
            400,
            "bad_request",
        ));
        cases.push((
            Request::new("POST", &format!("/v1/accounts/{name}/refresh")),
            400,
            "bad_request",
        ));
        cases.push((
            Request::new("GET", &format!("/token?name={name}")),
            400,
            "bad_request",
        ));
    }
    for q in [
        "min_valid=abc",
        "min_valid=1.5",
        "min_valid=1e3",
        "min_valid=%00",
        "min_valid=60s",
        "min_valid=99999999999999999999999",
        "min_valid=%zz",
    ] {
        cases.push((
            Request::new("GET", &format!("/v1/accounts/fb/token?{q}")),
            400,
            "bad_request",
        ));
    }
    for q in [
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "limit=99999999999999999999999",
        "account=..",
        "account=FB",
        "account=%00",
        "account=%zz",
        "limit=%zz",
    ] {
        cases.push((
            Request::new("GET", &format!("/v1/history?{q}")),
            400,
            "bad_request",
        ));
    }
    let rejected = "/v1/accounts/fb/rejected";
    for body in [
        "not json",
        "{\"access_token\":",
        "",
        "{}",
        "[]",
        "null",
        "{\"access_token\": 5}",
        "{\"access_token\": null}",
        "{\"access_token\": [\"a\"]}",
        "\"just a string\"",
    ] {
        cases.push((
            Request::new("POST", rejected).body("application/json", body),
            400,
            "bad_request",
        ));
    }
    for (method, path) in [
        ("DELETE", "/v1/accounts/fb/token"),
        ("POST", "/v1/accounts/fb/token"),
        ("GET", "/v1/accounts/fb/refresh"),
        ("GET", "/v1/accounts/fb/rejected"),
        ("PUT", "/v1/accounts"),
        ("DELETE", "/v1/history"),
        ("POST", "/metrics"),
        ("POST", "/token?name=fb"),
        ("PATCH", "/v1/accounts/fb/refresh"),
        ("PUT", "/v1/accounts/fb/rejected"),
        // Routes that change an account take only their own method.
        ("GET", "/v1/accounts/fb/secret"),
        ("GET", "/v1/accounts/fb/disconnect"),
        ("PUT", "/v1/accounts/fb/connect"),
    ] {
        cases.push((Request::new(method, path), 405, "method_not_allowed"));
    }
    for path in [
        "/",
        "/v1",
        "/v1/nothing",
        "/v1/accounts/fb",
        "/v1/accounts/fb/token/extra",
        "/v2/accounts/fb/token",
        "/v1/accounts/fb/password",
        "/v1/accounts/",
        "//v1/accounts",
        "/v1/accounts/fb/token/",
        "/healthz/x",
    ] {
        cases.push((Request::new("GET", path), 404, "not_found"));
    }
    // Every case is tried; the failures are listed together.
    let mut problems = Vec::new();
    for (req, status, code) in cases {
        let a = s.api.send(req).await;
        if let Some(p) = a.error_problem(status, code) {
            problems.push(format!("{p}:\n{a}"));
        }
    }

    // Where the contract leaves a choice, still a JSON 4xx.
    let loose = [
        Request::new("GET", &format!("/v1/accounts/{long_lower}/token")),
        Request::new("GET", "/v1/accounts//token"),
        Request::new("GET", "/v1/accounts/fb/token?min_valid=-5"),
        Request::new("POST", rejected).body("application/json", vec![b'{'; 3 * 1024 * 1024]),
        Request::new("POST", rejected).body("application/json", vec![0xff, 0xfe, 0x00, 0x7b]),
    ];
    for req in loose {
        let a = s.api.send(req).await;
        if !(400..500).contains(&a.status) {
            problems.push(format!("expected a 4xx:\n{a}"));
        } else if let Some(p) = a.error_shape_problem() {
            problems.push(format!("{p}:\n{a}"));
        }
    }
    // A valid body without a JSON content type may be read or refused, never a 500. The token
    // it reports is not the current one, so an accepted report returns the current token.
    for content_type in ["", "text/plain", "application/x-www-form-urlencoded"] {
        let a = s
            .api
            .send(Request::new("POST", rejected).body(content_type, "{\"access_token\":\"x\"}"))
            .await;
        if a.status == 200 {
            assert_eq!(a.access_token(), s.access, "{a}");
        } else if !(400..500).contains(&a.status) {
            problems.push(format!("expected 200 or a 4xx:\n{a}"));
        } else if let Some(p) = a.error_shape_problem() {
            problems.push(format!("{p}:\n{a}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} garbage requests got a wrong answer:\n{}",
        problems.len(),
        problems.join("\n")
    );

    // Nothing above refreshed or overwrote anything, and serve still serves.
    assert_eq!(s.fake.lock().token_requests.len(), 0);
    assert_eq!(s.env.stored_tokens("fb").await, before);
    assert_eq!(s.api.token("fb").await, s.access);
    finish(s, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_failed_authentications_lead_to_429_while_a_valid_key_still_works() {
    let s = setup().await;
    let wrong: Vec<String> = (0..24)
        .map(|i| format!("tw-wrong-{i:02}-{:016x}", rand::random::<u64>()))
        .collect();
    for (i, key) in wrong.iter().take(20).enumerate() {
        let a = s.api.with_key(Some(key)).get("/v1/accounts").await;
        assert_eq!(a.status, 401, "failure #{} gets 401:\n{a}", i + 1);
        a.expect_error(401, "unauthorized");
    }
    let a = s.api.with_key(Some(&wrong[20])).get("/v1/accounts").await;
    a.expect_error(429, "too_many_failures");
    let a = s.api.with_key(None).get("/v1/accounts/fb/token").await;
    a.expect_error(429, "too_many_failures");

    // The right key is not locked out, and health checks still answer.
    assert_eq!(
        check_token_answer(&s.api.get("/v1/accounts/fb/token").await)["access_token"],
        s.access.as_str()
    );
    s.api.get("/v1/accounts").await.expect(200);
    assert_eq!(s.api.with_key(None).get("/healthz").await.status, 200);
    for key in &wrong[21..] {
        let a = s.api.with_key(Some(key)).get("/v1/accounts").await;
        a.expect_error(429, "too_many_failures");
    }

    let stderr = s.serve.stderr();
    for key in &wrong {
        assert!(
            !stderr.contains(key.as_str()),
            "serve logged a presented key {key}:\n{stderr}"
        );
    }
    let lower = stderr.to_lowercase();
    assert!(
        [
            "unauthorized",
            "authenticat",
            "api key",
            "api_key",
            "api-key",
            "401",
            "429"
        ]
        .iter()
        .any(|w| lower.contains(w)),
        "failed attempts are logged:\n{stderr}"
    );
    let refs: Vec<&str> = wrong.iter().map(String::as_str).collect();
    finish(s, &refs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_created_or_revoked_while_serve_runs_take_effect_at_once() {
    let s = setup().await;
    let env = &s.env;

    let key2 = env.create_api_key("second_key-2").await;
    assert_ne!(key2, s.key);
    assert!(
        env.keychain_get("api-key:second_key-2").await.is_some(),
        "the key lives in the keychain entry api-key:second_key-2"
    );
    let api2 = s.api.with_key(Some(&key2));
    assert_eq!(api2.token("fb").await, s.access, "a new key works at once");

    let out = env.run(&["api-key", "list", "--json"], None).await.ok();
    let list: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("api-key list --json is not JSON ({e}):\n{out}"));
    let entries = list.as_array().expect("an array");
    for label in ["tests", "second_key-2"] {
        let entry = entries
            .iter()
            .find(|e| e["label"] == label)
            .unwrap_or_else(|| panic!("{label} in api-key list --json:\n{out}"));
        let fields: Vec<&String> = entry.as_object().expect("object").keys().collect();
        assert_eq!(
            fields,
            ["accounts", "created_at", "label", "write"],
            "{entry}"
        );
        assert_eq!(
            entry["write"], false,
            "read-only unless made with --write: {entry}"
        );
        assert!(
            entry["accounts"].is_null(),
            "a key to all accounts: {entry}"
        );
        let created = unix_from_rfc3339(entry["created_at"].as_str().expect("created_at"));
        assert!((created - unix_now()).abs() < 120, "{entry}");
    }
    let human = env.run(&["api-key", "list"], None).await.ok();
    for out in [&out, &human] {
        assert!(
            !out.stdout.contains(&s.key) && !out.stdout.contains(&key2),
            "api-key list shows a key:\n{out}"
        );
    }
    assert!(human.stdout.contains("second_key-2"), "{human}");

    // Refusals leave everything as it was.
    let dup = env.run(&["api-key", "create", "second_key-2"], None).await;
    dup.failure_line();
    assert!(!dup.stdout.contains(&key2), "{dup}");
    assert_eq!(
        api2.token("fb").await,
        s.access,
        "a refused duplicate keeps the key"
    );
    for bad in ["Bad", "a b", "", &"k".repeat(65), "x/y", "émoji"] {
        let out = env.run(&["api-key", "create", bad], None).await;
        assert!(
            out.code == 1 || out.code == 2,
            "label {bad:?} is refused:\n{out}"
        );
        assert!(out.stdout.trim().is_empty(), "{out}");
    }
    let max = "k".repeat(64);
    let key3 = env.create_api_key(&max).await;
    s.api
        .with_key(Some(&key3))
        .get("/v1/accounts")
        .await
        .expect(200);
    env.run(&["api-key", "revoke", "no-such-label"], None)
        .await
        .failure_line();

    env.run(&["api-key", "revoke", "second_key-2"], None)
        .await
        .ok();
    api2.get("/v1/accounts/fb/token")
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(env.keychain_get("api-key:second_key-2").await, None);
    assert_eq!(
        s.api.token("fb").await,
        s.access,
        "the other key still works"
    );
    let out = env.run(&["api-key", "list", "--json"], None).await.ok();
    assert!(!out.stdout.contains("second_key-2"), "revoked: {out}");
    env.run(&["api-key", "revoke", "second_key-2"], None)
        .await
        .failure_line();

    // The first key revoked too: this client is locked out without a restart.
    env.run(&["api-key", "revoke", "tests"], None).await.ok();
    s.api
        .get("/v1/accounts")
        .await
        .expect_error(401, "unauthorized");
    let keys = [key2.clone(), key3.clone()];
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    finish(s, &refs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_answers_and_the_tokenboy_endpoint_have_the_contract_shape() {
    let s = setup().await;
    let a = s.api.get("/v1/accounts/fb/token").await;
    let v = check_token_answer(&a);
    assert_eq!(v["access_token"], s.access.as_str());
    assert_eq!(
        v["token_type"].as_str().map(str::to_lowercase).as_deref(),
        Some("bearer")
    );
    let expires_in = v["expires_in"].as_i64().unwrap();
    assert!((3500..=3600).contains(&expires_in), "{a}");
    assert!(
        a.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "{a}"
    );

    let a = s.api.get("/token?name=fb").await;
    let v = a.expect(200);
    let mut keys: Vec<&String> = v
        .as_object()
        .unwrap_or_else(|| panic!("{a}"))
        .keys()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["access_token", "expires_in"],
        "exactly these two fields:\n{a}"
    );
    assert_eq!(v["access_token"], s.access.as_str());
    let expires_in = v["expires_in"]
        .as_i64()
        .unwrap_or_else(|| panic!("expires_in is an integer:\n{a}"));
    assert!((3500..=3600).contains(&expires_in), "{a}");
    s.api.get("/token").await.expect_error(400, "bad_request");
    s.api
        .get("/token?name=")
        .await
        .expect_error(400, "bad_request");
    s.api
        .with_key(None)
        .get("/token?name=fb")
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(
        s.fake.lock().token_requests.len(),
        0,
        "nothing was refreshed"
    );
    finish(s, &[]).await;
}

/// The everyday token answers are given without the router (src/api/fast.rs); the same
/// request in a form only the router takes (a percent-encoded name, `bearer` in lower case,
/// a second query parameter) gets the same bytes, headers and count in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_answers_exactly_what_the_router_does() {
    let s = setup().await;
    let count = async |route: &str| {
        let m = s.api.get("/metrics").await;
        tokenwarden_e2e::prometheus::parse(&m.body)
            .unwrap_or_else(|e| panic!("/metrics: {e}\n{m}"))
            .sum(
                "tokenwarden_api_requests_total",
                &[("route", route), ("status", "200")],
            )
    };
    let get = |target: &str| Request::new("GET", target);
    let pairs = [
        ("/v1/accounts/fb/token", get("/v1/accounts/f%62/token")),
        (
            "/v1/accounts/fb/token?min_valid=60",
            get("/v1/accounts/fb/token?min_valid=60").authorization(&format!("bearer {}", s.key)),
        ),
        ("/token?name=fb", get("/token?name=f%62")),
        ("/token?name=fb", get("/token?name=fb&from=test")),
    ];
    let before = (
        count("/v1/accounts/{name}/token").await,
        count("/token").await,
    );
    for (fast_target, slow_request) in pairs {
        // The same second on both (expires_in counts down): ask again if one turned over.
        let (mut fast, mut slow) = (None::<Answer>, None::<Answer>);
        for _ in 0..3 {
            let f = s.api.get(fast_target).await;
            let r = s.api.send(slow_request.clone()).await;
            assert_eq!(f.status, 200, "{f}");
            assert_eq!(r.status, 200, "{r}");
            let same = f.body == r.body;
            (fast, slow) = (Some(f), Some(r));
            if same {
                break;
            }
        }
        let (fast, slow) = (fast.expect("asked"), slow.expect("asked"));
        assert_eq!(fast.body, slow.body, "{fast}\n{slow}");
        let names = |a: &Answer| {
            let mut h: Vec<String> = a
                .headers
                .iter()
                .filter(|(k, _)| k != "date")
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            h.sort();
            h
        };
        assert_eq!(names(&fast), names(&slow), "{fast}\n{slow}");
    }
    let now = (
        count("/v1/accounts/{name}/token").await,
        count("/token").await,
    );
    // Two routed and two fast answers per route at least (more if a second turned over):
    // were the fast ones not counted, each route would have grown by 2 or 3.
    assert!(
        now.0 - before.0 >= 4.0 && now.1 - before.1 >= 4.0,
        "every answer is counted, fast or routed: {before:?} then {now:?}"
    );
    finish(s, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_history_match_list_and_log_json() {
    let s = setup().await;
    // Two refreshes through the API and one failed one give the history three entries.
    let first = check_token_answer(&s.api.post_empty("/v1/accounts/fb/refresh").await);
    let second = check_token_answer(&s.api.post_empty("/v1/accounts/fb/refresh").await);
    assert_ne!(first["access_token"], second["access_token"]);
    assert_ne!(first["access_token"], s.access.as_str());
    assert_eq!(
        second["access_token"].as_str(),
        s.fake.lock().current_access_token().as_deref()
    );
    s.fake.fail_next(1, Fault::OAuthError("invalid_client"));
    let failed = s.api.post_empty("/v1/accounts/fb/refresh").await;
    failed.expect_error(502, "refresh_failed");
    assert_eq!(s.fake.lock().refresh_grants, 2);

    let accounts = s.api.get("/v1/accounts").await.expect(200);
    let listed: Value = Value::Array(s.env.list().await);
    assert_eq!(accounts, listed, "GET /v1/accounts is `list --json`");
    let arr = accounts.as_array().expect("an array");
    assert_eq!(arr.len(), 2, "{accounts}");
    for a in arr {
        let mut keys: Vec<&String> = a.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "attempt",
                "can_copy",
                "connects_with",
                "expires_at",
                "expiry_estimated",
                "last_error",
                "last_refresh",
                "name",
                "next_refresh",
                "provider",
                "quota",
                "refresh_token_expires_at",
                "remedy",
                "severity",
                "status",
                "unsaved"
            ],
            "{a}"
        );
    }
    let nc = arr.iter().find(|a| a["name"] == "nc").expect("nc");
    assert_eq!(nc["status"], "not_connected", "{nc}");
    let fb = arr.iter().find(|a| a["name"] == "fb").expect("fb");
    assert_eq!(fb["provider"], "fitbit-legacy");
    assert!(
        fb["last_error"].is_string(),
        "the failed refresh is the last error: {fb}"
    );

    let history = s.api.get("/v1/history").await.expect(200);
    let log = Value::Array(s.env.log_entries(None).await);
    assert_eq!(history, log, "GET /v1/history is `log --json`");
    let entries = history.as_array().expect("an array");
    assert_eq!(entries.len(), 3, "{history}");
    for e in entries {
        let mut keys: Vec<&String> = e.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "account",
                "at",
                "duration_ms",
                "error_code",
                "expires_at",
                "message",
                "outcome",
                "trigger"
            ],
            "{e}"
        );
        assert_eq!(e["account"], "fb");
        assert!(e["duration_ms"].is_u64(), "{e}");
    }
    let outcomes: Vec<&str> = entries
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        outcomes,
        ["permanent_error", "ok", "ok"],
        "newest first: {history}"
    );
    let at = |e: &Value| unix_from_rfc3339(e["at"].as_str().expect("at"));
    assert!(
        entries.windows(2).all(|w| at(&w[0]) >= at(&w[1])),
        "{history}"
    );

    let one = s
        .api
        .get("/v1/history?account=fb&limit=1")
        .await
        .expect(200);
    assert_eq!(one, json!([entries[0]]), "limit=1 is the newest");
    let fb_log = Value::Array(s.env.log_entries(Some("fb")).await);
    assert_eq!(
        s.api.get("/v1/history?account=fb").await.expect(200),
        fb_log
    );
    assert_eq!(
        s.api.get("/v1/history?account=nc").await.expect(200),
        json!([])
    );
    finish(s, &[]).await;
}
