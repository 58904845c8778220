//! Who took each token: every program that takes one (curl over TCP with a key, a Python
//! script on TokenBoy's route, the CLI on the engine's socket, the CLI alone) is noted with
//! its executable, script or subcommand, uid, pid, key label and how often, as the kernel
//! tells it; `who` prints it, `/v1/accounts/{name}/callers` serves it to a key that may see
//! the account, and the history database holds no token.

use std::path::Path;

use serde_json::Value;
use tokenwarden_e2e::harness::{bin_path, files_containing, LegacyAccount};
use tokenwarden_e2e::proc::current_uid;

fn canonical(path: &str) -> String {
    std::fs::canonicalize(path).unwrap().display().to_string()
}

/// The ledger's row for this program (by executable), if any.
fn row<'a>(rows: &'a [Value], exe: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["exe"] == exe)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_program_that_takes_a_token_is_noted_with_how_and_how_often() {
    let (_fake, env, token) = LegacyAccount::new(|c| c.expires_in(3600))
        .another_account("other")
        .connected(3600)
        .await;
    let (serve, _api, key) = env.serve_with_new_key("scripts").await;
    let url = format!("http://127.0.0.1:{}/v1/accounts/fb/token", env.api_port);
    for _ in 0..2 {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "-H", &format!("Authorization: Bearer {key}"), &url])
            .output()
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains(&token));
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("sync.py");
    std::fs::write(
        &script,
        "import os, urllib.request\nr = urllib.request.Request(os.environ['URL'], headers={'Authorization': 'Bearer ' + os.environ['KEY']})\nprint(urllib.request.urlopen(r).status)\n",
    )
    .unwrap();
    let out = tokio::process::Command::new("/usr/bin/python3")
        .arg(&script)
        .env(
            "URL",
            format!("http://127.0.0.1:{}/token?name=fb", env.api_port),
        )
        .env("KEY", &key)
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200");
    env.run(&["token", "fb"], None).await.ok();

    let who = env.run(&["who", "fb", "--json"], None).await.ok();
    let rows: Vec<Value> = serde_json::from_str(&who.stdout).unwrap();
    let me = current_uid().unwrap();
    let curl = row(&rows, &canonical("/usr/bin/curl")).unwrap_or_else(|| panic!("curl: {rows:#?}"));
    assert_eq!(curl["count"], 2, "{curl}");
    assert_eq!(curl["key"], "scripts");
    assert_eq!(curl["via"], "api");
    assert_eq!(curl["uid"], me);
    assert_eq!(curl["command"], "curl");
    assert!(curl["pid"].as_u64().is_some());
    let python =
        row(&rows, &canonical("/usr/bin/python3")).unwrap_or_else(|| panic!("python: {rows:#?}"));
    assert_eq!(
        python["detail"],
        script.display().to_string(),
        "the script it ran"
    );
    assert_eq!(python["via"], "tokenboy");
    let cli = row(&rows, &canonical(bin_path().to_str().unwrap()))
        .unwrap_or_else(|| panic!("the CLI: {rows:#?}"));
    assert_eq!(cli["detail"], "token", "the subcommand");
    assert_eq!(cli["key"], Value::Null, "the socket needs no key");
    assert_eq!(cli["via"], "api");
    let text = env.run(&["who"], None).await.ok().stdout;
    assert!(
        text.contains("/usr/bin/curl") && text.contains("scripts"),
        "{text}"
    );

    // Served to a key that may see the account, as to nobody else.
    let callers = "/v1/accounts/fb/callers";
    let api = tokenwarden_e2e::Api::new(env.api_port, Some(&key));
    let served = api.get(callers).await.expect(200);
    assert_eq!(served.as_array().unwrap().len(), rows.len());
    let limited = env
        .run(
            &["api-key", "create", "other-only", "--accounts", "other"],
            None,
        )
        .await
        .ok()
        .stdout;
    let other = tokenwarden_e2e::Api::new(env.api_port, Some(limited.trim()));
    other.get(callers).await.expect(404);

    // With no engine, the CLI that took the token itself is noted too.
    serve.stop().await;
    env.run(&["token", "fb"], None).await.ok();
    let rows: Vec<Value> =
        serde_json::from_str(&env.run(&["who", "fb", "--json"], None).await.ok().stdout).unwrap();
    assert!(
        rows.iter()
            .any(|r| r["via"] == "cli" && r["detail"] == "token"),
        "{rows:#?}"
    );
    let leaks = files_containing(Path::new(&env.data_dir), &token);
    assert!(leaks.is_empty(), "the token is in {leaks:?}");
}
