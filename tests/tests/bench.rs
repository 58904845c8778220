//! Figures, not assertions: how fast a running engine serves tokens over the local API and
//! through the CLI, and how a burst of 401 reports collapses into one refresh. Timing is
//! printed (`make bench` shows it), never asserted, so a busy machine cannot make it fail;
//! only behaviour is asserted.

use std::time::{Duration, Instant};

use tokenwarden_e2e::fakes::http::HttpTokenFake;
use tokenwarden_e2e::fakes::wechat::{WeChatConfig, WeChatFake};
use tokenwarden_e2e::harness::percentile;
use tokenwarden_e2e::{wait_until, Env};

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
    // `TOKENWARDEN_BASELINE_BIN`: another build of `tokenwarden` (say, before a change) served
    // beside this one and measured in the same rounds, so both figures share one machine state.
    let baseline = std::env::var_os("TOKENWARDEN_BASELINE_BIN").map(std::path::PathBuf::from);
    let baseline = match baseline {
        Some(bin) => {
            let mut other = Env::new(&fake.account_toml("wx", ""));
            other.bin = Some(bin);
            other.set_secret("wx", &secret).await;
            let (serve, api, key) = other.serve_with_new_key("bench").await;
            api.get("/v1/accounts/wx/token").await.expect(200);
            Some((other, serve, api, key))
        }
        None => None,
    };

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

    let mut targets = vec![
        (
            "bare axum, fixed JSON, no key (the ceiling)".to_owned(),
            bare_url.clone(),
            None,
        ),
        (
            "GET /v1/accounts/wx/token, valid key".to_owned(),
            format!("http://127.0.0.1:{}/v1/accounts/wx/token", api.port),
            Some(key.as_str()),
        ),
        (
            "GET /token?name=wx, valid key".to_owned(),
            format!("http://127.0.0.1:{}/token?name=wx", api.port),
            Some(key.as_str()),
        ),
    ];
    if let Some((_, _, api, key)) = &baseline {
        targets.push((
            "baseline: GET /v1/accounts/wx/token, valid key".to_owned(),
            format!("http://127.0.0.1:{}/v1/accounts/wx/token", api.port),
            Some(key.as_str()),
        ));
        targets.push((
            "baseline: GET /token?name=wx, valid key".to_owned(),
            format!("http://127.0.0.1:{}/token?name=wx", api.port),
            Some(key.as_str()),
        ));
    }
    let mut rounds: Vec<Vec<Round>> = vec![Vec::new(); targets.len()];
    for _ in 0..3 {
        for (i, (_, url, key)) in targets.iter().enumerate() {
            rounds[i].push(wrk(url, *key));
        }
    }
    let _ = bare.kill();
    let _ = bare.wait();
    print_against_the_ceiling(
        "serving, wrk -t2 -c64 -d5s, median of 3 rounds taken in turn",
        targets.iter().map(|(what, _, _)| what.as_str()),
        rounds,
    );

    // The same pair on Unix sockets (the CLI's way in, no key: the kernel vouches for the
    // caller), loaded by `loadgen` since wrk cannot reach a socket.
    let dir = tempfile::tempdir().expect("a dir for the ceiling's socket");
    let bare_socket = dir.path().join("bare.sock");
    let mut bare = std::process::Command::new(env!("CARGO_BIN_EXE_bare-axum"))
        .arg(format!("unix:{}", bare_socket.display()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("bare-axum");
    wait_until(Duration::from_secs(10), "bare-axum's socket", async || {
        bare_socket.exists()
    })
    .await;
    let ours = env.engine_holder().expect("the engine's holder file")["socket"]
        .as_str()
        .expect("the engine's socket")
        .to_owned();
    let socket_targets = [
        (
            "bare axum on a Unix socket (the ceiling)",
            bare_socket.display().to_string(),
            "/v1/accounts/wx/token",
        ),
        (
            "GET /v1/accounts/wx/token on the engine's socket",
            ours.clone(),
            "/v1/accounts/wx/token",
        ),
        (
            "GET /token?name=wx on the engine's socket",
            ours,
            "/token?name=wx",
        ),
    ];
    let mut rounds: Vec<Vec<Round>> = vec![Vec::new(); socket_targets.len()];
    for _ in 0..3 {
        for (i, (_, socket, target)) in socket_targets.iter().enumerate() {
            rounds[i].push(loadgen(&format!("unix:{socket}"), target));
        }
    }
    let _ = bare.kill();
    let _ = bare.wait();
    print_against_the_ceiling(
        "serving on Unix sockets, loadgen 2 threads, 64 connections, 5 s, median of 3 rounds taken in turn",
        socket_targets.iter().map(|(what, _, _)| *what),
        rounds,
    );
    assert_eq!(serve.stop().await.code, 0);
    if let Some((_env, serve, _, _)) = baseline {
        assert_eq!(serve.stop().await.code, 0);
    }
}

/// One table of medians, the first row being the ceiling the others are measured against.
fn print_against_the_ceiling<'a>(
    title: &str,
    what: impl Iterator<Item = &'a str>,
    rounds: Vec<Vec<Round>>,
) {
    let ceiling = median(rounds[0].clone());
    println!("bench: {title}");
    println!("bench: | what | requests/s | of the ceiling | p99 | p99 / ceiling's |");
    println!("bench: |---|---|---|---|---|");
    for (what, rounds) in what.zip(rounds) {
        let m = median(rounds);
        println!(
            "bench: | {what} | {:.0} | {:.0}% | {:.2?} | {:.2}x |",
            m.rps,
            100.0 * m.rps / ceiling.rps,
            m.p99,
            m.p99.as_secs_f64() / ceiling.p99.as_secs_f64()
        );
    }
}

