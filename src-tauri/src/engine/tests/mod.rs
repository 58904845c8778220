//! Engine logic with an in-memory keychain (the only way to make a keychain write fail on
//! purpose) and a real loopback token endpoint.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::refresh::saving;
use crate::engine::store::item::{SecretKey, SecretStore};
use crate::engine::*;
use account::state::Status;
use config::Config;
use secret::{Secret, TokenSet};

/// A token endpoint that answers `{"access_token":"tok-N","expires_in":3600}` after `delay`,
/// counting requests and the most that were in flight at once.
pub(crate) struct Endpoint {
    pub url: String,
    requests: Arc<AtomicUsize>,
    max_parallel: Arc<AtomicUsize>,
}

pub(crate) async fn endpoint(delay: Duration, body: &'static str) -> Endpoint {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let max_parallel = Arc::new(AtomicUsize::new(0));
    let now = Arc::new(AtomicUsize::new(0));
    let (r, m) = (requests.clone(), max_parallel.clone());
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (r, m, now) = (r.clone(), m.clone(), now.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(inside, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                now.fetch_sub(1, Ordering::SeqCst);
                let body = body.replace("{n}", &n.to_string());
                let answer = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    Endpoint {
        url,
        requests,
        max_parallel,
    }
}

/// One `http` account `svc` fetching from `url` with its client secret in the query.
fn config_for_test(url: &str) -> Config {
    let text = format!("[[account]]\nname = \"svc\"\nprovider = \"http\"\nurl = \"{url}\"\nquery = {{ key = \"{{{{secret}}}}\" }}\n");
    Config::parse(std::path::Path::new("test.toml"), &text).unwrap()
}

async fn engine_for(
    url: &str,
    store: crate::engine::store::memory::MemoryStore,
) -> (Engine, tempfile::TempDir) {
    let config = config_for_test(url);
    let dir = tempfile::tempdir().unwrap();
    store
        .set(
            &SecretKey::ClientSecret("svc".parse().unwrap()),
            &Secret::new("tw-canary-client-9f2"),
        )
        .unwrap();
    let engine = Engine::with_parts(parts(config, Arc::new(store), dir.path()))
        .await
        .unwrap();
    (engine, dir)
}

pub(crate) fn parts(config: Config, store: Arc<dyn SecretStore>, dir: &std::path::Path) -> Parts {
    Parts {
        config,
        mode: Mode::Refresher,
        store,
        history_path: dir.join("h.sqlite3"),
        data_dir: dir.to_owned(),
        lock_place: None,
        lock: None,
        sharing: crate::engine::store::Sharing::Alone,
    }
}

fn svc() -> AccountName {
    "svc".parse().unwrap()
}

#[tokio::test]
async fn a_failed_keychain_write_keeps_the_token_in_memory_and_is_retried() {
    let ep = endpoint(
        Duration::ZERO,
        r#"{"access_token":"tok-{n}","expires_in":3600}"#,
    )
    .await;
    let store = crate::engine::store::memory::MemoryStore::default();
    let (engine, _dir) = engine_for(&ep.url, store.clone()).await;
    engine.journal_settled().await;
    store.fail_writes.store(true, Ordering::SeqCst);
    let mut events = engine.subscribe();

    // The refresh answers with the new token; the failed write is reported, not returned.
    let refreshed = engine.refresh(&svc()).await.unwrap();
    assert_eq!(refreshed.access_token.expose(), "tok-1");
    let token = engine.token(&svc(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        token.access_token.expose(),
        "tok-1",
        "served from memory although the write failed"
    );
    assert!(store.get(&SecretKey::Tokens(svc())).unwrap().is_none());
    let view = &engine.snapshot()[0];
    assert_eq!(view.status, Status::Fresh);
    assert!(view.unsaved, "{view:?}");
    assert!(
        view.last_error
            .as_deref()
            .unwrap()
            .contains("not saved in the keychain yet"),
        "{view:?}"
    );
    let mut reported = false;
    while let Ok(event) = events.try_recv() {
        reported |= matches!(event, EngineEvent::KeychainWriteFailed { .. });
    }
    assert!(reported, "the failure is broadcast");

    // The keychain comes back: the scheduler's retry writes the kept token.
    store.fail_writes.store(false, Ordering::SeqCst);
    saving::retry_save(&engine, &svc()).await;
    let stored = store.get(&SecretKey::Tokens(svc())).unwrap().unwrap();
    assert_eq!(
        TokenSet::from_stored_json(&stored).unwrap().access.expose(),
        "tok-1"
    );
    assert_eq!(engine.snapshot()[0].last_error, None);
    assert!(!engine.snapshot()[0].unsaved);
    let log = engine.history(Some(&[svc()]), 10).await.unwrap();
    assert_eq!(log[0].trigger, "save", "{log:?}");
    assert_eq!(log[1].error_code.as_deref(), Some("keychain_write_failed"));
    assert_eq!(
        ep.requests.load(Ordering::SeqCst),
        1,
        "no second fetch was needed"
    );
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh_at_a_time() {
    let ep = endpoint(
        Duration::from_millis(200),
        r#"{"access_token":"tok-{n}","expires_in":3600}"#,
    )
    .await;
    let (engine, _dir) = engine_for(
        &ep.url,
        crate::engine::store::memory::MemoryStore::default(),
    )
    .await;
    let calls = (0..20).map(|_| {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .token(&svc(), Duration::from_secs(60))
                .await
                .unwrap()
                .access_token
                .expose()
                .to_owned()
        })
    });
    let tokens: Vec<String> = futures_join(calls).await;
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(ep.requests.load(Ordering::SeqCst), 1);
    assert_eq!(ep.max_parallel.load(Ordering::SeqCst), 1);

    // Forced refreshes asked for together share one: those that queued behind it take its
    // outcome. One asked for after it finished fetches again.
    let calls = (0..3).map(|_| {
        let engine = engine.clone();
        tokio::spawn(async move { engine.refresh(&svc()).await.unwrap() })
    });
    futures_join(calls).await;
    assert_eq!(ep.requests.load(Ordering::SeqCst), 2);
    engine.refresh(&svc()).await.unwrap();
    assert_eq!(ep.requests.load(Ordering::SeqCst), 3);
    assert_eq!(ep.max_parallel.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_caller_that_goes_away_cancels_nothing() {
    let ep = endpoint(
        Duration::from_millis(400),
        r#"{"access_token":"tok-{n}","expires_in":3600}"#,
    )
    .await;
    let store = crate::engine::store::memory::MemoryStore::default();
    let (engine, _dir) = engine_for(&ep.url, store.clone()).await;
    let gone = tokio::time::timeout(Duration::from_millis(50), engine.refresh(&svc())).await;
    assert!(gone.is_err(), "the caller gave up first");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stored = store
        .get(&SecretKey::Tokens(svc()))
        .unwrap()
        .expect("saved");
    assert_eq!(
        TokenSet::from_stored_json(&stored).unwrap().access.expose(),
        "tok-1"
    );
    assert_eq!(
        engine.snapshot()[0].status,
        Status::Fresh,
        "not stuck refreshing"
    );
    assert_eq!(ep.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_error_field_answer_is_not_stored_and_nothing_leaks() {
    let ep = endpoint(
        Duration::ZERO,
        r#"{"errcode":40125,"errmsg":"invalid appsecret tw-canary-client-9f2"}"#,
    )
    .await;
    let text = format!(
        "[[account]]\nname = \"svc\"\nprovider = \"http\"\nurl = \"{}\"\nquery = {{ key = \"{{{{secret}}}}\" }}\nerror_field = \"errcode\"\n",
        ep.url
    );
    let config = Config::parse(std::path::Path::new("test.toml"), &text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = crate::engine::store::memory::MemoryStore::default();
    store
        .set(
            &SecretKey::ClientSecret(svc()),
            &Secret::new("tw-canary-client-9f2"),
        )
        .unwrap();
    let engine = Engine::with_parts(parts(config, Arc::new(store.clone()), dir.path()))
        .await
        .unwrap();

    let err = engine.refresh(&svc()).await.unwrap_err().to_string();
    assert!(err.contains("40125"), "{err}");
    assert!(
        store.get(&SecretKey::Tokens(svc())).unwrap().is_none(),
        "an error answer is not a token"
    );
    let view = serde_json::to_string(&engine.snapshot()).unwrap();
    assert!(view.contains("needs_reconnect"), "{view}");
    let log = serde_json::to_string(&engine.history(None, 10).await.unwrap()).unwrap();
    for text in [&err, &view, &log] {
        assert!(!text.contains("tw-canary"), "leaked: {text}");
    }
}

/// Spawns every task first (the iterator is lazy), then awaits them in order.
async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let handles: Vec<_> = handles.collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Twenty accounts needing no consent on one token endpoint, started together: the
/// scheduler fetches every one (through the deadline queue) and never more than
/// `[refresh] per_host` at once against that host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_one_host_is_fetched_a_few_at_a_time() {
    let ep = endpoint(
        Duration::from_millis(100),
        r#"{"access_token":"tok-{n}","expires_in":3600}"#,
    )
    .await;
    let mut text = String::from("[refresh]\nper_host = 3\n");
    for i in 0..20 {
        text.push_str(&format!(
            "[[account]]\nname = \"a{i}\"\nprovider = \"http\"\nurl = \"{}\"\n",
            ep.url
        ));
    }
    let config = Config::parse(std::path::Path::new("test.toml"), &text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = crate::engine::store::memory::MemoryStore::default();
    let engine = Engine::with_parts(parts(config, Arc::new(store.clone()), dir.path()))
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn({
        let (engine, stop) = (engine.clone(), stop.clone());
        async move { engine.run(stop).await }
    });
    for _ in 0..100 {
        if engine.snapshot().iter().all(|v| v.status == Status::Fresh) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    running.await.unwrap();
    assert!(
        engine.snapshot().iter().all(|v| v.status == Status::Fresh),
        "{:?}",
        engine.snapshot()
    );
    assert_eq!(ep.requests.load(Ordering::SeqCst), 20, "one fetch each");
    assert_eq!(
        ep.max_parallel.load(Ordering::SeqCst),
        3,
        "per_host bounds the fetches"
    );
    for i in 0..20 {
        let key = SecretKey::Tokens(format!("a{i}").parse().unwrap());
        assert!(store.get(&key).unwrap().is_some(), "a{i} saved");
    }
}

/// A refresh costs the store exactly one write: the new set, nothing else.
#[tokio::test]
async fn a_refresh_writes_the_store_exactly_once() {
    let ep = endpoint(
        Duration::ZERO,
        r#"{"access_token":"tok-{n}","expires_in":3600}"#,
    )
    .await;
    let (engine, _dir) = engine_for(
        &ep.url,
        crate::engine::store::memory::MemoryStore::default(),
    )
    .await;
    for n in 1..=3u64 {
        engine.refresh(&svc()).await.unwrap();
        assert_eq!(engine.metrics().secret_writes.get(), n);
    }
}

/// The journal across a crash: a set whose keychain write failed is in the journal, and an
/// engine opened after the process died (no close, no flush) serves it, writes it to the
/// keychain first thing, and empties the journal.
#[tokio::test]
async fn a_journaled_set_survives_a_crash_and_is_written_at_the_next_start() {
    let ep = endpoint(
        Duration::ZERO,
        r#"{"access_token":"tw-canary-journaled-{n}","expires_in":3600}"#,
    )
    .await;
    let store = crate::engine::store::memory::MemoryStore::default();
    let (engine, dir) = engine_for(&ep.url, store.clone()).await;
    engine.journal_settled().await;
    store.fail_writes.store(true, Ordering::SeqCst);
    engine.refresh(&svc()).await.unwrap();
    assert!(engine.snapshot()[0].unsaved);
    drop(engine); // killed: nothing flushed
    let journal = std::fs::read(store::journal::journal_path(dir.path(), "tokenwarden")).unwrap();
    assert!(!String::from_utf8_lossy(&journal).contains("tw-canary"));

    store.fail_writes.store(false, Ordering::SeqCst);
    let config = config_for_test(&ep.url);
    let engine = Engine::with_parts(parts(config, Arc::new(store.clone()), dir.path()))
        .await
        .unwrap();
    let token = engine.token(&svc(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        token.access_token.expose(),
        "tw-canary-journaled-1",
        "no new fetch"
    );
    saving::retry_save(&engine, &svc()).await; // what the scheduler does first
    let stored = store.get(&SecretKey::Tokens(svc())).unwrap().unwrap();
    assert_eq!(
        TokenSet::from_stored_json(&stored).unwrap().access.expose(),
        "tw-canary-journaled-1"
    );
    assert!(!engine.snapshot()[0].unsaved);
    assert_eq!(ep.requests.load(Ordering::SeqCst), 1);
    let len = std::fs::metadata(store::journal::journal_path(dir.path(), "tokenwarden"))
        .unwrap()
        .len();
    assert!(
        len < 100,
        "the journal is emptied once the keychain has the set: {len} bytes"
    );
}

mod props;
mod restart;
mod serving;
mod stop;
