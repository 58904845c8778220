//! Where the app lives. On a desktop with no tray host (no StatusNotifierWatcher on the bus:
//! GNOME without the AppIndicator extension) the window is the app: it shows at start even
//! `--hidden`, closing it leaves the engine serving programs and says once how to get it
//! back, a second start shows it again, and Settings says why and offers Quit. With a tray,
//! `--hidden` (start at login) gives a tray item and no window.

use std::time::Duration;

use tokenwarden_e2e::desktop::{self, Driver, Session};
use tokenwarden_e2e::fakes::oauth::OAuthFake;
use tokenwarden_e2e::harness::{Env, LegacyAccount};
use tokenwarden_e2e::proc;
use tokenwarden_e2e::wait_until;

const STILL_RUNNING: &str = "Tokenwarden is still running";

/// A connected account with an hour to go, and the app's notifications on.
async fn connected() -> (OAuthFake, Env, String) {
    let (fake, env, seeded) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    desktop::write_settings(&env, true, 60);
    (fake, env, seeded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_tray_the_window_is_the_app_and_closing_it_keeps_the_api_answering() {
    let session = Session::start_without_tray().await;
    let (fake, env, seeded) = connected().await;
    // What start at login runs: with no tray to start in, the window shows anyway.
    let mut app = session.launch_with_args(&env, &["--hidden"]);
    app.wait_api().await;
    let pid = app.pid();
    wait_until(
        Duration::from_secs(30),
        "the window shows at start, --hidden or not, when there is no tray",
        async || desktop::window_mapped(pid).await == Some(true),
    )
    .await;

    for round in 1..=2 {
        desktop::close_window(pid).await;
        wait_until(
            Duration::from_secs(10),
            "closing the window takes it away",
            async || desktop::window_mapped(pid).await != Some(true),
        )
        .await;
        assert!(app.running(), "closing the window does not quit the app");
        assert_eq!(
            env.token("fb").await,
            seeded,
            "programs are still served after close {round}"
        );
        assert_eq!(desktop::engine_pid(&env), Some(pid));
        if round == 1 {
            wait_until(
                Duration::from_secs(10),
                "a notification says how to get the window back",
                async || {
                    session
                        .notifications()
                        .await
                        .iter()
                        .any(|n| n.summary == STILL_RUNNING)
                },
            )
            .await;
        }
        // Started again (from the app menu, or `tokenwarden`): the window comes back.
        let again = session.launch(&env, &[]);
        let out = again.wait_exit(Duration::from_secs(30)).await;
        assert_eq!(
            out.code, 0,
            "the second start hands over and exits 0:\n{out}"
        );
        wait_until(
            Duration::from_secs(10),
            "a second start brings the window back",
            async || desktop::window_mapped(pid).await == Some(true),
        )
        .await;
    }
    let told: Vec<_> = session
        .notifications()
        .await
        .into_iter()
        .filter(|n| n.summary == STILL_RUNNING)
        .collect();
    assert_eq!(told.len(), 1, "said once, not at every close: {told:?}");
    assert!(
        told[0].body.contains("app menu") && told[0].body.contains("tokenwarden"),
        "{told:?}"
    );
    let settings = std::fs::read_to_string(env.data_dir.join("desktop.json")).expect("settings");
    assert!(
        settings.contains("\"told_how_to_return\": true"),
        "remembered across starts: {settings}"
    );
    assert!(
        fake.lock().token_requests.is_empty(),
        "nothing was refreshed"
    );
    // A session logging out sends SIGTERM: a clean quit, the lock let go.
    assert_eq!(app.stop().await.code, 0, "SIGTERM quits cleanly");
    assert_eq!(desktop::engine_pid(&env), None, "the lock is free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_tray_hidden_starts_in_the_tray_without_a_window() {
    let session = Session::start().await;
    let (_fake, env, _) = connected().await;
    let mut app = session.launch_with_args(&env, &["--hidden"]);
    app.wait_api().await;
    let pid = app.pid();
    let tray = session.tray_item(pid).await;
    // The window is shown (when it is) in the same start-up step that answers the API; one
    // never shown is not even realized as an X window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_ne!(
        desktop::window_mapped(pid).await,
        Some(true),
        "--hidden with a tray shows no window"
    );
    let menu = tray
        .wait_menu("an Open entry", |m| {
            m.iter().any(|e| e.label.starts_with("Open"))
        })
        .await;
    tray.click(desktop::entry(&menu, "Open").id).await;
    wait_until(
        Duration::from_secs(10),
        "Open in the tray menu shows the window",
        async || desktop::window_mapped(pid).await == Some(true),
    )
    .await;
}

/// Settings names the mode and why; without a tray it offers Quit, which stops the engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_says_where_the_app_lives_and_quits_without_a_tray() {
    let session = Session::start_without_tray().await;
    let (_fake, env, _) = connected().await;
    let driver = Driver::launch(&env, &session, &[]).await;
    driver.click(r#"[data-testid="nav-settings"]"#).await;
    driver.find(r#"[data-testid="home-mode"]"#).await;
    assert_eq!(
        driver.text(r#"[data-testid="home-mode"]"#).await.as_deref(),
        Some("In this window")
    );
    let why = driver
        .text(r#"[data-testid="home-why"]"#)
        .await
        .unwrap_or_default();
    assert!(
        why.contains("no tray icons") && why.contains("AppIndicator"),
        "{why}"
    );
    let quit = driver.find(r#"[data-testid="quit"]"#).await;
    driver.scroll_to(&quit).await;
    driver.screenshot("settings-no-tray").await;
    let pid = desktop::engine_pid(&env).expect("the app holds the lock");
    driver.click(r#"[data-testid="quit"]"#).await;
    driver
        .click_ending_the_app(r#"[data-testid="confirm"]"#)
        .await;
    wait_until(
        Duration::from_secs(20),
        "Quit ends the app and its engine",
        async || !proc::alive(pid),
    )
    .await;
    assert!(
        env.run(&["list", "--json"], None)
            .await
            .stdout
            .contains("\"fb\""),
        "the CLI works on its own afterwards"
    );
}