/// `loadgen ADDRESS TARGET 64 5` (this crate's binary): one 5 s round; every answer must be 200.
fn loadgen(address: &str, target: &str) -> Round {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([address, target, "64", "5"])
        .output()
        .expect("loadgen");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let words: Vec<&str> = text.split_whitespace().collect();
    let field = |name: &str| -> f64 {
        let at = words.iter().position(|w| *w == name).unwrap_or_else(|| {
            panic!(
                "no {name} in loadgen's output: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        words[at + 1].parse().expect("a number")
    };
    assert!(
        out.status.success() && field("errors") == 0.0,
        "loadgen {address}{target}: {text}"
    );
    Round {
        rps: field("per_second"),
        p99: Duration::from_micros(field("p99_us") as u64),
    }
}

/// How many accounts the fleet benchmark configures.
const FLEET: usize = 10_000;

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    tokenwarden_e2e::proc::rss_kib(pid) as f64 / 1024.0
}

/// The engine's metrics as (series, value) lines. Megabytes with ten thousand accounts: read
/// by reqwest and split by lines (the strict parser in `tokenwarden_e2e::prometheus` checks
/// every histogram against every sample, which takes minutes at this size).
async fn scrape(api: &tokenwarden_e2e::Api) -> Vec<(String, f64)> {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", api.base_url()))
        .bearer_auth(api.key.as_deref().unwrap_or_default())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("tokenwarden_secret_writes")
                || l.starts_with("tokenwarden_refresh_lateness")
        })
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn metric(m: &[(String, f64)], series: &str) -> f64 {
    m.iter().find(|(s, _)| s == series).map_or(0.0, |(_, v)| *v)
}

/// Cumulative bucket counts of a histogram (upper bound → count), `+Inf` as infinity.
fn buckets(m: &[(String, f64)], name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut b: Vec<(f64, f64)> = m
        .iter()
        .filter_map(|(s, v)| {
            let le = s.strip_prefix(&prefix)?.trim_end_matches("\"}");
            Some((le.parse::<f64>().unwrap_or(f64::INFINITY), *v))
        })
        .collect();
    b.sort_by(|a, b| a.0.total_cmp(&b.0));
    b
}

/// The bucket bound under which `p` of the observations between two scrapes fall.
fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], p: f64) -> (f64, f64) {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|b| b.0 == *le).map_or(0.0, |b| b.1);
            (*le, n - was)
        })
        .collect();
    let total = counts.last().map_or(0.0, |c| c.1);
    let bound = counts
        .iter()
        .find(|(_, n)| *n >= total * p)
        .map_or(f64::INFINITY, |c| c.0);
    (bound, total)
}

/// Runs `f` over `items`, `width` at a time.
async fn each<T, F, Fut>(items: &[T], width: usize, f: F)
where
    T: Clone + Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use futures_util::StreamExt;
    futures_util::stream::iter(items.iter().cloned().map(|i| tokio::spawn(f(i))))
        .buffer_unordered(width)
        .for_each(|r| async move { r.unwrap() })
        .await;
}

