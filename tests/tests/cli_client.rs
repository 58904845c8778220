//! The CLI as a client of a running engine: while `serve` runs, `token`, `refresh`, `list` and
//! `log` ask it over the local API (found without any help from the test), print exactly what
//! they print without an engine, and never refresh by themselves: `refresh` and
//! `token --min-valid` beside serve are done by serve (its event stream and history show them,
//! and the fake sees exactly one refresh each).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::local::running_as_root;
use tokenwarden_e2e::{prometheus, Api, Env, Output};

/// The sum of `tokenwarden_api_requests_total` over all routes and statuses.
async fn api_requests(api: &Api) -> f64 {
    let a = api.get("/metrics").await;
    assert_eq!(a.status, 200, "{a}");
    let exp = prometheus::parse(&a.body).unwrap_or_else(|e| panic!("/metrics: {e}\n{a}"));
    exp.sum("tokenwarden_api_requests_total", &[])
}

/// The commands whose output must not depend on whether an engine runs.
const SAME: &[&[&str]] = &[
    &["list", "--json"],
    &["list"],
    &["token", "fb"],
    &["token", "fb", "--header"],
    &["log", "--json"],
    &["log"],
    &["log", "fb", "--json"],
];

/// Panics, listing every pair of outputs that differ in exit code or stdout, unless `second`
/// printed what `first` did; `what` names the two runs, `how` the second in the message.
#[track_caller]
fn assert_same_outputs(first: &[Output], second: &[Output], what: (&str, &str), how: &str) {
    let diffs: Vec<String> = first
        .iter()
        .zip(second)
        .filter(|(a, b)| (a.code, &a.stdout) != (b.code, &b.stdout))
        .map(|(a, b)| format!("--- {}\n{a}\n--- {}\n{b}", what.0, what.1))
        .collect();
    assert!(
        diffs.is_empty(),
        "{} commands printed something else {how}:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

async fn run_all(env: &Env) -> Vec<Output> {
    let mut outs = Vec::new();
    for args in SAME {
        outs.push(env.run(args, None).await);
    }
    outs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_beside_serve_answers_the_same_and_leaves_refreshing_to_serve() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .another_account("nc")
        .connected(3600)
        .await;
    let key = env.create_api_key("cli-client-test").await;

    // Without an engine: the CLI refreshes by itself, under the lock.
    let refreshed_alone = env.run(&["refresh", "fb"], None).await.ok();
    assert_eq!(fake.lock().refresh_grants, 1);
    // First, since a refused `token` may leave a history entry that `log` then shows.
    let alone_nc = env.run(&["token", "nc"], None).await;
    alone_nc.failure_line();
    assert!(alone_nc.stdout.is_empty(), "{alone_nc}");
    let alone = run_all(&env).await;
    for out in &alone {
        assert_eq!(out.code, 0, "{out}");
    }
    let token = alone[2].stdout_trimmed().to_string();
    assert_eq!(
        Some(token.clone()),
        fake.lock().current_access_token(),
        "token prints the refreshed token"
    );

    let (serve, api) = env.serve_api(&key).await;
    // serve answers /healthz before it has read the keychain; the CLI over the socket is
    // quick enough to ask in between, and would see "reading the keychain". Every account
    // must be read (on a busy machine `nc` may be read well after `fb`).
    let statuses = |list: &serde_json::Value| -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| (a["name"].to_string(), a["status"].to_string()))
            .collect();
        all.sort();
        all
    };
    let read_alone = statuses(&serde_json::from_str(&alone[0].stdout).expect("list --json"));
    assert_eq!(read_alone.len(), 2, "{read_alone:?}");
    tokenwarden_e2e::wait_until(
        Duration::from_secs(30),
        "serve has read every account",
        async || statuses(&api.get("/v1/accounts").await.json()) == read_alone,
    )
    .await;
    let requests_before = api_requests(&api).await;
    let beside = run_all(&env).await;
    assert_same_outputs(
        &alone,
        &beside,
        ("without an engine", "beside serve"),
        "beside serve",
    );
    // A token that cannot be had fails the same way (its history entry, if any, is no output).
    let refused_alone = alone_nc;
    let refused_beside = env.run(&["token", "nc"], None).await;
    refused_beside.failure_line();
    assert!(refused_beside.stdout.is_empty(), "{refused_beside}");
    assert_eq!(refused_alone.code, refused_beside.code);
    let requests_after = api_requests(&api).await;
    assert!(
        requests_after - requests_before > SAME.len() as f64,
        "{} CLI commands beside serve made {} API requests: they did not ask serve",
        SAME.len() + 1,
        requests_after - requests_before
    );
    assert_eq!(
        fake.lock().token_requests.len(),
        1,
        "nothing refreshed beside serve"
    );

    // `refresh` beside serve: serve does it (its events and history show it), once.
    let events = api.events().await;
    assert_eq!(events.status, 200);
    fake.lock().config.expires_in = 2000;
    let refreshed = env.run(&["refresh", "fb"], None).await.ok();
    assert_eq!(
        refreshed.stdout.lines().count(),
        refreshed_alone.stdout.lines().count(),
        "refresh prints the same shape with and without an engine:\n{refreshed_alone}\n{refreshed}"
    );
    {
        let st = fake.lock();
        assert_eq!(
            st.refresh_grants, 2,
            "exactly one refresh: {:?}",
            st.token_requests
        );
        assert_eq!(st.token_requests.len(), 2);
        assert_eq!(st.reused_refresh_tokens, 0);
    }
    let (seen, _) = events
        .wait_for("refreshed", "fb", 0, Duration::from_secs(5))
        .await;
    let history = api.get("/v1/history?account=fb").await.expect(200);
    assert_eq!(history[0]["trigger"], "manual", "{history}");
    assert_eq!(history[0]["outcome"], "ok", "{history}");
    let log = env.log_entries(Some("fb")).await;
    assert_eq!(serde_json::Value::Array(log.clone()), history);
    assert_eq!(log.len(), 2, "the CLI's refresh and serve's: {log:?}");
    let current = fake.lock().current_access_token().unwrap();
    assert_eq!(env.token("fb").await, current);
    assert_eq!(api.token("fb").await, current, "serve holds the new token");

    // `token --min-valid` beside serve: enough left → nothing; not enough → serve refreshes.
    fake.lock().config.expires_in = 3600;
    let out = env
        .run(&["token", "fb", "--min-valid", "60s"], None)
        .await
        .ok();
    assert_eq!(out.stdout_trimmed(), current);
    assert_eq!(fake.lock().token_requests.len(), 2);
    let out = env
        .run(&["token", "fb", "--min-valid", "3000s"], None)
        .await
        .ok();
    let newest = fake.lock().current_access_token().unwrap();
    assert_ne!(newest, current, "2000 s left is not 3000 s: refreshed");
    assert_eq!(out.stdout_trimmed(), newest, "prints the new token");
    assert_eq!(fake.lock().refresh_grants, 3, "exactly one more refresh");
    events
        .wait_for("refreshed", "fb", seen + 1, Duration::from_secs(5))
        .await;
    let history = api.get("/v1/history?account=fb&limit=1").await.expect(200);
    assert_eq!(history[0]["trigger"], "min_valid", "{history}");
    let status = env.status("fb").await;
    assert_eq!(status, "fresh");

    let with_serve = run_all(&env).await;
    let out = serve.stop().await;
    assert_eq!(out.code, 0, "{out}");
    drop(events);

    // And the other way round: after serve, the CLI alone prints what it printed beside serve.
    let after = run_all(&env).await;
    assert_same_outputs(
        &with_serve,
        &after,
        ("beside serve", "without an engine"),
        "without serve",
    );
    assert_eq!(fake.lock().token_requests.len(), 3);
}

