//! The crash window, measured: how long a provider's answer lives only in `serve`'s memory,
//! from its arrival until its new token set is durable. `serve` logs each window at debug
//! level ("answer durable", with `micros` and `via`: where it became durable); this test
//! runs three `http` accounts whose 3 s tokens are refreshed about once a second each on
//! the real keychain, reads the lines and prints p50/p99. Figures are printed, never
//! asserted: a busy machine slows the keychain, not the engine's correctness.

use std::time::Duration;

use tokenwarden_e2e::fakes::http::HttpTokenFake;
use tokenwarden_e2e::harness::percentile;
use tokenwarden_e2e::Env;

/// How long the accounts rotate (`TOKENWARDEN_WINDOW_SECONDS`, default 40).
fn seconds() -> u64 {
    std::env::var("TOKENWARDEN_WINDOW_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

/// `(via, window)` of every "answer durable" line in `log`.
fn windows(log: &str) -> Vec<(String, Duration)> {
    let field = |line: &str, name: &str| -> Option<String> {
        let at = line.find(&format!(" {name}="))? + name.len() + 2;
        Some(
            line[at..]
                .split_whitespace()
                .next()?
                .trim_matches('"')
                .to_owned(),
        )
    };
    log.lines()
        .filter(|l| l.contains("answer durable"))
        .filter_map(|l| {
            let micros: u64 = field(l, "micros")?.parse().ok()?;
            Some((field(l, "via")?, Duration::from_micros(micros)))
        })
        .collect()
}

/// A figure, not a proof: `make bench` runs it (40 s), `make test` does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by `make bench` (--include-ignored --nocapture)"]
async fn the_window_from_answer_to_durable_is_measured() {
    let fake = HttpTokenFake::start(3).await;
    let accounts: String = ["w1", "w2", "w3"]
        .iter()
        .map(|n| fake.account_toml(n) + "refresh_before = \"2s\"\n\n")
        .collect();
    let mut env = Env::new(&accounts);
    env.log = "info,tokenwarden::engine=debug".into();
    let mut serve = env.spawn_serve();
    serve.wait_api().await;
    tokio::time::sleep(Duration::from_secs(seconds())).await;
    assert!(serve.running(), "serve exited:\n{}", serve.stderr());
    let out = serve.stop().await;
    let found = windows(&out.stderr);
    assert!(
        found.len() >= 10,
        "too few refreshes to measure ({} answer durable lines, {} fetches):\n{}",
        found.len(),
        fake.lock().total_issued(),
        out.stderr.lines().take(40).collect::<Vec<_>>().join("\n")
    );
    let mut vias: Vec<&str> = found.iter().map(|(v, _)| v.as_str()).collect();
    vias.sort_unstable();
    vias.dedup();
    for via in vias {
        let mut sorted: Vec<Duration> = found
            .iter()
            .filter(|(v, _)| v == via)
            .map(|(_, d)| *d)
            .collect();
        sorted.sort_unstable();
        println!(
            "answer → durable ({via}), {} refreshes of 3 accounts in {} s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            sorted.len(),
            seconds(),
            percentile(&sorted, 0.5).as_secs_f64() * 1e3,
            percentile(&sorted, 0.99).as_secs_f64() * 1e3,
            sorted.last().expect("some").as_secs_f64() * 1e3,
        );
    }
}