/// 10,000 `http` accounts on one engine with the sealed database store (`[store] kind =
/// "database"`): a first start from an empty store (every set fetched once and saved), a
/// restart (healthy, every set read back, nothing fetched), resident memory, idle CPU, then
/// a minute in which every account refreshes every ~30 s: lateness against each deadline,
/// CPU and store writes per refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: run by `make bench` (cargo test --test bench -- --include-ignored --nocapture)"]
async fn bench_ten_thousand_accounts() {
    // `TOKENWARDEN_BENCH_ACCOUNTS=100000` for issue 24's hundred thousand, or a list
    // (`10000,100000`) to measure each size in turn in one run (README: slow proofs).
    let sizes: Vec<usize> = match std::env::var("TOKENWARDEN_BENCH_ACCOUNTS") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("TOKENWARDEN_BENCH_ACCOUNTS: {n:?} is not a count"))
            })
            .collect(),
        Err(_) => vec![FLEET],
    };
    for fleet in sizes {
        many_accounts(fleet).await;
    }
}

async fn many_accounts(fleet: usize) {
    let fake = HttpTokenFake::start(7200).await;
    let names: Vec<String> = (0..fleet).map(|i| format!("h{i:05}")).collect();
    let accounts: String = names.iter().map(|n| fake.account_toml(n)).collect();
    let env = Env::with_refresh(
        "retry_initial = \"1s\"\nmin_interval = \"1s\"\nper_host = 16",
        &format!("[store]\nkind = \"database\"\n\n{accounts}"),
    );
    let key = env.create_api_key("fleet").await;
    // The account list is megabytes at this size: asked twice a second, not ten times, and
    // by reqwest (the harness's client keeps every answer and reads bodies a byte at a time).
    let http = reqwest::Client::new();
    let all_fresh = async |api: &tokenwarden_e2e::Api, limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            let list: Vec<serde_json::Value> = http
                .get(format!("{}/v1/accounts", api.base_url()))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if list.iter().filter(|a| a["status"] == "fresh").count() == fleet {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not all {fleet} fresh after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };

    // First start, empty store.
    let started = Instant::now();
    let (serve, api) = env.serve_api(&key).await;
    let healthy = started.elapsed();
    all_fresh(&api, Duration::from_secs(600)).await;
    let first_start = started.elapsed();
    let rss_first = rss_mib(serve.pid());
    {
        let st = fake.lock();
        for name in &names {
            assert_eq!(st.issued.get(name), Some(&1), "{name} fetched once");
        }
    }
    let writes = metric(&scrape(&api).await, "tokenwarden_secret_writes_total");
    println!(
        "bench: {fleet} accounts (database store): first start: /healthz in {healthy:.2?}, all fetched and saved in {first_start:.1?}, {writes} store writes, {rss_first:.0} MiB resident"
    );
    assert_eq!(serve.stop().await.code, 0);

    // Restart: every set comes back from the store; nothing is fetched.
    let started = Instant::now();
    let (mut serve, api) = env.serve_api(&key).await;
    let healthy = started.elapsed();
    all_fresh(&api, Duration::from_secs(120)).await;
    let restart = started.elapsed();
    let rss_restart = rss_mib(serve.pid());
    assert_eq!(
        fake.lock().total_issued(),
        fleet,
        "the restart fetched again"
    );
    // Every account serves exactly the token fetched for it: each saved set was the latest.
    let latest = fake.lock().latest.clone();
    let latest = std::sync::Arc::new(latest);
    let api = std::sync::Arc::new(api);
    each(&names, 32, |name| {
        let (api, latest) = (api.clone(), latest.clone());
        async move {
            assert_eq!(api.token(&name).await, latest[&name], "{name}");
        }
    })
    .await;
    println!(
        "bench: {fleet} accounts (database store): restart: /healthz in {healthy:.2?}, all read back in {restart:.2?}, 0 fetched, {rss_restart:.0} MiB resident"
    );
    let asked = Instant::now();
    let listed = http
        .get(format!("{}/v1/accounts", api.base_url()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    println!(
        "bench: {fleet} accounts (database store): GET /v1/accounts answered {:.1} MiB in {:.2?}",
        listed.len() as f64 / 1048576.0,
        asked.elapsed()
    );
    // A page of 1,000, from the middle (the engine walks the config to find `after`).
    let asked = Instant::now();
    let page = http
        .get(format!(
            "{}/v1/accounts?limit=1000&after={}",
            api.base_url(),
            names[fleet / 2]
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let has_next = page.headers().contains_key("link");
    let page = page.bytes().await.unwrap();
    println!(
        "bench: {fleet} accounts (database store): GET /v1/accounts?limit=1000&after=(the middle) answered {:.0} KiB in {:.2?} (next page linked: {has_next})",
        page.len() as f64 / 1024.0,
        asked.elapsed()
    );
    // The CLI beside the engine (its Unix socket), as a person types it.
    for args in [&["list"][..], &["list", "--json"][..]] {
        let asked = Instant::now();
        let out = env.run(args, None).await.ok();
        println!(
            "bench: {fleet} accounts (database store): `tokenwarden {}` printed {:.1} MiB in {:.2?}",
            args.join(" "),
            out.stdout.len() as f64 / 1048576.0,
            asked.elapsed()
        );
    }

    // Idle: nothing due for two hours.
    let before = serve.cpu_seconds();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let idle = serve.cpu_seconds() - before;
    assert!(serve.running(), "{}", serve.stderr());
    println!(
        "bench: {fleet} accounts (database store): idle: {idle:.3} CPU seconds over 20 s ({:.2}%)",
        idle / 20.0 * 100.0
    );
    assert_eq!(fake.lock().total_issued(), fleet, "an idle engine fetched");

    // Under load: 60 s tokens (refreshed ~30 s after issue), every account refreshed once by
    // hand to start the cycle, then one minute measured.
    fake.lock().expires_in = 60;
    each(&names, 32, |name| {
        let api = api.clone();
        async move {
            api.post_empty(&format!("/v1/accounts/{name}/refresh"))
                .await
                .expect(200);
        }
    })
    .await;
    let m0 = scrape(&api).await;
    let (cpu0, issued0) = (serve.cpu_seconds(), fake.lock().total_issued());
    let window = Duration::from_secs(60);
    tokio::time::sleep(window).await;
    let (cpu1, issued1) = (serve.cpu_seconds(), fake.lock().total_issued());
    let rss_load = rss_mib(serve.pid());
    let m1 = scrape(&api).await;
    let refreshes = issued1 - issued0;
    let writes = metric(&m1, "tokenwarden_secret_writes_total")
        - metric(&m0, "tokenwarden_secret_writes_total");
    let late0 = buckets(&m0, "tokenwarden_refresh_lateness_seconds");
    let late1 = buckets(&m1, "tokenwarden_refresh_lateness_seconds");
    let (p50, scheduled) = bucket_quantile(&late0, &late1, 0.50);
    let (p99, _) = bucket_quantile(&late0, &late1, 0.99);
    let cpu = cpu1 - cpu0;
    println!(
        "bench: {fleet} accounts (database store): {refreshes} refreshes in {window:?} ({:.0}/s; {scheduled} scheduled), lateness p50 <= {:.0} ms, p99 <= {:.0} ms, CPU {:.2} ms per refresh, {:.2} store writes per refresh, {rss_load:.0} MiB resident ({:.0} MiB after answering /metrics for every account)",
        refreshes as f64 / window.as_secs_f64(),
        p50 * 1000.0,
        p99 * 1000.0,
        cpu * 1000.0 / refreshes.max(1) as f64,
        writes / refreshes.max(1) as f64,
        rss_mib(serve.pid())
    );
    assert!(refreshes > fleet, "every account refreshed in the minute");
    assert_eq!(serve.stop().await.code, 0);
}

/// 10,000 programs report the same 401 at once, each on its own connection: exactly one
/// upstream refresh, and how long until every caller holds the new token, beside the fake
/// provider's own answer time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs 20,000 open files: run by `make bench`"]
async fn bench_rejected_storm() {
    const CALLERS: usize = 10_000;
    let fake = WeChatFake::start(WeChatConfig::default()).await;
    let env = Env::new(&fake.account_toml("wx", ""));
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    env.write_config(&config.replace("[api]\n", "[api]\nmax_connections = 12000\n"));
    let secret = fake.lock().config.secret.clone();
    env.set_secret("wx", &secret).await;
    let (serve, api, key) = env.serve_with_new_key("storm").await;
    let token = api.token("wx").await;
    // The provider's own answer time, from here.
    let base = format!("http://{}", fake.addr);
    let upstream = {
        let http = reqwest::Client::new();
        let mut samples = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let _ = http
                .get(format!("{base}/cgi-bin/check?access_token={token}"))
                .send()
                .await;
            samples.push(t.elapsed());
        }
        samples.sort();
        percentile(&samples, 0.5)
    };
    // Past the grace after serve's first fetch, so the storm really refreshes.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let issued_before = fake.lock().tokens_issued();
    // A bare HTTP/1.1 request on a connection of its own per caller, as separate programs
    // have: the client's own cost (a reqwest client each) would otherwise be measured too.
    let body = serde_json::json!({ "access_token": token }).to_string();
    let request = std::sync::Arc::new(format!(
        "POST /v1/accounts/wx/rejected HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        port = api.port,
    ));
    let go = std::sync::Arc::new(tokio::sync::Barrier::new(CALLERS + 1));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (request, go) = (request.clone(), go.clone());
            let port = api.port;
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                go.wait().await;
                let t = Instant::now();
                let answer = async {
                    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                    stream.write_all(request.as_bytes()).await?;
                    let mut text = String::new();
                    stream.read_to_string(&mut text).await?;
                    std::io::Result::Ok(text)
                };
                let body: serde_json::Value = match answer.await {
                    Ok(text) => text
                        .split_once("\r\n\r\n")
                        .and_then(|(_, b)| serde_json::from_str(b).ok())
                        .unwrap_or_else(|| serde_json::json!({ "answer": text })),
                    Err(e) => serde_json::json!({ "failed": e.to_string() }),
                };
                (t.elapsed(), body)
            })
        })
        .collect();
    go.wait().await;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut answers = std::collections::HashMap::<String, usize>::new();
    for t in tasks {
        let (d, body) = t.await.unwrap();
        samples.push(d);
        let what = body["access_token"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("no token: {body}"));
        *answers.entry(what).or_default() += 1;
    }
    let wall = started.elapsed();
    let fetches = fake.lock().tokens_issued() - issued_before;
    assert_eq!(
        answers.len(),
        1,
        "every caller gets the same new token: {answers:?}"
    );
    assert!(!answers.contains_key(&token), "and it is a new one");
    assert_eq!(fetches, 1, "one upstream fetch for the whole storm");
    samples.sort();
    println!(
        "bench: {CALLERS} concurrent rejected reports: {fetches} upstream fetch; all had the new token after {wall:.2?} (p50 {:.2?}, p99 {:.2?}); the provider answers in {upstream:.2?}",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
    );
    assert_eq!(serve.stop().await.code, 0);
}

