//! Figures, not assertions: how fast a running engine serves tokens over the local API and
//! through the CLI, and how a burst of 401 reports collapses into one refresh. Timing is
//! printed (`make bench` shows it), never asserted, so a busy machine cannot make it fail;
//! only behaviour is asserted.

use std::time::{Duration, Instant};

use tokenwarden_e2e::fakes::http::HttpTokenFake;
use tokenwarden_e2e::fakes::wechat::{WeChatConfig, WeChatFake};
use tokenwarden_e2e::{wait_until, Env};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut samples: Vec<Duration>, wall: Duration) {
    samples.sort();
    println!(
        "bench: {what}: n={} p50={:.2?} p99={:.2?} max={:.2?} throughput={:.0}/s",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
        samples.len() as f64 / wall.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bench_token_serving() {
    let fake = WeChatFake::start(WeChatConfig::default()).await;
    let env = Env::new(&fake.account_toml("wx", ""));
    let secret = fake.lock().config.secret.clone();
    env.set_secret("wx", &secret).await;
    let (serve, api, key) = env.serve_with_new_key("bench").await;
    let port = api.port;
    let url = format!("http://127.0.0.1:{port}/v1/accounts/wx/token");
    let http = reqwest::Client::new();
    let get = || http.get(&url).bearer_auth(&key).send();
    let first = get()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let token = first["access_token"].as_str().unwrap().to_owned();

    // One client, keep-alive, one request at a time.
    let (mut samples, started) = (Vec::new(), Instant::now());
    for _ in 0..2000 {
        let t = Instant::now();
        assert_eq!(get().await.unwrap().status(), 200);
        samples.push(t.elapsed());
    }
    report("GET token, 1 client sequential", samples, started.elapsed());

    // 32 clients at once.
    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                for _ in 0..200 {
                    let t = Instant::now();
                    let r = http.get(&url).bearer_auth(&key).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    samples.push(t.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.unwrap());
    }
    report(
        "GET token, 32 clients concurrent",
        samples,
        started.elapsed(),
    );

    // 500 programs report the same 401 at once: one upstream fetch serves them all.
    // Past the 5 s grace after serve's first fetch, so the burst really refreshes.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let issued_before = fake.lock().tokens_issued();
    let started = Instant::now();
    let report_url = format!("http://127.0.0.1:{port}/v1/accounts/wx/rejected");
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let (http, url, key, token) =
                (http.clone(), report_url.clone(), key.clone(), token.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&serde_json::json!({ "access_token": token }))
                    .send()
                    .await
                    .unwrap();
                let body: serde_json::Value = r.json().await.unwrap();
                (
                    t.elapsed(),
                    body["access_token"].as_str().unwrap().to_owned(),
                )
            })
        })
        .collect();
    let mut samples = Vec::new();
    let mut answers = std::collections::HashSet::new();
    for t in tasks {
        let (d, token) = t.await.unwrap();
        samples.push(d);
        answers.insert(token);
    }
    let wall = started.elapsed();
    assert_eq!(answers.len(), 1, "all reports get the same token");
    assert!(!answers.contains(&token), "and it is a new one");
    let fetches = fake.lock().tokens_issued() - issued_before;
    assert_eq!(fetches, 1, "one upstream fetch for the whole burst");
    report(
        &format!("POST rejected x500 burst ({fetches} upstream fetch)"),
        samples,
        wall,
    );

    // The CLI beside a running engine: process start, keychain read of the engine key, one request.
    let mut samples = Vec::new();
    let started = Instant::now();
    for _ in 0..10 {
        let t = Instant::now();
        env.run(&["token", "wx"], None).await.ok();
        samples.push(t.elapsed());
    }
    report("CLI `token` beside serve", samples, started.elapsed());
    // The same request by curl, whole process too: what a process that starts, connects and
    // asks costs without Tokenwarden's CLI (its start-up and keychain read of the engine key).
    let mut samples = Vec::new();
    let started = Instant::now();
    for _ in 0..10 {
        let t = Instant::now();
        let out = std::process::Command::new("curl")
            .args(["-sf", "-H", &format!("Authorization: Bearer {key}"), &url])
            .output()
            .expect("curl (Debian package curl)");
        assert!(out.status.success(), "curl: {out:?}");
        samples.push(t.elapsed());
    }
    report("curl, the same request", samples, started.elapsed());
    assert_eq!(serve.stop().await.code, 0);
}

