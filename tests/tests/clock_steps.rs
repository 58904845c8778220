//! The system clock stepped back and forward under a running engine (libfaketime, wall clock
//! only: the monotonic clock stays real, as it does when an administrator or NTP steps the
//! clock). Tokens live 6 s at the fake, which records when each one really expires. Every
//! token `serve` hands out must still be valid at the fake when it is handed out: a clock
//! stepped back an hour must not make an expired token look valid for another hour, and a
//! clock stepped forward must not start a refresh loop.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{Api, Serve};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const LIFETIME: u64 = 6;

/// Asks for the token every 100 ms for `span`; panics if one handed out had expired at the
/// fake (or was never issued by it). Returns how many were served.
async fn serve_only_live_tokens(
    api: &Api,
    fake: &tokenwarden_e2e::fakes::oauth::OAuthFake,
    span: Duration,
    when: &str,
) -> usize {
    let end = Instant::now() + span;
    let mut served = 0;
    while Instant::now() < end {
        let answer = api.get("/v1/accounts/fb/token").await;
        if answer.status == 200 {
            let token = answer.access_token();
            let left = fake.lock().access_token_left(&token);
            match left {
                Some(left) if left > Duration::ZERO => served += 1,
                Some(_) => panic!("{when}: served a token that expired at the fake:\n{answer}"),
                None => panic!("{when}: served a token the fake never issued"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    served
}

fn step(rc: &Path, offset: &str) {
    std::fs::write(rc, format!("{offset}\n")).expect("write the faketime file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_steps_either_way_never_serve_an_expired_token_or_loop() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: `make test` installs libfaketime"
    );
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(LIFETIME))
        .connected(LIFETIME as i64)
        .await;
    let key = env.create_api_key("clock").await;
    let rc = env.root().join("faketime.rc");
    step(&rc, "+0");
    let mut serve: Serve = env.spawn_serve_with(&[
        ("LD_PRELOAD", OsString::from(LIBFAKETIME)),
        ("FAKETIME_TIMESTAMP_FILE", rc.clone().into()),
        ("FAKETIME_NO_CACHE", "1".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ("DONT_FAKE_MONOTONIC", "1".into()),
        ("NO_FAKE_STAT", "1".into()),
    ]);
    serve.wait_api().await;
    let api = env.api(&key);

    let steady = serve_only_live_tokens(&api, &fake, Duration::from_secs(8), "steady").await;

    // An hour back. Before the steady clock, the token served at this moment stayed
    // "valid" for another hour and was served long after it died at the provider.
    step(&rc, "-1h");
    let grants = fake.lock().refresh_grants;
    let back = serve_only_live_tokens(&api, &fake, Duration::from_secs(14), "an hour back").await;
    let refreshed_back = fake.lock().refresh_grants - grants;
    assert!(
        refreshed_back >= 2,
        "with the clock an hour back the 6 s tokens were still refreshed: {refreshed_back} refreshes in 14 s"
    );

    // Two hours forward (an hour past the real time): every token looks expired at once;
    // one refresh each, not a loop.
    step(&rc, "+1h");
    let grants = fake.lock().refresh_grants;
    let forward =
        serve_only_live_tokens(&api, &fake, Duration::from_secs(8), "an hour ahead").await;
    let refreshed_forward = fake.lock().refresh_grants - grants;
    eprintln!(
        "served {steady} steady, {back} with the clock an hour back ({refreshed_back} refreshes in 14 s), \
         {forward} an hour ahead ({refreshed_forward} refreshes in 8 s); every one live at the fake"
    );
    assert!(back > 50 && forward > 30, "tokens were served throughout");
    assert!(
        refreshed_forward <= 8,
        "a clock an hour ahead made {refreshed_forward} refreshes in 8 s"
    );
    assert!(serve.running(), "serve exited:\n{}", serve.stderr());
    serve.logged("the system clock went back", 1).await;
}
