//! A small HTTP/1.1 load generator for what wrk cannot reach: a Unix socket. It loads a TCP
//! address the same way, so the socket's figures have a baseline measured by the same client.
//! `make bench` runs it against Tokenwarden's socket and bare-axum's, one after the other.
//!
//!   loadgen (unix:PATH | tcp:HOST:PORT) TARGET CONNECTIONS SECONDS [HEADER: VALUE]...
//!
//! Each connection sends TARGET again as soon as its answer is read (keep-alive), on a
//! two-thread runtime, as wrk -t2 does. Prints one line:
//! `requests N per_second R p50_us A p99_us B errors E`; any answer but 200 is an error.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

enum Address {
    Unix(String),
    Tcp(String),
}

async fn connection<S>(
    stream: S,
    target: String,
    headers: Vec<(String, String)>,
    until: Instant,
) -> (Vec<u32>, u64)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    while Instant::now() < until {
        let mut request = Request::get(target.as_str()).header("host", "127.0.0.1");
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request.body(Empty::<Bytes>::new()).expect("request");
        let started = Instant::now();
        match sender.send_request(request).await {
            Ok(answer) => {
                let ok = answer.status() == 200;
                if answer.into_body().collect().await.is_err() || !ok {
                    errors += 1;
                }
                latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            Err(_) => {
                errors += 1;
                break;
            }
        }
    }
    (latencies, errors)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "loadgen (unix:PATH | tcp:HOST:PORT) TARGET CONNECTIONS SECONDS [HEADER: VALUE]...";
    let [address, target, connections, seconds, headers @ ..] = args.as_slice() else {
        eprintln!("usage: {usage}");
        std::process::exit(2);
    };
    let address = match (address.strip_prefix("unix:"), address.strip_prefix("tcp:")) {
        (Some(path), _) => Address::Unix(path.to_owned()),
        (_, Some(addr)) => Address::Tcp(addr.to_owned()),
        _ => panic!("{address}: want unix:PATH or tcp:HOST:PORT ({usage})"),
    };
    let connections: usize = connections.parse().expect("CONNECTIONS");
    let seconds: u64 = seconds.parse().expect("SECONDS");
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|h| {
            let (name, value) = h.split_once(':').expect("HEADER: VALUE");
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (mut latencies, errors, took) = runtime.block_on(async move {
        let started = Instant::now();
        let until = started + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (target, headers) = (target.clone(), headers.clone());
            tasks.push(match &address {
                #[cfg(unix)]
                Address::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .expect("connect to the socket");
                    tokio::spawn(connection(stream, target, headers, until))
                }
                #[cfg(not(unix))]
                Address::Unix(_) => panic!("no Unix sockets here"),
                Address::Tcp(addr) => {
                    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                    stream.set_nodelay(true).expect("nodelay");
                    tokio::spawn(connection(stream, target, headers, until))
                }
            });
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (latencies, e) = task.await.expect("a connection");
            all.extend(latencies);
            errors += e;
        }
        (all, errors, started.elapsed())
    });
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "requests {} per_second {:.0} p50_us {} p99_us {} errors {errors}",
        latencies.len(),
        latencies.len() as f64 / took.as_secs_f64(),
        at(0.50),
        at(0.99)
    );
}
