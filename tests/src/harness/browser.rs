//! The consent flow with the test playing the browser: `connect` started and its first lines
//! read ([`Connecting`], [`DeviceConnecting`]), the provider's redirect followed, the loopback
//! callback fetched.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::{Env, Output};

/// A running `connect --no-browser` (or another command whose first lines were read).
pub struct Connecting {
    args: Vec<String>,
    /// The first stdout line, trimmed: the authorization URL.
    pub auth_url: String,
    /// The stdout lines read before returning, with their line ends.
    pub first_line: String,
    child: tokio::process::Child,
    stdout_task: tokio::task::JoinHandle<String>,
    stderr_task: tokio::task::JoinHandle<String>,
}

impl Connecting {
    /// The authorization URL; panics unless the first line is a URL and nothing else.
    pub fn url(&self) -> url::Url {
        url::Url::parse(&self.auth_url).unwrap_or_else(|e| {
            panic!(
                "connect's first stdout line is not a URL ({e}): {:?}",
                self.first_line
            )
        })
    }

    /// Waits (30 s at most) for the process to exit.
    pub async fn finish(mut self) -> Output {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let code = match status {
            Ok(Ok(s)) => s.code().unwrap_or(-1),
            _ => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                -2
            }
        };
        let rest = self.stdout_task.await.unwrap_or_default();
        Output {
            args: self.args,
            code,
            stdout: self.first_line + &rest,
            stderr: self.stderr_task.await.unwrap_or_default(),
        }
    }
}

/// A running `connect NAME --device`.
pub struct DeviceConnecting {
    /// Stdout line 1.
    pub verification_uri: String,
    /// Stdout line 2.
    pub user_code: String,
    pub flow: Connecting,
}

impl DeviceConnecting {
    /// Waits (30 s at most) for the process to exit; stdout includes the two lines read.
    pub async fn finish(self) -> Output {
        self.flow.finish().await
    }
}

/// Plays the browser on the provider: GET the authorization URL without following the redirect,
/// and return where the provider sends the user (the app's loopback callback).
pub async fn authorize_in_browser(auth_url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let response = client
        .get(auth_url)
        .send()
        .await
        .expect("GET the authorization URL");
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match location {
        Some(l) if status.is_redirection() => l,
        _ => panic!(
            "the provider refused the authorization request {auth_url}: HTTP {status}: {}",
            response.text().await.unwrap_or_default()
        ),
    }
}

/// GET `url` like a browser on the loopback listener: (status, body). Retries refused
/// connections for 2 s, since a browser is never faster than that after the URL is printed.
pub async fn browser_get(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match client.get(url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                return (status, r.text().await.unwrap_or_default());
            }
            Err(e) if e.is_connect() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("GET {url}: {e}"),
        }
    }
}

impl Env {
    /// Starts `connect NAME --no-browser` and reads the authorization URL from its first line.
    pub async fn start_connect(&self, name: &str) -> Connecting {
        self.spawn_reading_lines(&["connect", name, "--no-browser"], 1)
            .await
    }

    /// Starts `connect NAME --device` and reads its first two stdout lines: the verification
    /// URI and the user code.
    pub async fn start_connect_device(&self, name: &str) -> DeviceConnecting {
        let flow = self
            .spawn_reading_lines(&["connect", name, "--device"], 2)
            .await;
        let lines: Vec<String> = flow
            .first_line
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect();
        DeviceConnecting {
            verification_uri: lines[0].clone(),
            user_code: lines[1].clone(),
            flow,
        }
    }

    /// Starts `tokenwarden args` and reads `lines` stdout lines (20 s at most).
    async fn spawn_reading_lines(&self, args: &[&str], lines: usize) -> Connecting {
        let mut cmd = tokio::process::Command::from(self.command(args));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn tokenwarden connect");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr_task = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        let mut first = String::new();
        for i in 0..lines {
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut line)).await;
            if !matches!(read, Ok(Ok(n)) if n > 0) {
                let exited = child.try_wait().ok().flatten();
                let _ = child.start_kill();
                let stderr = stderr_task.await.unwrap_or_default();
                panic!(
                    "`tokenwarden {}` printed {i} stdout lines, expected {lines} ({})\n--- stdout\n{first}\n--- stderr\n{stderr}",
                    args.join(" "),
                    exited.map_or("still running after 20 s".to_owned(), |s| format!("it exited: {s}"))
                );
            }
            first.push_str(&line);
        }
        let stdout_task = tokio::spawn(async move {
            let mut rest = String::new();
            let _ = stdout.read_to_string(&mut rest).await;
            rest
        });
        Connecting {
            args: args.iter().map(|a| a.to_string()).collect(),
            auth_url: first.lines().next().unwrap_or("").trim_end().to_string(),
            first_line: first,
            child,
            stdout_task,
            stderr_task,
        }
    }

    /// The whole consent flow: start connect, follow the fake's redirect into the app's loopback
    /// listener, expect its 200 page, expect exit 0. Returns the authorization URL.
    pub async fn connect(&self, name: &str) -> url::Url {
        let flow = self.start_connect(name).await;
        let auth_url = flow.url();
        let callback = authorize_in_browser(&flow.auth_url).await;
        let (status, body) = browser_get(&callback).await;
        assert_eq!(
            status, 200,
            "the loopback listener's answer to {callback}: {body}"
        );
        let out = flow.finish().await;
        self.transcript
            .lock()
            .expect("transcript")
            .push(out.clone());
        out.ok();
        auth_url
    }
}
