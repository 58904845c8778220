//! Figures for the README: how long the tray app takes from launch to a drawn window
//! (`data-ready`), how much memory it holds shown and closed, how much CPU it burns in 60 s
//! with the window closed, and how long opening it again takes. Ignored by default: `make
//! bench` runs it with `--include-ignored` (it needs `--test desktop_bench`), and
//! `--nocapture` shows the figures. A second bench opens the window on 10,000 accounts
//! (`TOKENWARDEN_BENCH_WINDOW_ACCOUNTS` for another count): its first draw and a search.

use std::time::{Duration, Instant};

use tokenwarden_e2e::desktop::{self, Driver, Session};
use tokenwarden_e2e::fakes::http::HttpTokenFake;
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::proc;
use tokenwarden_e2e::{wait_until, Env};

/// CPU seconds of `pid` and every process below it (WebKit's web and network processes).
fn tree_cpu_seconds(pid: u32) -> f64 {
    std::iter::once(pid)
        .chain(proc::descendants(pid))
        .filter(|&p| proc::alive(p))
        .map(proc::cpu_seconds)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --include-ignored (make bench)"]
async fn bench_launch_memory_and_idle_cpu() {
    let session = Session::start().await;
    let (_fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .another_account("second")
        .another_account("third")
        .connected(3600)
        .await;
    desktop::write_settings(&env, true, 60);

    let driver = Driver::launch(&env, &session, &[]).await;
    let pid = desktop::engine_pid(&env).expect("the app holds the engine lock");
    let helpers = proc::descendants(pid);
    let rss_app = proc::rss_kib(pid);
    let rss_helpers: u64 = helpers
        .iter()
        .filter(|&&p| proc::alive(p))
        .map(|&p| proc::rss_kib(p))
        .sum();

    desktop::close_window(pid).await;
    wait_until(
        Duration::from_secs(10),
        "the window is closed",
        async || desktop::window_mapped(pid).await != Some(true),
    )
    .await;
    // The web process ends a moment after the window: measured once it is gone, or its CPU
    // counted before and not after made the minute's figure negative (-0.41 s in one run).
    wait_until(
        Duration::from_secs(10),
        "the web process ended with the window",
        async || {
            !proc::descendants(pid).into_iter().any(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.starts_with("WebKitWebProces"))
            })
        },
    )
    .await;
    let cpu_before = tree_cpu_seconds(pid);
    // The measurement itself: the app idles for a minute with its window hidden.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let cpu_after = tree_cpu_seconds(pid);
    assert!(proc::alive(pid), "the app is still running");
    let hidden: Vec<u32> = proc::descendants(pid)
        .into_iter()
        .filter(|&p| proc::alive(p))
        .collect();
    let rss_hidden_app = proc::rss_kib(pid);
    let rss_hidden_helpers: u64 = hidden.iter().map(|&p| proc::rss_kib(p)).sum();
    // Opened again (a second start hands over to this one, as the launcher does): the window
    // is built anew; the time until the window manager maps it.
    let reopening = std::time::Instant::now();
    let again = session.launch(&env, &[]);
    wait_until(
        Duration::from_secs(30),
        "a second start opens the window again",
        async || desktop::window_mapped(pid).await == Some(true),
    )
    .await;
    let reopened = reopening.elapsed();
    again.wait_exit(Duration::from_secs(30)).await;
    // The page's first draw, as the app logs it for each window it builds.
    wait_until(
        Duration::from_secs(30),
        "the app logs the rebuilt window's first draw",
        async || drawn(&driver.log()).len() == 2,
    )
    .await;
    let draws = drawn(&driver.log());

    println!("desktop bench (3 accounts, debug unless TOKENWARDEN_BIN says otherwise):");
    println!(
        "  launch → data-ready: {:.2} s (WebDriver session created after {:.2} s)",
        driver.launch_to_ready.as_secs_f64(),
        driver.session_created.as_secs_f64()
    );
    println!(
        "  resident memory: app {:.1} MiB, WebKit helpers ({}) {:.1} MiB",
        rss_app as f64 / 1024.0,
        helpers.len(),
        rss_helpers as f64 / 1024.0
    );
    println!(
        "  resident memory with the window closed: app {:.1} MiB, helpers ({}) {:.1} MiB, all {:.1} MiB",
        rss_hidden_app as f64 / 1024.0,
        hidden.len(),
        rss_hidden_helpers as f64 / 1024.0,
        (rss_hidden_app + rss_hidden_helpers) as f64 / 1024.0
    );
    // Where the closed app's memory is: its own heap and stacks (anonymous) against the
    // libraries' pages it has touched (file-backed, shared with any other GTK/WebKit program).
    let kib = |p: u32, field: &str| proc::status_kib(p, field).unwrap_or(0) as f64 / 1024.0;
    println!(
        "    app with the window closed: {:.1} MiB anonymous, {:.1} MiB file-backed (libraries)",
        kib(pid, "RssAnon"),
        kib(pid, "RssFile")
    );
    for &p in &hidden {
        let name = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        println!(
            "    helper {}: {:.1} MiB anonymous, {:.1} MiB file-backed",
            name.trim(),
            kib(p, "RssAnon"),
            kib(p, "RssFile")
        );
    }
    println!(
        "  CPU over 60 s, window closed: {:.3} s (app + helpers)",
        cpu_after - cpu_before
    );
    println!(
        "  launch → first draw, as the app logs it: {} ms (the page's own part {} ms)",
        draws[0].since_launch_ms, draws[0].page_ms
    );
    println!(
        "  opened again (second start → window mapped): {:.2} s; Open → first draw, as the app logs it: {} ms (the page's own part {} ms)",
        reopened.as_secs_f64(),
        draws[1].since_open_ms,
        draws[1].page_ms
    );
    driver.quit().await;
}

