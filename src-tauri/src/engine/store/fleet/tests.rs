//! The lease, the fence and the seal against a real `redis-server` (make test installs it):
//! a host that outlived its lease, Redis that lost everything, Redis that went back to an
//! older state, blobs moved or given another fence, and blobs in the format from before
//! fences were sealed in. Each host is a `Fleet` of its own on the same Redis, read and
//! written through the store's client as the engine does.

use std::time::Duration;

use ring::rand::SystemRandom;

use super::scripts::Mode;
use super::*;
use crate::engine::names::AccountName;
use crate::engine::secret::Secret;
use crate::engine::store::client::Keychain;
use crate::engine::store::item::SecretKey;
use crate::engine::store::memory::MemoryStore;
use crate::engine::store::sharing::Judged;
use crate::engine::store::Sharing;

struct Redis(std::process::Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A redis-server on a loopback port below the ephemeral range.
fn redis() -> (Redis, u16) {
    let port = 20_000 + (rand::random::<u16>() % 12_000);
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (Debian package redis-server; make test installs it)");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "redis-server on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (Redis(child), port)
}

fn key_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let key_file = dir.path().join("store.key");
    let settings = FleetSettings {
        url: String::new(),
        key_file: Some(key_file.clone()),
        lease: Duration::from_secs(1),
        namespace: String::new(),
        host: None,
    };
    let key = crate::engine::store::sealed::new_key_text(&SystemRandom::new()).unwrap();
    keys::write_new_key(&settings, &MemoryStore::default(), &key).unwrap();
    key_file
}

fn host(port: u16, name: &str, key_file: &std::path::Path) -> Arc<Fleet> {
    let settings = FleetSettings {
        url: format!("redis://127.0.0.1:{port}"),
        key_file: Some(key_file.to_owned()),
        lease: Duration::from_secs(1),
        namespace: "unit".into(),
        host: Some(name.into()),
    };
    let keychain: Arc<dyn SecretStore> = Arc::new(MemoryStore::default());
    Arc::new(Fleet::open(&settings, &keychain).unwrap())
}

/// The store as the engine of host `fleet` reads and writes it.
fn store(fleet: &Arc<Fleet>) -> Keychain {
    Keychain::new(fleet.store.clone()).sharing(Sharing::Fleet(fleet.clone()))
}

fn fb() -> AccountName {
    "fb".parse().unwrap()
}

/// What the store answers, as text (`None`: nothing adopted).
async fn read(store: &Keychain, key: &SecretKey) -> Option<String> {
    match store.read(key).await.unwrap() {
        Judged::Value(value) => value.map(|s| s.expose().to_owned()),
        Judged::Behind => None,
    }
}

/// Writes `text` as the engine writes a set: with the fence the coordinator chooses.
async fn set(store: &Keychain, key: &SecretKey, text: &str) {
    store
        .write(key.clone(), Some(Secret::new(text)), |_| {})
        .await
        .unwrap();
}

/// Whether the last read of `key` found nothing at all (never stored, or lost by Redis).
fn lost(fleet: &Fleet, key: &SecretKey) -> bool {
    fleet.store.read(key).unwrap().is_none()
}

/// Whether this host's copy of `key` is to be stored again: Redis lost it, or holds an
/// older set than this host.
async fn behind(fleet: &Arc<Fleet>, key: &SecretKey) -> bool {
    matches!(store(fleet).read(key).await.unwrap(), Judged::Behind)
}

/// A refresh on `fleet`: lease, write, release. Its fence.
async fn refresh(fleet: &Arc<Fleet>, text: &str) -> u64 {
    let fence = fleet
        .coordinator
        .acquire(&fb())
        .unwrap()
        .expect("a free lease");
    set(&store(fleet), &SecretKey::Tokens(fb()), text).await;
    fleet.coordinator.release_now(&fb(), fence).unwrap();
    fence
}

