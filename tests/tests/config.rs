//! Bad configuration is refused with one line that says where and what (path, line:column, the
//! account, the key), and the file is never rewritten by a command that refuses it. A missing
//! config file is created with commented examples only.

use tokenwarden_e2e::Env;

const HEADER: &str = "[api]\nlisten = \"127.0.0.1:PORT\"\n\n[refresh]\nretry_initial = \"1s\"\n\n";

/// Lines 1-6 are [`HEADER`]; `accounts` starts on line 7.
fn env_with(accounts: &str) -> Env {
    let env = Env::without_config();
    let header = HEADER.replace("PORT", &env.api_port.to_string());
    env.write_config(&(header + accounts));
    env
}

/// True when `text` has `{line}:{column}` for this line (not part of a longer number).
fn has_line_col(text: &str, line: usize) -> bool {
    let needle = format!("{line}:");
    text.match_indices(&needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// Runs `list` on a bad config; returns its one stderr line after the common checks.
async fn refused(env: &Env) -> String {
    let before = std::fs::read(&env.config_path).expect("config");
    let out = env.run(&["list"], None).await;
    let line = out.failure_line();
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one stderr line:\n{out}");
    assert!(out.stdout.trim().is_empty(), "nothing on stdout:\n{out}");
    let path = env.config_path.display().to_string();
    assert!(line.contains(&path), "names the file {path}: {line}");
    let after = std::fs::read(&env.config_path).expect("config");
    assert!(before == after, "the config file was rewritten");
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_syntax_error_names_file_and_line() {
    let env = env_with(
        "[[account]]\nname = \"fb\"\nprovider = \"fitbit-legacy\"\nclient_id = \"22942C\n\
         scopes = [\"activity\"]\n",
    );
    let line = refused(&env).await;
    assert!(
        has_line_col(&line, 10),
        "line 10 holds the unterminated string: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_names_account_key_and_line() {
    let env = env_with(
        "[[account]]\nname = \"fb\"\nprovider = \"fitbit-legacy\"\nclient_id = \"22942C\"\n\
         client_idd = \"22942C\"\n",
    );
    let line = refused(&env).await;
    assert!(line.contains("client_idd"), "names the key: {line}");
    assert!(line.contains("fb"), "names the account: {line}");
    assert!(has_line_col(&line, 11), "line 11 holds the key: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_provider_names_account_provider_and_line() {
    let env =
        env_with("[[account]]\nname = \"myfit\"\nprovider = \"fitbt\"\nclient_id = \"22942C\"\n");
    let line = refused(&env).await;
    assert!(line.contains("fitbt"), "names the provider: {line}");
    assert!(line.contains("myfit"), "names the account: {line}");
    assert!(has_line_col(&line, 9), "line 9 holds the provider: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_account_name_is_refused() {
    let env = env_with(
        "[[account]]\nname = \"twin\"\nprovider = \"wechat\"\nclient_id = \"wx1\"\n\n\
         [[account]]\nname = \"twin\"\nprovider = \"wechat\"\nclient_id = \"wx2\"\n",
    );
    let line = refused(&env).await;
    assert!(line.contains("twin"), "names the account: {line}");
    assert!(
        line.to_lowercase().contains("duplicate")
            || line.contains("twice")
            || line.contains("already"),
        "says what is wrong: {line}"
    );
    // Lines 12-13 are the second table and its name; pointing at the first (8) is fine too.
    assert!(
        [8, 12, 13].iter().any(|&n| has_line_col(&line, n)),
        "points at a `twin` line: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_cycle_is_refused() {
    let env = env_with(
        "[[account]]\nname = \"alpha\"\nprovider = \"wechat-jsapi-ticket\"\ndepends_on = \"beta\"\n\n\
         [[account]]\nname = \"beta\"\nprovider = \"wechat-jsapi-ticket\"\ndepends_on = \"alpha\"\n",
    );
    let line = refused(&env).await;
    assert!(
        line.contains("alpha") || line.contains("beta"),
        "names the accounts: {line}"
    );
    let lower = line.to_lowercase();
    assert!(
        lower.contains("cycle") || lower.contains("circular"),
        "says it is a cycle: {line}"
    );
    assert!(
        [8, 10, 13, 15].iter().any(|&n| has_line_col(&line, n)),
        "points at the cycle: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_config_is_created_with_commented_examples_only() {
    let env = Env::without_config();
    assert!(!env.config_path.exists());
    let out = env.run(&["list", "--json"], None).await.ok();
    let listed: serde_json::Value = serde_json::from_str(&out.stdout).expect("list --json is JSON");
    assert_eq!(listed, serde_json::json!([]), "{out}");

    let created = std::fs::read_to_string(&env.config_path).expect("the config file was created");
    assert!(
        created.contains("[[account]]"),
        "it carries examples:\n{created}"
    );
    for line in created.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with('#'),
            "only comments, got {line:?} in:\n{created}"
        );
    }

    // Running again neither rewrites it nor finds accounts in the examples.
    let out = env.run(&["list", "--json"], None).await.ok();
    assert_eq!(out.stdout.trim(), "[]", "{out}");
    assert_eq!(std::fs::read_to_string(&env.config_path).unwrap(), created);
}

/// The API's limits are bounded: no cap of 0 (nothing could be served) or of millions (no
/// cap), no idle timeout of a day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_limits_out_of_range_are_refused_with_their_key_and_line() {
    for (line, key) in [
        ("max_connections = 0", "max_connections"),
        ("max_connections = -5", "max_connections"),
        ("max_connections = 99999999999", "max_connections"),
        ("idle_timeout = \"2d\"", "idle_timeout"),
        ("idle_timeout = \"soon\"", "idle_timeout"),
    ] {
        let env = Env::without_config();
        env.write_config(&format!(
            "[api]\nlisten = \"127.0.0.1:{}\"\n{line}\n",
            env.api_port
        ));
        let refused = refused(&env).await;
        assert!(refused.contains(key), "`{line}` names {key}: {refused}");
        assert!(
            has_line_col(&refused, 3),
            "`{line}` is on line 3: {refused}"
        );
    }
}

/// Plain http:// to another machine would carry the client secret and tokens unencrypted:
/// refused with the key and line, unless the account says `allow_insecure_http = true`.
/// Loopback (every fake provider in these tests) is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_endpoints_off_this_machine_are_refused_unless_allowed() {
    for (key, value) in [
        ("token_url", "http://auth.example.com/oauth2/token"),
        ("revoke_url", "http://10.0.0.7/revoke"),
    ] {
        let env = env_with(&format!(
            "[[account]]\nname = \"fb\"\nprovider = \"fitbit-legacy\"\nclient_id = \"22942C\"\n{key} = \"{value}\"\n"
        ));
        let line = refused(&env).await;
        assert!(line.contains(key), "names {key}: {line}");
        assert!(line.contains("allow_insecure_http"), "says how: {line}");
        assert!(has_line_col(&line, 11), "line 11: {line}");
        // Allowed on purpose: accepted.
        let allowed = env_with(&format!(
            "[[account]]\nname = \"fb\"\nprovider = \"fitbit-legacy\"\nclient_id = \"22942C\"\n{key} = \"{value}\"\nallow_insecure_http = true\nredirect_uri = \"http://127.0.0.1:8733/callback\"\n"
        ));
        allowed.run(&["list"], None).await.ok();
    }
    let env = env_with(
        "[[account]]\nname = \"svc\"\nprovider = \"http\"\nurl = \"http://tokens.example.com/issue\"\n",
    );
    let line = refused(&env).await;
    assert!(line.contains("url") && line.contains("svc"), "{line}");
    let local = env_with(
        "[[account]]\nname = \"svc\"\nprovider = \"http\"\nurl = \"http://localhost:9/issue\"\n",
    );
    local.run(&["list"], None).await.ok();
}
