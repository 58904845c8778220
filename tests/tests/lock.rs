//! One refresher per data dir: a second `serve` is refused, the CLI beside a running `serve`
//! reads the keychain instead of refreshing, and concurrent CLI calls without an engine share
//! one refresh (the fake's refresh tokens are single use, so a second refresh would fail).

use std::time::Duration;

use tokenwarden_e2e::fakes::oauth::OAuthFake;
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{wait_until, Env};

/// Account `fb` on a legacy-Fitbit fake, connected with a token that expires `left` seconds
/// from now; returns the seeded access token too.
async fn connected(left: i64) -> (OAuthFake, Env, String) {
    LegacyAccount::new(|c| c.expires_in(3600))
        .connected(left)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_the_same_data_dir_exits_saying_one_is_running() {
    let (_fake, env, _) = connected(3600).await;
    let mut first = env.spawn_serve();
    first.wait_ready().await;

    let second = env.run_for(&["serve"], None, Duration::from_secs(15)).await;
    let line = second.failure_line().to_lowercase();
    assert!(
        line.contains("already running"),
        "says one is already running: {line}"
    );
    assert!(first.running(), "the first serve is unaffected");
    assert_eq!(first.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_beside_a_running_serve_reads_the_keychain_and_never_refreshes() {
    // Expired: serve refreshes it once at start; the CLI must then print serve's new token.
    let (fake, env, seeded) = connected(-5).await;
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;
    wait_until(
        Duration::from_secs(10),
        "serve's first refresh",
        async || fake.lock().refresh_grants == 1,
    )
    .await;
    wait_until(Duration::from_secs(5), "status fresh", async || {
        env.status("fb").await == "fresh"
    })
    .await;

    let current = fake.lock().current_access_token().unwrap();
    for _ in 0..3 {
        let token = env.token("fb").await;
        assert_ne!(token, seeded);
        assert_eq!(token, current, "`token` prints the token serve stored");
    }
    let header = env.run(&["token", "fb", "--header"], None).await.ok();
    assert_eq!(
        header.stdout_trimmed(),
        format!("Authorization: Bearer {current}")
    );
    assert_eq!(fake.profile_status(&current).await, 200);
    assert_eq!(
        fake.lock().token_requests.len(),
        1,
        "no refresh besides serve's own"
    );
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_token_calls_without_an_engine_refresh_once() {
    let (fake, env, seeded) = connected(-5).await;
    let (a, b, c, d) = tokio::join!(
        env.run(&["token", "fb"], None),
        env.run(&["token", "fb"], None),
        env.run(&["token", "fb"], None),
        env.run(&["token", "fb"], None),
    );
    let printed: Vec<String> = [a, b, c, d]
        .into_iter()
        .map(|o| o.ok().stdout_trimmed().to_string())
        .collect();
    let st = fake.lock();
    assert_eq!(st.refresh_grants, 1, "one refresh for four callers");
    assert_eq!(st.reused_refresh_tokens, 0);
    assert_eq!(st.token_requests.len(), 1, "{:?}", st.token_requests);
    let current = st.current_access_token().unwrap();
    assert!(
        printed.iter().all(|t| *t == current && *t != seeded),
        "{printed:?}"
    );
}

/// util-linux `flock` holding the engine's lock file for `secs` without announcing itself:
/// a one-shot command between taking the lock and writing its holder file, held open.
async fn hold_lock_unannounced(env: &Env, secs: u32) -> std::process::Child {
    tokenwarden_e2e::local::hold_lock(&env.lock_file(), secs).await
}

/// A `serve` killed with SIGKILL leaves its holder file naming it. The next holder of the lock
/// (here a command that has taken it and not yet said who it is) must not be taken for that
/// dead engine: `serve` started meanwhile waits for it and then starts, instead of exiting
/// "already running" with the dead pid (the race a fresh clone's `make test` lost, issue 25).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_waits_for_a_command_holding_the_lock_past_a_dead_engines_holder_file() {
    let (_fake, env, _) = connected(3600).await;
    let mut first = env.spawn_serve();
    first.wait_api().await;
    let dead = first.pid();
    first.kill9().await;
    let stale = env
        .engine_holder()
        .expect("a SIGKILLed engine leaves its holder file");
    assert_eq!(stale["pid"].as_u64(), Some(u64::from(dead)));
    assert_eq!(stale["role"], "engine");

    let mut command = hold_lock_unannounced(&env, 2).await;
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    let _ = command.wait();
    let holder = env.engine_holder().expect("serve's holder file");
    assert_eq!(holder["pid"].as_u64(), Some(u64::from(serve.pid())));
    let line = env.run(&["list"], None).await.ok();
    assert!(line.stdout.contains("fb"), "{line}");
    assert_eq!(serve.stop().await.code, 0);
    assert!(
        env.engine_holder().is_none(),
        "a clean stop takes its holder file back"
    );
}

/// When the lock stays held past the engine's bounded wait, `serve` exits 1 naming the real
/// holder (the process the kernel lists), once, and not the dead engine of the stale file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_gives_up_naming_the_real_holder_once() {
    let (_fake, env, _) = connected(3600).await;
    let mut first = env.spawn_serve();
    first.wait_api().await;
    let dead = first.pid();
    first.kill9().await;

    let mut command = hold_lock_unannounced(&env, 60).await;
    let out = env.run_for(&["serve"], None, Duration::from_secs(30)).await;
    let _ = command.kill();
    let _ = command.wait();
    assert_eq!(out.code, 1, "{out}");
    let line = out.failure_line();
    let holder = format!("process {}", command.id());
    assert_eq!(
        line.matches(&holder).count(),
        1,
        "names the holder once: {line}"
    );
    assert!(line.contains("within 10 s"), "{line}");
    assert!(
        !line.contains(&dead.to_string()),
        "not the dead engine: {line}"
    );
    assert!(!line.contains("already running"), "{line}");
}

/// A running engine is still refused at once, its pid and role named once, with what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_engine_is_named_once_with_its_remedy() {
    let (_fake, env, _) = connected(3600).await;
    let mut first = env.spawn_serve();
    first.wait_api().await;
    let started = std::time::Instant::now();
    let out = env.run_for(&["serve"], None, Duration::from_secs(15)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once"
    );
    let line = out.failure_line();
    let pid = format!("pid {}", first.pid());
    assert_eq!(line.matches(&pid).count(), 1, "{line}");
    assert_eq!(line.matches("stop it first").count(), 1, "{line}");
    assert_eq!(first.stop().await.code, 0);
}
