//! What serve reports about itself: `GET /v1/events` (Server-Sent Events: `refreshed`,
//! `refresh_failed`, `status_changed`, `recovered`, never a secret) and `GET /metrics` (Prometheus text that a
//! strict parser accepts, with the four families and the refreshes counted).

use std::time::Duration;

use tokenwarden_e2e::fakes::oauth::{Fault, OAuthFake};
use tokenwarden_e2e::harness::{unix_now, LegacyAccount};
use tokenwarden_e2e::prometheus::{self, Exposition};
use tokenwarden_e2e::{wait_until, Answer, Api, Env, Serve};

const CANARY: &str = "tw-canary-ev-91b3";
const AT: &str = "tw-at-ev-";
/// Every event kind of the contract (`health_changed` was replaced by `status_changed`).
const KINDS: &[&str] = &[
    "status_changed",
    "refreshed",
    "refresh_failed",
    "recovered",
    "connect_progress",
    "keychain_write_failed",
    "saved",
    "reports_refused",
    "config_reloaded",
];

/// Account `fb` connected for an hour; serve running; an API key.
async fn setup() -> (OAuthFake, Env, Serve, Api, String) {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600).canaries(CANARY, AT))
        .connected(3600)
        .await;
    let (serve, api, key) = env.serve_with_new_key("observer").await;
    (fake, env, serve, api, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_reports_refreshes_and_failures_without_secrets() {
    let (fake, _env, serve, api, key) = setup().await;
    api.with_key(None)
        .get("/v1/events")
        .await
        .expect_error(401, "unauthorized");

    let events = api.events().await;
    assert_eq!(events.status, 200, "{:?}", events.headers);
    let header = |name: &str| {
        events
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert!(
        header("content-type").is_some_and(|c| c.starts_with("text/event-stream")),
        "{:?}",
        events.headers
    );
    assert!(
        events
            .headers
            .iter()
            .all(|(k, _)| !k.starts_with("access-control-")),
        "{:?}",
        events.headers
    );

    let refreshed = api.post_empty("/v1/accounts/fb/refresh").await;
    let token = refreshed.access_token();
    let (i, e) = events
        .wait_for("refreshed", "fb", 0, Duration::from_secs(5))
        .await;
    assert_eq!(e.data["kind"], "refreshed", "{}", e.raw);

    // A transient failure: refresh_failed, then the retry's refreshed.
    fake.fail_next(1, Fault::status(503));
    api.post_empty("/v1/accounts/fb/refresh")
        .await
        .expect_error(503, "provider_unavailable");
    let (j, e) = events
        .wait_for("refresh_failed", "fb", i + 1, Duration::from_secs(5))
        .await;
    assert_eq!(e.data["kind"], "refresh_failed", "{}", e.raw);
    assert_eq!(
        e.data["first"], true,
        "the episode's first failure: {}",
        e.raw
    );
    assert_eq!(e.data["gave_up"], false, "{}", e.raw);
    // The provider's own code, as in the refresh log.
    assert_eq!(e.data["code"], "temporarily_unavailable", "{}", e.raw);
    events
        .wait_for("refreshed", "fb", j + 1, Duration::from_secs(10))
        .await;
    let (_, e) = events
        .wait_for("recovered", "fb", j + 1, Duration::from_secs(5))
        .await;
    assert_eq!(e.data["kind"], "recovered", "{}", e.raw);
    let retrying = events
        .events()
        .into_iter()
        .any(|e| e.event == "status_changed" && e.data["to"] == "retrying");
    assert!(
        retrying,
        "the failure changed the account's status: {:?}",
        events.events()
    );
    let failures = events
        .events()
        .iter()
        .filter(|e| e.event == "refresh_failed")
        .count();
    assert_eq!(
        failures,
        1,
        "one refresh_failed per episode: {:?}",
        events.events()
    );

    assert!(events.problems().is_empty(), "{:?}", events.problems());
    for e in events.events() {
        assert!(KINDS.contains(&e.event.as_str()), "unknown kind: {}", e.raw);
        assert_eq!(e.data["kind"], e.event.as_str(), "{}", e.raw);
        assert!(e.data["account"].is_string(), "{}", e.raw);
    }
    let text = events.text();
    for secret in [CANARY, AT, token.as_str(), key.as_str()] {
        assert!(
            !text.contains(secret),
            "{secret} in the event stream:\n{text}"
        );
    }
    drop(events);
    let out = serve.stop().await;
    assert_eq!(out.code, 0, "{out}");
}

async fn metrics(api: &Api) -> (Answer, Exposition) {
    let a = api.get("/metrics").await;
    assert_eq!(a.status, 200, "{a}");
    let exp = prometheus::parse(&a.body)
        .unwrap_or_else(|e| panic!("/metrics is not valid Prometheus text: {e}\n{a}"));
    (a, exp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_strict_prometheus_text_with_the_four_families() {
    let (fake, _env, serve, api, key) = setup().await;
    api.with_key(None)
        .get("/metrics")
        .await
        .expect_error(401, "unauthorized");
    let (_, before) = metrics(&api).await;
    let ok = |e: &Exposition| {
        e.value(
            "tokenwarden_refreshes_total",
            &[("account", "fb"), ("outcome", "ok")],
        )
        .unwrap_or(0.0)
    };
    let count = |e: &Exposition| {
        e.value(
            "tokenwarden_refresh_duration_seconds_count",
            &[("account", "fb")],
        )
        .unwrap_or(0.0)
    };

    let token = api
        .post_empty("/v1/accounts/fb/refresh")
        .await
        .access_token();
    assert_eq!(fake.lock().refresh_grants, 1);
    let (answer, after) = metrics(&api).await;
    let ct = answer.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("text/plain") || ct.starts_with("application/openmetrics-text"),
        "content-type {ct:?}"
    );
    assert_eq!(
        ok(&after) - ok(&before),
        1.0,
        "one ok refresh counted:\n{}",
        answer.body
    );
    assert_eq!(
        count(&after) - count(&before),
        1.0,
        "one duration observed:\n{}",
        answer.body
    );

    let kind = |sample: &str| {
        after
            .family_of(sample)
            .map(|f| f.kind.clone())
            .unwrap_or_else(|| panic!("no family for {sample}:\n{}", answer.body))
    };
    assert_eq!(kind("tokenwarden_refreshes_total"), "counter");
    assert_eq!(
        kind("tokenwarden_refresh_duration_seconds_bucket"),
        "histogram"
    );
    assert_eq!(kind("tokenwarden_api_requests_total"), "counter");
    assert_eq!(kind("tokenwarden_token_expiry_seconds"), "gauge");

    for s in after.samples("tokenwarden_refreshes_total") {
        let mut labels: Vec<&String> = s.labels.keys().collect();
        labels.sort();
        assert_eq!(labels, ["account", "outcome"], "{s:?}");
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        let name = format!("tokenwarden_refresh_duration_seconds{suffix}");
        let samples = after.samples(&name);
        assert!(!samples.is_empty(), "no {name}:\n{}", answer.body);
        assert!(
            samples.iter().all(|s| s.labels.contains_key("account")),
            "{samples:?}"
        );
    }
    let sum = after
        .value(
            "tokenwarden_refresh_duration_seconds_sum",
            &[("account", "fb")],
        )
        .expect("the sum for fb");
    assert!((0.0..60.0).contains(&sum), "duration sum {sum} s");

    let requests = after.samples("tokenwarden_api_requests_total");
    assert!(
        requests
            .iter()
            .all(|s| s.labels.contains_key("route") && s.labels.contains_key("status")),
        "{requests:?}"
    );
    let counted = |e: &Exposition, status: &str| {
        e.sum("tokenwarden_api_requests_total", &[("status", status)])
    };
    assert!(
        counted(&after, "401") >= 1.0,
        "the 401 was counted:\n{}",
        answer.body
    );
    assert!(
        requests
            .iter()
            .any(|s| s.labels["route"].contains("refresh")
                && s.labels["status"] == "200"
                && s.value >= 1.0),
        "the refresh request was counted under a route naming it:\n{}",
        answer.body
    );
    assert!(counted(&after, "200") > counted(&before, "200"));

    let expiry = after
        .value("tokenwarden_token_expiry_seconds", &[("account", "fb")])
        .unwrap_or_else(|| panic!("no token_expiry_seconds for fb:\n{}", answer.body));
    let now = unix_now() as f64;
    assert!(
        (3500.0..=3600.0).contains(&expiry) || (expiry - (now + 3600.0)).abs() < 100.0,
        "token_expiry_seconds {expiry}: neither seconds left (~3600) nor the expiry time (~{})",
        now + 3600.0
    );

    for secret in [CANARY, AT, token.as_str(), key.as_str()] {
        assert!(!answer.body.contains(secret), "{secret} in /metrics");
    }
    // The counters keep counting: a second refresh.
    api.post_empty("/v1/accounts/fb/refresh")
        .await
        .access_token();
    wait_until(
        Duration::from_secs(2),
        "a second ok refresh counted",
        async || ok(&metrics(&api).await.1) - ok(&before) == 2.0,
    )
    .await;
    let out = serve.stop().await;
    assert_eq!(out.code, 0, "{out}");
}