fn raw(fleet: &Fleet, args: &[&str]) -> Vec<String> {
    fleet
        .store
        .link
        .call(|c| {
            let mut cmd = redis::cmd(args[0]);
            for arg in &args[1..] {
                cmd.arg(*arg);
            }
            cmd.query::<redis::Value>(c)
        })
        .map(|v| match v {
            redis::Value::Array(items) => items
                .into_iter()
                .map(|i| redis::from_redis_value(i).unwrap_or_default())
                .collect(),
            other => vec![redis::from_redis_value(other).unwrap_or_default()],
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_outlived_its_lease_cannot_overwrite_a_newer_set() {
    let (_redis, port) = redis();
    let dir = tempfile::tempdir().unwrap();
    let key_file = key_file(&dir);
    let (a, b) = (host(port, "a", &key_file), host(port, "b", &key_file));
    let name = fb();
    let entry = SecretKey::Tokens(name.clone()).entry();
    let text = |t: &str| Secret::new(t);

    let fa = a.coordinator.acquire(&name).unwrap().expect("a free lease");
    assert_eq!(b.coordinator.acquire(&name).unwrap(), None, "a holds it");
    assert!(a
        .store
        .write_blob(&entry, fa, Mode::Lease, Some(&text("first")))
        .unwrap());
    // `a` stalls past its lease; `b` takes over and stores a newer set.
    std::thread::sleep(Duration::from_millis(1300));
    let fb = b
        .coordinator
        .acquire(&name)
        .unwrap()
        .expect("a lapsed lease");
    assert!(fb > fa);
    assert!(b
        .store
        .write_blob(&entry, fb, Mode::Lease, Some(&text("newer")))
        .unwrap());
    // `a` wakes up with its answer: its lease is gone and its write is refused.
    assert!(!a.coordinator.renew_now(&name).unwrap());
    assert!(!a
        .store
        .write_blob(&entry, fa, Mode::Lease, Some(&text("older")))
        .unwrap());
    assert_eq!(
        read(&store(&a), &SecretKey::Tokens(name.clone()))
            .await
            .unwrap(),
        "newer"
    );
    // Releasing someone else's lease does nothing.
    a.coordinator.release_now(&name, fa).unwrap();
    assert_eq!(
        a.coordinator.acquire(&name).unwrap(),
        None,
        "b still holds it"
    );
    b.coordinator.release_now(&name, fb).unwrap();
    assert!(a.coordinator.acquire(&name).unwrap().unwrap() > fb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_lost_everything_the_newer_of_two_copies_wins_in_either_order() {
    let (_redis, port) = redis();
    let dir = tempfile::tempdir().unwrap();
    let key_file = key_file(&dir);
    let tokens = SecretKey::Tokens(fb());
    for newer_first in [true, false] {
        let (a, b, c) = (
            host(port, "a", &key_file),
            host(port, "b", &key_file),
            host(port, "c", &key_file),
        );
        let (sa, sb) = (store(&a), store(&b));
        // `c` refreshes and stores X, which `a` and `b` read; `b` refreshes and stores Y,
        // which `a` (that never refreshed) does not hear of.
        refresh(&c, "X").await;
        assert_eq!(read(&sa, &tokens).await.unwrap(), "X");
        assert_eq!(read(&sb, &tokens).await.unwrap(), "X");
        refresh(&b, "Y").await;
        // Redis restarts empty; both hosts store their copy again.
        raw(&a, &["FLUSHALL"]);
        assert!(read(&sa, &tokens).await.is_none() && lost(&a, &tokens));
        if newer_first {
            set(&sb, &tokens, "Y").await;
            set(&sa, &tokens, "X").await;
        } else {
            set(&sa, &tokens, "X").await;
            set(&sb, &tokens, "Y").await;
        }
        assert_eq!(
            read(&sa, &tokens).await.unwrap(),
            "Y",
            "newer first: {newer_first}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_stored_again_never_replaces_a_set_fetched_since_even_at_the_same_fence() {
    let (_redis, port) = redis();
    let dir = tempfile::tempdir().unwrap();
    let key_file = key_file(&dir);
    let (a, c) = (host(port, "a", &key_file), host(port, "c", &key_file));
    let (sa, sc) = (store(&a), store(&c));
    let tokens = SecretKey::Tokens(fb());
    let first = refresh(&c, "Y").await;
    assert_eq!(read(&sa, &tokens).await.unwrap(), "Y");
    // Redis loses everything, its fence counter too; `a` finds the set gone.
    raw(&a, &["FLUSHALL"]);
    assert!(read(&sa, &tokens).await.is_none() && behind(&a, &tokens).await);
    // Before `a` stores its copy again, `c` refreshes: its new lease is above every fence it
    // has seen, though Redis counts from zero again.
    let second = refresh(&c, "Z").await;
    // `a`'s copy (Y, whose refresh token Z's refresh consumed) comes too late: refused.
    set(&sa, &tokens, "Y").await;
    assert_eq!(
        read(&sc, &tokens).await.unwrap(),
        "Z",
        "a copy stored again replaced the set fetched since"
    );
    assert!(
        second > first,
        "a new lease took fence {second} after {first}"
    );
    assert_eq!(
        read(&sa, &tokens).await.unwrap(),
        "Z",
        "a takes the newer set"
    );
    assert!(!behind(&a, &tokens).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_set_put_back_in_redis_is_not_adopted_and_a_moved_or_refenced_blob_does_not_open()
{
    let (_redis, port) = redis();
    let dir = tempfile::tempdir().unwrap();
    let key_file = key_file(&dir);
    let (a, b) = (host(port, "a", &key_file), host(port, "b", &key_file));
    let (sa, sb) = (store(&a), store(&b));
    let tokens = SecretKey::Tokens(fb());
    let entry = a.store.link.secret_key(&tokens.entry());
    refresh(&b, "X").await;
    let snapshot = raw(&a, &["HGETALL", &entry]);
    assert_eq!(read(&sa, &tokens).await.unwrap(), "X");
    let newer = refresh(&b, "Y").await;
    assert_eq!(read(&sa, &tokens).await.unwrap(), "Y");

    // Redis goes back to X (a snapshot, a replica, a backup): neither host adopts it.
    let mut args = vec!["HSET", &entry];
    args.extend(snapshot.iter().map(String::as_str));
    raw(&a, &["DEL", &entry]);
    raw(&a, &args);
    assert!(read(&sa, &tokens).await.is_none() && behind(&a, &tokens).await && !lost(&a, &tokens));
    assert!(read(&sb, &tokens).await.is_none() && behind(&b, &tokens).await);
    // `a` stores its copy again; the fence it carries is Y's.
    set(&sa, &tokens, "Y").await;
    assert_eq!(raw(&a, &["HGET", &entry, "fence"]), [newer.to_string()]);
    assert_eq!(read(&sb, &tokens).await.unwrap(), "Y");

    // X's blob beside a raised fence, or under another account, does not open.
    let blob_of = |fields: &[String]| {
        let at = fields.iter().position(|f| f == "blob").unwrap();
        fields[at + 1].clone()
    };
    let old_blob = blob_of(&snapshot);
    let raised = (newer + 5).to_string();
    raw(&a, &["HSET", &entry, "fence", &raised, "blob", &old_blob]);
    let e = sa.get(tokens.clone()).await.unwrap_err();
    assert!(e.to_string().contains("does not open"), "{e}");
    let other = a.store.link.secret_key("tokens:wx");
    let y_blob = blob_of(&raw(&a, &["HGETALL", &entry]));
    raw(&a, &["HSET", &other, "fence", "1", "blob", &y_blob]);
    let wx = SecretKey::Tokens("wx".parse().unwrap());
    assert!(sa.get(wx).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_format_set_is_adopted_only_by_a_host_that_holds_none_and_never_wins_over_a_held_one(
) {
    let (_redis, port) = redis();
    let dir = tempfile::tempdir().unwrap();
    let key_file = key_file(&dir);
    let (a, b) = (host(port, "a", &key_file), host(port, "b", &key_file));
    let tokens = SecretKey::Tokens(fb());
    let entry = a.store.link.secret_key(&tokens.entry());
    let held = refresh(&a, "held by a").await;
    // A v1 blob (only the entry name bound), with a fence field nobody vouches for.
    let (mut v1, sealed) =
        crate::engine::store::sealed::seal_text(&a.store.rng, &a.store.key, &tokens.entry(), "old")
            .unwrap();
    v1.extend_from_slice(&sealed);
    let v1 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, v1);
    raw(&a, &["HSET", &entry, "fence", "1000", "blob", &v1]);
    // `a` holds a set: the old-format one is not adopted. `b` holds nothing: it is.
    assert!(read(&store(&a), &tokens).await.is_none() && behind(&a, &tokens).await);
    assert_eq!(read(&store(&b), &tokens).await.unwrap(), "old");
    // `a`'s copy goes back over it: a set a host holds is newer than one nobody vouches for.
    set(&store(&a), &tokens, "held by a").await;
    assert_eq!(raw(&a, &["HGET", &entry, "fence"])[0], held.to_string());
    assert_eq!(read(&store(&b), &tokens).await.unwrap(), "held by a");
    // Refreshes go on in the new format.
    let fence = refresh(&b, "new").await;
    assert!(fence > held, "{fence}");
    assert!(raw(&a, &["HGET", &entry, "blob"])[0].starts_with("v2:"));
    assert_eq!(read(&store(&a), &tokens).await.unwrap(), "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_went_away_is_named_and_nobody_is_told_to_unlock_their_keychain() {
    let (redis, port) = redis();
    let dir = tempfile::tempdir().unwrap();
    let key_file = key_file(&dir);
    let a = host(port, "a", &key_file);
    drop(redis);
    let e = store(&a).get(SecretKey::Tokens(fb())).await.unwrap_err();
    let url = format!("redis://127.0.0.1:{port}");
    assert!(
        e.to_string().starts_with(&format!("shared store {url}")),
        "{e}"
    );
    assert!(!e.to_string().contains("keychain"), "{e}");
    assert_eq!(
        e.remedy(),
        crate::engine::error::Remedy::CheckStore {
            store: format!("the shared store (Redis at {url})")
        }
    );
}

#[test]
fn a_key_file_others_can_read_is_refused_and_a_key_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("store.key");
    let settings = FleetSettings {
        url: String::new(),
        key_file: Some(key_file.clone()),
        lease: Duration::from_secs(1),
        namespace: String::new(),
        host: None,
    };
    let key = crate::engine::store::sealed::new_key_text(&SystemRandom::new()).unwrap();
    let keychain = MemoryStore::default();
    keys::write_new_key(&settings, &keychain, &key).unwrap();
    let e = keys::write_new_key(&settings, &keychain, &key).unwrap_err();
    assert!(e.to_string().contains("never replaced"), "{e}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = keys::store_key(&settings, &keychain).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert!(!e.to_string().contains(key.expose()), "{e}");
    }
}
