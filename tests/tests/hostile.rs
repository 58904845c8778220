//! A provider that sends nonsense: absurd numbers in its answers and headers, redirects,
//! huge bodies and hostile error strings. The real `serve`, the real keychain and the fake
//! provider; each case checks that the engine keeps answering (no panic, `/healthz` ok),
//! that a refresh token the provider rotated is never lost, and that nothing leaks.

use std::time::Duration;

use serde_json::{json, Value};
use tokenwarden_e2e::fakes::oauth::{Fault, OAuthFake};
use tokenwarden_e2e::fakes::Catcher;
use tokenwarden_e2e::harness::{unix_now, LegacyAccount};
use tokenwarden_e2e::proc;
use tokenwarden_e2e::{wait_until, Api, Env, Serve};

const TEN_YEARS: i64 = 10 * 365 * 24 * 3600;

fn unix_of(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("a time: {value}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
        .unix_timestamp()
}

/// fb's row of `GET /v1/accounts`, which must answer.
async fn fb_view(api: &Api) -> Value {
    let all = api.get("/v1/accounts").await.expect(200);
    all.as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == "fb").cloned())
        .unwrap_or_else(|| panic!("fb in {all}"))
}

/// The engine is whole: it answers `/healthz`, lists accounts, and never panicked.
async fn assert_whole(serve: &mut Serve, api: &Api, when: &str) {
    assert!(serve.running(), "{when}: serve exited:\n{}", serve.stderr());
    let health = api.get("/healthz").await;
    assert_eq!(health.status, 200, "{when}: /healthz: {health:?}");
    api.get("/v1/accounts").await.expect(200);
    assert!(
        !serve.stderr().contains("panicked"),
        "{when}: serve panicked:\n{}",
        serve.stderr()
    );
}

