//! A restart reads every set back unchanged: it writes no state row that says what the
//! stored one says (100,000 such rows cost a restart seconds of commits), and a state that
//! did change is still written.

use std::sync::Arc;
use std::time::Duration;

use super::{config_for_test, endpoint, engine_for, parts, svc};
use crate::engine::store::memory::MemoryStore;
use crate::engine::Engine;

/// The account's state row as the history database holds it: status and when it was written.
fn state_row(dir: &std::path::Path) -> (String, i64) {
    let db = rusqlite::Connection::open(dir.join("h.sqlite3")).unwrap();
    db.query_row(
        "SELECT status, updated_ms FROM state WHERE account = 'svc'",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .unwrap()
}

fn flushed(engine: &Engine) {
    engine.shared.log.flush();
}

#[tokio::test]
async fn a_restart_that_reads_back_the_same_set_writes_no_state_row() {
    let ep = endpoint(
        Duration::ZERO,
        r#"{"access_token":"tok-{n}","expires_in":3600}"#,
    )
    .await;
    let store = MemoryStore::default();
    let (engine, dir) = engine_for(&ep.url, store.clone()).await;
    engine.refresh(&svc()).await.unwrap();
    flushed(&engine);
    let before = state_row(dir.path());
    assert_eq!(before.0, "fresh");
    drop(engine);
    tokio::time::sleep(Duration::from_millis(20)).await; // a later updated_ms, were it written

    let again = Engine::with_parts(parts(
        config_for_test(&ep.url),
        Arc::new(store.clone()),
        dir.path(),
    ))
    .await
    .unwrap();
    let token = again.token(&svc(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        token.access_token.expose(),
        "tok-1",
        "read back, not fetched"
    );
    assert_eq!(again.snapshot()[0].status.as_str(), "fresh");
    flushed(&again);
    assert_eq!(
        state_row(dir.path()),
        before,
        "the set read back unchanged is no news: the row is not written again"
    );

    // A real change is written: a disconnect.
    again.disconnect(&svc()).await.unwrap();
    flushed(&again);
    let after = state_row(dir.path());
    assert_ne!(after.0, "fresh", "a changed state is saved");
    assert!(after.1 > before.1);
}
