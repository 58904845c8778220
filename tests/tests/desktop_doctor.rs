//! `doctor` on the account's card: Check shows what `tokenwarden doctor` finds, with the same
//! words — here a token the API refuses, named with the scopes asked — and no token.

use std::time::{Duration, Instant};

use tokenwarden_e2e::desktop::{self, Driver, Session};
use tokenwarden_e2e::harness::LegacyAccount;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_on_a_card_shows_the_doctors_findings() {
    let session = Session::start().await;
    let (fake, env, token) = LegacyAccount::new(|c| c.expires_in(3600))
        .extra("scopes = [\"activity\"]")
        .connected(3600)
        .await;
    let mut config = std::fs::read_to_string(&env.config_path).unwrap();
    config.push_str(&format!("api_base = \"{}\"\n", fake.url("/")));
    env.write_config(&config);
    desktop::write_settings(&env, true, 60);
    let driver = Driver::launch(&env, &session, &[]).await;
    let card = r#"[data-testid="account-row"][data-account="fb"]"#;
    driver.find(card).await;
    fake.kill_access_token();
    driver
        .click(&format!(r#"{card} [data-testid="check"]"#))
        .await;
    let token_finding = format!(r#"{card} [data-testid="finding"][data-check="fb: token"]"#);
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        if let Some(text) = driver.text(&token_finding).await {
            break text;
        }
        if Instant::now() > deadline {
            driver.screenshot("findings-missing").await;
            panic!(
                "no token finding on the card: {:?}",
                driver.text(card).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        driver.attr(&token_finding, "data-level").await.as_deref(),
        Some("fail")
    );
    assert!(
        text.contains("answered 401") && text.contains("scopes asked: activity"),
        "{text}"
    );
    assert!(
        text.contains("tokenwarden connect fb"),
        "with the remedy: {text}"
    );
    let status = format!(r#"{card} [data-testid="finding"][data-check="fb: status"]"#);
    assert_eq!(
        driver.attr(&status, "data-level").await.as_deref(),
        Some("ok")
    );
    let shown = driver.find(&token_finding).await;
    driver.scroll_to(&shown).await;
    driver.screenshot("doctor-card").await;
    driver
        .assert_no_secret(&[&token], "with the findings shown")
        .await;
    driver.quit().await;
}
