//! The Windows build (`tokenwarden.exe`, cross-built with mingw) under wine: the same engine
//! and CLI on Windows' own APIs as wine implements them. Credential Manager holds the
//! secrets (its items keep 2,560 bytes at most, so a longer token set goes in pieces), the CLI
//! reaches `serve` over loopback TCP with the engine's key (no Unix socket), the lock is a
//! `LockFileEx` lock, `exec` waits for its command and exits with its code, and Ctrl+C stops
//! `serve` cleanly. The tray app is built for Windows but not run: WebView2 does not exist
//! under wine.

use std::time::Duration;

use tokenwarden_e2e::fakes::oauth::OAuthFake;
use tokenwarden_e2e::fakes::wechat::{WeChatConfig, WeChatFake};
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::wine::Wine;
use tokenwarden_e2e::{wait_until, Env};

/// `fb` on a legacy-Fitbit fake (rotating refresh tokens), connected through the consent flow
/// of `tokenwarden.exe connect --no-browser`: its loopback listener is Winsock's.
async fn connected_on_windows(
    configure: impl FnOnce(
            tokenwarden_e2e::fakes::oauth::OAuthConfig,
        ) -> tokenwarden_e2e::fakes::oauth::OAuthConfig
        + Send
        + 'static,
) -> (OAuthFake, Env) {
    let (fake, env) = LegacyAccount::new(configure).on_windows().start().await;
    env.connect("fb").await;
    assert_eq!(
        fake.lock().code_grants,
        1,
        "one authorization code exchanged"
    );
    (fake, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_build_runs_and_says_its_version() {
    let env = Env::windows("");
    let out = env.run(&["--version"], None).await.ok();
    assert_eq!(
        out.stdout_trimmed(),
        format!("tokenwarden {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_goes_into_credential_manager_and_the_provider_gets_it() {
    let (fake, env) = LegacyAccount::new(|c| c).on_windows().start().await;
    let wine = Wine::shared();
    let before = wine.credential_targets(&env.service);
    assert!(
        before.contains(&"client-secret:fb".to_owned())
            && !before.iter().any(|t| t.starts_with("tokens:")),
        "`secret set` wrote the client secret's item: {before:?}"
    );
    env.connect("fb").await;
    // Basic auth with the stored secret, or the fake would have refused the exchange.
    assert_eq!(fake.lock().code_grants, 1);
    let after = wine.credential_targets(&env.service);
    assert!(
        after.contains(&"tokens:fb".to_owned()),
        "the token set is an item of its own: {after:?}"
    );
    assert!(
        !after.iter().any(|t| t.contains('#')),
        "a set that fits one item is not split: {after:?}"
    );
}

/// serve on Windows: `token` and `list` beside it (TCP and the engine's key), a refresh
/// that rotates the refresh token, a second engine refused by the lock, Ctrl+C for a clean
/// stop, and a restart that serves the stored set without asking the provider again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refreshes_rotates_and_restarts_on_the_stored_set() {
    let (fake, env) = connected_on_windows(|c| c).await;
    let first = fake.lock().current_access_token().expect("a token");
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    assert!(
        serve.stderr().contains("socket=None"),
        "no Unix socket on Windows: {}",
        serve.stderr()
    );

    assert_eq!(env.token("fb").await, first);
    assert_eq!(env.status("fb").await, "fresh");

    let second = env.run(&["serve"], None).await;
    assert_ne!(second.code, 0, "{second}");
    assert!(
        second.failure_line().contains("already running"),
        "the engine's lock refuses a second one: {second}"
    );

    env.run(&["refresh", "fb"], None).await.ok();
    let rotated = {
        let st = fake.lock();
        assert_eq!(st.refresh_grants, 1, "the engine refreshed once");
        assert_eq!(st.reused_refresh_tokens, 0);
        st.current_access_token().expect("a token")
    };
    assert_ne!(rotated, first);
    assert_eq!(env.token("fb").await, rotated);
    let out = serve.interrupt().await;
    assert_eq!(out.code, 0, "Ctrl+C stops serve cleanly:\n{out}");

    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    assert_eq!(
        env.token("fb").await,
        rotated,
        "after a restart, the stored set"
    );
    let grants = {
        let st = fake.lock();
        (st.code_grants, st.refresh_grants)
    };
    assert_eq!(grants, (1, 1), "nothing asked of the provider on restart");
    assert_eq!(serve.interrupt().await.code, 0);
}

/// A token set of three 2 kB tokens (a Microsoft or Google answer's size) is more than one
/// Credential Manager item keeps: it is stored in pieces, read back whole after a restart,
/// and its refresh token (the last piece's bytes among others) is presented byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_6_kb_token_set_is_stored_whole_and_read_back_byte_for_byte() {
    let long = |c: char| -> String { std::iter::repeat_n(c, 3000).collect() };
    let (access, refresh) = (long('a'), long('r'));
    let (fake, env) = connected_on_windows(move |c| c.canaries(&refresh, &access)).await;
    let (issued_access, issued_refresh) = {
        let st = fake.lock();
        (
            st.current_access_token().expect("a token"),
            st.latest_refresh_token().expect("a refresh token"),
        )
    };
    assert!(issued_access.len() + issued_refresh.len() > 6000);

    let targets = Wine::shared().credential_targets(&env.service);
    let pieces: Vec<&String> = targets
        .iter()
        .filter(|t| t.starts_with("tokens:fb#"))
        .collect();
    assert!(
        targets.contains(&"tokens:fb".to_owned()) && pieces.len() >= 5,
        "the set is in pieces beside its manifest: {targets:?}"
    );

    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    assert_eq!(env.token("fb").await, issued_access);
    assert_eq!(serve.interrupt().await.code, 0);

    // A new engine reads the set back from Credential Manager and refreshes with it.
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    assert_eq!(env.token("fb").await, issued_access, "read back whole");
    env.run(&["refresh", "fb"], None).await.ok();
    let (presented, refresh_grants) = {
        let st = fake.lock();
        let last = st.refresh_requests().last().cloned();
        (
            last.and_then(|r| r.refresh_token)
                .expect("a refresh request"),
            st.refresh_grants,
        )
    };
    assert!(
        presented == issued_refresh,
        "the refresh token presented differs from the one issued ({} vs {} bytes)",
        presented.len(),
        issued_refresh.len()
    );
    assert_eq!(refresh_grants, 1);
    assert_eq!(serve.interrupt().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_a_wechat_token_fresh_on_windows() {
    let fake = WeChatFake::start(WeChatConfig {
        expires_in: 12,
        ..WeChatConfig::default()
    })
    .await;
    let env = Env::windows(&fake.account_toml("wx", ""));
    let secret = fake.lock().config.secret.clone();
    env.set_secret("wx", &secret).await;
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    wait_until(
        Duration::from_secs(30),
        "a second WeChat token",
        async || fake.lock().tokens_issued() >= 2,
    )
    .await;
    let token = env.token("wx").await;
    assert!(
        fake.lock().token_alive(&token),
        "`token wx` printed {token}"
    );
    assert_eq!(env.status("wx").await, "fresh");
    assert_eq!(serve.interrupt().await.code, 0);
}

/// `exec` has no exec call on Windows: it runs the command, waits, and exits with its code;
/// the token is in the command's environment and nowhere in ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_the_command_with_the_token_and_exits_with_its_code() {
    let (fake, env) = connected_on_windows(|c| c).await;
    let token = fake.lock().current_access_token().expect("a token");
    let out = env
        .run(
            &["exec", "fb", "--", "cmd", "/c", "echo [%FB_TOKEN%]& exit 7"],
            None,
        )
        .await;
    assert_eq!(out.code, 7, "the command's exit code:\n{out}");
    assert_eq!(out.stdout_trimmed(), format!("[{token}]"), "{out}");
    assert!(!out.stderr.contains(&token), "{out}");

    let missing = env
        .run(&["exec", "fb", "--", "no-such-program-here"], None)
        .await;
    assert_eq!(missing.code, 127, "{missing}");
    assert!(
        missing.stderr.contains("cannot run `no-such-program-here`"),
        "{missing}"
    );
}

/// Without `--config` or `TOKENWARDEN_DATA_DIR`, the config is in the roaming profile
/// (`%APPDATA%`), the data and the lock in the machine's own (`%LOCALAPPDATA%`), as Windows
/// programs keep them; no `XDG_RUNTIME_DIR` leaking in from the test's Linux moves the lock.
#[test]
fn without_overrides_files_live_in_appdata_and_localappdata() {
    let wine = Wine::shared();
    let service = format!("tokenwarden-e2e-paths-{:08x}", rand::random::<u32>());
    // `api-key create` writes the data dir; `list`, with no engine to ask, takes the lock.
    for args in [&["api-key", "create", &service][..], &["list"]] {
        let out = wine
            .command()
            .args(args)
            .env_remove("TOKENWARDEN_CONFIG")
            .env_remove("TOKENWARDEN_DATA_DIR")
            .env("TOKENWARDEN_KEYCHAIN_SERVICE", &service)
            .env("XDG_RUNTIME_DIR", "/tmp")
            .output()
            .expect("run tokenwarden.exe");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let profile = std::fs::read_dir(wine.prefix.join("drive_c/users"))
        .expect("users")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("AppData/Local/tokenwarden").exists())
        .expect("a profile with AppData/Local/tokenwarden");
    let keys =
        std::fs::read_to_string(profile.join("AppData/Local/tokenwarden/data/api-keys.json"))
            .expect("api-keys.json in %LOCALAPPDATA%\\tokenwarden\\data");
    assert!(keys.contains(&service), "the new key's label: {keys}");
    assert!(
        profile
            .join(format!("AppData/Local/tokenwarden/run/{service}.lock"))
            .exists(),
        "the lock in %LOCALAPPDATA%\\tokenwarden\\run"
    );
    assert!(
        !std::path::Path::new(&format!("/tmp/tokenwarden/{service}.lock")).exists(),
        "not in XDG_RUNTIME_DIR"
    );
    assert!(profile.join("AppData/Roaming/tokenwarden/config").is_dir());
}
