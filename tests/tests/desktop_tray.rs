//! The tray over D-Bus: the app registers a StatusNotifierItem with the watcher stand-in, and
//! its com.canonical.dbusmenu menu is read with GetLayout and clicked with Event. Each test
//! asserts on what the menu says, what the X clipboard and the OS keychain hold, and how the
//! process exits; one steps the app's wall clock (libfaketime) to show that a copied token is
//! cleared by the wall clock, which a suspend does not stop. Runs inside
//! `tests/scripts/session.sh` (Xvfb, private bus, gnome-keyring).

use std::ffi::OsString;
use std::time::Duration;

use tokenwarden_e2e::desktop::{self, entry, MenuEntry, Session};
use tokenwarden_e2e::fakes::oauth::{Fault, OAuthConfig, OAuthFake};
use tokenwarden_e2e::harness::{free_port, unix_now};
use tokenwarden_e2e::{wait_until, Env};

/// `fb` (legacy fake, rotating refresh tokens), `g` (Google fake) — both connected with an hour
/// left — and `spare` (never connected), in that order in the config.
struct ThreeAccounts {
    legacy: OAuthFake,
    env: Env,
    fb_access: String,
}

async fn three_accounts() -> ThreeAccounts {
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let spare_redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let legacy = OAuthFake::start(OAuthConfig::fitbit_legacy(&redirect).expires_in(3600)).await;
    let google = OAuthFake::start(OAuthConfig::google()).await;
    let accounts = legacy.account_toml(
        "fb",
        "fitbit-legacy",
        &format!("redirect_uri = \"{redirect}\""),
    ) + &google.account_toml(
        "g",
        "fitbit",
        "scopes = [\"https://www.googleapis.com/auth/googlehealth.sleep.readonly\"]",
    ) + &legacy.account_toml(
        "spare",
        "fitbit-legacy",
        &format!("redirect_uri = \"{spare_redirect}\""),
    );
    let env = Env::new(&accounts);
    let legacy_secret = legacy.lock().config.client_secret.clone();
    let google_secret = google.lock().config.client_secret.clone();
    env.set_secret("fb", &legacy_secret).await;
    env.set_secret("g", &google_secret).await;
    let (fb_access, fb_refresh) = legacy.issue_grant();
    env.seed_tokens("fb", &fb_access, &fb_refresh, unix_now() + 3600)
        .await;
    let (g_access, g_refresh) = google.issue_grant();
    env.seed_tokens("g", &g_access, &g_refresh, unix_now() + 3600)
        .await;
    ThreeAccounts {
        legacy,
        env,
        fb_access,
    }
}

fn copy_entries(menu: &[MenuEntry]) -> usize {
    menu.iter().filter(|e| e.label.starts_with("Copy ")).count()
}

