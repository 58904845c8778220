//! Several `serve` hosts sharing their accounts through one real `redis-server`
//! (`[store] kind = "redis"`): one refresher per account among them, every host serving the
//! same current token, no rotated refresh token used twice, and the faults a fleet meets (a
//! host killed mid-refresh, Redis away for 20 s, a host with the wrong key).
//! Each host has its own data dir, API port and keychain service; only Redis is shared.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tokenwarden_e2e::fakes::oauth::{Fault, OAuthConfig, OAuthFake};
use tokenwarden_e2e::fakes::wechat::{WeChatConfig, WeChatFake};
use tokenwarden_e2e::fleet::{rotating_fleet, start_host, start_hosts, Host, Rotating, REFRESH};
use tokenwarden_e2e::harness::percentile;
use tokenwarden_e2e::redis::{until_all_serve_new, RedisServer, NAMESPACE};
use tokenwarden_e2e::{wait_until, Api, Env, Serve};

/// A fleet host's environment: `accounts` behind a `[store]` table on `redis`, 3 s leases.
fn host(redis: &RedisServer, i: usize, key: &str, accounts: &str) -> Env {
    redis.host(&format!("h{i}"), key, REFRESH, accounts)
}

const TICKET: &str =
    "[[account]]\nname = \"wx_ticket\"\nprovider = \"wechat-jsapi-ticket\"\ndepends_on = \"wx\"\n";

