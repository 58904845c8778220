//! `tokenwarden exec NAME… [--env VAR=NAME] -- command…`: the command gets each token in its
//! environment (never on its command line), valid for at least `--min-valid`, and the CLI ends
//! with the command's exit code, with and without a running engine. Tokenwarden's own
//! secrets (`TOKENWARDEN_STORE_KEY`, `TOKENWARDEN_REDIS_PASSWORD`) never reach the command.

use tokenwarden_e2e::harness::LegacyAccount;

/// Prints both variables and the command line `ps` would show, then exits 7.
const SCRIPT: &str =
    r#"printf '%s|%s|' "$FB_TOKEN" "$MINE"; tr '\0' ' ' < /proc/$$/cmdline; exit 7"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_gets_fresh_tokens_in_its_environment_and_its_exit_code_is_ours() {
    // 30 s left: less than the default --min-valid of 60 s, so exec refreshes first.
    let (fake, env, old) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(30)
        .await;
    let out = env
        .run(
            &["exec", "fb", "--env", "MINE=fb", "--", "sh", "-c", SCRIPT],
            None,
        )
        .await;
    assert_eq!(out.code, 7, "the command's exit code: {out}");
    let fresh = fake.lock().current_access_token().unwrap();
    assert_ne!(fresh, old, "refreshed first: 30 s left < --min-valid 60 s");
    assert_eq!(fake.lock().refresh_grants, 1);
    let parts: Vec<&str> = out.stdout.splitn(3, '|').collect();
    assert_eq!(parts[..2], [fresh.as_str(), fresh.as_str()], "{out}");
    assert!(
        !parts[2].contains(&fresh),
        "the token is on a command line: {}",
        parts[2]
    );
    assert!(!out.stderr.contains(&fresh), "{out}");

    // Beside serve: serve hands out the token; nothing more is refreshed.
    let (serve, _api, _) = env.serve_with_new_key("exec").await;
    let out = env
        .run(
            &["exec", "fb", "--", "sh", "-c", "printf %s \"$FB_TOKEN\""],
            None,
        )
        .await
        .ok();
    assert_eq!(out.stdout, fresh);
    assert_eq!(fake.lock().refresh_grants, 1);
    // The ledger names the command exec ran, not only `exec` (its arguments stay out).
    let who = env.run(&["who", "fb", "--json"], None).await.ok();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&who.stdout).unwrap();
    assert!(rows.iter().any(|r| r["detail"] == "exec sh"), "{rows:#?}");
    assert!(!who.stdout.contains("printf"), "{}", who.stdout);
    serve.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_runs_without_every_token_and_a_missing_command_is_127() {
    let (_fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .another_account("nc")
        .connected(3600)
        .await;
    let marker = env.root().join("ran");
    let touch = format!("touch {}", marker.display());
    // `nc` was never connected: exec fails and the command does not run.
    let out = env
        .run(&["exec", "fb", "nc", "--", "sh", "-c", &touch], None)
        .await;
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("nc"), "names the account: {out}");
    assert!(!marker.exists(), "the command ran without its tokens");
    let out = env
        .run(&["exec", "fb", "--env", "FB_TOKEN=fb", "--", "true"], None)
        .await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("FB_TOKEN"), "{out}");
    let out = env
        .run(&["exec", "fb", "--", "no-such-command-anywhere"], None)
        .await;
    assert_eq!(out.code, 127, "{out}");
    assert!(out.stderr.contains("no-such-command-anywhere"), "{out}");
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_gets_its_token_and_none_of_tokenwardens_own_secrets() {
    let (_fake, mut env, token) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    env.extra_vars
        .push(("TOKENWARDEN_STORE_KEY", "tw-canary-store-key".into()));
    env.extra_vars
        .push(("TOKENWARDEN_REDIS_PASSWORD", "tw-canary-redis-pass".into()));
    let out = env.run(&["exec", "fb", "--", "env"], None).await.ok();
    assert!(
        out.stdout.lines().any(|l| l == format!("FB_TOKEN={token}")),
        "{out}"
    );
    assert!(!out.stdout.contains("tw-canary"), "{out}");
    for gone in ["TOKENWARDEN_STORE_KEY=", "TOKENWARDEN_REDIS_PASSWORD="] {
        assert!(!out.stdout.contains(gone), "{gone}: {out}");
    }
    // What only says where things are stays, so a command may run tokenwarden itself.
    let config = format!("TOKENWARDEN_CONFIG={}", env.config_path.display());
    assert!(out.stdout.lines().any(|l| l == config), "{out}");
}
