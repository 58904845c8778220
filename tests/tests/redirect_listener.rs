//! The loopback listener that receives the OAuth redirect cannot be blocked by a local process
//! holding connections to its port: `connect --no-browser` on the legacy fake (a fixed
//! redirect port anyone can find), 200 idle connections opened to that port before the
//! browser's redirect arrives, and the consent still completes within seconds, with the
//! grant in the keychain.

use std::time::{Duration, Instant};

use tokenwarden_e2e::harness::{authorize_in_browser, browser_get, LegacyAccount};

const HELD: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_to_the_redirect_port_do_not_block_consent() {
    let (fake, env) = LegacyAccount::new(|c| c).start().await;
    let flow = env.start_connect("fb").await;
    let callback = authorize_in_browser(&flow.auth_url).await;
    let port = url::Url::parse(&callback)
        .expect("a callback URL")
        .port()
        .expect("a port");

    // Another local process holds connections open and sends nothing.
    let mut held = Vec::new();
    for i in 0..HELD {
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
        match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(e)) => panic!("connection {i} to the redirect port: {e}"),
            Err(_) => panic!("connection {i} to the redirect port was not accepted within 5 s"),
        }
    }

    let started = Instant::now();
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), browser_get(&callback))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the browser's redirect was not answered within 5 s beside {HELD} idle connections"
            )
        });
    eprintln!(
        "the redirect was answered in {:?} beside {HELD} idle connections",
        started.elapsed()
    );
    assert_eq!(status, 200, "{body}");
    let out = flow.finish().await;
    assert_eq!(out.code, 0, "{out}");
    let issued = fake.lock().current_access_token().expect("issued");
    let stored = env.stored_tokens("fb").await.expect("tokens:fb stored");
    assert_eq!(stored["access_token"], issued.as_str());
    drop(held);
}
