//! `GET /v1/accounts` a page at a time (`?limit=N&after=NAME`, the next page named in a
//! `Link: <...>; rel="next"` header), for the engine with 100,000 accounts. Without a query
//! the answer is the whole list as it always was. The real `serve`, seven accounts on one fake.

use serde_json::Value;
use tokenwarden_e2e::harness::LegacyAccount;

const OTHERS: [&str; 6] = ["a1", "b2", "c3", "d4", "e5", "f6"];

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|v| v["name"].as_str().expect("name").to_owned())
        .collect()
}

/// The target of a `Link: <TARGET>; rel="next"` header.
fn next_of(link: &str) -> String {
    let (target, rel) = link.split_once(">;").expect("<target>; rel");
    assert_eq!(rel.trim(), "rel=\"next\"", "{link}");
    target.trim_start_matches('<').to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_the_accounts_follow_each_other_to_the_whole_list() {
    let mut setup = LegacyAccount::new(|c| c.expires_in(3600));
    for name in OTHERS {
        setup = setup.another_account(name);
    }
    let (_fake, env, _) = setup.connected(3600).await;
    let scoped_key = env
        .run(
            &["api-key", "create", "some", "--accounts", "b2,d4,e5,f6"],
            None,
        )
        .await
        .ok()
        .stdout_trimmed()
        .to_owned();
    let (serve, api, _) = env.serve_with_new_key("all").await;

    // No query: the whole list, in config order, and no Link.
    let whole = api.get("/v1/accounts").await;
    let all = names(&whole.expect(200));
    assert_eq!(all, ["fb", "a1", "b2", "c3", "d4", "e5", "f6"]);
    assert_eq!(whole.header("link"), None, "{whole}");

    // Pages of three, each naming the next, the last naming none: the same list.
    let mut target = "/v1/accounts?limit=3".to_owned();
    let mut paged = Vec::new();
    let mut pages = Vec::new();
    loop {
        let page = api.get(&target).await;
        let got = names(&page.expect(200));
        assert!(got.len() <= 3, "{page}");
        pages.push(got.clone());
        paged.extend(got);
        match page.header("link") {
            Some(link) => target = next_of(link),
            None => break,
        }
    }
    assert_eq!(paged, all);
    assert_eq!(pages.len(), 3, "{pages:?}");
    // The same views as the whole list: the same fields (the values may have moved on since,
    // an account still being read from the keychain at start, then not connected).
    let second = api.get("/v1/accounts?limit=2&after=a1").await.expect(200);
    let fields = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().expect("a view").keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(fields(&second[0]), fields(&whole.json()[2]));
    assert_eq!(second[0]["name"], "b2");
    assert_eq!(second[0]["provider"], whole.json()[2]["provider"]);
    // A page that ends exactly at the last account says no more.
    let last = api.get("/v1/accounts?limit=2&after=d4").await;
    assert_eq!(names(&last.expect(200)), ["e5", "f6"]);
    assert_eq!(last.header("link"), None, "{last}");

    // A key limited to some accounts pages through those alone, and an account it may not
    // see is no place to start from: the 404 of an account that does not exist.
    let scoped = api.with_key(Some(&scoped_key));
    let first = scoped.get("/v1/accounts?limit=3").await;
    assert_eq!(names(&first.expect(200)), ["b2", "d4", "e5"]);
    let link = first.header("link").expect("a next page").to_owned();
    assert_eq!(next_of(&link), "/v1/accounts?limit=3&after=e5");
    assert_eq!(
        names(&scoped.get(&next_of(&link)).await.expect(200)),
        ["f6"]
    );
    scoped
        .get("/v1/accounts?limit=3&after=c3")
        .await
        .expect_error(404, "unknown_account");

    // Bad queries name what is wrong.
    for (target, says) in [
        (
            "/v1/accounts?limit=0",
            "`limit` must be a whole number from 1 to 10000",
        ),
        ("/v1/accounts?limit=10001", "from 1 to 10000"),
        ("/v1/accounts?limit=ten", "from 1 to 10000"),
        ("/v1/accounts?after=fb", "`after` needs `limit`"),
        (
            "/v1/accounts?limit=2&after=Not%20A%20Name",
            "not a valid account name",
        ),
    ] {
        let answer = api.get(target).await;
        answer.expect_error(400, "bad_request");
        assert!(answer.body.contains(says), "{answer}");
    }
    api.get("/v1/accounts?limit=2&after=gone")
        .await
        .expect_error(404, "unknown_account");
    assert_eq!(serve.stop().await.code, 0);
}
