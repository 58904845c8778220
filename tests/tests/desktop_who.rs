//! The window's "Used by": a program that took an account's token over the app's API shows on
//! the account's card by name, with how often, and no token is in the page.

use std::time::Duration;

use tokenwarden_e2e::desktop::{self, Driver, Session};
use tokenwarden_e2e::harness::LegacyAccount;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_card_shows_which_programs_took_its_token() {
    let session = Session::start().await;
    let (_fake, env, token) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let key = env.create_api_key("scripts").await;
    desktop::write_settings(&env, true, 60);
    let driver = Driver::launch(&env, &session, &[]).await;
    let card = r#"[data-testid="account-row"][data-account="fb"]"#;
    driver.find(card).await;
    assert!(
        driver
            .find_all(&format!("{card} [data-testid=\"used-by\"]"))
            .await
            .is_empty(),
        "nothing took it yet"
    );
    let url = format!("http://127.0.0.1:{}/v1/accounts/fb/token", env.api_port);
    for _ in 0..3 {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "-H", &format!("Authorization: Bearer {key}"), &url])
            .output()
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains(&token));
    }
    let taker = format!("{card} [data-testid=\"taker\"][data-exe=\"/usr/bin/curl\"]");
    // The view reads the ledger again when it redraws: a refresh redraws the card.
    driver
        .click(&format!("{card} [data-testid=\"refresh\"]"))
        .await;
    let shown = async || {
        driver
            .text(&taker)
            .await
            .is_some_and(|t| t.contains("curl") && t.contains("3×"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !shown().await {
        if std::time::Instant::now() > deadline {
            driver.screenshot("used-by-missing").await;
            panic!("curl is not on fb's card: {:?}", driver.text(card).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    driver.screenshot("used-by").await;
    driver
        .assert_no_secret(&[&token, &key], "with Used by shown")
        .await;
    driver.quit().await;
}