/// Why the sealed store exists: the cost of one keychain write as the keyring fills. gnome-keyring
/// rewrites its whole keyring file on every change, so a write costs more the more items it
/// holds; ten thousand accounts would pay that on every refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: run by `make bench`"]
async fn bench_keychain_write_cost_by_items() {
    // A keyring of its own, dropped first (declared last): removing thousands of items takes
    // gnome-keyring minutes, which would stall the session keyring for the benchmarks after.
    let mut env = Env::new("");
    let keyring = tokenwarden_e2e::keyring::PrivateKeyring::start();
    env.bus = Some(keyring.address().into());
    let value = "x".repeat(200); // about a token set's size
    let mut held = 0;
    for target in [0usize, 500, 1500] {
        while held < target {
            env.keychain_set(&format!("tokens:fill{held:05}"), &value)
                .await;
            held += 1;
        }
        let started = Instant::now();
        for i in 0..40 {
            env.keychain_set(&format!("tokens:probe{i:02}"), &value)
                .await;
        }
        println!(
            "bench: keychain (gnome-keyring): one write with {held} items held takes {:.1?} (mean of 40, secret-tool included)",
            started.elapsed() / 40
        );
    }
}

/// What the proxy adds to a call: the same GET to the legacy fake's API, 2,000 times each on
/// one keep-alive client, directly with the token and through `/v1/proxy/fb/…` with a key,
/// taken in turn so that both see the same machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: make bench"]
async fn bench_proxy_overhead() {
    let (fake, env, _) = tokenwarden_e2e::harness::LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    env.write_config(&config.replacen(
        "name = \"fb\"\n",
        &format!("name = \"fb\"\napi_base = \"{}\"\n", fake.url("/api")),
        1,
    ));
    let (serve, api, key) = env.serve_with_new_key("bench").await;
    let token = fake.lock().current_access_token().unwrap();
    let http = reqwest::Client::new();
    let direct = fake.url("/api/items?page=1");
    let proxied = format!("http://127.0.0.1:{}/v1/proxy/fb/items?page=1", api.port);
    let (mut via_direct, mut via_proxy) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for round in 0..4000 {
        let t = Instant::now();
        let answer = if round % 2 == 0 {
            http.get(&direct).bearer_auth(&token).send().await
        } else {
            http.get(&proxied).bearer_auth(&key).send().await
        };
        let answer = answer.unwrap();
        assert_eq!(answer.status(), 200);
        answer.bytes().await.unwrap();
        if round % 2 == 0 {
            via_direct.push(t.elapsed());
        } else {
            via_proxy.push(t.elapsed());
        }
    }
    let wall = started.elapsed() / 2;
    assert_eq!(fake.lock().refresh_grants, 0, "nothing was refreshed");
    via_direct.sort();
    via_proxy.sort();
    let p = |s: &[Duration], q| percentile(s, q);
    println!(
        "bench: proxy overhead per request: p50 +{:.2?} (direct {:.2?}, proxied {:.2?}), p99 +{:.2?} (direct {:.2?}, proxied {:.2?})",
        p(&via_proxy, 0.5).saturating_sub(p(&via_direct, 0.5)),
        p(&via_direct, 0.5),
        p(&via_proxy, 0.5),
        p(&via_proxy, 0.99).saturating_sub(p(&via_direct, 0.99)),
        p(&via_direct, 0.99),
        p(&via_proxy, 0.99),
    );
    report("GET the fake's API directly", via_direct, wall);
    report("GET the fake's API through /v1/proxy", via_proxy, wall);
    serve.stop().await;
}

