//! A remote MCP server added and connected from the window: the "Remote MCP server" preset asks
//! for the server's URL alone (labelled as such), Add writes `provider = "mcp"` to the config,
//! and the consent that follows (the fake browser approves at the MCP SDK server's own
//! authorization server) leaves the account fresh: one registration, one consent, and a bridge
//! that works with the grant the window made.

use std::time::Duration;

use tokenwarden_e2e::desktop::{self, Driver, Session};
use tokenwarden_e2e::mcp::McpServer;
use tokenwarden_e2e::{wait_until, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_mcp_server_is_added_from_its_url_and_connected_in_the_window() {
    let server = McpServer::start().await;
    let session = Session::start().await;
    let env = Env::new("");
    desktop::write_settings(&env, true, 60);
    let driver = Driver::launch(&env, &session, &[]).await;
    driver.click(r#"[data-testid="nav-add"]"#).await;
    driver
        .click(r#"[data-testid="preset"][data-preset="mcp"]"#)
        .await;
    let label = driver
        .text(r#"label[for="f-url"]"#)
        .await
        .unwrap_or_default();
    assert!(
        label.contains("MCP server URL"),
        "the URL is the server's: {label:?}"
    );
    assert!(
        driver
            .find_all(r#"[data-testid="field-client_id"]"#)
            .await
            .is_empty()
            && driver
                .find_all(r#"[data-testid="field-secret"]"#)
                .await
                .is_empty(),
        "nothing but the URL is asked for"
    );
    driver.fill(r#"[data-testid="field-name"]"#, "agent").await;
    driver
        .fill(r#"[data-testid="field-url"]"#, &server.url())
        .await;
    driver.screenshot("add-mcp").await;
    wait_until(Duration::from_secs(10), "Add is enabled", async || {
        driver.enabled(r#"[data-testid="add-submit"]"#).await
    })
    .await;
    driver.click(r#"[data-testid="add-submit"]"#).await;
    let read = || std::fs::read_to_string(&env.config_path).unwrap_or_default();
    wait_until(
        Duration::from_secs(15),
        "agent is in the config",
        async || read().contains("provider = \"mcp\""),
    )
    .await;
    assert!(
        read().contains(&format!("url = \"{}\"", server.url())),
        "{}",
        read()
    );
    wait_until(
        Duration::from_secs(30),
        "the consent the window began leaves agent fresh",
        async || env.status("agent").await == "fresh",
    )
    .await;
    let stats = server.stats().await;
    assert_eq!(stats["registrations"], 1, "{stats}");
    assert_eq!(stats["authorizations"], 1, "{stats}");
    let token = env.token("agent").await;
    driver.click(r#"[data-testid="nav-accounts"]"#).await;
    driver.screenshot("accounts-mcp").await;
    driver
        .assert_no_secret(&[&token], "after connecting an MCP server")
        .await;
    driver.quit().await;
}
