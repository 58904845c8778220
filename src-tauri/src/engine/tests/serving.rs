//! Serving across accounts: refresh_all.

use std::sync::Arc;
use std::time::Duration;

use super::{endpoint, parts};
use crate::engine::account::state::Status;
use crate::engine::config::Config;
use crate::engine::store::memory::MemoryStore;
use crate::engine::Engine;

#[tokio::test]
async fn refresh_all_refreshes_every_account_and_one_failure_stops_none() {
    let good = endpoint(
        Duration::ZERO,
        r#"{"access_token":"tok-{n}","expires_in":3600}"#,
    )
    .await;
    let bad = endpoint(Duration::ZERO, r#"{"nothing":"here"}"#).await;
    let text = format!(
        "[[account]]\nname = \"bad\"\nprovider = \"http\"\nurl = \"{}\"\n\n[[account]]\nname = \"good\"\nprovider = \"http\"\nurl = \"{}\"\n",
        bad.url, good.url
    );
    let config = Config::parse(std::path::Path::new("test.toml"), &text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::default());
    let engine = Engine::with_parts(parts(config, store, dir.path()))
        .await
        .unwrap();
    engine.refresh_all().await;
    let views = engine.snapshot();
    assert_eq!(views[0].status, Status::Retrying, "{views:?}");
    assert!(views[0].last_error.is_some(), "{views:?}");
    assert_eq!(views[1].status, Status::Fresh, "{views:?}");
    assert!(views[1].last_refresh.is_some(), "{views:?}");
}