/// The fleet (`[store] kind = "redis"`): serving throughput of one host in fleet mode beside
/// one on the local store, in one run (wrk rounds taken in turn, median of 3), and how long a
/// requested refresh takes to reach all three hosts of a fleet, over 200 refreshes started
/// through each host in turn. Needs wrk and redis-server; `make bench` installs both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs wrk and a quiet machine: run by `make bench`"]
async fn bench_fleet_serving_and_propagation() {
    use tokenwarden_e2e::redis::{until_all_serve_new, RedisServer};
    let fake = WeChatFake::start(WeChatConfig {
        overlap: Duration::from_secs(3600),
        ..WeChatConfig::default()
    })
    .await;
    let secret = fake.lock().config.secret.clone();
    let redis = RedisServer::start().await;
    let key = redis.new_key().await;
    // No refresh floor: the refreshes below follow each other at once.
    let refresh = "retry_initial = \"1s\"\nmin_interval = \"0s\"";
    let hosts: Vec<Env> = (1..=3)
        .map(|i| {
            redis.host(
                &format!("h{i}"),
                &key,
                refresh,
                &fake.account_toml("wx", ""),
            )
        })
        .collect();
    hosts[0].set_secret("wx", &secret).await;
    let local = Env::new(&fake.account_toml("wx", ""));
    local.set_secret("wx", &secret).await;
    let mut running = Vec::new();
    let mut apis = Vec::new();
    for env in hosts.iter().chain([&local]) {
        let (serve, api, key) = env.serve_with_new_key("bench").await;
        api.get("/v1/accounts/wx/token").await.expect(200);
        running.push(serve);
        apis.push((api, key));
    }

    let url = |i: usize| format!("http://127.0.0.1:{}/v1/accounts/wx/token", apis[i].0.port);
    let (mut fleet, mut alone) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        fleet.push(wrk(&url(0), Some(&apis[0].1)));
        alone.push(wrk(&url(3), Some(&apis[3].1)));
    }
    let (fleet, alone) = (median(fleet), median(alone));
    println!(
        "bench: fleet: one host serving GET /v1/accounts/wx/token: {:.0}/s p99 {:.2?} in a fleet of 3 on Redis, {:.0}/s p99 {:.2?} on the local keychain store ({:.0}%), wrk -t2 -c64 -d5s, median of 3",
        fleet.rps,
        fleet.p99,
        alone.rps,
        alone.p99,
        100.0 * fleet.rps / alone.rps
    );

    let mut reach = Vec::new();
    let mut old = apis[0].0.token("wx").await;
    let before = fake.lock().tokens.len();
    let started = Instant::now();
    for round in 0..200 {
        let (api, _) = &apis[round % 3];
        let asked = Instant::now();
        api.post_empty("/v1/accounts/wx/refresh").await.expect(200);
        let fleet: Vec<_> = apis[..3].iter().map(|(api, _)| api).collect();
        old = until_all_serve_new(&fleet, "wx", &old, Duration::from_secs(10)).await;
        reach.push(asked.elapsed());
    }
    let fetched = fake.lock().tokens.len() - before;
    assert_eq!(fetched, 200, "one fetch per requested refresh");
    report(
        "fleet: a requested refresh, from the request to all 3 hosts serving the new token",
        reach,
        started.elapsed(),
    );
    for serve in running {
        assert_eq!(serve.stop().await.code, 0);
    }
}
