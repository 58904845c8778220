//! A provider whose clock is behind answers an `expires_at` (the `http` kind's
//! `expires_at_field`) that is already past by this machine's clock. The real `serve`, the
//! real keychain and a fake provider with a wrong clock prove two things. When the answer's
//! `Date` header tells the lifetime the provider meant (`expires_at` − `Date`), the token is
//! served for that long and fetched once. When nothing tells it (the `Date` is no earlier
//! than `expires_at`), the account is tried once more and then stops with an error that names
//! the account, the field and the skew. Neither case loops: the provider's requests are
//! counted over several seconds with `min_interval = "1s"`, where a loop shows as about one
//! fetch a second.

use std::time::Duration;

use serde_json::Value;
use tokenwarden_e2e::fakes::http::{HttpTokenFake, WrongClock};
use tokenwarden_e2e::harness::{unix_from_rfc3339, unix_now};
use tokenwarden_e2e::{wait_until, Api, Env};

/// An `http` account `skewed` on a fake whose answers carry `clock`'s expires_at and Date.
async fn skewed_provider(clock: WrongClock) -> (HttpTokenFake, Env) {
    let fake = HttpTokenFake::start(3600).await;
    fake.lock().wrong_clock = Some(clock);
    let account = fake.account_toml("skewed") + "expires_at_field = \"expires_at\"\n";
    (fake, Env::new(&account))
}

async fn view(api: &Api) -> Value {
    let all = api.get("/v1/accounts").await.expect(200);
    all.as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == "skewed").cloned())
        .unwrap_or_else(|| panic!("skewed in {all}"))
}

/// How many tokens the fake issued in `window` after the first one.
async fn fetches_within(fake: &HttpTokenFake, window: Duration) -> usize {
    wait_until(
        Duration::from_secs(30),
        "serve's first fetch reached the provider",
        async || fake.lock().total_issued() >= 1,
    )
    .await;
    tokio::time::sleep(window).await;
    fake.lock().total_issued()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_past_expires_at_is_served_for_the_lifetime_its_date_header_tells() {
    // The provider's clock is two hours behind; its token lives one hour.
    let (fake, env) = skewed_provider(WrongClock {
        expires_at: -3600,
        date: -7200,
    })
    .await;
    let (mut serve, api, _) = env.serve_with_new_key("skew").await;

    let fetched = fetches_within(&fake, Duration::from_secs(6)).await;
    assert_eq!(
        fetched, 1,
        "a token the provider means to live an hour was fetched {fetched} times in 6 s"
    );
    let answer = api.get("/v1/accounts/skewed/token").await;
    assert_eq!(answer.status, 200, "the token is served: {answer:?}");
    assert_eq!(
        Some(answer.access_token()),
        fake.lock().latest.get("skewed").cloned()
    );
    let view = view(&api).await;
    assert_eq!(view["status"], "fresh", "{view}");
    let left = unix_from_rfc3339(view["expires_at"].as_str().unwrap_or_default()) - unix_now();
    assert!(
        (3500..=3605).contains(&left),
        "expires an hour from now (expires_at − Date), not an hour ago: {left} s, {view}"
    );
    assert_eq!(view["expiry_estimated"], false, "{view}");
    assert!(serve.running(), "serve exited:\n{}", serve.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_past_expires_at_with_no_lifetime_to_go_by_is_tried_twice_then_named() {
    // The Date is right and expires_at an hour before it: nothing tells the lifetime.
    let (fake, env) = skewed_provider(WrongClock {
        expires_at: -3600,
        date: 0,
    })
    .await;
    let (mut serve, api, _) = env.serve_with_new_key("skew").await;

    let fetched = fetches_within(&fake, Duration::from_secs(8)).await;
    assert!(
        fetched <= 2,
        "an answer whose expires_at is an hour past was fetched {fetched} times in 8 s"
    );
    let mut last = Value::Null;
    wait_until(
        Duration::from_secs(30),
        "the account stops after one retry",
        async || {
            last = view(&api).await;
            last["status"] == "needs_reconnect"
        },
    )
    .await;
    let message = last["last_error"].as_str().unwrap_or_default().to_owned();
    for part in ["skewed", "`expires_at`", "3600 s"] {
        assert!(
            message.contains(part),
            "the error names {part}: {message:?}"
        );
    }
    let answer = api.get("/v1/accounts/skewed/token").await;
    assert!(answer.status >= 400, "nothing is served: {answer:?}");
    assert!(answer.body.contains("3600 s"), "{answer:?}");

    // No loop afterwards either.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        fake.lock().total_issued(),
        2,
        "one fetch and one retry, then nothing until the user acts"
    );
    assert!(serve.running(), "serve exited:\n{}", serve.stderr());
}
