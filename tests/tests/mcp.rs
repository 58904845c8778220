//! `provider = "mcp"` and `tokenwarden mcp NAME`, against the official MCP Python SDK: its
//! Streamable HTTP server guarded by its own OAuth authorization server (tests/mcp/server.py),
//! and its stdio client (tests/mcp/client.py) running the bridge as a local server. The account
//! names the server's URL and nothing else: the authorization server is discovered from the
//! 401, Tokenwarden registers itself (RFC 7591), and consents with PKCE and the resource
//! indicator. An access token that dies mid-session costs one refresh and no failed call;
//! restarting Tokenwarden and the bridge needs no new consent; several bridges share one grant.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokenwarden_e2e::harness::{bin_path, files_containing};
use tokenwarden_e2e::mcp::McpServer;
use tokenwarden_e2e::python::{python, script};
use tokenwarden_e2e::Env;

/// What the SDK's stdio client saw, running `tokenwarden mcp agent`; and its stderr, which
/// is the bridge's.
async fn client(
    env: &Env,
    server: &McpServer,
    calls: u32,
    expire_before: &[u32],
) -> (Value, String) {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script("mcp/client.py")).args([
        "--calls",
        &calls.to_string(),
        "--stats-url",
        &server.stats_url(),
    ]);
    for k in expire_before {
        cmd.args(["--expire-before-call", &k.to_string()]);
    }
    cmd.arg("--").arg(bin_path()).args(["mcp", "agent"]);
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        cmd.envs(env.vars()).env_remove("RUST_LOG").output(),
    )
    .await
    .expect("the MCP client finishes within 90 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the client's report is not JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (report, stderr)
}

fn assert_all_ok(report: &Value, stderr: &str) {
    let echo = report["echo"].as_array().expect("echo results");
    assert!(!echo.is_empty());
    for (i, call) in echo.iter().enumerate() {
        assert_eq!(call["ok"], true, "call {i} failed: {report}\n{stderr}");
        assert_eq!(call["text"], format!("hello-{}", i + 1), "{report}");
    }
    let mut tools: Vec<&str> = report["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tools.sort_unstable();
    assert_eq!(tools, ["count", "echo"], "{report}");
    assert_eq!(report["count"]["result"], "counted 3", "{report}");
    assert_eq!(
        report["count"]["notifications"], 3,
        "the server's event stream reached the client: {report}"
    );
}

/// A report about a token obtained less than 5 s ago refreshes nothing (the engine's loop
/// guard, see rejected.rs): a token must be older than that before it is made to die.
async fn past_the_grace() {
    tokio::time::sleep(Duration::from_millis(5_500)).await;
}

fn account(server: &McpServer) -> String {
    format!(
        "[[account]]\nname = \"agent\"\nprovider = \"mcp\"\nurl = \"{}\"\n",
        server.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_the_url_alone_through_an_expiry_and_a_restart() {
    let server = McpServer::start().await;
    let env = Env::new(&account(&server));
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;

    let auth_url = env.connect("agent").await;
    let query: std::collections::HashMap<String, String> =
        auth_url.query_pairs().into_owned().collect();
    assert_eq!(
        query.get("resource"),
        Some(&server.url()),
        "RFC 8707: {auth_url}"
    );
    assert_eq!(
        query.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    let stats = server.stats().await;
    assert_eq!(stats["registrations"], 1, "{stats}");
    assert_eq!(stats["authorizations"], 1, "{stats}");
    assert_eq!(stats["code_exchanges"], 1, "{stats}");
    assert_eq!(
        stats["resources"],
        serde_json::json!([server.url()]),
        "{stats}"
    );
    let client_id = stats["clients"][0]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = env
        .keychain_get("client-secret:agent")
        .await
        .expect("the registration is kept in the store");
    assert!(
        kept.contains(&client_id),
        "the registration names its client"
    );

    // The access token dies before the second call: that call still succeeds, after one
    // refresh (which names the resource too).
    past_the_grace().await;
    let (report, stderr) = client(&env, &server, 3, &[2]).await;
    assert_all_ok(&report, &stderr);
    let stats = server.stats().await;
    assert_eq!(
        stats["refreshes"], 1,
        "one refresh across the expiry: {stats}"
    );
    assert_eq!(
        stats["rejected_with_token"], 1,
        "one refused request, retried: {stats}"
    );
    let refreshes: Vec<&Value> = stats["resource_requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["grant_type"] == "refresh_token")
        .collect();
    assert!(
        refreshes
            .iter()
            .all(|r| r["resource"] == server.url().as_str()),
        "{stats}"
    );

    // Tokenwarden and the bridge restart: no new consent, no new registration.
    serve.stop().await;
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;
    let (report, stderr) = client(&env, &server, 2, &[]).await;
    assert_all_ok(&report, &stderr);
    // And with no engine at all, the bridge does the work itself.
    serve.stop().await;
    past_the_grace().await;
    let (report, stderr) = client(&env, &server, 1, &[1]).await;
    assert_all_ok(&report, &stderr);
    let stats = server.stats().await;
    assert_eq!(stats["authorizations"], 1, "one consent in all: {stats}");
    assert_eq!(
        stats["registrations"], 1,
        "one registration in all: {stats}"
    );
    assert_eq!(stats["refreshes"], 2, "{stats}");

    // The bridge wrote no token anywhere: not to its stderr, the logs or the data dir.
    let token = env.stored_tokens("agent").await.expect("tokens stored")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!stderr.contains(&token));
    let leaks: Vec<PathBuf> = files_containing(env.root(), &token);
    assert!(leaks.is_empty(), "the token is in {leaks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_bridges_share_one_grant_and_one_refresh() {
    let server = McpServer::start().await;
    let env = Env::new(&account(&server));
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;
    env.connect("agent").await;
    // Each bridge holds the token before it dies.
    let (report, stderr) = client(&env, &server, 1, &[]).await;
    assert_all_ok(&report, &stderr);
    past_the_grace().await;
    server.expire().await;
    let runs: Vec<_> = (0..3).map(|_| client(&env, &server, 2, &[])).collect();
    for (report, stderr) in futures_util::future::join_all(runs).await {
        assert_all_ok(&report, &stderr);
    }
    let stats = server.stats().await;
    assert_eq!(stats["refreshes"], 1, "three bridges, one refresh: {stats}");
    assert_eq!(stats["refresh_failures"], 0, "{stats}");
    assert_eq!(stats["authorizations"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_says_what_is_missing_before_any_call() {
    let server = McpServer::start().await;
    let env = Env::new(&format!(
        "{}\n[[account]]\nname = \"plain\"\nprovider = \"oauth2\"\nclient_id = \"c\"\nauth_url = \"http://127.0.0.1:9/a\"\ntoken_url = \"http://127.0.0.1:9/t\"\n",
        account(&server)
    ));
    let out = env.run(&["mcp", "agent"], Some("")).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("tokenwarden connect agent"), "{out}");
    let out = env.run(&["mcp", "plain"], Some("")).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("provider = \"mcp\""), "{out}");
    assert_eq!(out.stdout, "", "nothing for the MCP client to misread");
}
