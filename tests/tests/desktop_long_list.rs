//! The Accounts view with many accounts (issue 24: 100,000 on one engine): the page holds only
//! the cards near what the window shows, scrolling draws the others, and a search box finds
//! accounts by name. The real app under WebDriver, 400 `http` accounts on the database store
//! against a fast fake. (`desktop_bench` measures the same at 10,000.)

use std::time::Duration;

use tokenwarden_e2e::desktop::{self, Driver, Session};
use tokenwarden_e2e::fakes::http::HttpTokenFake;
use tokenwarden_e2e::{wait_until, Env};

const ACCOUNTS: usize = 400;
const ROWS: &str = r#"[data-testid="account-row"]"#;
const SEARCH: &str = r#"[data-testid="search"]"#;
const COUNT: &str = r#"[data-testid="search-count"]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_list_draws_only_what_shows_and_search_finds_by_name() {
    let session = Session::start().await;
    // Under an hour, so the countdown shows seconds.
    let fake = HttpTokenFake::start(3000).await;
    let accounts: String = (0..ACCOUNTS)
        .map(|i| fake.account_toml(&format!("h{i:03}")))
        .collect();
    let env = Env::new(&format!("[store]\nkind = \"database\"\n\n{accounts}"));
    desktop::write_settings(&env, true, 60);
    let driver = Driver::launch(&env, &session, &[]).await;
    driver.find(r#"[data-account="h000"]"#).await;
    wait_until(
        Duration::from_secs(60),
        "every account fetched",
        async || fake.lock().total_issued() == ACCOUNTS,
    )
    .await;

    // A window's worth of cards, from the top, not 400.
    let first = driver.account_rows().await;
    assert!(
        (2..40).contains(&first.len()),
        "{} cards in the page",
        first.len()
    );
    assert_eq!(first[0], "h000");
    // The page is as tall as every card: the scroll bar tells the truth.
    let tall = driver
        .execute("return document.getElementById('main').scrollHeight")
        .await
        .as_f64()
        .expect("a height");
    assert!(tall > ACCOUNTS as f64 * 150.0, "{tall} px for {ACCOUNTS}");

    // Scrolled to the end: the last cards are drawn, the first are gone, still few.
    driver
        .execute("document.getElementById('main').scrollTop = 1e9; return true")
        .await;
    wait_until(Duration::from_secs(10), "the last card drawn", async || {
        driver.account_rows().await.last().map(String::as_str) == Some("h399")
    })
    .await;
    // Each engine event re-read the account it named: the last one too, fresh.
    wait_until(Duration::from_secs(10), "the last card fresh", async || {
        driver
            .attr(r#"[data-account="h399"]"#, "data-status")
            .await
            .as_deref()
            == Some("fresh")
    })
    .await;
    assert_eq!(
        driver
            .text("#health-summary .summary-text")
            .await
            .as_deref(),
        Some("400 accounts, all well")
    );
    let end = driver.account_rows().await;
    assert!(!end.contains(&"h000".to_owned()), "{end:?}");
    assert!(end.len() < 40, "{} cards in the page", end.len());
    // The live parts tick on drawn cards too.
    let countdown = r#"[data-account="h399"] [data-testid="countdown"]"#;
    let before = driver.text(countdown).await;
    wait_until(Duration::from_secs(5), "the countdown ticks", async || {
        driver.text(countdown).await != before
    })
    .await;

    // Search by name: every match, in config order, and how many of how many.
    driver.fill(SEARCH, "h12").await;
    wait_until(Duration::from_secs(10), "the search counted", async || {
        driver.text(COUNT).await.as_deref() == Some("10 of 400 accounts")
    })
    .await;
    let found = driver.account_rows().await;
    let want: Vec<String> = (120..130).map(|i| format!("h{i}")).collect();
    assert_eq!(found, want);
    driver.screenshot("long-list-search").await;

    driver.fill(SEARCH, "zz").await;
    wait_until(Duration::from_secs(10), "nothing matches", async || {
        driver.text(COUNT).await.as_deref() == Some("No account name contains “zz”.")
    })
    .await;
    assert!(driver.find_all(ROWS).await.is_empty());

    // Escape clears the search: the whole list is back, drawn a window at a time.
    driver
        .find(SEARCH)
        .await
        .send_keys("\u{e00c}")
        .await
        .expect("Escape");
    wait_until(Duration::from_secs(10), "the list back", async || {
        let now = driver.account_rows().await;
        !now.is_empty() && now.len() < 40
    })
    .await;
    assert_eq!(driver.text(COUNT).await.as_deref(), Some(""));

    // The tray lists the first 25 and says how many more the window has; that entry opens it.
    let pid = desktop::engine_pid(&env).expect("the app holds the engine lock");
    let tray = session.tray_item(pid).await;
    let menu = tray
        .wait_menu("25 accounts, then how many more", |m| {
            m.iter()
                .any(|e| e.label == "…and 375 more: Open Tokenwarden")
        })
        .await;
    let copies: Vec<&str> = menu
        .iter()
        .filter(|e| e.label.starts_with("Copy "))
        .map(|e| e.label.as_str())
        .collect();
    assert_eq!(copies.len(), 25, "{menu:#?}");
    assert!(
        copies[0].starts_with("Copy h000 token — fresh"),
        "{menu:#?}"
    );
    assert!(
        copies[24].starts_with("Copy h024 token — fresh"),
        "{menu:#?}"
    );
    let more = menu
        .iter()
        .position(|e| e.label.starts_with("…and"))
        .unwrap();
    assert!(
        menu[more - 1].label.starts_with("Copy h024"),
        "right after the last listed account: {menu:#?}"
    );
    assert!(menu[more].enabled, "{menu:#?}");
    let tokens: Vec<String> = fake.lock().latest.values().cloned().collect();
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    driver.assert_no_secret(&tokens, "with 400 accounts").await;
    driver.quit().await;
}
