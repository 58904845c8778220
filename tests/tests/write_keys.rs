//! API keys are read-only unless created with `--write`. The real `serve`, the real keychain
//! and a connected `fb` on the legacy fake: a key without `--write` (limited to `fb`, or to
//! every account) gets 403 `read_only_key` from every route that changes an account (connect,
//! cancel a connect, disconnect, set the client secret, reload), and afterwards the keychain
//! holds exactly what it held, the provider saw no revocation and the token is still served.
//! A key made with `--write` may do all of it; a key listed without the permission (as every
//! key made before it existed is) is read-only; `api-key list` says which keys can write; the
//! engine's own CLI keeps its rights on the Unix socket and over TCP with the engine's key.

use serde_json::{json, Value};
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{Api, Request};

/// Every route that changes `fb`, as (method, target, body).
fn writes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("POST", "/v1/accounts/fb/disconnect", None),
        (
            "PUT",
            "/v1/accounts/fb/secret",
            Some(json!({ "secret": "the-key-holders-own-secret" })),
        ),
        ("POST", "/v1/accounts/fb/connect", Some(json!({}))),
        ("DELETE", "/v1/accounts/fb/connect", None),
        ("POST", "/v1/accounts/fb/reload", None),
        ("POST", "/v1/reload", None),
    ]
}

async fn send(
    api: &Api,
    method: &str,
    target: &str,
    body: &Option<Value>,
) -> tokenwarden_e2e::api::Answer {
    let mut req = Request::new(method, target);
    if let Some(body) = body {
        req = req.json(body);
    }
    api.send(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_write_permission_changes_nothing_and_a_write_key_may() {
    let (fake, env, access) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let secret = fake.lock().config.client_secret.clone();
    let fb_reader = env
        .run(
            &["api-key", "create", "fb-reader", "--accounts", "fb"],
            None,
        )
        .await
        .ok()
        .stdout_trimmed()
        .to_owned();
    let (mut serve, all_reader, _) = env.serve_with_new_key("reader").await;
    let fb_reader = all_reader.with_key(Some(&fb_reader));
    let before = env.keychain_all().await;
    assert!(before.contains_key("tokens:fb") && before.contains_key("client-secret:fb"));

    // Neither read-only key may change fb, whether limited to it or not.
    for (who, api) in [("fb-reader", &fb_reader), ("reader", &all_reader)] {
        for (method, target, body) in writes() {
            let answer = send(api, method, target, &body).await;
            assert!(
                answer.error_problem(403, "read_only_key").is_none(),
                "{who}: {method} {target} must be refused as read-only:\n{answer}"
            );
            assert!(answer.body.contains("--write"), "{who}: {answer}");
        }
        // Reading is still theirs.
        assert_eq!(api.token("fb").await, access, "{who}");
        api.get("/v1/accounts/fb/connect").await.expect(200);
    }
    assert_eq!(
        env.keychain_all().await,
        before,
        "the keychain is untouched"
    );
    {
        let st = fake.lock();
        assert!(
            st.revoked.is_empty(),
            "revoked at the provider: {:?}",
            st.revoked
        );
        assert_eq!(st.code_grants, 0);
    }
    assert_eq!(env.status("fb").await, "fresh");

    // A key listed without the permission, as every key made before it existed, is read-only.
    let old = env.create_write_key("old-writer").await;
    let index_path = env.data_dir.join("api-keys.json");
    let mut index: Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).expect("index")).expect("json");
    for key in index.as_array_mut().expect("a list") {
        if key["label"] == "old-writer" {
            key.as_object_mut().expect("an object").remove("write");
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(20)); // a distinct mtime
    std::fs::write(
        &index_path,
        serde_json::to_vec_pretty(&index).expect("json"),
    )
    .expect("write");
    let (method, target, body) = &writes()[1];
    send(&all_reader.with_key(Some(&old)), method, target, body)
        .await
        .expect_error(403, "read_only_key");

    // The listing says which keys can write.
    let list = env.run(&["api-key", "list", "--json"], None).await.ok();
    let keys: Value = serde_json::from_str(&list.stdout).expect("json");
    let write_of = |label: &str| {
        keys.as_array()
            .and_then(|k| k.iter().find(|k| k["label"] == label))
            .unwrap_or_else(|| panic!("{label} not listed: {keys}"))["write"]
            .clone()
    };
    assert_eq!(write_of("reader"), json!(false));
    assert_eq!(write_of("fb-reader"), json!(false));
    assert_eq!(write_of("old-writer"), json!(false));
    let fb_writer = env
        .run(
            &[
                "api-key",
                "create",
                "fb-writer",
                "--accounts",
                "fb",
                "--write",
            ],
            None,
        )
        .await
        .ok();
    assert!(
        fb_writer.stderr.contains("may read and change"),
        "{fb_writer}"
    );
    let fb_writer = all_reader.with_key(Some(fb_writer.stdout_trimmed()));
    let text = env.run(&["api-key", "list"], None).await.ok().stdout;
    let line = |label: &str| {
        text.lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label} not listed:\n{text}"))
            .to_owned()
    };
    assert!(line("fb-writer ").contains("read-write"), "{text}");
    assert!(line("reader ").contains("read-only"), "{text}");

    // The engine's own CLI keeps its rights: on the Unix socket, then over TCP with its key.
    env.run(&["secret", "set", "fb"], Some("second-secret"))
        .await
        .ok();
    assert_eq!(
        env.keychain_get("client-secret:fb").await.as_deref(),
        Some("second-secret")
    );
    let holder = env.engine_holder().expect("the engine's holder file");
    std::fs::remove_file(holder["socket"].as_str().expect("a socket")).expect("remove the socket");
    env.run(&["secret", "set", "fb"], Some(&secret)).await.ok();
    assert_eq!(
        env.keychain_get("client-secret:fb").await.as_deref(),
        Some(secret.as_str())
    );

    // A write key may change the account it is limited to.
    fb_writer
        .send(Request::new("PUT", "/v1/accounts/fb/secret").json(&json!({ "secret": "third" })))
        .await
        .expect(200);
    assert_eq!(
        env.keychain_get("client-secret:fb").await.as_deref(),
        Some("third")
    );
    // The real one again, or the provider would refuse the revocation below.
    fb_writer
        .send(Request::new("PUT", "/v1/accounts/fb/secret").json(&json!({ "secret": secret })))
        .await
        .expect(200);
    fb_writer
        .post_empty("/v1/accounts/fb/disconnect")
        .await
        .expect(200);
    assert!(
        !fake.lock().revoked.is_empty(),
        "disconnect revokes at the provider"
    );
    assert_eq!(env.keychain_get("tokens:fb").await, None);
    assert!(serve.running(), "{}", serve.stderr());
}
