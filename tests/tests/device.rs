//! `connect NAME --device`: the device authorization grant (RFC 8628) against the fake. The CLI
//! prints the verification URI and the user code alone on stdout lines 1 and 2, polls the token
//! endpoint every `interval` seconds while the answer is `authorization_pending`, adds 5 s after
//! `slow_down`, gives up with one stderr line on `expired_token` or `access_denied` (storing
//! nothing), and on approval stores the tokens so that `token` and `refresh` work.

use std::time::Duration;

use tokenwarden_e2e::fakes::oauth::{DevicePoll, OAuthConfig, OAuthFake, DEVICE_GRANT};
use tokenwarden_e2e::harness::DeviceConnecting;
use tokenwarden_e2e::{wait_until, Env};

const SCOPES: &[&str] = &["read", "offline_access"];

async fn setup(interval: u64, code_expires_in: u64) -> (OAuthFake, Env) {
    let fake = OAuthFake::start(OAuthConfig::device(interval, code_expires_in)).await;
    let env = Env::new(&fake.device_account_toml("dev", SCOPES));
    (fake, env)
}

/// Starts `connect dev --device` and checks its two lines and the device request.
async fn start(fake: &OAuthFake, env: &Env) -> DeviceConnecting {
    let flow = env.start_connect_device("dev").await;
    let st = fake.lock();
    assert_eq!(
        flow.verification_uri, st.verification_uri,
        "stdout line 1 is the verification_uri alone"
    );
    assert_eq!(
        st.device_requests.len(),
        1,
        "one device authorization request"
    );
    let form = &st.device_requests[0];
    assert_eq!(
        form.get("client_id"),
        Some(&st.config.client_id),
        "{form:?}"
    );
    assert_eq!(
        form.get("scope").map(String::as_str),
        Some(SCOPES.join(" ").as_str()),
        "{form:?}"
    );
    assert!(!form.contains_key("client_secret"), "{form:?}");
    flow
}

fn polls(fake: &OAuthFake) -> Vec<DevicePoll> {
    fake.lock().device_polls.clone()
}

fn gaps(polls: &[DevicePoll]) -> Vec<f64> {
    polls
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect()
}

