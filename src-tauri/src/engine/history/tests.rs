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
    assert_eq!(h.saved_state(&a).unwrap().unwrap().status, "retrying");
}
