use super::*;

#[test]
fn records_and_reads_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(&dir.path().join("h.sqlite3")).unwrap();
    let a: AccountName = "a".parse().unwrap();
    let b: AccountName = "b".parse().unwrap();
    h.record(&Record {
        account: a.clone(),
        trigger: Trigger::Scheduled,
        outcome: Outcome::Ok,
        elapsed: Duration::from_millis(5),
        expires_at: Some(Deadline::from_unix(10)),
        error: None,
    })
    .unwrap();
    h.record(&Record {
        account: b.clone(),
        trigger: Trigger::Manual,
        outcome: Outcome::PermanentError,
        elapsed: Duration::ZERO,
        expires_at: None,
        error: Some(("invalid_grant".into(), "m".into())),
    })
    .unwrap();
    let all = h.entries(None, 10).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].account, "b");
    assert_eq!(all[0].outcome, "permanent_error");
    assert_eq!(
        h.entries(Some(std::slice::from_ref(&a)), 10).unwrap().len(),
        1
    );
    h.save_state(&a, "fresh", None, None).unwrap();
    h.save_state(&a, "retrying", Some("x"), None).unwrap();
    let saved = h.saved_states().unwrap();
    assert_eq!(saved.len(), 1, "one row per account");
    assert_eq!(saved["a"].status, "retrying");
    assert_eq!(saved["a"].last_error.as_deref(), Some("x"));
}

/// What the refresh log costs on disk (`make bench`): 10,000 accounts refreshed ten times
/// over, each refresh a log row and its account's state row, as the engine writes them; the
/// pages in use after each round, and where the cap of [`KEEP_ROWS`] rows holds the file.
#[test]
#[ignore = "a benchmark: make bench"]
fn bench_history_growth_per_refresh() {
    const ACCOUNTS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(&dir.path().join("h.sqlite3")).unwrap();
    let names: Vec<AccountName> = (0..ACCOUNTS)
        .map(|i| format!("acct-{i:05}").parse().unwrap())
        .collect();
    let used = || -> (i64, f64) {
        let conn = h.conn.lock().unwrap();
        let pragma = |p: &str| -> i64 {
            conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
                .unwrap()
        };
        let bytes = (pragma("page_count") - pragma("freelist_count")) * pragma("page_size");
        let rows = conn
            .query_row("SELECT count(*) FROM refreshes", [], |r| r.get(0))
            .unwrap();
        (rows, bytes as f64)
    };
    let started = std::time::Instant::now();
    let mut last = 0.0;
    for round in 1..=10 {
        for name in &names {
            h.record(&Record {
                account: name.clone(),
                trigger: Trigger::Scheduled,
                outcome: Outcome::Ok,
                elapsed: Duration::from_millis(120),
                expires_at: Some(Deadline::from_unix(1_800_000_000)),
                error: None,
            })
            .unwrap();
            h.save_state(
                name,
                "fresh",
                None,
                Some(Deadline::from_unix(1_790_000_000)),
            )
            .unwrap();
        }
        let (rows, bytes) = used();
        println!(
            "history: after {:>7} refreshes: {rows:>6} log rows kept, {:.2} MiB in use ({:+.0} bytes per refresh this round)",
            round * ACCOUNTS,
            bytes / 1048576.0,
            (bytes - last) / ACCOUNTS as f64
        );
        last = bytes;
    }
    let (_, bytes) = used();
    println!(
        "history: the log keeps the newest {KEEP_ROWS} rows and the file levels off at {:.2} MiB; one refresh per account per hour is {} rows a day at 10,000 accounts ({:.1} h kept) and {} at 100,000 ({:.1} h kept); {:.1} µs per refresh written",
        bytes / 1048576.0,
        24 * 10_000,
        KEEP_ROWS as f64 / 10_000.0,
        24 * 100_000,
        KEEP_ROWS as f64 / 100_000.0,
        started.elapsed().as_secs_f64() * 1e6 / (10 * ACCOUNTS) as f64
    );
}