/// The engine restarted between the CLI reading its announcement and reading its key: the
/// key the CLI holds is refused. It reads the key again for a moment instead of failing
/// (the crash test saw `list` exit 1 "unauthorized" right after a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_a_refused_engine_key_again() {
    let (_fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let (mut serve, _api, _) = env.serve_with_new_key("restart").await;
    // Without its socket the CLI asks over TCP with the key (an engine that could not make one).
    std::fs::remove_file(socket_of(&env)).expect("remove the engine's socket");
    let real = env
        .keychain_get("engine:api-key")
        .await
        .expect("the engine's key");
    // A key as an earlier engine would have left it; the real one is back 300 ms later.
    env.keychain_set("engine:api-key", "twk_an_earlier_engines_key")
        .await;
    let (out, ()) = tokio::join!(env.run(&["list", "--json"], None), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        env.keychain_set("engine:api-key", &real).await;
    });
    let out = out.ok();
    assert!(out.stdout.contains("\"fb\""), "{out}");
    assert!(serve.running());
}

/// The socket the running engine announced beside its lock.
fn socket_of(env: &Env) -> PathBuf {
    let holder = env.engine_holder().expect("the engine's holder file");
    PathBuf::from(
        holder["socket"]
            .as_str()
            .unwrap_or_else(|| panic!("no socket announced: {holder}")),
    )
}