/// One `window drawn` line of the app's log: how long after the window was built (Open) and
/// after launch the page drew its first list, and how much of it the page took.
struct Drawn {
    since_open_ms: u64,
    since_launch_ms: u64,
    page_ms: u64,
}

/// Every `window drawn` line in `log`, in order.
fn drawn(log: &str) -> Vec<Drawn> {
    let field = |line: &str, name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    log.lines()
        .filter(|l| l.contains("window drawn"))
        .map(|l| Drawn {
            since_open_ms: field(l, "since_open_ms"),
            since_launch_ms: field(l, "since_launch_ms"),
            page_ms: field(l, "page_ms"),
        })
        .collect()
}

/// In the page: types `query` into the search box as one input event and returns the
/// milliseconds until the list is filtered, drawn and laid out (the layout read forces it).
async fn search_in_page(driver: &Driver, query: &str) -> f64 {
    let script = format!(
        "const s = document.querySelector('[data-testid=search]'); const t0 = performance.now();\
         s.value = {query:?}; s.dispatchEvent(new Event('input'));\
         void document.getElementById('main').scrollHeight; return performance.now() - t0;"
    );
    driver.execute(&script).await.as_f64().expect("ms")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with --include-ignored (make bench)"]
async fn bench_the_window_with_ten_thousand_accounts() {
    let count: usize = std::env::var("TOKENWARDEN_BENCH_WINDOW_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let session = Session::start().await;
    let fake = HttpTokenFake::start(7200).await;
    let accounts: String = (0..count)
        .map(|i| fake.account_toml(&format!("h{i:05}")))
        .collect();
    let env = Env::with_refresh(
        "per_host = 16",
        &format!("[store]\nkind = \"database\"\n\n{accounts}"),
    );
    // Every set fetched and saved by `serve` first: the app opens on a full store, as it
    // would the morning after.
    let key = env.create_api_key("bench").await;
    let (serve, api) = env.serve_api(&key).await;
    let http = reqwest::Client::new();
    wait_until(
        Duration::from_secs(600),
        "every account fetched once",
        async || {
            let list: Vec<serde_json::Value> = http
                .get(format!("{}/v1/accounts", api.base_url()))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            list.iter().filter(|a| a["status"] == "fresh").count() == count
        },
    )
    .await;
    assert_eq!(serve.stop().await.code, 0);
    desktop::write_settings(&env, true, 60);

    let driver = Driver::launch(&env, &session, &[]).await;
    let first_draw = driver
        .execute("return performance.getEntriesByName('tokenwarden:first-draw')[0].startTime")
        .await
        .as_f64()
        .expect("the first draw's mark");
    let cards = driver.account_rows().await.len();
    let pid = desktop::engine_pid(&env).expect("the app holds the engine lock");
    let rss_app = proc::rss_kib(pid) as f64 / 1024.0;
    let rss_helpers: f64 = proc::descendants(pid)
        .into_iter()
        .filter(|&p| proc::alive(p))
        .map(|p| proc::rss_kib(p) as f64 / 1024.0)
        .sum();

    // A search of ten matches, in the page, then through WebDriver as a person types it.
    // Ten names from the middle of the list (h05000 to h05009 of 10,000).
    let ten = format!("h{:04}", count / 2 / 10);
    let ten = ten.as_str();
    let searched = search_in_page(&driver, ten).await;
    let matched = driver.account_rows().await.len();
    let cleared = search_in_page(&driver, "").await;
    let typing = Instant::now();
    driver.fill(r#"[data-testid="search"]"#, ten).await;
    let want = format!("{matched} of {} accounts", thousands(count));
    wait_until(
        Duration::from_secs(30),
        "the typed search shown",
        async || {
            driver
                .text(r#"[data-testid="search-count"]"#)
                .await
                .as_deref()
                == Some(want.as_str())
        },
    )
    .await;
    let typed = typing.elapsed();
    search_in_page(&driver, "").await;
    // The end of the list: scrolled there in one jump, drawn on the next frame.
    let scrolled = driver
        .execute(
            "const m = document.getElementById('main'); const t0 = performance.now();\
             m.scrollTo({ top: 1e9, behavior: 'instant' }); m.dispatchEvent(new Event('scroll'));\
             return new Promise((done) => requestAnimationFrame(() => { void m.scrollHeight;\
             done(performance.now() - t0); }));",
        )
        .await
        .as_f64()
        .unwrap_or(f64::NAN);
    let last = driver.account_rows().await;

    println!("desktop bench: the window with {count} accounts (database store, all fresh):");
    let logged = drawn(&driver.log());
    println!(
        "  launch → data-ready: {:.2} s; first draw {first_draw:.0} ms after the page began, {} ms after launch as the app logs it; {cards} cards in the page",
        driver.launch_to_ready.as_secs_f64(),
        logged.first().map_or(0, |d| d.since_launch_ms)
    );
    println!(
        "  a search (\"{ten}\", {matched} of {count}): {searched:.1} ms in the page; cleared again: {cleared:.1} ms; typed through WebDriver until shown: {:.0} ms",
        typed.as_secs_f64() * 1000.0
    );
    println!(
        "  scrolled to the end: drawn in {scrolled:.1} ms, last card {:?}, {} cards in the page",
        last.last(),
        last.len()
    );
    println!("  resident memory, window shown: app {rss_app:.1} MiB, WebKit helpers {rss_helpers:.1} MiB");
    driver.quit().await;
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
