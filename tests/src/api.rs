//! A client of Tokenwarden's local HTTP API, written for tests that must control every byte.
//!
//! [`Api`] speaks HTTP/1.1 over a plain TCP connection (one request per connection,
//! `Connection: close`), so a test can send what a well-behaved client library would refuse or
//! normalise: paths with `..` or `%00`, a foreign `Host`, an `Origin`, no `Authorization`, broken
//! bodies. By default every request carries `Host: 127.0.0.1:PORT` and the bearer key the
//! [`Api`] was made with. Every answer is recorded, so a test can check all of them at the end
//! (no `Access-Control-*` header, no secret in any body).
//!
//! [`EventStream`] reads `GET /v1/events` (Server-Sent Events) in the background and parses it
//! strictly: every event must have `event:` and `data:` lines and JSON data.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One answer of the API, with the request that got it.
#[derive(Clone, Debug)]
pub struct Answer {
    pub method: String,
    pub target: String,
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.target.chars().take(200).collect();
        let more = if self.target.len() > 200 { "…" } else { "" };
        write!(f, "{} {shown}{more} → HTTP {}", self.method, self.status)?;
        for (k, v) in &self.headers {
            write!(f, "\n  {k}: {v}")?;
        }
        let body: String = self.body.chars().take(2000).collect();
        write!(f, "\n  body: {body}")
    }
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the whole answer when it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}):\n{self}"))
    }

    /// Panics unless the status is `status`; returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status:\n{self}");
        self.json()
    }

    /// Panics unless this is a contract error answer: `status`, a JSON object with the string
    /// `error` equal to `code` and a non-empty string `message`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        if let Some(problem) = self.error_problem(status, code) {
            panic!("{problem}:\n{self}");
        }
    }

    /// Panics unless the body is `{"error": "<code>", "message": "<text>", …}` with a JSON
    /// content type.
    #[track_caller]
    pub fn assert_error_shape(&self) {
        if let Some(problem) = self.error_shape_problem() {
            panic!("{problem}:\n{self}");
        }
    }

    /// What is wrong with this answer as the contract error `status` `code`, if anything.
    pub fn error_problem(&self, status: u16, code: &str) -> Option<String> {
        if self.status != status {
            return Some(format!(
                "expected {status} {code}, got HTTP {}",
                self.status
            ));
        }
        if let Some(p) = self.error_shape_problem() {
            return Some(p);
        }
        let got = self.json()["error"].clone();
        (got != code).then(|| format!("expected error code {code}, got {got}"))
    }

    /// What is wrong with this answer as a contract error answer, if anything.
    pub fn error_shape_problem(&self) -> Option<String> {
        let ct = self.header("content-type").unwrap_or("");
        if !ct.starts_with("application/json") {
            return Some(format!(
                "an error answer must be JSON, got content-type {ct:?}"
            ));
        }
        let Ok(v) = serde_json::from_str::<Value>(&self.body) else {
            return Some("an error answer must be JSON, the body is not".into());
        };
        if v.get("error")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Some("an error answer names a code in `error`".into());
        }
        if v.get("message")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Some("an error answer explains itself in `message`".into());
        }
        None
    }

    /// The `access_token` of a token answer (panics unless 200 and a string).
    #[track_caller]
    pub fn access_token(&self) -> String {
        let v = self.expect(200);
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token:\n{self}"))
            .to_string()
    }
}

/// A request to send with [`Api::send`].
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// `None`: `127.0.0.1:PORT`. `Some("")`: no Host header at all.
    pub host: Option<String>,
    /// `None`: `Bearer <the Api's key>` (none when it has none). `Some("")`: no header.
    pub authorization: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Request {
    pub fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.into(),
            target: target.into(),
            host: None,
            authorization: None,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The whole `Authorization` header value; "" sends none.
    pub fn authorization(mut self, value: &str) -> Self {
        self.authorization = Some(value.into());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A body with this `Content-Type` (none when `content_type` is empty).
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        if !content_type.is_empty() {
            self.headers
                .push(("Content-Type".into(), content_type.into()));
        }
        self.body = Some(body.into());
        self
    }

    pub fn json(self, value: &Value) -> Self {
        self.body("application/json", value.to_string())
    }
}

