//! The token journal end to end, with the real `serve`, the real keychain and the legacy
//! Fitbit fake (single-use refresh tokens): a rotated set the keychain refused (the debug
//! builds' fault hook) is in the journal file — 0600, sealed, no token text — survives a
//! SIGKILL, and the next start writes it to the keychain without asking the provider, then
//! refreshes with it; a journal that does not open is moved aside with one message and
//! `serve` goes on.

use std::time::Duration;

use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{wait_until, Env};

async fn stored_refresh(env: &Env) -> Option<String> {
    env.stored_tokens("fb")
        .await
        .and_then(|t| t["refresh_token"].as_str().map(str::to_string))
}

/// The journal of the environment's keychain service (`SERVICE.journal` in the data dir).
fn journal_path(env: &Env) -> std::path::PathBuf {
    env.data_dir.join(format!("{}.journal", env.service))
}

fn moved_aside(env: &Env) -> Vec<String> {
    std::fs::read_dir(&env.data_dir)
        .expect("data dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".journal.damaged-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_the_keychain_refused_survives_sigkill_in_the_journal_and_is_written_at_the_next_start(
) {
    let (fake, env, seeded_access) = LegacyAccount::new(|c| c.expires_in(3600))
        .extra("refresh_before = \"10s\"")
        .connected(3600)
        .await;
    let seeded_refresh = stored_refresh(&env).await.expect("seeded");
    let (serve, api, _) = env.serve_with_new_key("journal").await;
    env.fail_keychain_writes(true);
    let answer = api.post_empty("/v1/accounts/fb/refresh").await;
    assert_eq!(answer.status, 200, "{answer}");
    let (access, rotated) = {
        let st = fake.lock();
        assert_eq!(st.refresh_grants, 1);
        (
            st.current_access_token().unwrap(),
            st.latest_refresh_token().unwrap(),
        )
    };
    assert_eq!(
        stored_refresh(&env).await.as_deref(),
        Some(seeded_refresh.as_str()),
        "the fault hook let a write through"
    );
    serve.kill9().await;

    // What the dead process left: the journal alone has the rotated token, sealed.
    let path = journal_path(&env);
    let bytes = std::fs::read(&path).expect("the journal exists");
    let text = String::from_utf8_lossy(&bytes);
    for secret in [&access, &rotated, &seeded_access, &seeded_refresh] {
        assert!(!text.contains(secret.as_str()), "token text in the journal");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "0600");
    }

    // The next start writes it before anything else, and the provider is not asked.
    env.fail_keychain_writes(false);
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    wait_until(
        Duration::from_secs(20),
        "the journaled set written to the keychain",
        async || stored_refresh(&env).await.as_deref() == Some(rotated.as_str()),
    )
    .await;
    assert_eq!(fake.lock().refresh_grants, 1, "replaying needs no refresh");
    assert_eq!(
        api.token("fb").await,
        access,
        "the journaled token is served"
    );
    let log = serve
        .logged("replayed token sets from the token journal", 1)
        .await;
    assert!(log.contains("fb"), "the replay is told:\n{log}");
    for secret in [&access, &rotated] {
        assert!(!log.contains(secret.as_str()), "a secret in the log");
    }

    // And the next refresh presents the rotated token.
    let answer = api.post_empty("/v1/accounts/fb/refresh").await;
    assert_eq!(answer.status, 200, "{answer}");
    {
        let st = fake.lock();
        let last = st.refresh_requests().last().cloned().expect("a refresh");
        assert_eq!(last.refresh_token.as_deref(), Some(rotated.as_str()));
        assert_eq!(last.status, 200);
        assert_eq!(st.reused_refresh_tokens, 0);
    }
    assert_eq!(serve.stop().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_does_not_open_is_moved_aside_with_one_message_and_serve_goes_on() {
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .extra("refresh_before = \"10s\"")
        .connected(3600)
        .await;
    std::fs::write(journal_path(&env), [0x5au8; 300]).expect("write garbage");
    let (serve, api, _) = env.serve_with_new_key("damaged").await;
    wait_until(Duration::from_secs(5), "the message", async || {
        serve.stderr().contains("the token journal is damaged")
    })
    .await;
    let aside = moved_aside(&env);
    assert_eq!(aside.len(), 1, "moved aside: {aside:?}");
    let log = serve.stderr();
    assert_eq!(
        log.matches("the token journal is damaged").count(),
        1,
        "one message:\n{log}"
    );
    assert!(log.contains(&aside[0]), "it says where to:\n{log}");

    // A fresh journal, and the engine refreshes as ever.
    let answer = api.post_empty("/v1/accounts/fb/refresh").await;
    assert_eq!(answer.status, 200, "{answer}");
    let rotated = fake.lock().latest_refresh_token().unwrap();
    assert_eq!(
        stored_refresh(&env).await.as_deref(),
        Some(rotated.as_str())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(journal_path(&env))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(serve.stop().await.code, 0);
}
