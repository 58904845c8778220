//! One tray app, one engine: a second `tokenwarden` launch hands over to the first and exits 0,
//! the engine lock still names the first process, and the CLI beside the app is answered by
//! the app's engine (a `refresh`, which only the lock holder may do, goes through it).

use std::time::Duration;

use tokenwarden_e2e::desktop::{self, Session};
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_launch_exits_and_the_first_engine_serves_the_cli() {
    let session = Session::start().await;
    let (fake, env, seeded) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    desktop::write_settings(&env, true, 60);
    let mut first = session.launch(&env, &[]);
    first.wait_api().await;
    let pid = first.pid();
    assert_eq!(
        desktop::engine_pid(&env),
        Some(pid),
        "the tray app holds the engine lock"
    );

    // Hide the first window, so that the second launch has something to show.
    wait_until(
        Duration::from_secs(30),
        "the app has a window titled Tokenwarden",
        async || desktop::window_mapped(pid).await.is_some(),
    )
    .await;
    if desktop::window_mapped(pid).await == Some(true) {
        desktop::close_window(pid).await;
        wait_until(
            Duration::from_secs(10),
            "closing the window takes it away",
            async || desktop::window_mapped(pid).await != Some(true),
        )
        .await;
    }

    let second = session.launch(&env, &[]);
    let second_pid = second.pid();
    let out = second.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(out.code, 0, "the second launch exits 0:\n{out}");
    assert!(first.running(), "the first app keeps running");
    assert_eq!(
        desktop::engine_pid(&env),
        Some(pid),
        "the lock holder is still the first app, not {second_pid}"
    );
    wait_until(
        Duration::from_secs(10),
        "the second launch brings the first app's window back",
        async || desktop::window_mapped(pid).await == Some(true),
    )
    .await;
    assert!(
        fake.lock().token_requests.is_empty(),
        "the second launch refreshed nothing"
    );

    // The CLI beside the app: list and token are answered; refresh is done by the app's engine
    // (a second engine could not take the lock), and `token` then prints the new token.
    let list = env.list().await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["name"], "fb");
    assert_eq!(list[0]["status"], "fresh");
    assert_eq!(env.token("fb").await, seeded);
    env.run(&["refresh", "fb"], None).await.ok();
    let current = {
        let st = fake.lock();
        assert_eq!(st.refresh_grants, 1, "one refresh, by the app's engine");
        assert_eq!(st.reused_refresh_tokens, 0);
        st.current_access_token().expect("a new access token")
    };
    assert_eq!(env.token("fb").await, current);
    let serve = env.run_for(&["serve"], None, Duration::from_secs(15)).await;
    let line = serve.failure_line();
    assert!(
        line.contains("already running") && line.contains(&format!("pid {pid}")),
        "`serve` beside the app names the app as the running engine: {line}"
    );
    assert!(first.running());
    assert_eq!(desktop::engine_pid(&env), Some(pid));
}
