//! `[store] kind = "database"` end to end: token sets and client secrets sealed in the data
//! dir under a key in the real keychain, `store migrate` both ways losing nothing (the
//! provider is not asked again), and a wrong key that is refused without changing a byte.
//! And the advice to use it: `serve` with hundreds of accounts on the keychain store says so
//! once at start, naming `[store] kind = "database"` and `store migrate`.
//! `store init --print` makes a fleet's key anywhere: with no config file, or one without a
//! `[store]` table, it prints a new key and stores nothing.

use std::time::Duration;

use tokenwarden_e2e::fakes::wechat::{WeChatConfig, WeChatFake};
use tokenwarden_e2e::harness::files_containing;
use tokenwarden_e2e::{wait_until, Env};

/// Every row of the sealed store, as stored (entry, nonce, sealed bytes).
fn sealed_rows(env: &Env) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let db = rusqlite::Connection::open_with_flags(
        env.data_dir.join("secrets.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open secrets.sqlite3");
    let mut stmt = db
        .prepare("SELECT entry, nonce, sealed FROM sealed ORDER BY entry")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_move_to_the_sealed_database_and_back_and_nothing_is_fetched_again() {
    let fake = WeChatFake::start(WeChatConfig::default()).await;
    let env = Env::new(&format!("# my accounts\n{}", fake.account_toml("wx", "")));
    let appsecret = fake.lock().config.secret.clone();
    env.set_secret("wx", &appsecret).await;
    let token = env.token("wx").await;
    assert_eq!(fake.lock().tokens_issued(), 1);
    assert!(env.keychain_get("tokens:wx").await.is_some());

    // To the database: the keychain keeps only the store key, the config says so (comment
    // kept), and the file holds no secret in the clear.
    let out = env
        .run(&["store", "migrate", "--to", "database"], None)
        .await
        .ok();
    assert!(
        out.stderr.contains("moved 2 secrets of 1 accounts"),
        "{out}"
    );
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    assert!(config.contains("# my accounts"), "{config}");
    assert!(config.contains("[store]\nkind = \"database\""), "{config}");
    let items = env.keychain_all().await;
    let mut kept: Vec<&String> = items.keys().collect();
    kept.sort();
    assert_eq!(
        kept,
        ["journal:key", "store:key"],
        "only the store key stays in the keychain, and the token journal's (made by the first refresh on the keychain store)"
    );
    let rows = sealed_rows(&env);
    let entries: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(entries, ["client-secret:wx", "store:check", "tokens:wx"]);
    assert!(files_containing(&env.data_dir, &token).is_empty());
    assert!(files_containing(&env.data_dir, &appsecret).is_empty());

    // The same token is served from the database by the CLI and by `serve`, with no fetch.
    assert_eq!(env.token("wx").await, token);
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;
    wait_until(
        Duration::from_secs(10),
        "wx read from the database",
        async || env.status("wx").await == "fresh",
    )
    .await;
    assert_eq!(env.token("wx").await, token);
    assert_eq!(serve.stop().await.code, 0);
    assert_eq!(fake.lock().tokens_issued(), 1, "nothing was fetched again");

    // A new secret set now goes to the database, not to the keychain.
    env.set_secret("wx", &appsecret).await;
    assert!(env.keychain_get("client-secret:wx").await.is_none());

    // And back: the keychain holds the very same set again, the rows are gone.
    let out = env
        .run(&["store", "migrate", "--to", "keychain"], None)
        .await
        .ok();
    assert!(out.stderr.contains("moved 2 secrets"), "{out}");
    let stored = env
        .stored_tokens("wx")
        .await
        .expect("tokens:wx back in the keychain");
    assert_eq!(stored["access_token"], token.as_str());
    assert_eq!(
        env.keychain_get("client-secret:wx").await.as_deref(),
        Some(appsecret.as_str())
    );
    let entries: Vec<String> = sealed_rows(&env).into_iter().map(|r| r.0).collect();
    assert_eq!(entries, ["store:check"]);
    assert_eq!(env.token("wx").await, token);
    assert_eq!(fake.lock().tokens_issued(), 1, "nothing was fetched again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_store_key_is_refused_and_nothing_changes() {
    let fake = WeChatFake::start(WeChatConfig::default()).await;
    let env = Env::new(&format!(
        "[store]\nkind = \"database\"\n\n{}",
        fake.account_toml("wx", "")
    ));
    let secret = fake.lock().config.secret.clone();
    env.set_secret("wx", &secret).await;
    let token = env.token("wx").await;
    let before = sealed_rows(&env);
    assert_eq!(before.len(), 3, "check row, client secret, token set");

    // Another key in the keychain (as after restoring the wrong backup).
    env.keychain_set("store:key", "B3r8GxVq0m7pY8l1o2m3n4b5v6c7x8z9a0s1d2f3g4h=")
        .await;
    let out = env.run(&["token", "wx"], None).await;
    let line = out.failure_line();
    assert!(
        line.contains("store:key") && line.contains("does not open"),
        "{out}"
    );
    let out = env.run(&["secret", "set", "wx"], Some("other")).await;
    assert!(out.failure_line().contains("does not open"), "{out}");
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;
    wait_until(
        Duration::from_secs(10),
        "wx to say why it cannot be read",
        async || {
            env.account("wx").await["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("does not open"))
        },
    )
    .await;
    assert_eq!(serve.stop().await.code, 0);
    assert_eq!(
        sealed_rows(&env),
        before,
        "not one byte of the store changed"
    );
    assert_eq!(fake.lock().tokens_issued(), 1);
    assert!(!out_contains_token(&env, &token));
}

/// Whether anything any command printed holds the token.
fn out_contains_token(env: &Env, token: &str) -> bool {
    env.transcript
        .lock()
        .unwrap()
        .iter()
        .filter(|o| !(o.args.first().is_some_and(|a| a == "token") && o.code == 0))
        .any(|o| o.stdout.contains(token) || o.stderr.contains(token))
}

/// Accounts that wait for a client secret: configured, never fetched, nothing written.
fn waiting_accounts(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!("[[account]]\nname = \"m{i:04}\"\nprovider = \"http\"\nurl = \"http://127.0.0.1:9/token\"\nquery = {{ key = \"{{{{secret}}}}\" }}\n\n")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_accounts_on_the_keychain_store_are_told_once_to_use_the_database() {
    let advice = "accounts on the keychain store";
    let env = Env::new(&waiting_accounts(301));
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    wait_until(Duration::from_secs(5), "the advice", async || {
        serve.stderr().contains(advice)
    })
    .await;
    let log = serve.stderr();
    assert_eq!(log.matches(advice).count(), 1, "once:\n{log}");
    let line = log.lines().find(|l| l.contains(advice)).unwrap();
    assert!(
        line.contains("WARN")
            && line.contains("301 accounts")
            && line.contains(r#"[store] kind = "database""#)
            && line.contains("tokenwarden store migrate --to database"),
        "{line}"
    );
    assert_eq!(serve.stop().await.code, 0);

    // On the database store, or with fewer accounts, nothing to say.
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    env.write_config(&format!("{config}\n[store]\nkind = \"database\"\n"));
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    let small = Env::new(&waiting_accounts(300));
    let mut other = small.spawn_serve();
    other.wait_api().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!serve.stderr().contains(advice), "{}", serve.stderr());
    assert!(!other.stderr().contains(advice), "{}", other.stderr());
    assert_eq!(serve.stop().await.code, 0);
    assert_eq!(other.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_init_print_makes_a_key_without_a_config_or_a_store_table() {
    use base64::Engine as _;
    let env = Env::without_config();
    let mut keys = Vec::new();
    for config in [None, Some("[api]\nlisten = \"127.0.0.1:1\"\n")] {
        if let Some(text) = config {
            env.write_config(text);
        }
        let out = env.run(&["store", "init", "--print"], None).await.ok();
        let key = out.stdout.trim().to_owned();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&key)
            .unwrap_or_else(|e| panic!("not base64 ({e}): {out}"));
        assert_eq!(bytes.len(), 32, "{out}");
        assert_eq!(out.stdout, format!("{key}\n"), "the key alone: {out}");
        assert!(out.stderr.contains("TOKENWARDEN_STORE_KEY"), "{out}");
        keys.push(key);
    }
    assert_ne!(keys[0], keys[1], "a new key each time");
    assert_eq!(env.keychain_get("store:key").await, None, "nothing stored");
    assert!(
        std::fs::read_to_string(&env.config_path)
            .unwrap()
            .starts_with("[api]"),
        "the config is not touched"
    );
}