/// [`until_all_serve_new`] on every host's API: how long it took, and the token.
async fn until_all_serve(hosts: &[Host], old: &str, limit: Duration) -> (Duration, String) {
    let started = Instant::now();
    let apis: Vec<&Api> = hosts.iter().map(|h| &h.api).collect();
    let new = until_all_serve_new(&apis, "wx", old, limit).await;
    (started.elapsed(), new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hosts_serve_one_wechat_token_and_fetch_it_once_per_period() {
    // 20 s tokens refreshed at half their life; the previous token dies 2 s after a new one,
    // so a host serving a stale token is caught.
    let fake = WeChatFake::start(WeChatConfig {
        expires_in: 20,
        overlap: Duration::from_secs(2),
        ..WeChatConfig::default()
    })
    .await;
    let redis = RedisServer::start().await;
    let key = redis.new_key().await;
    let accounts = fake.account_toml("wx", "") + TICKET;
    let envs: Vec<Env> = (1..=3).map(|i| host(&redis, i, &key, &accounts)).collect();
    let secret = fake.lock().config.secret.clone();
    envs[0].set_secret("wx", &secret).await;
    let dump = redis.dump().await;
    assert!(
        !dump.values().any(|v| v.contains(&secret)),
        "Redis holds the appsecret in plain text: {dump:?}"
    );
    let hosts = start_hosts(envs).await;

    // A minute of serving: every host, every 50 ms.
    let started = Instant::now();
    let mut first_seen: HashMap<String, Vec<Option<Instant>>> = HashMap::new();
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(60) {
        for (i, h) in hosts.iter().enumerate() {
            let token = h.api.get("/v1/accounts/wx/token").await.access_token();
            assert!(
                fake.lock().token_alive(&token),
                "host {i} served a dead token at {:?}",
                started.elapsed()
            );
            let seen = first_seen.entry(token).or_insert_with(|| vec![None; 3]);
            seen[i].get_or_insert_with(Instant::now);
            served += 1;
            let ticket = h
                .api
                .get("/v1/accounts/wx_ticket/token")
                .await
                .access_token();
            assert!(
                fake.lock().ticket_valid(&ticket),
                "host {i} served an invalid ticket at {:?}",
                started.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let issued: Vec<_> = fake.lock().tokens.clone();
    {
        // The ticket follows its token on whichever host refreshed it: one fetch per token
        // (not one per host), each with a live token.
        let st = fake.lock();
        assert!(
            st.ticket_calls.len() <= st.tokens.len() + 1,
            "{} tickets fetched for {} tokens",
            st.ticket_calls.len(),
            st.tokens.len()
        );
        assert!(st.ticket_calls.iter().all(|c| c.token_alive));
    }
    // ~60 s of tokens refreshed every ~10 s: 7 fetches, give or take one. Three hosts each
    // refreshing on their own would fetch three times as many.
    assert!(
        (5..=9).contains(&issued.len()),
        "{} tokens fetched in a minute by three hosts",
        issued.len()
    );
    // How long after the fake issued a token every host served it.
    let mut reach: Vec<Duration> = issued
        .iter()
        .skip(1)
        .filter_map(|t| {
            let seen = first_seen.get(&t.value)?;
            let last = seen.iter().copied().collect::<Option<Vec<_>>>()?;
            last.into_iter().max().map(|at| at - t.issued_at)
        })
        .collect();
    reach.sort();
    assert!(!reach.is_empty(), "no refreshed token reached every host");

    // Many more refreshes, started through each host in turn (min_interval is 1 s).
    let mut old = hosts[0]
        .api
        .get("/v1/accounts/wx/token")
        .await
        .access_token();
    let mut turns = Vec::new();
    for round in 0..24 {
        let h = &hosts[round % 3];
        tokio::time::sleep(Duration::from_millis(1100)).await;
        h.api
            .post_empty("/v1/accounts/wx/refresh")
            .await
            .expect(200);
        let (took, new) = until_all_serve(&hosts, &old, Duration::from_secs(5)).await;
        assert!(fake.lock().token_alive(&new));
        turns.push(took);
        old = new;
    }
    turns.sort();
    // The day's WeChat allowance is the appid's: every host shows the fleet's fetches.
    let fetched = fake.lock().tokens.len() as u64;
    for h in &hosts {
        wait_until(
            Duration::from_secs(5),
            "the fleet's fetch count on every host",
            async || {
                let views = h.api.get("/v1/accounts").await.expect(200);
                views[0]["name"] == "wx" && views[0]["quota"]["used"].as_u64() == Some(fetched)
            },
        )
        .await;
    }
    let after = fake.lock().tokens.len() - issued.len();
    assert!(
        (24..=25).contains(&after),
        "24 refreshes through three hosts fetched {after} tokens"
    );
    println!(
        "fleet: {served} tokens served by 3 hosts over 60 s, {} fetched; a scheduled refresh reached every host in p50 {:?} / max {:?} ({} refreshes, 50 ms polling); a requested one in p50 {:?} / p99 {:?} / max {:?} ({} refreshes)",
        issued.len(),
        percentile(&reach, 0.5),
        reach.last().unwrap(),
        reach.len(),
        percentile(&turns, 0.5),
        percentile(&turns, 0.99),
        turns.last().unwrap(),
        turns.len()
    );
    for h in hosts {
        let out = h.serve.stop().await;
        assert_eq!(out.code, 0, "{out}");
    }
}

/// Legacy Fitbit accounts on three hosts: `fb` connected through host 1.
async fn rotating(
    configure: impl FnOnce(OAuthConfig) -> OAuthConfig,
) -> (OAuthFake, RedisServer, Vec<Host>) {
    let redis = RedisServer::start().await;
    let (fake, hosts) = rotating_fleet(&redis, Rotating::default(), configure).await;
    (fake, redis, hosts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotating_token_refreshed_through_every_host_is_never_used_twice() {
    let (fake, redis, hosts) = rotating(|c| c).await;

    // In turn: each refresh starts from the set the previous host stored.
    for round in 0..6 {
        let h = &hosts[round % 3];
        tokio::time::sleep(Duration::from_millis(1100)).await;
        h.api
            .post_empty("/v1/accounts/fb/refresh")
            .await
            .expect(200);
    }
    // At once: the same token reported rejected on every host, three times over (each
    // past the 5 s in which a report of a token just refreshed only gets it back).
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(5500)).await;
        let token = hosts[0]
            .api
            .get("/v1/accounts/fb/token")
            .await
            .access_token();
        let body = json!({ "access_token": token });
        let reports = hosts
            .iter()
            .map(|h| h.api.post("/v1/accounts/fb/rejected", &body));
        for answer in futures_util::future::join_all(reports).await {
            assert_eq!(answer.status, 200, "{answer}");
            if answer.access_token() == token {
                for h in &hosts {
                    eprintln!("--- {}\n{}", h.name, h.serve.stderr());
                }
                panic!("a host answered a report with the reported token: {answer}");
            }
        }
    }
    let (reused, requests, live) = {
        let st = fake.lock();
        let live = st.current_access_token().expect("a current token");
        (st.reused_refresh_tokens, st.refresh_requests(), live)
    };
    assert_eq!(reused, 0, "a refresh token was presented twice");
    // 6 refreshes in turn, and one per round of reports.
    assert_eq!(requests.len(), 9, "{requests:?}");
    // Each host's log holds what it did, with its name: together, the consent (through
    // host 1) and the 9 refreshes.
    let mut logged = Vec::new();
    for h in &hosts {
        let log = h
            .api
            .get("/v1/history?account=fb&limit=100")
            .await
            .expect(200);
        for entry in log.as_array().expect("entries") {
            assert_eq!(entry["host"], h.name.as_str(), "{entry}");
            assert_eq!(entry["outcome"], "ok", "{entry}");
            logged.push(format!(
                "{} {}",
                h.name,
                entry["trigger"].as_str().unwrap_or("")
            ));
        }
    }
    logged.sort();
    assert_eq!(logged.len(), 10, "{logged:?}");
    assert!(logged.contains(&"h1 connect".to_owned()), "{logged:?}");
    // Redis holds no token in plain text (nor the client secret).
    let dump = redis.dump().await;
    let refresh = fake.lock().latest_refresh_token().expect("a refresh token");
    let secret = fake.lock().config.client_secret.clone();
    for value in [&live, &refresh, &secret] {
        assert!(
            !dump.values().any(|v| v.contains(value.as_str())),
            "{dump:?}"
        );
    }
    assert!(
        dump.contains_key(&format!("{NAMESPACE}:secret:tokens:fb")),
        "{dump:?}"
    );
    for h in &hosts {
        assert_eq!(
            h.api.get("/v1/accounts/fb/token").await.access_token(),
            live
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_lease_holder_mid_refresh_hands_the_refresh_to_another_host() {
    let (fake, redis, mut hosts) = rotating(|c| c).await;
    let lease_key = format!("{NAMESPACE}:lease:fb");
    for round in 0..3 {
        // The provider takes 4 s to answer the next refresh: the holder dies waiting.
        fake.fail_next(1, Fault::Delay(Duration::from_secs(4)));
        let before = hosts[0]
            .api
            .get("/v1/accounts/fb/token")
            .await
            .access_token();
        let holder = hosts[0].api.clone();
        let first = tokio::spawn(async move { holder.post_empty("/v1/accounts/fb/refresh").await });
        let prefix = format!("{}/", hosts[0].name);
        wait_until(
            Duration::from_secs(5),
            "the first host to take the lease",
            async || redis.cli(&["GET", &lease_key]).await.starts_with(&prefix),
        )
        .await;
        // Another host is asked for a fresh token meanwhile: it waits for the lease.
        let waiter = hosts[1].api.clone();
        let waiter =
            tokio::spawn(async move { waiter.post_empty("/v1/accounts/fb/refresh").await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let killed_at = Instant::now();
        let dead = hosts.remove(0);
        dead.serve.kill9().await;
        let _ = first.await;
        let answer = waiter.await.expect("waiter");
        let took = killed_at.elapsed();
        assert_eq!(answer.status, 200, "the waiting host refreshed: {answer}");
        assert!(took < Duration::from_secs(8), "took over after {took:?}");
        let after = hosts[0]
            .api
            .get("/v1/accounts/fb/token")
            .await
            .access_token();
        assert_ne!(after, before);
        assert!(fake.lock().accepts_access_token(&after));
        assert_eq!(fake.lock().reused_refresh_tokens, 0, "round {round}");
        println!("fleet: round {round}: the lease holder was killed mid-refresh; another host had refreshed {took:?} later");
        // The killed host comes back, last in line, and serves the stored set.
        let back = start_host(dead.name, dead.env).await;
        assert_eq!(
            back.api.get("/v1/accounts/fb/token").await.access_token(),
            after
        );
        hosts.push(back);
    }
    assert_eq!(fake.lock().reused_refresh_tokens, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_that_restarts_empty_gets_the_hosts_sets_back_and_refreshing_goes_on() {
    let (fake, mut redis, hosts) = rotating(|c| c).await;
    for h in &hosts[..2] {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        h.api
            .post_empty("/v1/accounts/fb/refresh")
            .await
            .expect(200);
    }
    // Every host has taken in the newest set before Redis goes.
    let newest = fake.lock().current_access_token().expect("a current token");
    for h in &hosts {
        wait_until(
            Duration::from_secs(5),
            "every host to hold the newest set",
            async || h.api.get("/v1/accounts/fb/token").await.access_token() == newest,
        )
        .await;
    }
    let held = newest;
    let entry = format!("{NAMESPACE}:secret:tokens:fb");
    // No persistence: Redis comes back empty, the client secret and the token set gone.
    redis.restart().await;
    assert_eq!(redis.cli(&["EXISTS", &entry]).await.trim(), "0");
    wait_until(
        Duration::from_secs(15),
        "a host to store its set again",
        async || redis.cli(&["EXISTS", &entry]).await.trim() == "1",
    )
    .await;
    for h in &hosts {
        let served = h.api.get("/v1/accounts/fb/token").await.access_token();
        if served != held {
            for h in &hosts {
                eprintln!("--- {}\n{}", h.name, h.serve.stderr());
            }
            panic!("{} serves {served}, not the held {held}", h.name);
        }
    }
    // The rotation goes on from the set the hosts kept, with the client secret a host read
    // before (stored again as it is used), then through a host that never refreshed.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let answer = hosts[0]
        .api
        .post("/v1/accounts/fb/rejected", &json!({ "access_token": held }))
        .await;
    assert_eq!(answer.status, 200, "{answer}");
    assert_ne!(answer.access_token(), held);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    hosts[2]
        .api
        .post_empty("/v1/accounts/fb/refresh")
        .await
        .expect(200);
    let st = fake.lock();
    assert_eq!(st.reused_refresh_tokens, 0);
    assert_eq!(
        st.refresh_requests().len(),
        4,
        "{:?}",
        st.refresh_requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_away_for_20_seconds_fails_no_request_for_a_valid_token() {
    let fake = WeChatFake::start(WeChatConfig {
        expires_in: 30,
        overlap: Duration::from_secs(2),
        ..WeChatConfig::default()
    })
    .await;
    let mut redis = RedisServer::start_persistent().await;
    let key = redis.new_key().await;
    let envs: Vec<Env> = (1..=3)
        .map(|i| host(&redis, i, &key, &fake.account_toml("wx", "")))
        .collect();
    let secret = fake.lock().config.secret.clone();
    envs[0].set_secret("wx", &secret).await;
    let hosts = start_hosts(envs).await;
    let first = hosts[0]
        .api
        .get("/v1/accounts/wx/token")
        .await
        .access_token();

    redis.stop().await;
    let down = Instant::now();
    let mut answered = 0;
    let mut refused = 0;
    while down.elapsed() < Duration::from_secs(20) {
        for h in &hosts {
            let answer = h.api.get("/v1/accounts/wx/token").await;
            // A refusal is fair only for a token that is no longer valid.
            if answer.status == 200 {
                assert!(fake.lock().token_alive(&answer.access_token()));
                answered += 1;
            } else {
                assert!(fake.lock().tokens.iter().all(|t| !t.alive()), "{answer}");
                refused += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let during = fake.lock().tokens.len();
    let up = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("tokenwarden_shared_store_up{"))
            .map(|l| l.ends_with(" 1"))
    };
    let metrics = hosts[0].api.get("/metrics").await;
    assert_eq!(up(&metrics.body), Some(false), "{}", metrics.body);
    redis.restart().await;
    // The token (30 s, refreshed at 15 s left) came due during the outage: one host refreshes
    // once Redis is back, and every host serves it.
    let (took, new) = until_all_serve(&hosts, &first, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = hosts[0].api.get("/metrics").await;
    assert_eq!(up(&metrics.body), Some(true), "{}", metrics.body);
    let st = fake.lock();
    assert_eq!(
        refused, 0,
        "no token request failed while the token was valid"
    );
    assert_eq!(
        during, 1,
        "no host fetched without the lease while Redis was away"
    );
    assert_eq!(
        st.tokens.len(),
        2,
        "one refresh after Redis came back, not one per host"
    );
    assert!(st.token_alive(&new));
    println!(
        "fleet: Redis away 20 s: {answered} token requests answered, {refused} refused; every host served the next token {took:?} after Redis came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hosts_started_at_once_on_an_empty_store_fetch_one_token() {
    let fake = WeChatFake::start(WeChatConfig::default()).await;
    let redis = RedisServer::start().await;
    let key = redis.new_key().await;
    let envs: Vec<Env> = (1..=3)
        .map(|i| host(&redis, i, &key, &fake.account_toml("wx", "")))
        .collect();
    let secret = fake.lock().config.secret.clone();
    envs[0].set_secret("wx", &secret).await;
    let mut serves: Vec<Serve> = envs.iter().map(Env::spawn_serve).collect();
    for serve in &mut serves {
        serve.wait_api().await;
    }
    let mut tokens = Vec::new();
    for env in &envs {
        tokens.push(env.token("wx").await);
    }
    assert!(tokens.windows(2).all(|w| w[0] == w[1]), "{tokens:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.lock().tokens.len(), 1, "one fetch for three hosts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_the_wrong_store_key_says_so_and_changes_nothing() {
    let fake = WeChatFake::start(WeChatConfig::default()).await;
    let redis = RedisServer::start().await;
    let key = redis.new_key().await;
    let right = host(&redis, 1, &key, &fake.account_toml("wx", ""));
    let secret = fake.lock().config.secret.clone();
    right.set_secret("wx", &secret).await;
    let before = redis.dump().await;
    assert!(before.keys().any(|k| k.ends_with(":check")), "{before:?}");

    let other_key = redis.new_key().await;
    let wrong = host(&redis, 2, &other_key, &fake.account_toml("wx", ""));
    let out = wrong.spawn_serve().wait_exit(Duration::from_secs(20)).await;
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("store key does not open"),
        "the error names the key: {out}"
    );
    let set = wrong
        .run(&["secret", "set", "wx"], Some("another-secret"))
        .await;
    assert_ne!(set.code, 0, "{set}");
    assert!(set.stderr.contains("store key does not open"), "{set}");
    assert_eq!(redis.dump().await, before, "Redis is unchanged");
    assert!(fake.lock().token_calls.is_empty(), "nothing was fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_password_comes_from_the_environment_and_a_key_from_the_keychain() {
    let fake = WeChatFake::start(WeChatConfig::default()).await;
    let redis = RedisServer::start_with_user("ops", "tw-canary-redis-pass").await;
    let url = format!("redis://ops@127.0.0.1:{}", redis.port);
    let accounts = format!(
        "[store]\nkind = \"redis\"\nurl = \"{url}\"\nnamespace = \"{NAMESPACE}\"\n\n{}",
        fake.account_toml("wx", "")
    );
    let mut env = Env::new(&accounts);
    // No key anywhere: the error says how to make one; `store init` makes it in this host's
    // keychain (without needing Redis), and never makes a second one.
    let out = env.run(&["list"], None).await;
    assert!(out.stderr.contains("tokenwarden store init"), "{out}");
    env.run(&["store", "init"], None).await.ok();
    assert!(env.keychain_get("store:key").await.is_some());
    let again = env.run(&["store", "init"], None).await;
    assert_ne!(again.code, 0, "a key is never replaced: {again}");
    // No password: Redis refuses, and the error names the store, not a password.
    let out = env.run(&["list"], None).await;
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains(&url), "{out}");
    env.extra_vars
        .push(("TOKENWARDEN_REDIS_PASSWORD", "tw-canary-redis-pass".into()));
    let secret = fake.lock().config.secret.clone();
    env.set_secret("wx", &secret).await;
    let token = env.token("wx").await;
    assert!(fake.lock().token_alive(&token));
    assert!(redis
        .dump()
        .await
        .keys()
        .any(|k| k.ends_with(":secret:tokens:wx")));
    for out in env.transcript.lock().unwrap().iter() {
        assert!(!format!("{out}").contains("tw-canary-redis-pass"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disconnect_on_one_host_disconnects_every_host_and_no_refresh_undoes_it() {
    let (fake, redis, hosts) = rotating(|c| c).await;
    let entry = format!("{NAMESPACE}:secret:tokens:fb");
    hosts[1].env.run(&["disconnect", "fb"], None).await.ok();
    for h in &hosts {
        wait_until(
            Duration::from_secs(5),
            "every host to show fb disconnected",
            async || h.env.status("fb").await == "not_connected",
        )
        .await;
        let answer = h.api.get("/v1/accounts/fb/token").await;
        assert_ne!(answer.status, 200, "{answer}");
    }
    // A deletion, not a loss: the entry is there, a sealed deletion (bound to its entry and
    // fence like a set, so nobody without the key can delete by copying it), and no host
    // stores its copy back, even after every host has heard from Redis again.
    let deletion = redis.cli(&["--raw", "HGET", &entry, "blob"]).await;
    assert!(deletion.starts_with("v2:"), "{deletion}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        redis.cli(&["--raw", "HGET", &entry, "blob"]).await,
        deletion
    );
    for h in &hosts {
        assert_eq!(h.env.status("fb").await, "not_connected");
    }
    assert_eq!(fake.lock().reused_refresh_tokens, 0);
}
