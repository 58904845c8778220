//! Figures for the README: how long the tray app takes from launch to a drawn window
//! (`data-ready`), how much memory it holds shown and closed, how much CPU it burns in 60 s
//! with the window closed, and how long opening it again takes. Ignored by default: `make
//! bench` runs it with `--include-ignored` (it needs `--test desktop_bench`), and
//! `--nocapture` shows the figures.

use std::time::Duration;

use tokenwarden_e2e::desktop::{self, Driver, Session};
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::proc;
use tokenwarden_e2e::wait_until;

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
        "  opened again (second start → window mapped): {:.2} s",
        reopened.as_secs_f64()
    );
    driver.quit().await;
}