/// A client of one `serve`'s API with one bearer key (or none).
#[derive(Clone)]
pub struct Api {
    pub port: u16,
    pub key: Option<String>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

impl Api {
    pub fn new(port: u16, key: Option<&str>) -> Self {
        Self {
            port,
            key: key.map(str::to_string),
            answers: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The same server with another key (or none); answers go to the same record.
    pub fn with_key(&self, key: Option<&str>) -> Self {
        Self {
            port: self.port,
            key: key.map(str::to_string),
            answers: self.answers.clone(),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every answer received so far through this client and its [`Api::with_key`] siblings.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers.lock().expect("answers").clone()
    }

    pub async fn get(&self, target: &str) -> Answer {
        self.send(Request::new("GET", target)).await
    }

    pub async fn post(&self, target: &str, body: &Value) -> Answer {
        self.send(Request::new("POST", target).json(body)).await
    }

    /// POST without a body.
    pub async fn post_empty(&self, target: &str) -> Answer {
        self.send(Request::new("POST", target)).await
    }

    /// `GET /v1/accounts/NAME/token`, which must answer 200: the access token.
    pub async fn token(&self, name: &str) -> String {
        self.get(&format!("/v1/accounts/{name}/token"))
            .await
            .access_token()
    }

    /// Sends one request on a new connection and reads the whole answer (30 s at most).
    pub async fn send(&self, req: Request) -> Answer {
        self.send_within(req, Duration::from_secs(30)).await
    }

    /// [`Api::send`] for an answer that may take longer (up to `limit`).
    pub async fn send_within(&self, req: Request, limit: Duration) -> Answer {
        let what = format!("{} {}", req.method, req.target);
        tokio::time::timeout(limit, self.exchange(&req))
            .await
            .unwrap_or_else(|_| panic!("no answer to {what} within {limit:?}"))
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    async fn exchange(&self, req: &Request) -> Result<Answer, String> {
        let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
        match req.host.as_deref() {
            None => head.push_str(&format!("Host: 127.0.0.1:{}\r\n", self.port)),
            Some("") => {}
            Some(h) => head.push_str(&format!("Host: {h}\r\n")),
        }
        match (req.authorization.as_deref(), &self.key) {
            (None, Some(key)) => head.push_str(&format!("Authorization: Bearer {key}\r\n")),
            (None, None) | (Some(""), _) => {}
            (Some(value), _) => head.push_str(&format!("Authorization: {value}\r\n")),
        }
        for (k, v) in &req.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = req.body.clone().unwrap_or_default();
        if req.body.is_some() || req.method == "POST" || req.method == "PUT" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");

        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| format!("connect to 127.0.0.1:{}: {e}", self.port))?;
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&body);
        // Write and read at once: the server may answer (and close) before it has read a large
        // body, and what it said must be read before a reset could discard it. The write half
        // stays open until the answer is in (a half-close could end the exchange early).
        let (mut rd, mut wr) = stream.into_split();
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&bytes).await;
            wr
        });
        let mut raw = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let read = loop {
            match rd.read(&mut chunk).await {
                Ok(0) => break Ok(()),
                Ok(n) => raw.extend_from_slice(&chunk[..n]),
                Err(e) => break Err(e),
            }
        };
        writer.abort();
        if raw.is_empty() {
            return Err(format!("no answer ({read:?})"));
        }
        let (status, headers, body) = parse_response(&raw)?;
        let answer = Answer {
            method: req.method.clone(),
            target: req.target.clone(),
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        self.answers.lock().expect("answers").push(answer.clone());
        Ok(answer)
    }

    /// Opens `GET /v1/events` with this client's key and reads it in the background.
    pub async fn events(&self) -> EventStream {
        EventStream::open(self).await
    }
}

/// Status, headers (lower-case names), decoded body.
type RawResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// Splits a complete HTTP/1.1 response: status, headers (lower-case names), decoded body.
fn parse_response(raw: &[u8]) -> Result<RawResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, headers, body))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return Ok(out); // truncated: keep what arrived
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        data = &data[take..];
        if data.starts_with(b"\r\n") {
            data = &data[2..];
        }
    }
}

/// One Server-Sent Event.
#[derive(Clone, Debug)]
pub struct SseEvent {
    pub event: String,
    pub data: Value,
    /// The raw `data:` text.
    pub raw: String,
}