/// The text after " · " in a Copy label: the time left.
fn time_left(label: &str) -> &str {
    label.rsplit(" · ").next().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_menu_lists_accounts_copies_disables_and_quit_keeps_the_rotated_token() {
    let session = Session::start().await;
    let s = three_accounts().await;
    desktop::write_settings(&s.env, true, 2);
    let mut app = session.launch(&s.env, &[]);
    app.wait_api().await;
    let tray = session.tray_item(app.pid()).await;

    // The summary (disabled: AppIndicator has no tooltip), one entry per account in config
    // order, then a separator and the three actions.
    let menu = tray
        .wait_menu("fb and g fresh, spare not connected, then Quit", |m| {
            // Each item's label reaches the bus as its own update: wait for the summary too.
            copy_entries(m) == 3
                && m[0].label == "Tokenwarden: 2 fresh, 1 not connected"
                && m[2].label.starts_with("Copy fb token — fresh · ")
                && m[3].label.starts_with("Copy g token — fresh · ")
                && m[4].label.starts_with("Copy spare token — not_connected")
                && m.iter().any(|e| e.label == "Quit")
        })
        .await;
    let labels: Vec<&str> = menu.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(
        menu.len(),
        9,
        "summary, separator, 3 accounts, separator, 3 actions: {menu:#?}"
    );
    assert_eq!(labels[0], "Tokenwarden: 2 fresh, 1 not connected");
    assert!(!menu[0].enabled, "the summary is not an action: {menu:#?}");
    assert!(menu[1].separator && menu[5].separator, "{menu:#?}");
    assert!(
        labels[2].starts_with("Copy fb token — fresh · "),
        "{labels:?}"
    );
    assert!(
        labels[3].starts_with("Copy g token — fresh · "),
        "{labels:?}"
    );
    assert_eq!(labels[4], "Copy spare token — not_connected · no token");
    assert_eq!(labels[6..], ["Refresh all", "Open Tokenwarden", "Quit"]);
    assert!(menu[2].enabled && menu[3].enabled, "{menu:#?}");
    assert!(
        !menu[4].enabled,
        "an account without a token cannot be copied: {menu:#?}"
    );
    let left = desktop::countdown_seconds(time_left(labels[2]))
        .unwrap_or_else(|| panic!("fb's time left is not a duration: {:?}", labels[2]));
    assert!(
        (3000..=3600).contains(&left),
        "fb has about an hour left: {left} s"
    );

    // Copy puts fb's current token on the CLIPBOARD, and it is cleared 2 s later.
    tray.click(entry(&menu, "Copy fb token").id).await;
    wait_until(
        Duration::from_secs(10),
        "the clipboard holds fb's access token",
        async || desktop::clipboard().await.as_deref() == Some(s.fb_access.as_str()),
    )
    .await;
    // Marked as a secret for clipboard managers (Klipper and others keep it out of history).
    let targets = desktop::clipboard_as(Some("TARGETS"))
        .await
        .unwrap_or_default();
    assert!(
        targets.lines().any(|t| t == "x-kde-passwordManagerHint"),
        "the copy carries the password-manager hint; the owner offers: {targets:?}"
    );
    assert_eq!(
        desktop::clipboard_as(Some("x-kde-passwordManagerHint"))
            .await
            .as_deref(),
        Some("secret")
    );
    wait_until(
        Duration::from_secs(20),
        "the clipboard no longer holds the token (clear_clipboard_secs = 2)",
        async || desktop::clipboard().await.as_deref() != Some(s.fb_access.as_str()),
    )
    .await;
    let after = desktop::clipboard().await;
    assert!(
        after.as_deref().is_none_or(|t| t.trim().is_empty()),
        "the clipboard is cleared, not replaced: {} bytes left",
        after.map_or(0, |t| t.len())
    );

    // `g` loses its token through the CLI beside the app: its entry, the same item, is disabled.
    let g_id = entry(&menu, "Copy g token").id;
    s.env.run(&["disconnect", "g"], None).await.ok();
    let menu = tray
        .wait_menu("g's Copy entry, updated in place, is disabled", |m| {
            m.iter().any(|e| e.id == g_id && !e.enabled)
        })
        .await;
    let g = menu.iter().find(|e| e.id == g_id).expect("g's entry");
    let summary = tray
        .wait_menu("the summary counts g as not connected", |m| {
            m[0].label == "Tokenwarden: 1 fresh, 2 not connected"
        })
        .await;
    assert!(!summary[0].enabled, "{summary:#?}");
    assert!(
        g.label.starts_with("Copy g token — not_connected"),
        "{menu:#?}"
    );
    assert_eq!(time_left(&g.label), "no token", "{menu:#?}");
    assert_eq!(
        s.env.stored_tokens("g").await,
        None,
        "disconnect deleted g's tokens"
    );

    // Refresh all while the provider holds fb's answer (it rotates at once, answers 3 s late),
    // then Quit: the app waits for that answer and stores the new refresh token before exiting.
    s.legacy
        .fail_next(1, Fault::DelayAfterIssue(Duration::from_secs(3)));
    tray.click(entry(&menu, "Refresh all").id).await;
    wait_until(
        Duration::from_secs(10),
        "fb's refresh reached the provider",
        async || !s.legacy.lock().refresh_requests().is_empty(),
    )
    .await;
    let rotated = s.legacy.lock().refresh_requests()[0]
        .issued_refresh_token
        .clone()
        .expect("the provider rotated fb's refresh token");
    tray.click(entry(&menu, "Quit").id).await;
    let out = app.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(out.code, 0, "Quit exits 0:\n{out}");

    let stored = s
        .env
        .stored_tokens("fb")
        .await
        .expect("tokens:fb is still in the keychain");
    assert_eq!(
        stored["refresh_token"],
        rotated.as_str(),
        "the keychain holds the refresh token issued while Quit was pending"
    );
    let st = s.legacy.lock();
    assert!(st.is_live_refresh_token(&rotated));
    assert_eq!(
        stored["access_token"].as_str(),
        st.current_access_token().as_deref()
    );
    assert_eq!(st.reused_refresh_tokens, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_window_destroys_it_and_open_tokenwarden_builds_it_again() {
    let session = Session::start().await;
    let s = three_accounts().await;
    desktop::write_settings(&s.env, true, 60);
    let mut app = session.launch(&s.env, &[]);
    app.wait_api().await;
    let pid = app.pid();
    let tray = session.tray_item(pid).await;

    wait_until(
        Duration::from_secs(30),
        "the app shows its window titled Tokenwarden",
        async || desktop::window_mapped(pid).await == Some(true),
    )
    .await;
    let web_processes = || {
        tokenwarden_e2e::proc::descendants(pid)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.starts_with("WebKitWebProces"))
            })
            .count()
    };
    assert!(
        web_processes() > 0,
        "a shown window has a WebKit web process"
    );
    desktop::close_window(pid).await;
    // Closed, the window is destroyed, not hidden: no X window, and WebKit's web process
    // (the page's memory) ends with it.
    wait_until(
        Duration::from_secs(10),
        "closing the window destroys it",
        async || desktop::window_mapped(pid).await.is_none(),
    )
    .await;
    wait_until(
        Duration::from_secs(20),
        "the web process ends with the window",
        async || web_processes() == 0,
    )
    .await;
    assert!(app.running(), "closing the window does not quit the app");
    assert_eq!(
        s.env.status("fb").await,
        "fresh",
        "the engine still answers"
    );

    // The first page may be closed before it drew anything: counted from here.
    let drawn = app.stderr().matches("window drawn").count();
    let menu = tray.menu().await;
    tray.click(entry(&menu, "Open Tokenwarden").id).await;
    wait_until(
        Duration::from_secs(10),
        "Open Tokenwarden maps the window again",
        async || desktop::window_mapped(pid).await == Some(true),
    )
    .await;
    wait_until(
        Duration::from_secs(20),
        "the page is loaded again in a web process",
        async || web_processes() > 0,
    )
    .await;
    // The rebuilt page drew its list and said so: the app logs each window's first draw,
    // with the time since it was opened.
    wait_until(
        Duration::from_secs(20),
        "the app logs the rebuilt window's first draw",
        async || app.stderr().matches("window drawn").count() == drawn + 1,
    )
    .await;
    let log = app.stderr();
    let line = log.lines().rfind(|l| l.contains("window drawn"));
    assert!(line.is_some_and(|l| l.contains("since_open_ms=")), "{log}");
}

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// A suspend stops the monotonic clock that sleeps count by, not the wall clock. libfaketime
/// steps the app's wall clock an hour ahead after a Copy while its monotonic clock runs on
/// (what the app sees after an hour's suspend): the token, to be cleared 10 minutes after the
/// copy, is cleared within seconds instead of 10 minutes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_token_is_cleared_by_the_wall_clock_which_a_suspend_does_not_stop() {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: `make test` installs libfaketime"
    );
    let session = Session::start().await;
    let s = three_accounts().await;
    desktop::write_settings(&s.env, true, 600);
    let rc = s.env.root().join("faketime.rc");
    std::fs::write(&rc, "+0\n").expect("write the faketime file");
    let faketime: [(&'static str, OsString); 6] = [
        ("LD_PRELOAD", LIBFAKETIME.into()),
        ("FAKETIME_TIMESTAMP_FILE", rc.clone().into()),
        ("FAKETIME_NO_CACHE", "1".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ("DONT_FAKE_MONOTONIC", "1".into()),
        ("NO_FAKE_STAT", "1".into()),
    ];
    let mut app = session.launch(&s.env, &faketime);
    app.wait_api().await;
    let tray = session.tray_item(app.pid()).await;
    let menu = tray
        .wait_menu("fb's Copy entry is enabled", |m| {
            m.iter()
                .any(|e| e.label.starts_with("Copy fb token — fresh") && e.enabled)
        })
        .await;

    tray.click(entry(&menu, "Copy fb token").id).await;
    wait_until(
        Duration::from_secs(10),
        "the clipboard holds fb's access token",
        async || desktop::clipboard().await.as_deref() == Some(s.fb_access.as_str()),
    )
    .await;
    std::fs::write(&rc, "+1h\n").expect("step the app's wall clock");
    wait_until(
        Duration::from_secs(30),
        "the clipboard no longer holds the token: an hour passed by the wall clock, and \
         clear_clipboard_secs = 600",
        async || desktop::clipboard().await.as_deref() != Some(s.fb_access.as_str()),
    )
    .await;
    let after = desktop::clipboard().await;
    assert!(
        after.as_deref().is_none_or(|t| t.trim().is_empty()),
        "the clipboard is cleared, not replaced: {} bytes left",
        after.map_or(0, |t| t.len())
    );
    assert!(app.running(), "the app still runs:\n{}", app.stderr());
}
