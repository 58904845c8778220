//! A fleet never goes back to an older token set than the one its hosts hold, whatever Redis
//! comes back with or however long a host stalls. Each test uses the real parts: a real
//! `redis-server` restarted from a real snapshot (`SAVE`, then `SHUTDOWN NOSAVE` and a start
//! on the same dir, as Redis's default persistence, a promoted replica or a restored backup
//! does), real `serve` hosts stopped with SIGSTOP, and a provider whose refresh tokens work
//! once. What they assert is what the provider saw (no refresh token presented twice), what
//! each host served, and what Redis holds afterwards.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokenwarden_e2e::fakes::oauth::{Fault, OAuthFake};
use tokenwarden_e2e::fleet::{rotating_fleet, Host, Rotating};
use tokenwarden_e2e::proc::{self, Signal};
use tokenwarden_e2e::redis::{RedisServer, NAMESPACE};
use tokenwarden_e2e::wait_until;

/// Refreshes `fb` through `hosts[through]` (past the 1 s floor between refreshes) and waits
/// until every host serves the provider's new token; that token.
async fn refresh_everywhere(hosts: &[Host], through: usize, fake: &OAuthFake) -> String {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    hosts[through]
        .api
        .post_empty("/v1/accounts/fb/refresh")
        .await
        .expect(200);
    let new = fake.lock().current_access_token().expect("a new token");
    for h in hosts {
        wait_until(
            Duration::from_secs(5),
            &format!("{} to serve the new token", h.name),
            async || h.api.token("fb").await == new,
        )
        .await;
    }
    new
}

/// The fence and sealed blob Redis holds under `entry`.
async fn stored(redis: &RedisServer, entry: &str) -> (u64, String) {
    let fence = redis.cli(&["--raw", "HGET", entry, "fence"]).await;
    let blob = redis.cli(&["--raw", "HGET", entry, "blob"]).await;
    let fence = fence
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{entry} has no fence: {fence:?}"));
    (fence, blob.trim().to_owned())
}

/// `fb`'s status on `host`.
async fn status(host: &Host) -> String {
    let views = host.api.get("/v1/accounts").await.expect(200);
    let fb = views
        .as_array()
        .and_then(|all| all.iter().find(|v| v["name"] == "fb"))
        .cloned()
        .unwrap_or(Value::Null);
    fb["status"].as_str().unwrap_or("?").to_owned()
}

