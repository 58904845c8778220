//! `serve` told to stop (SIGTERM) while the keychain refuses every write and a thousand
//! token sets are unsaved: it exits within its bound (10 s of last writes, plus the drain),
//! naming what is unsaved, and loses nothing the token journal holds: the next start
//! serves every account's newest token without asking the provider again. The accounts are
//! `http` accounts on a fake that counts what it issued; the keychain's refusal is the
//! debug builds' fault hook, turned on after `serve` has written its own key and before the
//! accounts are added (a config reload), so that every one of their sets is unsaved.
//! `TOKENWARDEN_UNSAVED` sets the number of accounts (default 1000); the stop's duration is
//! printed.

use std::time::{Duration, Instant};

use tokenwarden_e2e::fakes::http::HttpTokenFake;
use tokenwarden_e2e::proc::{self, Signal};
use tokenwarden_e2e::{wait_until, Env};

fn accounts() -> usize {
    std::env::var("TOKENWARDEN_UNSAVED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

/// How long the test lets the stop take (`TOKENWARDEN_STOP_LIMIT` seconds, default 15) before
/// it fails: the engine's 10 s bound and its drain.
fn stop_limit() -> Duration {
    Duration::from_secs(
        std::env::var("TOKENWARDEN_STOP_LIMIT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(15),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_the_keychain_refusing_writes_is_bounded_names_the_unsaved_and_loses_nothing() {
    let n = accounts();
    let fake = HttpTokenFake::start(3600).await;
    let names: Vec<String> = (0..n).map(|i| format!("u{i:05}")).collect();
    let env = Env::new("");
    let header = std::fs::read_to_string(&env.config_path).expect("config");
    let key = env.create_write_key("stop").await;
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    let api = env.api(&key);

    env.fail_keychain_writes(true);
    let tables: String = names.iter().map(|n| fake.account_toml(n) + "\n").collect();
    env.write_config(&(header.clone() + &tables));
    api.post_empty("/v1/reload").await.expect(200);
    wait_until(
        Duration::from_secs(300),
        "every account fetched once and unsaved",
        async || {
            let fetched = fake.lock().issued.len() == n;
            fetched && {
                let view = api.get("/v1/accounts").await.expect(200);
                let view = view.as_array().cloned().unwrap_or_default();
                view.len() == n && view.iter().all(|a| a["unsaved"] == true)
            }
        },
    )
    .await;
    let served: Vec<String> = {
        let st = fake.lock();
        names.iter().map(|n| st.latest[n].clone()).collect()
    };

    let pid = serve.pid();
    let asked = Instant::now();
    proc::signal(pid, Signal::Term);
    let out = serve.wait_exit(stop_limit()).await;
    let took = asked.elapsed();
    println!(
        "SIGTERM with {n} unsaved sets and a keychain refusing writes: exited in {:.1} s (code {})",
        took.as_secs_f64(),
        out.code
    );
    assert_ne!(
        out.code, 0,
        "an exit with unsaved sets is not a clean one:\n{out}"
    );
    let said = out
        .stderr
        .lines()
        .find(|l| l.starts_with("tokenwarden: "))
        .unwrap_or_default();
    assert!(
        said.contains(&format!(
            "{n} token sets could not be saved in the keychain before exit"
        )) && said.contains(&names[0])
            && said.contains("token journal"),
        "the exit names what is unsaved and where it is kept: {said}\n{out}"
    );
    for token in &served[..5] {
        assert!(!out.stderr.contains(token.as_str()), "a token in the log");
    }

    // The next start, with a keychain that works: every account's newest set comes back from
    // the journal, and none is fetched again.
    env.fail_keychain_writes(false);
    let issued = fake.lock().total_issued();
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    for (name, token) in names.iter().zip(&served).step_by((n / 20).max(1)) {
        let answer = api.get(&format!("/v1/accounts/{name}/token")).await;
        assert_eq!(
            answer.json()["access_token"],
            token.as_str(),
            "{name}: {answer}"
        );
    }
    let mut saved = None;
    wait_until(
        Duration::from_secs(30),
        "some of the journal's sets written to the keychain",
        async || {
            let view = api.get("/v1/accounts").await.expect(200);
            saved = view.as_array().and_then(|v| {
                v.iter()
                    .find(|a| a["unsaved"] == false)
                    .and_then(|a| a["name"].as_str().map(str::to_owned))
            });
            saved.is_some()
        },
    )
    .await;
    let saved = saved.expect("found");
    let at = names.iter().position(|n| *n == saved).expect("one of ours");
    let stored = env.stored_tokens(&saved).await.expect("in the keychain");
    assert_eq!(stored["access_token"], served[at].as_str(), "{saved}");
    assert_eq!(fake.lock().total_issued(), issued, "nothing fetched again");
    drop(serve);
}
