//! Ask first in the tray app's window (`[api] ask_first = true`): a program not yet known is
//! held while the window asks "python3 (…, pid N) asks for fb's token"; Allow once lets that
//! process through, and its second call is not asked; Deny gives 403 `not_approved` and
//! sticks to the process; Always lets every later process of the same executable through
//! without asking, is listed in Settings and revocable there, after which the program is
//! asked again; an ask nobody answers is refused after `ask_timeout`; and the switch in
//! Settings writes `ask_first` to the config.

use std::time::{Duration, Instant};

use tokenwarden_e2e::ask::{python_exe, TakerProcess};
use tokenwarden_e2e::desktop::{self, Driver, Session};
use tokenwarden_e2e::harness::LegacyAccount;

const PROMPT: &str = r#"[data-testid="ask-dialog"][open] [data-testid="ask-text"]"#;
const TIMEOUT_SECS: u64 = 12;

/// Waits for the prompt about `pid`, and returns its words.
async fn prompt_about(driver: &Driver, pid: u32) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(text) = driver.text(PROMPT).await {
            if text.contains(&format!("pid {pid}")) {
                return text;
            }
        }
        if Instant::now() > deadline {
            driver.screenshot("ask-missing").await;
            panic!("no prompt about pid {pid}: {:?}", driver.text(PROMPT).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn no_prompt(driver: &Driver) -> bool {
    driver.find_all(PROMPT).await.is_empty()
}

/// Waits for the prompt to close (the window reads the asks again after an answer).
async fn prompt_gone(driver: &Driver) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !no_prompt(driver).await {
        if Instant::now() > deadline {
            driver.screenshot("ask-stays").await;
            panic!("the prompt stays: {:?}", driver.text(PROMPT).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_window_asks_before_a_new_program_takes_a_token() {
    let session = Session::start().await;
    let (_fake, env, token) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let config = std::fs::read_to_string(&env.config_path).unwrap().replacen(
        "\n[refresh]\n",
        &format!("ask_first = true\nask_timeout = \"{TIMEOUT_SECS}s\"\n\n[refresh]\n"),
        1,
    );
    env.write_config(&config);
    let key = env.create_api_key("scripts").await;
    desktop::write_settings(&env, true, 60);
    let driver = Driver::launch(&env, &session, &[]).await;
    driver
        .find(r#"[data-testid="account-row"][data-account="fb"]"#)
        .await;
    let url = format!("http://127.0.0.1:{}/v1/accounts/fb/token", env.api_port);
    let quick = Duration::from_secs(10);
    let held = Duration::from_secs(TIMEOUT_SECS + 10);
    let python = python_exe();

    // Held until allowed once; its second call is not asked (no one answers: it would be
    // refused after the timeout).
    let mut first = TakerProcess::start(&url, &key, &token);
    first.ask().await;
    let words = prompt_about(&driver, first.pid()).await;
    assert!(
        words.contains("python3") && words.contains(&python) && words.contains("taker.py"),
        "names the program, its executable and script: {words}"
    );
    assert!(words.contains("asks for fb"), "{words}");
    driver.screenshot("ask-prompt").await;
    driver
        .assert_no_secret(&[&token, &key], "with the prompt shown")
        .await;
    driver.click(r#"[data-testid="ask-once"]"#).await;
    assert_eq!(first.answer(held).await, "200 ok");
    prompt_gone(&driver).await;
    let started = Instant::now();
    assert_eq!(first.take(quick).await, "200 ok");
    assert!(started.elapsed() < Duration::from_secs(TIMEOUT_SECS));
    assert!(no_prompt(&driver).await);

    // Another process of the same program is asked again; Deny is 403, and sticks.
    let mut second = TakerProcess::start(&url, &key, &token);
    second.ask().await;
    prompt_about(&driver, second.pid()).await;
    driver.click(r#"[data-testid="ask-deny"]"#).await;
    let denied = second.answer(held).await;
    assert!(
        denied.starts_with("403 not_approved") && denied.contains("denied"),
        "{denied}"
    );
    prompt_gone(&driver).await;
    let again = second.take(quick).await;
    assert!(
        again.starts_with("403 not_approved") && again.contains("denied"),
        "refused at once, not after the timeout: {again}"
    );
    assert!(
        no_prompt(&driver).await,
        "a denied process is not asked again"
    );

    // Always: this process and every later one of the executable, without asking.
    let mut third = TakerProcess::start(&url, &key, &token);
    third.ask().await;
    prompt_about(&driver, third.pid()).await;
    driver.click(r#"[data-testid="ask-always"]"#).await;
    assert_eq!(third.answer(held).await, "200 ok");
    prompt_gone(&driver).await;
    let mut fourth = TakerProcess::start(&url, &key, &token);
    assert_eq!(fourth.take(quick).await, "200 ok");

    // Listed in Settings; revoked there, the program is asked again.
    driver.click(r#"[data-testid="nav-settings"]"#).await;
    let row = format!(r#"[data-testid="approval-row"][data-exe="{python}"][data-account="fb"]"#);
    let listed = driver.find(&row).await;
    driver.scroll_to(&listed).await;
    assert!(
        driver
            .attr(r#"[data-testid="setting-ask-first"]"#, "checked")
            .await
            .is_some(),
        "the switch shows the config's ask_first"
    );
    driver.screenshot("ask-settings").await;
    driver
        .click(&format!(r#"{row} [data-testid="approval-revoke"]"#))
        .await;
    driver.click(r#"[data-testid="confirm"]"#).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !driver.find_all(&row).await.is_empty() {
        assert!(Instant::now() < deadline, "the revoked row stays");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut fifth = TakerProcess::start(&url, &key, &token);
    fifth.ask().await;
    prompt_about(&driver, fifth.pid()).await;
    // Nobody answers: refused after the timeout, and the prompt goes away.
    let unanswered = fifth.answer(held).await;
    assert!(
        unanswered.starts_with("403 not_approved") && unanswered.contains("did not answer"),
        "{unanswered}"
    );
    prompt_gone(&driver).await;

    // The switch off: written to the config, and programs are no longer asked.
    driver.click(r#"[data-testid="setting-ask-first"]"#).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&env.config_path)
        .unwrap()
        .contains("ask_first = false")
    {
        assert!(Instant::now() < deadline, "ask_first is not written off");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    assert!(
        config.contains("[refresh]") && config.contains("ask_timeout"),
        "the rest is kept:\n{config}"
    );
    let mut sixth = TakerProcess::start(&url, &key, &token);
    assert_eq!(sixth.take(quick).await, "200 ok");
    driver.quit().await;
}
