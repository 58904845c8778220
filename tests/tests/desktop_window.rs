//! The real window through WebDriver (tauri-driver + WebKitWebDriver + fantoccini): what the
//! accounts list, the add form, the log, settings and the config-error banner show, checked
//! against what the fake providers, the config file, the OS keychain, the clipboard and the
//! local API hold. No token may appear in the page at any point. Screenshots of each view go
//! to `tests/artifacts/screenshots/` (gitignored).

use std::time::Duration;

use fantoccini::key::Key;
use serde_json::Value;
use tokenwarden_e2e::desktop::{self, Driver, Session};
use tokenwarden_e2e::fakes::http::HttpTokenFake;
use tokenwarden_e2e::fakes::oauth::{Fault, OAuthConfig, OAuthFake};
use tokenwarden_e2e::fakes::wechat::{WeChatConfig, WeChatFake};
use tokenwarden_e2e::harness::unix_now;
use tokenwarden_e2e::{wait_until, Api, Env};

const CANARY: &str = "tw-canary";
const SCOPES: &str = "scopes = [\"https://www.googleapis.com/auth/googlehealth.sleep.readonly\"]";

fn row(name: &str) -> String {
    format!(r#"[data-testid="account-row"][data-account="{name}"]"#)
}

fn in_row(name: &str, testid: &str) -> String {
    format!(r#"{} [data-testid="{testid}"]"#, row(name))
}

/// Waits until `name`'s row is fresh and its Refresh button can be pressed (a refresh that is
/// still being saved keeps it disabled), then presses it.
async fn refresh_when_idle(driver: &Driver, name: &str) {
    wait_until(
        Duration::from_secs(15),
        &format!("{name} is fresh and its Refresh button enabled"),
        async || {
            status_of(driver, name).await.as_deref() == Some("fresh")
                && match driver.find_all(&in_row(name, "refresh")).await.first() {
                    Some(button) => button.is_enabled().await.unwrap_or(false),
                    None => false,
                }
        },
    )
    .await;
    // Another row's error banner may appear right now and push this row down (seen beside
    // two CPU hogs: a native click at the old point missed, and nothing was refreshed).
    driver.click_in_dom(&in_row(name, "refresh")).await;
}

async fn status_of(driver: &Driver, name: &str) -> Option<String> {
    driver.attr(&in_row(name, "status"), "data-status").await
}

/// The log rows shown now: (account, outcome).
async fn log_rows(driver: &Driver) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for r in driver.find_all(r#"[data-testid="log-row"]"#).await {
        let account = r
            .attr("data-account")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let outcome = r
            .attr("data-outcome")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        rows.push((account, outcome));
    }
    rows
}

/// Every value the test must never find in the page: the canary prefix and the live tokens.
fn secrets(fakes: &[&OAuthFake], extra: &[&str]) -> Vec<String> {
    let mut all = vec![CANARY.to_string()];
    for fake in fakes {
        let st = fake.lock();
        all.extend(st.current_access_token());
        all.extend(st.issued_refresh_tokens.iter().cloned());
        all.push(st.config.client_secret.clone());
    }
    all.extend(extra.iter().map(|s| s.to_string()));
    all
}

async fn assert_clean(driver: &Driver, fakes: &[&OAuthFake], extra: &[&str], when: &str) {
    let all = secrets(fakes, extra);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    driver.assert_no_secret(&refs, when).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_lists_connects_refreshes_logs_and_never_shows_a_token() {
    let session = Session::start().await;
    // fb: connected, an hour left. gfit: configured, never connected. Google-like fakes whose
    // secrets are canaries.
    let fb_fake =
        OAuthFake::start(OAuthConfig::google().canaries("tw-canary-w1n-fb", "tw-canary-at-fb-"))
            .await;
    let g_fake =
        OAuthFake::start(OAuthConfig::google().canaries("tw-canary-w1n-g", "tw-canary-at-g-"))
            .await;
    let env = Env::new(
        &(fb_fake.account_toml("fb", "fitbit", SCOPES)
            + &g_fake.account_toml("gfit", "fitbit", SCOPES)),
    );
    let fb_secret = fb_fake.lock().config.client_secret.clone();
    let g_secret = g_fake.lock().config.client_secret.clone();
    env.set_secret("fb", &fb_secret).await;
    env.set_secret("gfit", &g_secret).await;
    let (fb_access, fb_refresh) = fb_fake.issue_grant();
    env.seed_tokens("fb", &fb_access, &fb_refresh, unix_now() + 3600)
        .await;
    desktop::write_settings(&env, true, 60);
    let fakes = [&fb_fake, &g_fake];

    let driver = Driver::launch(&env, &session, &[]).await;

    // The configured accounts, in config order, with their states.
    wait_until(Duration::from_secs(20), "two account rows", async || {
        driver
            .find_all(r#"[data-testid="account-row"]"#)
            .await
            .len()
            == 2
    })
    .await;
    let mut names = Vec::new();
    for r in driver.find_all(r#"[data-testid="account-row"]"#).await {
        names.push(
            r.attr("data-account")
                .await
                .ok()
                .flatten()
                .unwrap_or_default(),
        );
    }
    assert_eq!(names, ["fb", "gfit"]);
    wait_until(
        Duration::from_secs(10),
        "fb fresh, gfit not_connected",
        async || {
            status_of(&driver, "fb").await.as_deref() == Some("fresh")
                && status_of(&driver, "gfit").await.as_deref() == Some("not_connected")
        },
    )
    .await;

    // The countdown counts down while we watch.
    let first = driver
        .text(&in_row("fb", "countdown"))
        .await
        .unwrap_or_default();
    let start = desktop::countdown_seconds(&first)
        .unwrap_or_else(|| panic!("fb's countdown is not a duration: {first:?}"));
    assert!(
        (3000..=3600).contains(&start),
        "about an hour left: {first:?}"
    );
    wait_until(
        Duration::from_secs(10),
        "the countdown drops by 2 s",
        async || {
            let now = driver
                .text(&in_row("fb", "countdown"))
                .await
                .unwrap_or_default();
            desktop::countdown_seconds(&now).is_some_and(|s| s <= start - 2)
        },
    )
    .await;
    for cell in ["last-refresh", "next-refresh"] {
        assert!(
            driver.find_all(&in_row("fb", cell)).await.len() == 1,
            "fb's row has a {cell} cell"
        );
    }
    driver.screenshot("accounts").await;
    assert_clean(&driver, &fakes, &[&fb_access], "on first draw").await;

    // Copy puts the token on the clipboard, never into the page.
    driver.click(&in_row("fb", "copy")).await;
    wait_until(
        Duration::from_secs(10),
        "the clipboard holds fb's token",
        async || desktop::clipboard().await.as_deref() == Some(fb_access.as_str()),
    )
    .await;
    assert_clean(&driver, &fakes, &[&fb_access], "after Copy").await;

    // Connect gfit: the app opens $BROWSER (the fake browser approves at the fake provider) and
    // the row turns fresh in the same page, without a reload.
    driver
        .execute("window.__twSamePage = 'kept'; return true;")
        .await;
    driver.click(&in_row("gfit", "connect")).await;
    let connected = async || status_of(&driver, "gfit").await.as_deref() == Some("fresh");
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    while !connected().await {
        assert!(
            std::time::Instant::now() < deadline,
            "gfit did not turn fresh after Connect; the fake browser did:\n{}\ntauri-driver:\n{}",
            session.browser_log(),
            driver.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        driver.execute("return window.__twSamePage || null;").await,
        Value::from("kept"),
        "the page was not reloaded"
    );
    assert!(
        session.browser_log().contains("callback HTTP 200"),
        "{}",
        session.browser_log()
    );
    let g_access = {
        let st = g_fake.lock();
        assert_eq!(st.code_grants, 1, "one code exchange");
        st.current_access_token().expect("gfit's token")
    };
    let stored = env.stored_tokens("gfit").await.expect("tokens:gfit");
    assert_eq!(stored["access_token"], g_access.as_str());
    assert_clean(&driver, &fakes, &[&fb_access], "after Connect").await;

    // Refresh now: once fine, once after a 503 (the retry succeeds), and gfit once.
    refresh_when_idle(&driver, "fb").await;
    wait_until(Duration::from_secs(15), "fb refreshed", async || {
        fb_fake.lock().refresh_grants == 1
    })
    .await;
    fb_fake.fail_next(1, Fault::status(503));
    refresh_when_idle(&driver, "fb").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fb_fake.lock().refresh_grants < 2 {
        let seen: Vec<u16> = fb_fake
            .lock()
            .token_requests
            .iter()
            .map(|r| r.status)
            .collect();
        assert!(
            std::time::Instant::now() < deadline,
            "fb's refresh did not fail once and then work on retry: the provider answered \
             {seen:?}; fb's row says {:?}",
            status_of(&driver, "fb").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    refresh_when_idle(&driver, "gfit").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while g_fake.lock().refresh_grants != 1 {
        if std::time::Instant::now() > deadline {
            let seen: Vec<_> = g_fake
                .lock()
                .token_requests
                .iter()
                .map(|r| (r.grant_type.clone(), r.status))
                .collect();
            let row = driver
                .text(r#"[data-testid="account-row"][data-account="gfit"]"#)
                .await;
            let shot = driver.screenshot("gfit-not-refreshed").await;
            panic!(
                "gfit was not refreshed: the provider answered {seen:?}; gfit's row reads {row:?}; the window: {}",
                shot.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_clean(&driver, &fakes, &[&fb_access, &g_access], "after refreshes").await;

    // The log shows those rows, and its filters narrow them.
    driver.click(r#"[data-testid="nav-log"]"#).await;
    let mut all = Vec::new();
    wait_until(
        Duration::from_secs(15),
        "log rows: fb ok, transient_error, ok; gfit ok",
        async || {
            all = log_rows(&driver).await;
            let count = |a: &str, o: &str| all.iter().filter(|(x, y)| x == a && y == o).count();
            count("fb", "ok") >= 2
                && count("fb", "transient_error") >= 1
                && count("gfit", "ok") >= 1
        },
    )
    .await;
    driver.screenshot("log").await;
    let fb_rows = all.iter().filter(|(a, _)| a == "fb").count();
    let fb_failures = all
        .iter()
        .filter(|(a, o)| a == "fb" && o == "transient_error")
        .count();
    driver
        .select(r#"[data-testid="log-filter-account"]"#, "fb")
        .await;
    wait_until(Duration::from_secs(10), "only fb's rows", async || {
        let rows = log_rows(&driver).await;
        rows.len() == fb_rows && rows.iter().all(|(a, _)| a == "fb")
    })
    .await;
    driver
        .select(r#"[data-testid="log-filter-outcome"]"#, "transient_error")
        .await;
    wait_until(
        Duration::from_secs(10),
        "only fb's failed refreshes",
        async || {
            let rows = log_rows(&driver).await;
            rows.len() == fb_failures
                && rows
                    .iter()
                    .all(|(a, o)| a == "fb" && o == "transient_error")
        },
    )
    .await;

    // Settings: a key created here works against the local API until it is revoked here.
    driver.click(r#"[data-testid="nav-settings"]"#).await;
    driver
        .find(r#"[data-testid="setting-notifications"]"#)
        .await;
    driver.screenshot("settings").await;
    driver
        .fill(r#"[data-testid="apikey-label"]"#, "webdriver")
        .await;
    driver.click(r#"[data-testid="apikey-create"]"#).await;
    let mut key = String::new();
    wait_until(
        Duration::from_secs(10),
        "the new key is shown",
        async || {
            key = driver
                .text(r#"[data-testid="apikey-new"]"#)
                .await
                .unwrap_or_default()
                .trim()
                .to_string();
            key.len() >= 20
        },
    )
    .await;
    let api = Api::new(env.api_port, Some(&key));
    let answer = api.get("/v1/accounts").await;
    assert_eq!(answer.status, 200, "the new key works:\n{answer}");
    driver
        .click(
            r#"[data-testid="apikey-row"][data-label="webdriver"] [data-testid="apikey-revoke"]"#,
        )
        .await;
    let mut confirmed = false;
    wait_until(
        Duration::from_secs(15),
        "the revoked key gets 401",
        async || {
            if api.get("/v1/accounts").await.status == 401 {
                return true;
            }
            if !confirmed && driver.displayed(r#"[data-testid="confirm"]"#).await {
                driver.click(r#"[data-testid="confirm"]"#).await;
                confirmed = true;
            }
            false
        },
    )
    .await;
    assert_clean(&driver, &fakes, &[&fb_access, &g_access], "in settings").await;

    driver.click(r#"[data-testid="nav-accounts"]"#).await;
    driver.find(&row("gfit")).await;
    assert_clean(&driver, &fakes, &[&fb_access, &g_access], "at the end").await;
    driver.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_add_form_writes_the_config_and_the_keychain() {
    let session = Session::start().await;
    let http = HttpTokenFake::start(3600).await;
    let env = Env::new("# my accounts: the UI keeps this comment\n");
    desktop::write_settings(&env, true, 60);
    let driver = Driver::launch(&env, &session, &[]).await;
    let read = || std::fs::read_to_string(&env.config_path).expect("config");
    let submit = r#"[data-testid="add-submit"]"#;

    assert!(
        driver.displayed(r#"[data-testid="empty-state"]"#).await,
        "no accounts: the empty state shows"
    );
    driver.screenshot("accounts-empty").await;
    driver.click(r#"[data-testid="nav-add"]"#).await;
    driver
        .find(r#"[data-testid="preset"][data-preset="fitbit"]"#)
        .await;
    driver.screenshot("add-account").await;

    // An `http` account needs only a URL: it is fetched at once and its row turns fresh.
    driver
        .click(r#"[data-testid="preset"][data-preset="http"]"#)
        .await;
    driver.fill(r#"[data-testid="field-name"]"#, "web").await;
    let url = format!("http://{}/token?account=web", http.addr);
    driver.fill(r#"[data-testid="field-url"]"#, &url).await;
    wait_until(
        Duration::from_secs(10),
        "Add is enabled for web",
        async || driver.enabled(r#"[data-testid="add-submit"]"#).await,
    )
    .await;
    driver.click(submit).await;
    wait_until(
        Duration::from_secs(15),
        "web is in the config",
        async || read().contains("name = \"web\""),
    )
    .await;
    driver.click(r#"[data-testid="nav-accounts"]"#).await;
    wait_until(Duration::from_secs(20), "web's row is fresh", async || {
        status_of(&driver, "web").await.as_deref() == Some("fresh")
    })
    .await;
    let web_token = http
        .lock()
        .latest
        .get("web")
        .cloned()
        .expect("the fake issued web's token (GET /token?account=web)");
    assert_eq!(env.token("web").await, web_token);

    // A bad name is refused (a disabled Add button, or an error on submit); nothing is written.
    driver.click(r#"[data-testid="nav-add"]"#).await;
    driver
        .click(r#"[data-testid="preset"][data-preset="fitbit"]"#)
        .await;
    let before = std::fs::read(&env.config_path).expect("config");
    driver
        .fill(r#"[data-testid="field-name"]"#, "Bad Name")
        .await;
    driver
        .fill(
            r#"[data-testid="field-client_id"]"#,
            "1234-new.apps.googleusercontent.com",
        )
        .await;
    if driver.enabled(r#"[data-testid="add-submit"]"#).await {
        driver.click(submit).await;
        wait_until(
            Duration::from_secs(10),
            "the form shows an error",
            async || driver.displayed(r#"[data-testid="form-error"]"#).await,
        )
        .await;
    }
    assert_eq!(std::fs::read(&env.config_path).expect("config"), before);

    // A good one lands in the config (comment kept) and its secret in the keychain only; the
    // form then waits for consent, which the user cancels.
    let secret = "tw-canary-added-client-secret";
    driver.fill(r#"[data-testid="field-name"]"#, "newfit").await;
    driver.fill(r#"[data-testid="field-secret"]"#, secret).await;
    wait_until(
        Duration::from_secs(10),
        "Add is enabled for a valid name",
        async || driver.enabled(r#"[data-testid="add-submit"]"#).await,
    )
    .await;
    driver.click(submit).await;
    wait_until(
        Duration::from_secs(15),
        "newfit is in the config",
        async || read().contains("name = \"newfit\""),
    )
    .await;
    let config = read();
    assert!(
        config.contains("# my accounts: the UI keeps this comment"),
        "{config}"
    );
    assert!(
        config.contains("1234-new.apps.googleusercontent.com"),
        "{config}"
    );
    assert!(!config.contains(secret), "no secret in the config file");
    wait_until(
        Duration::from_secs(10),
        "client-secret:newfit in the keychain",
        async || env.keychain_get("client-secret:newfit").await.as_deref() == Some(secret),
    )
    .await;
    driver.find(r#"[data-testid="connect-waiting"]"#).await;
    driver.click(r#"[data-testid="connect-cancel"]"#).await;
    wait_until(
        Duration::from_secs(15),
        "the waiting panel goes",
        async || !driver.displayed(r#"[data-testid="connect-waiting"]"#).await,
    )
    .await;
    assert_eq!(env.status("newfit").await, "not_connected");
    driver.click(r#"[data-testid="nav-accounts"]"#).await;
    wait_until(Duration::from_secs(10), "newfit's row", async || {
        status_of(&driver, "newfit").await.as_deref() == Some("not_connected")
    })
    .await;
    driver.screenshot("accounts-added").await;
    driver
        .assert_no_secret(&[CANARY, secret, &web_token], "after adding accounts")
        .await;
    driver.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_error_shows_its_line_and_the_file_is_never_rewritten() {
    let session = Session::start().await;
    let http = HttpTokenFake::start(3600).await;
    let env = Env::new("");
    let header = std::fs::read_to_string(&env.config_path).expect("config");
    let broken = format!(
        "{header}# a comment the app must keep\n[[account]]\nname = \"broken\"\nprovider = \n"
    );
    let bad_line = broken
        .lines()
        .position(|l| l.starts_with("provider = "))
        .expect("the bad line")
        + 1;
    env.write_config(&broken);
    desktop::write_settings(&env, true, 60);

    let driver = Driver::launch(&env, &session, &[]).await;
    let banner = r#"[data-testid="config-error"]"#;
    wait_until(
        Duration::from_secs(20),
        "the config error banner",
        async || driver.displayed(banner).await,
    )
    .await;
    let text = driver.text(banner).await.unwrap_or_default();
    assert!(
        text.contains(&format!("line {bad_line}")),
        "the banner names line {bad_line}: {text:?}"
    );
    driver.screenshot("config-error").await;

    // Reloading the same broken file keeps the banner and writes nothing.
    driver.click(r#"[data-testid="config-reload"]"#).await;
    wait_until(
        Duration::from_secs(10),
        "the banner is still there",
        async || {
            driver.displayed(banner).await
                && driver
                    .text(banner)
                    .await
                    .is_some_and(|t| t.contains(&format!("line {bad_line}")))
        },
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&env.config_path).expect("config"),
        broken,
        "the app never rewrites a broken config"
    );

    // The user fixes the file; Reload picks it up and the banner goes.
    let fixed = format!(
        "{header}# a comment the app must keep\n{}",
        http.account_toml("fixed")
    );
    env.write_config(&fixed);
    driver.click(r#"[data-testid="config-reload"]"#).await;
    wait_until(
        Duration::from_secs(20),
        "the banner goes, the account shows",
        async || !driver.displayed(banner).await && status_of(&driver, "fixed").await.is_some(),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&env.config_path).expect("config"),
        fixed,
        "reading the config never rewrites it"
    );
    driver.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dark_theme_screenshot() {
    let session = Session::start().await;
    let fake = OAuthFake::start(OAuthConfig::google()).await;
    let env = Env::new(&fake.account_toml("fb", "fitbit", SCOPES));
    let (access, refresh) = fake.issue_grant();
    env.seed_tokens("fb", &access, &refresh, unix_now() + 3600)
        .await;
    desktop::write_settings(&env, true, 60);
    let driver = Driver::launch(&env, &session, &[("GTK_THEME", "Adwaita:dark".into())]).await;
    wait_until(Duration::from_secs(10), "fb's row is fresh", async || {
        status_of(&driver, "fb").await.as_deref() == Some("fresh")
    })
    .await;
    let dark = driver
        .execute("return matchMedia('(prefers-color-scheme: dark)').matches;")
        .await;
    let path = driver.screenshot("accounts-dark").await;
    let png = std::fs::read(&path).expect("screenshot");
    let (w, h) = desktop::png_size(&png).expect("a PNG screenshot");
    assert!(w >= 200 && h >= 200, "a whole window: {w}x{h}");
    println!(
        "accounts-dark.png {w}x{h}; WebKit reports prefers-color-scheme: dark = {dark} under GTK_THEME=Adwaita:dark"
    );
    for (view, ready) in [
        ("add", r#"[data-testid="preset"][data-preset="fitbit"]"#),
        ("log", r#"[data-testid="log-filter-account"]"#),
        ("settings", r#"[data-testid="setting-autostart"]"#),
    ] {
        driver
            .click(&format!(r#"[data-testid="nav-{view}"]"#))
            .await;
        driver.find(ready).await;
        driver.screenshot(&format!("{view}-dark")).await;
    }
    driver
        .assert_no_secret(&[&access, &refresh], "in dark mode")
        .await;
    driver.quit().await;
}

/// Whether the page's one `<dialog>` is open.
async fn dialog_open(driver: &Driver) -> bool {
    driver
        .execute("return document.getElementById('dialog').open;")
        .await
        == Value::Bool(true)
}

fn saved_start_at_login(env: &Env) -> Option<bool> {
    let text = std::fs::read_to_string(env.data_dir.join("desktop.json")).ok()?;
    serde_json::from_str::<Value>(&text).ok()?["start_at_login"].as_bool()
}

/// Everything here is done with the keyboard alone (WebDriver key actions: Tab, Shift+Tab,
/// Enter, Space, Escape, typing), the way a user without a mouse would: turn on start at
/// login (after one failure that must be reported and leave nothing half-saved), store a
/// client secret that then fetches the first token, and cancel a removal with Escape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_alone_turns_on_start_at_login_sets_a_secret_and_escape_cancels() {
    let session = Session::start().await;
    let wechat = WeChatFake::start(WeChatConfig::default()).await;
    let env = Env::new(&wechat.account_toml("wx", ""));
    desktop::write_settings(&env, true, 60);
    // A home of its own: the autostart entry goes to $HOME/.config/autostart. At first that
    // path is a file, so turning the setting on must fail.
    let home = tempfile::tempdir().expect("a home");
    let autostart_dir = home.path().join(".config/autostart");
    std::fs::create_dir_all(home.path().join(".config")).expect("~/.config");
    std::fs::write(&autostart_dir, "not a folder").expect("a file in the way");
    let entry_name: String = env
        .service
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let entry = autostart_dir.join(format!("tokenwarden-{entry_name}.desktop"));

    let driver = Driver::launch(&env, &session, &[("HOME", home.path().into())]).await;
    wait_until(
        Duration::from_secs(15),
        "wx is listed, not connected (no client secret yet)",
        async || status_of(&driver, "wx").await.as_deref() == Some("not_connected"),
    )
    .await;

    // The first Tab lands on the navigation, in order.
    let stops = driver.tab_to("nav-settings", None, 10).await;
    assert_eq!(
        stops,
        ["nav-accounts", "nav-add", "nav-log", "nav-settings"],
        "Tab walks the navigation first"
    );
    driver.press(Key::Enter).await;
    driver.find(r#"[data-testid="setting-autostart"]"#).await;

    // Space on "Start at login" while the entry cannot be written: an error that says so,
    // the box unticked again, and nothing saved.
    driver.tab_to("setting-autostart", None, 20).await;
    driver.press(Key::Space).await;
    wait_until(
        Duration::from_secs(10),
        "the settings view reports the failure",
        async || {
            driver
                .text(".view-settings [role=alert]")
                .await
                .is_some_and(|t| t.contains("start at login"))
        },
    )
    .await;
    assert_eq!(
        driver
            .execute("return document.getElementById('setting-autostart').checked;")
            .await,
        Value::Bool(false),
        "the box shows what is true: start at login is off"
    );
    assert_ne!(saved_start_at_login(&env), Some(true), "nothing was saved");

    // With the way clear, Space turns it on: the entry starts this binary with this config.
    std::fs::remove_file(&autostart_dir).expect("clear the way");
    if driver.focused().await.0 != "setting-autostart" {
        driver.tab_to("setting-autostart", None, 20).await;
    }
    driver.press(Key::Space).await;
    wait_until(
        Duration::from_secs(10),
        "the autostart entry is written",
        async || entry.exists(),
    )
    .await;
    let desktop_entry = std::fs::read_to_string(&entry).expect("the entry");
    let exec = desktop_entry
        .lines()
        .find_map(|l| l.strip_prefix("Exec="))
        .unwrap_or_else(|| panic!("an Exec line: {desktop_entry}"));
    let config = env.config_path.display().to_string();
    assert!(
        exec.starts_with(
            &std::fs::canonicalize(tokenwarden_e2e::harness::bin_path())
                .expect("the binary")
                .display()
                .to_string()
        ) && exec.ends_with(&format!("--hidden --config {config}")),
        "the entry starts this binary in the tray with this config: {exec}"
    );
    wait_until(
        Duration::from_secs(5),
        "desktop.json says start_at_login",
        async || saved_start_at_login(&env) == Some(true),
    )
    .await;
    // And Space again turns it off: the entry is gone.
    // (Once the page has drawn the saved state: a redraw replaces the box.)
    wait_until(
        Duration::from_secs(5),
        "the box is ticked and still has the focus",
        async || {
            driver
                .execute("const e = document.getElementById('setting-autostart'); return e.checked && document.activeElement === e && document.querySelector('.save-status').textContent !== 'Saving…';")
                .await
                == Value::Bool(true)
        },
    )
    .await;
    driver.press(Key::Space).await;
    wait_until(
        Duration::from_secs(10),
        "the autostart entry is removed",
        async || !entry.exists() && saved_start_at_login(&env) == Some(false),
    )
    .await;

    // Back to Accounts with Shift+Tab and Enter; then wx's "Client secret…" button.
    driver.tab_back_to("nav-accounts", 30).await;
    driver.press(Key::Enter).await;
    driver.find(&row("wx")).await;
    driver.tab_to("set-secret", Some("wx"), 30).await;
    driver.press(Key::Enter).await;
    wait_until(
        Duration::from_secs(5),
        "the secret dialog opens with the focus in its field",
        async || dialog_open(&driver).await && driver.focused().await.0 == "secret-input",
    )
    .await;
    driver.screenshot("secret-dialog").await;
    let secret = wechat.lock().config.secret.clone();
    driver.type_text(&secret).await;
    driver.press(Key::Enter).await;
    wait_until(
        Duration::from_secs(10),
        "the keychain holds wx's client secret",
        async || env.keychain_get("client-secret:wx").await.as_deref() == Some(secret.as_str()),
    )
    .await;
    wait_until(
        Duration::from_secs(20),
        "wx fetched its first token with it and is fresh",
        async || status_of(&driver, "wx").await.as_deref() == Some("fresh"),
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "the window shows wx's one fetch of today's 2,000",
        async || {
            driver
                .text("[data-account=wx] [data-testid=quota]")
                .await
                .as_deref()
                == Some("1 of 2000")
        },
    )
    .await;
    assert!(
        !dialog_open(&driver).await,
        "Enter saved and closed the dialog"
    );
    assert!(
        driver.find_all("#dialog input").await.is_empty(),
        "the secret field is gone from the page"
    );
    let token = env
        .stored_tokens("wx")
        .await
        .expect("wx's token in the keychain")["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    assert!(wechat.lock().token_alive(&token));
    driver
        .assert_no_secret(&[&secret, &token], "after a secret was set by keyboard")
        .await;
    driver.screenshot("accounts-keyboard").await;

    // Remove, then Escape: the confirm dialog closes and wx stays.
    driver.tab_to("remove", Some("wx"), 10).await;
    driver.press(Key::Enter).await;
    wait_until(
        Duration::from_secs(5),
        "the confirm dialog opens",
        async || dialog_open(&driver).await,
    )
    .await;
    driver.press(Key::Escape).await;
    wait_until(Duration::from_secs(5), "Escape closes it", async || {
        !dialog_open(&driver).await
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_of(&driver, "wx").await.as_deref(), Some("fresh"));
    assert!(
        std::fs::read_to_string(&env.config_path)
            .expect("config")
            .contains("name = \"wx\""),
        "Escape removed nothing"
    );
    driver.quit().await;
}