/// Beside a running engine the CLI goes through the engine's Unix socket, where the kernel
/// vouches for it: it needs no key, so it reads none from the keychain. Proved by taking the
/// engine's key out of the keychain: the lock is serve's, so no answer could come from
/// anywhere but serve. The socket is the user's alone and goes when serve stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_serve_the_cli_needs_no_key_on_the_engines_socket() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let (serve, api, _) = env.serve_with_new_key("socket").await;
    let socket = socket_of(&env);
    let meta = std::fs::metadata(&socket).expect("the socket exists");
    assert!(meta.file_type().is_socket(), "{}", socket.display());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "only the user");

    env.keychain_clear("engine:api-key").await;
    assert_eq!(env.keychain_get("engine:api-key").await, None);
    let before = api_requests(&api).await;
    let out = env.run(&["token", "fb"], None).await.ok();
    assert_eq!(
        Some(out.stdout_trimmed().to_owned()),
        fake.lock().current_access_token()
    );
    let list = env.run(&["list", "--json"], None).await.ok();
    assert!(list.stdout.contains("\"fb\""), "{list}");
    let refreshed = env.run(&["refresh", "fb"], None).await.ok();
    assert_eq!(
        fake.lock().refresh_grants,
        1,
        "serve refreshed once: {refreshed}"
    );
    assert!(
        api_requests(&api).await - before >= 3.0,
        "the three commands were answered by serve"
    );

    let out = serve.stop().await;
    assert_eq!(out.code, 0, "{out}");
    assert!(!socket.exists(), "the socket goes with serve");
}

/// Another user's process that reaches the socket (here through a hard link in a folder it
/// may enter, and with the socket's mode opened up) is closed unanswered: the engine checks
/// the peer's credentials, not only the file's mode. Needs root, to run as `nobody`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_process_is_refused_on_the_engines_socket() {
    if !running_as_root() {
        eprintln!("SKIPPED: needs root to run a client as another user");
        return;
    }
    let (_fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let (serve, _api, _) = env.serve_with_new_key("stranger").await;
    let socket = socket_of(&env);
    let open = env.root().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(env.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = open.join("engine.sock");
    std::fs::hard_link(&socket, &link).expect("hard link beside the socket (same filesystem)");
    std::fs::set_permissions(&link, std::fs::Permissions::from_mode(0o666)).unwrap();

    let curl = |as_nobody: bool| {
        let mut cmd = if as_nobody {
            let mut c = tokio::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "curl"]);
            c
        } else {
            tokio::process::Command::new("curl")
        };
        cmd.args(["-sS", "--max-time", "10", "--unix-socket"])
            .arg(&link)
            .arg("http://localhost/v1/accounts");
        cmd.output()
    };
    // The same request as ourselves is answered, so the command and the link work.
    let ours = curl(false).await.expect("run curl");
    let body = String::from_utf8_lossy(&ours.stdout);
    assert!(body.contains("\"fb\""), "as root: {body}");
    let theirs = curl(true).await.expect("run setpriv curl");
    let body = String::from_utf8_lossy(&theirs.stdout);
    assert!(!theirs.status.success(), "as nobody: answered {body}");
    assert!(body.is_empty(), "as nobody: {body}");
    // Closed unanswered: curl says 52 (empty reply) or 56 (reset), or 7 when the close
    // comes before it has checked its connect. That the engine took the connection and
    // refused it for its user, rather than the file's mode keeping it out, is in its log
    // (written before the close, read from serve's stderr by a thread of the harness).
    let log = serve.logged("another user", 1).await;
    assert!(
        log.contains("another user") && log.contains("uid=65534"),
        "serve logs whom it refused (curl said {:?} {}):\n{log}",
        theirs.status.code(),
        String::from_utf8_lossy(&theirs.stderr)
    );
}
