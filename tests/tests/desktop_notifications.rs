//! Desktop notifications as the session bus carried them: a dbusmock notification daemon
//! records every org.freedesktop.Notifications.Notify call, and each test reads them back.
//! One notification when an episode starts, one when it gives up, one when it recovers, never
//! one per retry, none when `desktop.json` turns them off, and never a secret in the text.
//! The secrets are canaries (`tw-canary-…`) so any leak is found by one substring.

use std::time::Duration;

use tokenwarden_e2e::desktop::{self, Notification, Session};
use tokenwarden_e2e::fakes::oauth::{Fault, OAuthFake};
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{wait_until, Env};

const CANARY: &str = "tw-canary";

/// `fb` on a legacy fake whose secrets are canaries, connected with a token that expired
/// 5 s ago: the app refreshes it as soon as it starts. Retries start at 1 s ([`Env::new`]).
async fn expired_fb() -> (OAuthFake, Env, String) {
    LegacyAccount::new(|c| {
        c.expires_in(3600)
            .canaries("tw-canary-n0tify", "tw-canary-at-")
    })
    .connected(-5)
    .await
}

/// No summary or body holds a secret: not the canary prefix, nor any token the fake issued.
fn assert_no_secret(notes: &[Notification], fake: &OAuthFake, seeded_access: &str) {
    let st = fake.lock();
    let mut secrets: Vec<String> = st.issued_refresh_tokens.clone();
    secrets.extend(st.current_access_token());
    secrets.push(st.config.client_secret.clone());
    secrets.push(seeded_access.to_string());
    for n in notes {
        for text in [&n.summary, &n.body] {
            assert!(
                !text.contains(CANARY) && !secrets.iter().any(|s| text.contains(s.as_str())),
                "a notification carries a secret: summary {:?}, body of {} bytes",
                n.summary.replace(CANARY, "<canary>"),
                n.body.len()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_episode_notifies_once_and_once_more_on_recovery() {
    let session = Session::start().await;
    let (fake, env, seeded) = expired_fb().await;
    fake.fail_next(3, Fault::status(503));
    desktop::write_settings(&env, true, 60);
    let mut app = session.launch(&env, &[]);
    app.wait_api().await;

    wait_until(
        Duration::from_secs(60),
        "three 503s, then a refresh that works",
        async || fake.lock().refresh_grants == 1,
    )
    .await;
    wait_until(
        Duration::from_secs(20),
        "a notification that fb recovered",
        async || {
            session
                .notifications()
                .await
                .iter()
                .any(|n| n.summary.contains("recovered"))
        },
    )
    .await;
    assert_eq!(
        fake.lock().token_requests.len(),
        4,
        "the episode had three failed tries and one success"
    );

    let notes = session.notifications().await;
    assert_no_secret(&notes, &fake, &seeded);
    let failed: Vec<usize> = (0..notes.len())
        .filter(|&i| notes[i].summary.contains("refresh failed"))
        .collect();
    let recovered: Vec<usize> = (0..notes.len())
        .filter(|&i| notes[i].summary.contains("recovered"))
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "one failure notification per episode, not one per retry: {notes:#?}"
    );
    assert_eq!(recovered.len(), 1, "{notes:#?}");
    assert_eq!(notes.len(), 2, "nothing else was notified: {notes:#?}");
    assert!(failed[0] < recovered[0], "failure first: {notes:#?}");
    let failure = &notes[failed[0]];
    assert!(
        failure.summary.contains("fb"),
        "names the account: {failure:?}"
    );
    assert!(
        !failure.body.trim().is_empty(),
        "the body gives the reason in words: {failure:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_notifies_reconnect_once_without_quoting_the_provider() {
    let session = Session::start().await;
    let (fake, env, seeded) = expired_fb().await;
    // Like the real legacy Fitbit, the fake's error message quotes the refresh token (a canary).
    fake.fail_next(1, Fault::OAuthError("invalid_grant"));
    desktop::write_settings(&env, true, 60);
    let mut app = session.launch(&env, &[]);
    app.wait_api().await;

    wait_until(
        Duration::from_secs(30),
        "fb needs reconnecting",
        async || env.status("fb").await == "needs_reconnect",
    )
    .await;
    wait_until(
        Duration::from_secs(20),
        "a `Reconnect fb` notification",
        async || {
            session
                .notifications()
                .await
                .iter()
                .any(|n| n.summary.contains("Reconnect fb"))
        },
    )
    .await;
    let notes = session.notifications().await;
    assert_no_secret(&notes, &fake, &seeded);
    let reconnect: Vec<&Notification> = notes
        .iter()
        .filter(|n| n.summary.contains("Reconnect fb"))
        .collect();
    assert_eq!(reconnect.len(), 1, "{notes:#?}");
    // The first failure is also the give-up: one notification says both.
    assert_eq!(
        notes.len(),
        1,
        "one notification for the episode: {notes:#?}"
    );
    assert!(
        !reconnect[0].body.trim().is_empty(),
        "the body says why: {:?}",
        reconnect[0].summary
    );
    assert_eq!(
        fake.lock().token_requests.len(),
        1,
        "no retry after invalid_grant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_notification_at_all_when_they_are_off() {
    let session = Session::start().await;
    let (fake, env, _seeded) = expired_fb().await;
    fake.fail_next(2, Fault::status(503));
    desktop::write_settings(&env, false, 60);
    let mut app = session.launch(&env, &[]);
    app.wait_api().await;

    wait_until(
        Duration::from_secs(60),
        "two 503s, then a refresh that works",
        async || fake.lock().refresh_grants == 1,
    )
    .await;
    wait_until(Duration::from_secs(10), "fb is fresh again", async || {
        env.status("fb").await == "fresh"
    })
    .await;
    // The engine recorded the whole episode (so every notification it would have sent was due).
    let log = env.log_entries(Some("fb")).await;
    assert!(
        log.iter().any(|e| e["outcome"] == "transient_error"),
        "the failures are in the log: {log:?}"
    );
    assert!(log.iter().any(|e| e["outcome"] == "ok"), "{log:?}");
    let notes = session.notifications().await;
    assert!(
        notes.is_empty(),
        "notifications are off in desktop.json: {notes:#?}"
    );
    assert!(app.running());
}

/// The tray app's engine stops refreshing (its scheduler panics, through the debug fault
/// hook): the app does not sit in the tray looking fine. It notifies "Tokenwarden stopped"
/// even with event notifications off, saves what it holds, and exits with code 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_whose_engine_dies_says_so_and_exits_non_zero() {
    let session = Session::start().await;
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    desktop::write_settings(&env, false, 60);
    let flag = env.root().join("scheduler-panics");
    let mut app = session.launch(
        &env,
        &[(
            "TOKENWARDEN_FAULT_SCHEDULER_PANIC",
            flag.clone().into_os_string(),
        )],
    );
    app.wait_api().await;
    let key = env.create_api_key("dies").await;
    let api = env.api(&key);
    std::fs::write(&flag, b"panic").expect("the fault file");
    // A refresh wakes the scheduler, which then panics.
    api.post_empty("/v1/accounts/fb/refresh").await.expect(200);
    let out = app.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(out.code, 1, "the app exits 1:\n{out}");
    let notes = session.notifications().await;
    let stopped: Vec<_> = notes
        .iter()
        .filter(|n| n.summary == "Tokenwarden stopped")
        .collect();
    assert_eq!(stopped.len(), 1, "one notification says so: {notes:?}");
    assert!(stopped[0].body.contains("scheduler"), "{:?}", stopped[0]);
    // What it held is in the keychain.
    let stored = env.stored_tokens("fb").await.expect("tokens:fb");
    assert_eq!(
        stored["refresh_token"].as_str(),
        fake.lock().latest_refresh_token().as_deref()
    );
}

/// Foresight and the WeChat allowance reach the desktop once each: `fb`'s first refresh says
/// its refresh token lives an hour (less than the default 24 h warning), and `wx`'s first
/// fetch is the day's 1,600th of 2,000 (80%).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_deadline_and_a_spent_wechat_allowance_notify_once_each() {
    use tokenwarden_e2e::fakes::wechat::{WeChatConfig, WeChatFake};
    let session = Session::start().await;
    let (fake, env, seeded) = expired_fb().await;
    fake.fail_next(
        1,
        Fault::AnswerWith(serde_json::json!({"refresh_token_expires_in": 3600})),
    );
    let wx = WeChatFake::start(WeChatConfig::default()).await;
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    env.write_config(&(config + "\n" + &wx.account_toml("wx", "")));
    let (appid, secret) = {
        let st = wx.lock();
        (st.config.appid.clone(), st.config.secret.clone())
    };
    env.set_secret("wx", &secret).await;
    env.run(&["list"], None).await.ok(); // makes the history database
    let today = time::OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap())
        .date()
        .to_string();
    rusqlite::Connection::open(env.data_dir.join("history.sqlite3"))
        .unwrap()
        .execute(
            "INSERT INTO wechat_fetches (allowance, day, fetches) VALUES (?1, ?2, 1599)",
            rusqlite::params![appid, today],
        )
        .unwrap();
    desktop::write_settings(&env, true, 60);
    let mut app = session.launch(&env, &[]);
    app.wait_api().await;

    wait_until(
        Duration::from_secs(30),
        "a notification to reconnect fb and one about wx's allowance",
        async || {
            let notes = session.notifications().await;
            notes
                .iter()
                .any(|n| n.summary.starts_with("Reconnect fb before"))
                && notes
                    .iter()
                    .any(|n| n.summary.contains("wx: WeChat fetch allowance"))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let notes = session.notifications().await;
    let reconnect: Vec<_> = notes
        .iter()
        .filter(|n| n.summary.starts_with("Reconnect fb"))
        .collect();
    assert_eq!(reconnect.len(), 1, "{notes:?}");
    let quota: Vec<_> = notes
        .iter()
        .filter(|n| n.summary.contains("allowance"))
        .collect();
    assert_eq!(quota.len(), 1, "{notes:?}");
    assert!(
        quota[0].body.contains("1600 of today's 2000"),
        "{}",
        quota[0].body
    );
    assert_no_secret(&notes, &fake, &seeded);
}
