//! Ask first on a headless `serve`: with `[api] ask_first = true` only the programs the
//! config's `[api.allow]` names (by executable, per account) get tokens; any other gets 403
//! `not_approved` at once, with what to add to the config, and is not noted as a taker. The
//! CLI asks on behalf of the program that ran it: allowing `tokenwarden` would allow all.

use std::time::Duration;

use serde_json::Value;
use tokenwarden_e2e::ask::{python_exe, TakerProcess};
use tokenwarden_e2e::harness::LegacyAccount;

fn canonical(path: &str) -> String {
    std::fs::canonicalize(path).unwrap().display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_gives_tokens_to_the_allowed_programs_only() {
    let (_fake, env, token) = LegacyAccount::new(|c| c.expires_in(3600))
        .another_account("other")
        .connected(3600)
        .await;
    let (curl, sh) = (canonical("/usr/bin/curl"), canonical("/bin/sh"));
    let config = std::fs::read_to_string(&env.config_path)
        .unwrap()
        .replacen("\n[refresh]\n", &format!("ask_first = true\n\n[api.allow]\n\"{curl}\" = [\"fb\"]\n\"{sh}\" = [\"*\"]\n\n[refresh]\n"), 1);
    env.write_config(&config);
    let (serve, _api, key) = env.serve_with_new_key("scripts").await;
    let url = |account: &str| {
        format!(
            "http://127.0.0.1:{}/v1/accounts/{account}/token",
            env.api_port
        )
    };
    let curl_get = async |account: &str| {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "-H", &format!("Authorization: Bearer {key}")])
            .arg(url(account))
            .output()
            .await
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    // Allowed: twice, the second on the API's fast path.
    for _ in 0..2 {
        assert_eq!(curl_get("fb").await["access_token"], token.as_str());
    }
    // Allowed for fb only.
    let refused = curl_get("other").await;
    assert_eq!(refused["error"], "not_approved", "{refused}");

    // Not named: refused at once, with what to write and where.
    let mut python = TakerProcess::start(&url("fb"), &key, &token);
    let answer = python.take(Duration::from_secs(10)).await;
    assert!(answer.starts_with("403 not_approved"), "{answer}");
    let exe = python_exe();
    assert!(
        answer.contains(&format!("\"{exe}\" = [\"fb\"]")) && answer.contains("[api.allow]"),
        "says what to add: {answer}"
    );

    // The CLI run by this test (not allowed) is refused; run by sh (allowed), it is served.
    let alone = env.run(&["token", "fb"], None).await;
    assert_eq!(alone.code, 1, "{alone}");
    assert!(
        alone.stderr.contains("not_approved") || alone.stderr.contains("may not take"),
        "{alone}"
    );
    let cli = env.command(&["token", "fb"]);
    let by_sh = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        // Not the last command alone: sh would exec it and be its parent no more.
        .arg("\"$0\" \"$@\"; exit $?")
        .arg(cli.get_program())
        .args(cli.get_args())
        .envs(cli.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .output()
        .await
        .unwrap();
    assert!(by_sh.status.success(), "{by_sh:?}");
    assert!(String::from_utf8_lossy(&by_sh.stdout).contains(&token));

    // Refused programs took nothing: the ledger has curl and sh's CLI, not python.
    let who = env.run(&["who", "--json"], None).await.ok();
    let rows: Vec<Value> = serde_json::from_str(&who.stdout).unwrap();
    assert!(rows.iter().all(|r| r["exe"] != exe.as_str()), "{rows:#?}");
    let curl_row = rows
        .iter()
        .find(|r| r["exe"] == curl.as_str())
        .expect("curl");
    assert_eq!(
        (curl_row["account"].as_str(), curl_row["count"].as_u64()),
        (Some("fb"), Some(2))
    );
    serve.stop().await;
}
