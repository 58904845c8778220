//! Generated hostile requests against the real `serve`: any method; paths with `..`, `%00`,
//! percent-encoded unicode and control characters, 10 kB segments and names in no config;
//! queries with absurd, negative, repeated and empty values; bodies of arbitrary bytes, of
//! JSON of the wrong shape, over the 64 KiB limit; missing, wrong and huge keys. Properties:
//! every request gets an answer (the connection is never just closed), never a 5xx; every
//! error is the documented JSON shape; and afterwards the engine is alive and healthy, no
//! panic was logged, and what the keychain holds for the connected account is unchanged.
//! Cases come from a seeded generator (proptest), so a failure is reproducible.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::Request;

const CASES: usize = 300;

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_-]{1,12}",
        Just("..".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("%00".to_owned()),
        Just("%2F".to_owned()),
        Just("fb%0a".to_owned()),
        Just("%E2%80%AEfb".to_owned()),
        Just("%C3%A9t%C3%A9".to_owned()),
        Just("%ff%fe".to_owned()),
        Just("x".repeat(10_000)),
        "[A-Za-z0-9%._~!$&'()*+,;=:@-]{0,30}",
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just("18446744073709551616".to_owned()),
        Just("1e99".to_owned()),
        Just("-1".to_owned()),
        Just(String::new()),
        Just("NaN".to_owned()),
        Just("%E2%88%9E".to_owned()),
        "[0-9a-z%]{0,12}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "min_valid",
        "limit",
        "account",
        "name",
        "wait",
        "x",
        "",
        "min_valid",
    ]);
    prop::collection::vec((key, number()), 0..4).prop_map(|pairs| {
        if pairs.is_empty() {
            String::new()
        } else {
            let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("?{}", q.join("&"))
        }
    })
}

fn path() -> impl Strategy<Value = String> {
    let action = prop::sample::select(vec![
        "token",
        "refresh",
        "rejected",
        "connect",
        "disconnect",
        "reload",
        "grant",
        "secret",
        "x",
        "",
    ]);
    prop_oneof![
        (segment(), action).prop_map(|(s, a)| format!("/v1/accounts/{s}/{a}")),
        Just("/v1/accounts/fb/token".to_owned()),
        Just("/v1/accounts".to_owned()),
        Just("/v1/history".to_owned()),
        Just("/token".to_owned()),
        Just("/metrics".to_owned()),
        Just("/healthz".to_owned()),
        segment().prop_map(|s| format!("/v1/{s}")),
        (segment(), segment()).prop_map(|(a, b)| format!("/{a}/{b}")),
        Just("//v1//accounts".to_owned()),
        Just("/v1/accounts/fb/../../healthz".to_owned()),
    ]
}

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        prop::collection::vec(any::<u8>(), 0..512).prop_map(Some),
        Just(Some(br#"{"access_token": 5}"#.to_vec())),
        Just(Some(br#"{"secret": ""}"#.to_vec())),
        Just(Some(br#"{"device": "yes", "timeout": -1}"#.to_vec())),
        Just(Some(br#"{"timeout": 18446744073709551616}"#.to_vec())),
        Just(Some(b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec())),
        Just(Some(vec![b'a'; 70_000])),
    ]
}

fn authorization(key: String) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        8 => Just(Some(format!("Bearer {key}"))),
        1 => Just(None),
        1 => Just(Some("Bearer tw_wrong".to_owned())),
        1 => Just(Some(format!("Bearer {}", "k".repeat(8_000)))),
        1 => Just(Some("Basic Zm9vOmJhcg==".to_owned())),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_hostile_requests_get_json_4xx_and_change_nothing() {
    let (_fake, env, _) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let (mut serve, api, key) = env.serve_with_new_key("props").await;
    let stored = env.stored_tokens("fb").await;
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
    let request = (method, path(), query(), body(), authorization(key));
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let mut problems = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    for case in 0..CASES {
        let (method, path, query, body, auth) =
            request.new_tree(&mut runner).expect("a case").current();
        // Calls that may legitimately change the connected account are left out: this is
        // about input, not about what a valid key may do.
        let mutating =
            path.starts_with("/v1/accounts/fb/") && !path.ends_with("/token") && method != "GET";
        if mutating || path.starts_with("/v1/reload") {
            continue;
        }
        let target = format!("{path}{query}");
        let mut req = Request::new(method, &target);
        req = match auth {
            Some(a) => req.authorization(&a),
            None => req.authorization(""),
        };
        if let Some(b) = body {
            req = req.body("application/json", b);
        }
        let answer = api.send(req).await;
        *statuses.entry(answer.status).or_insert(0) += 1;
        if answer.status >= 500 {
            problems.push(format!("case {case}: a 5xx\n{answer}"));
        } else if answer.status >= 400 && target != "/healthz" {
            if let Some(p) = answer.error_shape_problem() {
                problems.push(format!("case {case}: {p}\n{answer}"));
            }
        }
    }
    println!("{CASES} generated requests: statuses {statuses:?}");
    assert!(
        problems.is_empty(),
        "{} problems, first:\n{}",
        problems.len(),
        problems[0]
    );
    assert_eq!(api.with_key(None).get("/healthz").await.status, 200);
    assert!(serve.running(), "serve exited:\n{}", serve.stderr());
    assert!(!serve.stderr().contains("panicked"), "{}", serve.stderr());
    assert_eq!(
        env.stored_tokens("fb").await,
        stored,
        "the stored tokens changed"
    );
}