/// The keychain holds the refresh token the provider issued last, which is still live.
async fn assert_rotation_kept(env: &Env, fake: &OAuthFake, when: &str) {
    let stored = env.stored_tokens("fb").await.expect("tokens:fb");
    let st = fake.lock();
    let latest = st.latest_refresh_token().expect("a refresh token");
    assert_eq!(
        stored["refresh_token"].as_str(),
        Some(latest.as_str()),
        "{when}: the rotated refresh token is what the keychain holds"
    );
    assert!(st.is_live_refresh_token(&latest), "{when}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_lifetimes_are_bounded_and_the_rotated_token_is_never_lost() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let (mut serve, api, _) = env.serve_with_new_key("hostile").await;

    // (answer fields, the largest expires_at allowed, whether it is an estimate)
    let cases: [(Value, i64, bool); 6] = [
        (
            json!({"expires_in": 9_300_000_000_000_000_000u64}),
            TEN_YEARS,
            false,
        ),
        (json!({"expires_in": 300_000_000_000u64}), TEN_YEARS, false),
        (json!({"expires_in": 1e300}), 3600, true),
        (json!({"expires_in": "inf"}), 3600, true),
        (json!({"expires_in": null}), 3600, true),
        (
            json!({"refresh_token_expires_in": 10_000_000_000_000_000_000u64}),
            3600,
            false,
        ),
    ];
    for (patch, max_left, estimated) in cases {
        let when = format!("after an answer with {patch}");
        let grants = fake.lock().refresh_grants;
        fake.fail_next(1, Fault::AnswerWith(patch.clone()));
        let answer = api.post_empty("/v1/accounts/fb/refresh").await;
        assert_eq!(answer.status, 200, "{when}: {answer:?}");
        assert_eq!(fake.lock().refresh_grants, grants + 1, "{when}");
        assert_whole(&mut serve, &api, &when).await;
        assert_rotation_kept(&env, &fake, &when).await;
        let view = fb_view(&api).await;
        assert_eq!(view["status"], "fresh", "{when}: {view}");
        let left = unix_of(&view["expires_at"]) - unix_now();
        assert!(
            (0..=max_left + 5).contains(&left),
            "{when}: expires in {left} s, at most {max_left}: {view}"
        );
        assert_eq!(view["expiry_estimated"], estimated, "{when}: {view}");
        if let Some(rt) = view["refresh_token_expires_at"].as_str() {
            assert!(unix_of(&json!(rt)) - unix_now() <= TEN_YEARS + 5, "{when}");
        }
        // The CLI formats the same dates.
        let list = env.run(&["list"], None).await;
        assert_eq!(list.code, 0, "{when}: list:\n{list}");
    }

    // A restart reads back what was stored and still answers.
    serve.stop().await;
    let (mut serve, api, _) = env.serve_with_new_key("hostile-2").await;
    assert_whole(&mut serve, &api, "after a restart").await;
    assert_eq!(fake.lock().reused_refresh_tokens, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_date_past_year_9999_is_read_as_the_last_one_and_formatted() {
    let (fake, env) = LegacyAccount::new(|c| c.expires_in(3600)).start().await;
    let (access, refresh) = fake.issue_grant();
    env.seed_tokens("fb", &access, &refresh, i64::MAX / 2).await;
    let (mut serve, api, _) = env.serve_with_new_key("far").await;
    let mut view = Value::Null;
    wait_until(
        Duration::from_secs(10),
        "fb read from the keychain",
        async || {
            view = fb_view(&api).await;
            view["status"] == "fresh"
        },
    )
    .await;
    assert_whole(&mut serve, &api, "with expires_at far past 9999").await;
    assert_eq!(view["expires_at"], "9999-12-31T23:59:59Z", "{view}");
    let list = env.run(&["list", "--json"], None).await;
    assert_eq!(list.code, 0, "{list}");
}

/// `expires_in: 0` once, with the default floor between refreshes (30 s): the engine does
/// not refresh again and again. Without a floor it loops at the provider's round-trip time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_lifetime_does_not_become_a_refresh_loop() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .refresh_settings("retry_initial = \"1s\"")
        .connected(3600)
        .await;
    let (mut serve, api, _) = env.serve_with_new_key("zero").await;
    // From now on the provider answers every refresh with a token that is already dead.
    fake.fail_next(1000, Fault::AnswerWith(json!({"expires_in": 0})));
    // The provider answers with a token that is already dead: the caller is told so.
    let answer = api.post_empty("/v1/accounts/fb/refresh").await;
    assert_eq!(answer.status, 503, "{answer:?}");
    let grants = fake.lock().refresh_grants;
    assert_eq!(grants, 1, "the refresh reached the provider");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let more = fake.lock().refresh_grants - grants;
    assert!(
        more <= 1,
        "{more} more refreshes in 5 s after an answer of expires_in: 0"
    );
    let view = fb_view(&api).await;
    let next = unix_of(&view["next_refresh"]) - unix_now();
    assert!(
        more == 1 || (20..=31).contains(&next),
        "the next refresh waits for the 30 s floor: {view}"
    );
    assert_whole(&mut serve, &api, "after expires_in: 0").await;
    assert_rotation_kept(&env, &fake, "after expires_in: 0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_is_capped_and_the_engine_keeps_answering() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let (mut serve, api, _) = env.serve_with_new_key("wait").await;
    for secs in [10_000_000_000_000_000_000u64, 300_000_000_000] {
        let when = format!("after Retry-After: {secs}");
        fake.fail_next(1, Fault::too_many_requests(secs));
        let answer = api.post_empty("/v1/accounts/fb/refresh").await;
        assert!(
            answer.status >= 400
                && serde_json::from_str::<Value>(&answer.body).is_ok_and(|v| v.is_object()),
            "{when}: a JSON error: {answer:?}"
        );
        assert_whole(&mut serve, &api, &when).await;
        let view = fb_view(&api).await;
        assert_eq!(view["status"], "retrying", "{when}: {view}");
        let wait = unix_of(&view["next_refresh"]) - unix_now();
        assert!(
            (0..=25 * 3600 + 5).contains(&wait),
            "{when}: the next try is at most 25 h away, not {wait} s: {view}"
        );
        // The token it has is still served meanwhile.
        assert_eq!(api.get("/v1/accounts/fb/token").await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_and_huge_or_hostile_answers_are_refused() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let catcher = Catcher::start().await;
    let (mut serve, api, _) = env.serve_with_new_key("outbound").await;

    // A 307 would make a client re-post the refresh token and client secret to the new
    // place; a 302 would leak a query in Referer. Neither is followed.
    for status in [307, 302, 308] {
        fake.fail_next(1, Fault::Redirect(status, catcher.url()));
        let answer = api.post_empty("/v1/accounts/fb/refresh").await;
        assert!(answer.status >= 400, "HTTP {status}: {answer:?}");
        assert!(
            catcher.requests().is_empty(),
            "a redirect was followed: {:?}",
            catcher.requests()
        );
        newest_log_row(&env, |row| row["error_code"] == "redirect_not_followed").await;
        assert_whole(&mut serve, &api, &format!("after HTTP {status}")).await;
        // Back to a healthy account for the next case.
        let retry = api.post_empty("/v1/accounts/fb/refresh").await;
        assert_eq!(retry.status, 200, "{retry:?}");
    }

    // 256 MiB of answer: read up to the limit, then refused; memory stays flat.
    fake.fail_next(1, Fault::HugeBody(256 << 20));
    let answer = api.post_empty("/v1/accounts/fb/refresh").await;
    assert!(answer.status >= 400, "{answer:?}");
    let peak_kib = proc::status_kib(serve.pid(), "VmHWM").unwrap_or(0);
    assert!(
        peak_kib < 200 * 1024,
        "serve's peak memory is {} MiB after a 256 MiB answer",
        peak_kib / 1024
    );
    newest_log_row(&env, |row| {
        row["message"]
            .as_str()
            .is_some_and(|m| m.contains("larger than"))
    })
    .await;
    assert_whole(&mut serve, &api, "after a huge answer").await;
    println!(
        "peak RSS of serve after a 256 MiB answer: {} MiB",
        peak_kib / 1024
    );

    // An error string with escapes, a fake log line and 100 kB: stored and logged as `error`.
    let hostile = format!("x\u{1b}[31m\nINJECTED line {}", "A".repeat(100_000));
    fake.fail_next(
        1,
        Fault::Status {
            status: 400,
            retry_after: None,
            body: json!({ "error": hostile }).to_string(),
        },
    );
    let answer = api.post_empty("/v1/accounts/fb/refresh").await;
    assert!(answer.status >= 400, "{answer:?}");
    newest_log_row(&env, |row| {
        row["outcome"] != "ok" && row["error_code"] == "error"
    })
    .await;
    let log = env.log_entries(Some("fb")).await;
    let everything = format!(
        "{}\n{}\n{}",
        serde_json::to_string(&log).unwrap_or_default(),
        serve.stderr(),
        api.get("/v1/accounts").await.body
    );
    assert!(
        !everything.contains("INJECTED") && !everything.contains('\u{1b}'),
        "the provider's string reached the log, the history or a view"
    );
    assert_whole(&mut serve, &api, "after a hostile error string").await;
}

/// A provider that answers 200 and then trickles its body one byte every 5 s: a read
/// timeout alone would never fire. The whole call is cut off at 60 s; meanwhile the stored
/// token is served and the engine answers; afterwards the failure is named and the account
/// retries. (This test waits a minute; it runs beside the others.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_trickling_its_answer_is_cut_off_after_a_minute() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let (mut serve, api, _) = env.serve_with_new_key("trickle").await;
    let before = api.token("fb").await;
    fake.fail_next(1, Fault::Trickle(Duration::from_secs(5)));
    let started = std::time::Instant::now();
    let caller = api.clone();
    let refresh = tokio::spawn(async move {
        caller
            .send_within(
                tokenwarden_e2e::api::Request::new("POST", "/v1/accounts/fb/refresh"),
                Duration::from_secs(120),
            )
            .await
    });
    // While the provider trickles, the engine goes on answering with what it holds.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(api.token("fb").await, before);
        assert_whole(&mut serve, &api, "while the provider trickles").await;
    }
    let answer = refresh.await.expect("the refresh call");
    let took = started.elapsed();
    assert!(answer.status >= 500, "the refresh failed: {answer:?}");
    // Not a performance figure: the bound is 60 s, and the call must not have outlived it
    // by more than a busy machine's scheduling could explain.
    assert!(
        took >= Duration::from_secs(55) && took < Duration::from_secs(90),
        "the trickling call was cut off after {took:?}, not at 60 s"
    );
    let row = newest_log_row(&env, |row| row["outcome"] != "ok").await;
    assert!(
        row["message"]
            .as_str()
            .is_some_and(|m| m.contains("timed out")),
        "the failure is named: {row}"
    );
    assert_eq!(fb_view(&api).await["status"], "retrying");
    assert_eq!(
        api.token("fb").await,
        before,
        "the stored token still served"
    );
    assert_whole(&mut serve, &api, "after the provider trickled").await;
    println!("a trickling provider was cut off after {took:.1?}");
}

/// Waits (5 s at most: the history is written behind) until fb's newest log row is `ok`.
async fn newest_log_row(env: &Env, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    wait_until(Duration::from_secs(5), "the newest log row", async || {
        last = env
            .log_entries(Some("fb"))
            .await
            .first()
            .cloned()
            .unwrap_or_default();
        ok(&last)
    })
    .await;
    last
}

/// The scheduler dies (a panic, through the debug builds' fault hook
/// `TOKENWARDEN_FAULT_SCHEDULER_PANIC`): `serve` must not limp on answering `/healthz` ok
/// while nothing refreshes. It exits non-zero saying why (within milliseconds, so a 503 from
/// `/healthz` in between is seen only by chance; once seen, never ok again), and still writes
/// what it holds: the keychain keeps the newest refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_scheduler_fails_healthz_and_serve_exits_non_zero() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let flag = env.root().join("scheduler-panics");
    let key = env.create_api_key("health").await;
    let mut serve = env.spawn_serve_with(&[(
        "TOKENWARDEN_FAULT_SCHEDULER_PANIC",
        flag.clone().into_os_string(),
    )]);
    serve.wait_api().await;
    let api = env.api(&key);
    assert_eq!(api.get("/healthz").await.status, 200);
    api.post_empty("/v1/accounts/fb/refresh").await.expect(200);

    std::fs::write(&flag, b"panic").expect("the fault file");
    // A refresh wakes the scheduler, which then panics.
    api.post_empty("/v1/accounts/fb/refresh").await.expect(200);
    // /healthz until the process is gone (a refused connection ends the loop).
    let http = reqwest::Client::new();
    let url = format!("{}/healthz", api.base_url());
    let mut health = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let Ok(answer) = http.get(&url).send().await else {
            break;
        };
        let status = answer.status().as_u16();
        let body = answer.text().await.unwrap_or_default();
        if status == 503 {
            assert!(body.contains("scheduler"), "503 says why: {body}");
        }
        health.push(status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = serve.wait_exit(Duration::from_secs(15)).await;
    assert_ne!(out.code, 0, "serve exits non-zero:\n{out}");
    assert!(
        out.stderr.contains("scheduler"),
        "it says the scheduler failed:\n{}",
        out.stderr
    );
    if let Some(first_bad) = health.iter().position(|s| *s != 200) {
        assert!(
            health[first_bad..].iter().all(|s| *s != 200),
            "never ok again once failing: {health:?}"
        );
    }
    assert_rotation_kept(&env, &fake, "after the scheduler died").await;
    println!("healthz while dying: {health:?}; exit code {}", out.code);
}