fn dump_logs(hosts: &[Host]) {
    for h in hosts {
        eprintln!("--- {}\n{}", h.name, h.serve.stderr());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restarted_from_an_older_snapshot_never_brings_back_a_spent_refresh_token() {
    let mut redis = RedisServer::start_snapshotting().await;
    let (fake, hosts) = rotating_fleet(&redis, Rotating::default(), |c| c).await;
    let entry = format!("{NAMESPACE}:secret:tokens:fb");

    // Refresh 1, seen by every host, then a snapshot; refresh 2 (which consumes refresh 1's
    // refresh token at the provider), seen by every host too.
    let first = refresh_everywhere(&hosts, 0, &fake).await;
    redis.snapshot().await;
    let snapshot = stored(&redis, &entry).await;
    let second = refresh_everywhere(&hosts, 1, &fake).await;
    let newer = stored(&redis, &entry).await;
    assert!(newer.0 > snapshot.0, "{newer:?} after {snapshot:?}");

    // Redis restarts from its snapshot: it holds refresh 1's set again.
    redis.restart_from_snapshot().await;
    assert_eq!(
        stored(&redis, &entry).await,
        snapshot,
        "Redis came back with the snapshot"
    );
    // Six seconds of asking every host, every 100 ms (the hosts hear Redis again within one).
    let started = Instant::now();
    let mut went_back = Vec::new();
    while started.elapsed() < Duration::from_secs(6) {
        for h in &hosts {
            let served = h.api.get("/v1/accounts/fb/token").await;
            if served.status == 200 && served.access_token() == first {
                went_back.push(format!("{} at {:?}", h.name, started.elapsed()));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A refresh through the one host that has not refreshed yet.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answer = hosts[2].api.post_empty("/v1/accounts/fb/refresh").await;
    let (reused, requests) = {
        let st = fake.lock();
        (st.reused_refresh_tokens, st.refresh_requests())
    };
    if reused != 0 || !went_back.is_empty() || answer.status != 200 {
        dump_logs(&hosts);
    }
    assert_eq!(
        reused,
        0,
        "a host presented a refresh token the provider had already consumed (the snapshot's) after Redis came back from its snapshot; {} refresh requests",
        requests.len()
    );
    assert!(
        went_back.is_empty(),
        "hosts served the snapshot's token instead of {second:?}: {went_back:?}"
    );
    assert_eq!(answer.status, 200, "{answer}");
    let third = answer.access_token();
    assert!(fake.lock().accepts_access_token(&third));
    for h in &hosts {
        wait_until(
            Duration::from_secs(5),
            &format!("{} to serve the newest token", h.name),
            async || h.api.token("fb").await == third,
        )
        .await;
        assert_eq!(status(h).await, "fresh", "{}", h.name);
    }
    // Redis holds the newest set, at a fence above every one before the restart.
    let now = stored(&redis, &entry).await;
    assert!(now.0 > newer.0, "{now:?} after {newer:?}");
    assert_ne!(now.1, snapshot.1);
    assert_eq!(fake.lock().refresh_requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_whose_lease_lapsed_while_it_waited_sends_nothing_to_the_provider() {
    let redis = RedisServer::start().await;
    // One request at a time to the provider's host: `fb`'s refresh on h1 waits behind a slow
    // one of `slow`, holding `fb`'s lease.
    let shape = Rotating {
        hosts: 2,
        accounts: vec!["fb", "slow"],
        refresh: "per_host = 1",
    };
    let (fake, hosts) = rotating_fleet(&redis, shape, |c| c).await;
    let lease = |account: &str| {
        let key = format!("{NAMESPACE}:lease:{account}");
        let redis = &redis;
        async move { redis.cli(&["GET", &key]).await }
    };
    fake.fail_next(1, Fault::Delay(Duration::from_secs(8)));
    let api = hosts[0].api.clone();
    let slow = tokio::spawn(async move { api.post_empty("/v1/accounts/slow/refresh").await });
    wait_until(
        Duration::from_secs(5),
        "h1 to take slow's lease",
        async || lease("slow").await.starts_with("h1/"),
    )
    .await;
    let api = hosts[0].api.clone();
    let stalled = tokio::spawn(async move { api.post_empty("/v1/accounts/fb/refresh").await });
    wait_until(
        Duration::from_secs(5),
        "h1 to take fb's lease",
        async || lease("fb").await.starts_with("h1/"),
    )
    .await;

    // h1 stalls past its 3 s lease (a paused VM, a swapped-out process) ...
    let h1 = hosts[0].serve.pid();
    proc::signal(h1, Signal::Stop);
    tokio::time::sleep(Duration::from_secs(4)).await;
    // ... meanwhile h2 takes the lapsed lease and refreshes: the refresh token h1 holds is
    // consumed.
    let answer = hosts[1].api.post_empty("/v1/accounts/fb/refresh").await;
    proc::signal(h1, Signal::Cont);
    assert_eq!(answer.status, 200, "h2 refreshed: {answer}");
    let newest = answer.access_token();
    // h1 wakes up, gets its turn at the provider once `slow`'s answer is in, and must notice
    // that its lease is gone before it sends anything.
    let slow = slow.await.expect("slow's refresh");
    assert_eq!(slow.status, 200, "{slow}");
    let stalled = stalled.await.expect("h1's refresh of fb");
    let (reused, requests) = {
        let st = fake.lock();
        (st.reused_refresh_tokens, st.refresh_requests())
    };
    if reused != 0 {
        dump_logs(&hosts);
    }
    assert_eq!(
        reused,
        0,
        "h1 sent the refresh token h2 had already used after its lease lapsed (h1's answer: {stalled}); {} refresh requests",
        requests.len()
    );
    assert_eq!(requests.len(), 2, "slow's and h2's refresh: {requests:?}");
    // h1 takes h2's set and stays healthy.
    wait_until(
        Duration::from_secs(10),
        "h1 to serve h2's token",
        async || hosts[0].api.token("fb").await == newest,
    )
    .await;
    assert_eq!(status(&hosts[0]).await, "fresh");
    assert!(
        stalled.body.contains("lease"),
        "h1's answer says why it sent nothing: {stalled}"
    );
}