async fn wait_polls(fake: &OAuthFake, n: usize, limit: Duration) {
    wait_until(limit, &format!("{n} device polls"), async || {
        fake.lock().device_polls.len() >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_polls_at_the_interval_until_approved_and_stores_the_tokens() {
    let (fake, env) = setup(2, 60).await;
    let flow = start(&fake, &env).await;
    assert!(
        flow.user_code.len() >= 8 && !flow.user_code.contains(' '),
        "stdout line 2 is the user code alone: {:?}",
        flow.user_code
    );
    wait_polls(&fake, 2, Duration::from_secs(10)).await;
    fake.approve_device(&flow.user_code);
    let out = flow.finish().await;
    assert_eq!(out.code, 0, "approved: exit 0\n{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "stdout is the two lines; human text goes to stderr:\n{out}"
    );

    let polls = polls(&fake);
    let answers: Vec<&str> = polls.iter().map(|p| p.answer.as_str()).collect();
    assert_eq!(
        answers,
        ["authorization_pending", "authorization_pending", "ok"],
        "{polls:?}"
    );
    let device_code = fake.lock().device_polls[0].form.get("device_code").cloned();
    for p in &polls {
        assert_eq!(
            p.form.get("grant_type").map(String::as_str),
            Some(DEVICE_GRANT),
            "{p:?}"
        );
        assert_eq!(p.form.get("device_code"), device_code.as_ref(), "{p:?}");
        assert_eq!(
            p.form.get("client_id"),
            Some(&fake.lock().config.client_id),
            "{p:?}"
        );
    }
    for gap in gaps(&polls) {
        assert!(
            (1.9..=3.0).contains(&gap),
            "polls {gap:.2} s apart with interval 2: {:?}",
            gaps(&polls)
        );
    }

    let (access, refresh) = {
        let st = fake.lock();
        assert_eq!(st.device_grants, 1);
        (
            st.current_access_token().unwrap(),
            st.latest_refresh_token().unwrap(),
        )
    };
    let stored = env
        .stored_tokens("dev")
        .await
        .expect("tokens:dev in the keychain");
    assert_eq!(stored["access_token"], access.as_str());
    assert_eq!(stored["refresh_token"], refresh.as_str());
    assert_eq!(env.token("dev").await, access);
    assert_eq!(env.status("dev").await, "fresh");

    env.run(&["refresh", "dev"], None).await.ok();
    let new = {
        let st = fake.lock();
        let refreshes = st.refresh_requests();
        assert_eq!(refreshes.len(), 1, "{:?}", st.token_requests);
        assert_eq!(
            refreshes[0].refresh_token.as_deref(),
            Some(refresh.as_str())
        );
        assert_eq!(st.refresh_grants, 1);
        st.current_access_token().unwrap()
    };
    assert_ne!(new, access);
    assert_eq!(env.token("dev").await, new);
    assert_eq!(fake.profile_status(&new).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_down_adds_five_seconds_to_the_interval() {
    let (fake, env) = setup(1, 60).await;
    let flow = start(&fake, &env).await;
    wait_polls(&fake, 1, Duration::from_secs(5)).await;
    fake.slow_down_once(&flow.user_code);
    wait_polls(&fake, 2, Duration::from_secs(5)).await;
    fake.approve_device(&flow.user_code);
    wait_polls(&fake, 3, Duration::from_secs(12)).await;
    let out = flow.finish().await;
    assert_eq!(out.code, 0, "{out}");

    let polls = polls(&fake);
    let answers: Vec<&str> = polls.iter().map(|p| p.answer.as_str()).collect();
    assert_eq!(
        answers,
        ["authorization_pending", "slow_down", "ok"],
        "{polls:?}"
    );
    let gaps = gaps(&polls);
    assert!(
        (0.9..=2.0).contains(&gaps[0]),
        "interval 1 before slow_down: gaps {gaps:?}"
    );
    assert!(
        (5.95..=8.0).contains(&gaps[1]),
        "after slow_down the interval is 1 + 5 s: gaps {gaps:?}"
    );
    assert!(env.stored_tokens("dev").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_device_code_fails_with_one_line_and_stores_nothing() {
    let (fake, env) = setup(1, 3).await;
    let flow = start(&fake, &env).await;
    let out = tokio::time::timeout(Duration::from_secs(20), flow.finish())
        .await
        .expect("connect gives up once the code expired");
    let line = out.failure_line().to_lowercase();
    assert!(
        line.contains("expired"),
        "the reason names expired_token: {line}"
    );
    let polls = polls(&fake);
    assert!(
        polls.iter().all(|p| p.answer != "ok"),
        "nothing was granted: {polls:?}"
    );
    assert!(polls.len() <= 5, "polls stop at the expiry: {polls:?}");
    assert_eq!(env.stored_tokens("dev").await, None, "nothing stored");
    assert_eq!(env.status("dev").await, "not_connected");
    env.run(&["token", "dev"], None).await.failure_line();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_authorization_fails_with_one_line_and_stores_nothing() {
    let (fake, env) = setup(1, 60).await;
    let flow = start(&fake, &env).await;
    wait_polls(&fake, 1, Duration::from_secs(5)).await;
    fake.deny_device(&flow.user_code);
    let out = tokio::time::timeout(Duration::from_secs(10), flow.finish())
        .await
        .expect("connect gives up when denied");
    let line = out.failure_line();
    assert!(
        line.contains("access_denied") || line.to_lowercase().contains("denied"),
        "the reason names access_denied: {line}"
    );
    let last = polls(&fake).last().map(|p| p.answer.clone());
    assert_eq!(last.as_deref(), Some("access_denied"));
    assert_eq!(env.stored_tokens("dev").await, None, "nothing stored");
    assert_eq!(env.status("dev").await, "not_connected");
}