/// How many `http` accounts the scale test configures.
const SCALE: usize = 1000;

/// 1,000 `http` accounts on a fresh keyring against a fast local fake: the first start fetches
/// and stores every set, a restart fetches none again, and an idle engine costs little CPU.
/// Slow (minutes: every set is a keychain write over D-Bus), so ignored by `make test`;
/// `make bench` runs it (it needs `-- --include-ignored`), `--nocapture` shows the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: run by `make bench` (cargo test --test bench -- --include-ignored --nocapture)"]
async fn bench_thousand_http_accounts() {
    let fake = HttpTokenFake::start(7200).await;
    let names: Vec<String> = (0..SCALE).map(|i| format!("h{i:04}")).collect();
    let accounts: String = names.iter().map(|n| fake.account_toml(n)).collect();
    let env = Env::new(&accounts);
    let key = env.create_api_key("scale").await;

    let started = Instant::now();
    let (serve, api) = env.serve_api(&key).await;
    let all_fresh = async || {
        let list = api.get("/v1/accounts").await.expect(200);
        let list = list.as_array().cloned().unwrap_or_default();
        list.len() == SCALE && list.iter().all(|a| a["status"] == "fresh")
    };
    wait_until(Duration::from_secs(900), "every account fresh", all_fresh).await;
    let first_start = started.elapsed();
    let stored = env.keychain_all().await;
    let fetched = {
        let st = fake.lock();
        for name in &names {
            assert_eq!(st.issued.get(name), Some(&1), "{name} fetched once");
            let set = stored
                .get(&format!("tokens:{name}"))
                .unwrap_or_else(|| panic!("tokens:{name} not in the keychain"));
            let set: serde_json::Value = serde_json::from_str(set).expect("a token set");
            assert_eq!(
                set["access_token"].as_str(),
                st.latest.get(name).map(String::as_str),
                "{name}: the keychain holds another token than the one fetched"
            );
        }
        st.total_issued()
    };
    assert_eq!(fetched, SCALE);
    println!(
        "bench: {SCALE} http accounts: first start fetched and stored all in {first_start:.1?}"
    );
    assert_eq!(serve.stop().await.code, 0);

    // A restart reads the sets back and fetches none.
    let started = Instant::now();
    let (mut serve, api) = env.serve_api(&key).await;
    let all_fresh = async || {
        let list = api.get("/v1/accounts").await.expect(200);
        let list = list.as_array().cloned().unwrap_or_default();
        list.len() == SCALE && list.iter().all(|a| a["status"] == "fresh")
    };
    wait_until(
        Duration::from_secs(600),
        "every account fresh after restart",
        all_fresh,
    )
    .await;
    let restart = started.elapsed();
    println!("bench: {SCALE} http accounts: restart to all fresh in {restart:.1?}");
    assert_eq!(
        fake.lock().total_issued(),
        SCALE,
        "the restart fetched again"
    );

    // Idle: 20 s with nothing due.
    let before = serve.cpu_seconds();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let idle = serve.cpu_seconds() - before;
    assert!(serve.running(), "{}", serve.stderr());
    println!(
        "bench: {SCALE} http accounts: serve used {idle:.2} CPU seconds over 20 idle seconds ({:.1}%)",
        idle / 20.0 * 100.0
    );
    assert_eq!(fake.lock().total_issued(), SCALE, "an idle engine fetched");
    assert_eq!(serve.stop().await.code, 0);
}

/// One wrk round: requests per second and p99 latency.
#[derive(Clone, Copy, Debug)]
struct Round {
    rps: f64,
    p99: Duration,
}

