//! [`Api`], the byte-exact client: a [`Request`] written as is over one TCP connection, its
//! answer read to the end and recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wire::parse_response;
use super::{Answer, EventStream};

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