/// A background reader of `GET /v1/events`.
pub struct EventStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    events: Arc<Mutex<Vec<SseEvent>>>,
    /// Everything received, verbatim (to check that no secret was sent).
    text: Arc<Mutex<String>>,
    /// Framing errors found by the strict parser.
    problems: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventStream {
    async fn open(api: &Api) -> Self {
        let client = reqwest::Client::new();
        let mut req = client.get(format!("{}/v1/events", api.base_url()));
        if let Some(key) = &api.key {
            req = req.bearer_auth(key);
        }
        let mut resp = tokio::time::timeout(Duration::from_secs(10), req.send())
            .await
            .expect("GET /v1/events answers its headers within 10 s")
            .expect("GET /v1/events");
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let events = Arc::new(Mutex::new(Vec::new()));
        let text = Arc::new(Mutex::new(String::new()));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let (ev, tx, pr) = (events.clone(), text.clone(), problems.clone());
        let task = tokio::spawn(async move {
            let mut pending = String::new();
            while let Ok(Some(chunk)) = resp.chunk().await {
                let piece = String::from_utf8_lossy(&chunk).replace("\r\n", "\n");
                tx.lock().expect("sse text").push_str(&piece);
                pending.push_str(&piece);
                while let Some(end) = pending.find("\n\n") {
                    let block: String = pending[..end].to_string();
                    pending.drain(..end + 2);
                    match parse_sse_block(&block) {
                        Ok(Some(e)) => ev.lock().expect("sse events").push(e),
                        Ok(None) => {}
                        Err(p) => pr.lock().expect("sse problems").push(p),
                    }
                }
            }
        });
        Self {
            status,
            headers,
            events,
            text,
            problems,
            task,
        }
    }

    pub fn events(&self) -> Vec<SseEvent> {
        self.events.lock().expect("sse events").clone()
    }

    /// Whether the server still holds the stream open.
    pub fn is_open(&self) -> bool {
        !self.task.is_finished()
    }

    pub fn text(&self) -> String {
        self.text.lock().expect("sse text").clone()
    }

    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().expect("sse problems").clone()
    }

    /// Waits for an event of `kind` about `account` after the first `skip` events; returns it
    /// and its index. Panics after `timeout` listing what did arrive.
    pub async fn wait_for(
        &self,
        kind: &str,
        account: &str,
        skip: usize,
        timeout: Duration,
    ) -> (usize, SseEvent) {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events();
            if let Some((i, e)) = events
                .iter()
                .enumerate()
                .skip(skip)
                .find(|(_, e)| e.event == kind && e.data["account"] == account)
            {
                return (i, e.clone());
            }
            assert!(
                Instant::now() < deadline,
                "no `{kind}` event for {account} within {timeout:?}; received (from #{skip}):\n{}\n--- raw stream\n{}\n--- framing problems: {:?}",
                events
                    .iter()
                    .skip(skip)
                    .map(|e| format!("  {}: {}", e.event, e.raw))
                    .collect::<Vec<_>>()
                    .join("\n"),
                self.text(),
                self.problems()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One SSE block (lines between blank lines). Comments only → None. Strict: an event needs an
/// `event:` line and `data:` that is a JSON object.
fn parse_sse_block(block: &str) -> Result<Option<SseEvent>, String> {
    let mut event = None;
    let mut data: Option<String> = None;
    for line in block.lines() {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_string()),
            "data" => {
                let d = data.get_or_insert_with(String::new);
                if !d.is_empty() {
                    d.push('\n');
                }
                d.push_str(value);
            }
            "id" | "retry" => {}
            other => return Err(format!("unknown SSE field {other:?} in block {block:?}")),
        }
    }
    match (event, data) {
        (None, None) => Ok(None),
        (Some(event), Some(raw)) => {
            let data: Value = serde_json::from_str(&raw)
                .map_err(|e| format!("data of `{event}` is not JSON ({e}): {raw:?}"))?;
            if !data.is_object() {
                return Err(format!("data of `{event}` is not a JSON object: {raw:?}"));
            }
            Ok(Some(SseEvent { event, data, raw }))
        }
        _ => Err(format!(
            "an event needs both `event:` and `data:`: {block:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let raw = b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let (status, headers, body) = parse_response(raw).unwrap();
        assert_eq!(status, 401);
        assert_eq!(headers[0].0, "content-type");
        assert_eq!(body, b"{}");
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap().2, b"abcde");
    }

    #[test]
    fn sse_blocks() {
        let e = parse_sse_block("event: refreshed\ndata: {\"kind\":\"refreshed\"}")
            .unwrap()
            .unwrap();
        assert_eq!(e.event, "refreshed");
        assert_eq!(e.data["kind"], "refreshed");
        assert!(parse_sse_block(": keep-alive").unwrap().is_none());
        assert!(parse_sse_block("data: {}").is_err());
        assert!(parse_sse_block("event: x\ndata: nope").is_err());
    }
}