/// Runs `wrk` (2 threads, 64 keep-alive connections, 5 s) against `url`; every answer must
/// be 2xx (wrk counts the others as "Non-2xx").
fn wrk(url: &str, key: Option<&str>) -> Round {
    let mut cmd = std::process::Command::new("wrk");
    cmd.args(["-t2", "-c64", "-d5s", "--latency"]);
    if let Some(key) = key {
        cmd.args(["-H", &format!("Authorization: Bearer {key}")]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk (Debian package wrk; `make bench` installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk {url}:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {prefix:?} in wrk's output:\n{text}"))
            .to_owned()
    };
    Round {
        rps: field("Requests/sec:").parse().expect("requests/sec"),
        p99: wrk_duration(&field("99%")),
    }
}

/// `812.00us`, `3.26ms`, `1.02s`.
fn wrk_duration(text: &str) -> Duration {
    let (number, unit) = text.split_at(
        text.find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    let n: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("a wrk latency: {text}"));
    Duration::from_secs_f64(match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        other => panic!("wrk latency unit {other:?} in {text}"),
    })
}

fn median(mut rounds: Vec<Round>) -> Round {
    let mid = rounds.len() / 2;
    let mut by_rps = rounds.clone();
    by_rps.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    rounds.sort_by_key(|r| r.p99);
    Round {
        rps: by_rps[mid].rps,
        p99: rounds[mid].p99,
    }
}

/// Serving throughput beside its ceiling, in one run: a bare axum handler answering a fixed
/// token JSON (the `bare-axum` binary of this crate), then `GET /v1/accounts/{name}/token`
/// and `GET /token?name=` of a release `serve` with a valid key. wrk, 2 threads, 64
/// keep-alive connections, 5 s rounds taken in turn, median of 3. Needs `wrk`; `make bench`
/// installs it and runs this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs wrk and a quiet machine: run by `make bench`"]
async fn bench_serving_against_the_ceiling() {
    let fake = WeChatFake::start(WeChatConfig::default()).await;
    let env = Env::new(&fake.account_toml("wx", ""));
    let secret = fake.lock().config.secret.clone();
    env.set_secret("wx", &secret).await;
    let (serve, api, key) = env.serve_with_new_key("bench").await;
    api.get("/v1/accounts/wx/token").await.expect(200);

    let port = tokenwarden_e2e::harness::free_port();
    let mut bare = std::process::Command::new(env!("CARGO_BIN_EXE_bare-axum"))
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("bare-axum");
    let bare_url = format!("http://127.0.0.1:{port}/v1/accounts/wx/token");
    wait_until(Duration::from_secs(10), "bare-axum listens", async || {
        reqwest::get(&bare_url).await.is_ok()
    })
    .await;

    let targets = [
        (
            "bare axum, fixed JSON, no key (the ceiling)",
            bare_url.clone(),
            None,
        ),
        (
            "GET /v1/accounts/wx/token, valid key",
            format!("http://127.0.0.1:{}/v1/accounts/wx/token", api.port),
            Some(key.as_str()),
        ),
        (
            "GET /token?name=wx, valid key",
            format!("http://127.0.0.1:{}/token?name=wx", api.port),
            Some(key.as_str()),
        ),
    ];
    let mut rounds: Vec<Vec<Round>> = vec![Vec::new(); targets.len()];
    for _ in 0..3 {
        for (i, (_, url, key)) in targets.iter().enumerate() {
            rounds[i].push(wrk(url, *key));
        }
    }
    let _ = bare.kill();
    let _ = bare.wait();
    let ceiling = median(rounds[0].clone());
    println!("bench: serving, wrk -t2 -c64 -d5s, median of 3 rounds taken in turn");
    println!("bench: | what | requests/s | of the ceiling | p99 | p99 / ceiling's |");
    println!("bench: |---|---|---|---|---|");
    for ((what, _, _), rounds) in targets.iter().zip(rounds) {
        let m = median(rounds);
        println!(
            "bench: | {what} | {:.0} | {:.0}% | {:.2?} | {:.2}x |",
            m.rps,
            100.0 * m.rps / ceiling.rps,
            m.p99,
            m.p99.as_secs_f64() / ceiling.p99.as_secs_f64()
        );
    }
    assert_eq!(serve.stop().await.code, 0);
}
