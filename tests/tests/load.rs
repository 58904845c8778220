//! Load while tokens rotate: many keep-alive API clients ask for the token as fast as they
//! can while the fake issues 4 s tokens and `serve` refreshes them 3 s before expiry, about
//! once a second (single-use refresh tokens). Every request must succeed, and no token
//! served may have expired at the fake before the request was sent. `make test` runs 100
//! clients for 10 s; `make bench` runs 500 clients for 60 s
//! (`TOKENWARDEN_LOAD=CLIENTSxSECONDS`). Figures are printed, never asserted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenwarden_e2e::harness::LegacyAccount;

fn load() -> (usize, u64) {
    let spec = std::env::var("TOKENWARDEN_LOAD").unwrap_or_else(|_| "100x10".into());
    let (clients, secs) = spec
        .split_once('x')
        .and_then(|(c, s)| Some((c.parse().ok()?, s.parse().ok()?)))
        .unwrap_or_else(|| panic!("TOKENWARDEN_LOAD={spec:?}: write CLIENTSxSECONDS, e.g. 500x60"));
    (clients, secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_while_tokens_rotate_every_second_all_served_valid_tokens() {
    let (clients, secs) = load();
    let (fake, env, _) = LegacyAccount::new(|c| c.expires_in(4))
        .extra("refresh_before = \"3s\"")
        .connected(4)
        .await;
    let (mut serve, api, key) = env.serve_with_new_key("load").await;
    let url = format!("{}/v1/accounts/fb/token", api.base_url());
    let grants_before = fake.lock().refresh_grants;
    let end = Instant::now() + Duration::from_secs(secs);
    let (served, distinct) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (url, key, fake) = (url.clone(), key.clone(), fake.clone());
        let (served, distinct) = (served.clone(), distinct.clone());
        tasks.push(tokio::spawn(async move {
            // One keep-alive connection per client.
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let mut latencies = Vec::new();
            let mut last = String::new();
            while Instant::now() < end {
                let asked = Instant::now();
                let answer = http.get(&url).bearer_auth(&key).send().await;
                let answer = match answer {
                    Ok(a) => a,
                    Err(e) => return Err(format!("client {client}: request failed: {e}")),
                };
                let status = answer.status();
                let body: serde_json::Value = match answer.json().await {
                    Ok(b) => b,
                    Err(e) => {
                        return Err(format!("client {client}: {status}, body unreadable: {e}"))
                    }
                };
                latencies.push(asked.elapsed());
                if status != 200 {
                    return Err(format!("client {client}: {status} {body}"));
                }
                let token = body["access_token"].as_str().unwrap_or_default().to_owned();
                // Served somewhere between asking and receiving: it must not have expired at
                // the fake before it was asked for (an answer may take a while under load).
                match fake.lock().access_token_expiry(&token) {
                    Some(expiry) if expiry > asked => {}
                    Some(_) => {
                        return Err(format!(
                            "client {client}: served a token that had expired at the fake before it was asked for"
                        ))
                    }
                    None => {
                        return Err(format!(
                            "client {client}: served a token the fake never issued"
                        ))
                    }
                }
                served.fetch_add(1, Ordering::Relaxed);
                if token != last {
                    distinct.fetch_add(1, Ordering::Relaxed);
                    last = token;
                }
            }
            Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for task in tasks {
        match task.await.expect("client task") {
            Ok(l) => latencies.extend(l),
            Err(e) => failures.push(e),
        }
    }
    latencies.sort();
    let n = latencies.len();
    let pct = |p: f64| latencies[((n - 1) as f64 * p).round() as usize];
    let refreshes = fake.lock().refresh_grants - grants_before;
    println!(
        "load: {clients} keep-alive clients for {secs} s while the token rotated {refreshes} times: {} served ({:.0}/s), p50 {:.2?}, p99 {:.2?}, max {:.2?}; {} failed; every token valid at the fake when asked for",
        served.load(Ordering::Relaxed),
        served.load(Ordering::Relaxed) as f64 / secs as f64,
        pct(0.5),
        pct(0.99),
        latencies[n - 1],
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} clients failed, first: {}",
        failures.len(),
        failures[0]
    );
    assert!(
        refreshes as u64 >= secs / 2,
        "the token kept rotating under load: {refreshes} refreshes in {secs} s"
    );
    assert_eq!(fake.lock().reused_refresh_tokens, 0);
    assert!(serve.running(), "serve exited:\n{}", serve.stderr());
}
