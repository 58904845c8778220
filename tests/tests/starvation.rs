//! Callers that hog: idle and slow connections, more connections than the cap, more event
//! subscribers than the cap, floods of failed authentications from all over 127/8. The real
//! `serve` with `[api] max_connections` and `idle_timeout` set low, raw TCP clients, and the
//! engine's own file-descriptor count read from /proc. Through all of it a client with a
//! valid key is served.

use std::time::{Duration, Instant};

use tokenwarden_e2e::fakes::oauth::OAuthFake;
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::{wait_until, Api, Env, Serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const CAP: usize = 32;

/// `fb` connected, and `serve` with a cap of `cap` connections and a 1 s idle timeout.
async fn capped(cap: usize) -> (OAuthFake, Env, Serve, Api, String) {
    let (fake, env, access) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let config = std::fs::read_to_string(&env.config_path).expect("config");
    env.write_config(&config.replacen(
        "[api]\n",
        &format!("[api]\nmax_connections = {cap}\nidle_timeout = \"1s\"\n"),
        1,
    ));
    let (serve, api, _) = env.serve_with_new_key("hog").await;
    (fake, env, serve, api, access)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

/// Reads until the server closes (EOF or reset) or `limit` passes: what it sent, and
/// whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slow_and_surplus_connections_cannot_starve_the_api() {
    let (_fake, env, mut serve, api, access) = capped(CAP).await;
    let port = env.api_port;
    let pid = serve.pid();
    let baseline = open_fds(pid);

    // 1. A connection that never sends a request is closed after the idle timeout.
    let mut idle = connect(port).await;
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection was still open after 5 s");
    eprintln!("idle connection closed after {:?}", started.elapsed());

    // 2. Headers sent a byte every 200 ms never finish: closed after the timeout too.
    let mut slow = connect(port).await;
    let head = format!("GET /v1/accounts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Pad: ");
    slow.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(6) {
        if slow.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "a slowloris connection was still open after 6 s");
    eprintln!("slow headers closed after {:?}", started.elapsed());

    // 3. A keep-alive connection left idle after an answer is closed as well.
    let mut kept = connect(port).await;
    let request = format!(
        "GET /v1/accounts/fb/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\n\r\n",
        api.key.as_deref().expect("key")
    );
    kept.write_all(request.as_bytes()).await.expect("write");
    let (answer, closed) = read_until_closed(&mut kept, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(&access), "the token was served");
    assert!(
        closed,
        "an idle keep-alive connection was still open after 5 s"
    );

    // 4. Far more connections than the cap, all idle: each newcomer closes the connection
    // idle longest instead of being refused, and the engine's descriptors stay bounded.
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(connect(port).await);
    }
    let mut extra = Vec::new();
    for _ in 0..300 {
        extra.push(connect(port).await);
    }
    let said: Vec<(Vec<u8>, bool)> = futures_util::future::join_all(
        held.iter_mut()
            .chain(extra.iter_mut())
            .map(|s| read_until_closed(s, Duration::from_millis(300))),
    )
    .await;
    let refused = said
        .iter()
        .filter(|(bytes, _)| String::from_utf8_lossy(bytes).contains("too_many_connections"))
        .count();
    let held_closed = said[..CAP].iter().filter(|(_, closed)| *closed).count();
    // Counted once the connections that gave way are closed.
    let fds = open_fds(pid);
    let open = said.iter().filter(|(_, closed)| !*closed).count();
    eprintln!(
        "{} idle connections against a cap of {CAP}: {refused} refused, {open} still open, engine fds {baseline} → {fds}",
        CAP + 300
    );
    assert_eq!(refused, 0, "idle connections make room; nobody is refused");
    assert_eq!(
        held_closed, CAP,
        "the oldest idle connections are the ones closed"
    );
    assert!(
        fds <= baseline + CAP + 8,
        "the engine holds {fds} descriptors with {} connections open (baseline {baseline}, cap {CAP})",
        CAP + 300
    );

    // 5. Beside the idle hogs still open, a client with a valid key is served at once.
    let mut s = connect(port).await;
    s.write_all(request.as_bytes()).await.expect("write");
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop((held, extra));
    assert_eq!(api.token("fb").await, access);
    assert_eq!(api.with_key(None).get("/healthz").await.status, 200);
    assert!(serve.running(), "serve exited:\n{}", serve.stderr());
    let stderr = serve.logged("idle longest", 1).await;
    let warned = stderr.matches("idle longest").count();
    assert_eq!(
        warned, 1,
        "hundreds closed, one warning a minute:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_mid_request_is_never_closed_for_a_newcomer_and_the_socket_still_answers() {
    let (_fake, env, mut serve, api, access) = capped(CAP).await;
    // Every connection of the cap busy: an event stream is one request that never ends.
    let mut streams = Vec::new();
    for i in 0..CAP {
        let stream = api.events().await;
        assert_eq!(stream.status, 200, "subscriber {i}");
        streams.push(stream);
    }
    // A newcomer over TCP is told so at once, since no connection may be closed for it.
    let mut late = connect(env.api_port).await;
    let (said, closed) = read_until_closed(&mut late, Duration::from_secs(5)).await;
    let said = String::from_utf8_lossy(&said);
    assert!(
        closed && said.contains("too_many_connections"),
        "the newcomer was told: {said:?}"
    );
    // This user's processes on the engine's Unix socket are not refused for TCP's load.
    let holder = env.engine_holder().expect("the engine's holder file");
    let socket = holder["socket"].as_str().expect("a socket").to_owned();
    for _ in 0..3 {
        let mut unix = tokio::net::UnixStream::connect(&socket)
            .await
            .expect("connect the socket");
        unix.write_all(
            b"GET /v1/accounts/fb/token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("write");
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), unix.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            read.is_ok() && answer.starts_with("HTTP/1.1 200"),
            "on the socket: {answer}"
        );
        assert!(answer.contains(&access), "{answer}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cut = streams.iter().filter(|s| !s.is_open()).count();
    assert_eq!(cut, 0, "{cut} event streams were cut for newcomers");
    drop(streams);
    assert!(serve.running(), "serve exited:\n{}", serve.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_subscribers_past_the_cap_are_refused_and_others_still_served() {
    let (_fake, _env, mut serve, api, access) = capped(256).await;
    const SUBSCRIBERS: usize = 64;
    let mut streams = Vec::new();
    for i in 0..SUBSCRIBERS {
        let stream = api.events().await;
        assert_eq!(stream.status, 200, "subscriber {i}");
        streams.push(stream);
    }
    let refused = api.get("/v1/events").await;
    refused.expect_error(503, "too_many_subscribers");
    assert_eq!(api.token("fb").await, access, "tokens are still served");
    drop(streams.pop());
    wait_until(
        Duration::from_secs(5),
        "a subscriber slot freed",
        async || {
            let stream = api.events().await;
            let ok = stream.status == 200;
            if ok {
                streams.push(stream);
            }
            ok
        },
    )
    .await;
    drop(streams);
    assert!(serve.running(), "serve exited:\n{}", serve.stderr());
}

/// A request from a chosen loopback address (any of 127/8 reaches a 127.0.0.1 listener).
async fn from(source: [u8; 4], port: u16, key: &str) -> u16 {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind((std::net::Ipv4Addr::from(source), 0).into())
        .expect("bind a loopback source");
    let mut s = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    let request = format!(
        "GET /v1/accounts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.expect("write");
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_from_all_of_loopback_share_one_limit_and_two_log_lines() {
    let (_fake, env, serve, api, access) = capped(CAP).await;
    let mut codes = Vec::new();
    for i in 0..200u32 {
        let source = [127, (i / 250) as u8 + 1, (i % 250) as u8, 1 + (i % 7) as u8];
        codes.push(from(source, env.api_port, "tw_not_a_key").await);
    }
    let unauthorized = codes.iter().filter(|c| **c == 401).count();
    let limited = codes.iter().filter(|c| **c == 429).count();
    assert_eq!(
        (unauthorized, limited),
        (20, 180),
        "200 failures from 200 loopback addresses: {codes:?}"
    );
    // The valid key is never refused for others' failures.
    assert_eq!(api.token("fb").await, access);
    let stderr = serve.logged("API authentication failed", 2).await;
    let logged = stderr.matches("API authentication failed").count();
    eprintln!("200 failed authentications: {logged} log lines");
    assert_eq!(
        logged, 2,
        "the first failure and the limit, not 200:\n{stderr}"
    );
}
