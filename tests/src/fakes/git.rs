//! A git host over smart HTTP: the real `git http-backend` (CGI) behind an axum server that
//! demands HTTP Basic credentials and lets in only a password its check accepts (a provider's
//! current token). Every request's username and whether its password passed are recorded.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use tokio::io::AsyncWriteExt;

type Check = Arc<Mutex<Option<Box<dyn Fn(&str) -> bool + Send + Sync>>>>;

/// One request's credentials: (username, password accepted), or `None` without any.
pub type Attempt = Option<(String, bool)>;

pub struct GitServer {
    pub addr: std::net::SocketAddr,
    root: PathBuf,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    check: Check,
}

impl GitServer {
    /// Serves the bare repositories under `root`; it lets nobody in until [`Self::trust`].
    pub async fn start(root: &Path) -> Self {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let check: Check = Arc::new(Mutex::new(None));
        let (seen, dir, trusted) = (attempts.clone(), root.to_owned(), check.clone());
        let router = axum::Router::new().fallback(move |request: Request| {
            let (seen, dir, trusted) = (seen.clone(), dir.clone(), trusted.clone());
            async move {
                let check = |password: &str| {
                    trusted
                        .lock()
                        .expect("git check")
                        .as_ref()
                        .is_some_and(|c| c(password))
                };
                handle(request, &dir, &check, &seen).await
            }
        });
        let addr = super::serve(router).await;
        Self {
            addr,
            root: root.to_owned(),
            attempts,
            check,
        }
    }

    /// From now on, lets in the passwords `check` accepts.
    pub fn trust(&self, check: impl Fn(&str) -> bool + Send + Sync + 'static) {
        *self.check.lock().expect("git check") = Some(Box::new(check));
    }

    /// `host:port` as git's credential requests name it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self, repo: &str) -> String {
        format!("http://{}/{repo}", self.addr)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().expect("git attempts").clone()
    }
}

fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn handle(
    request: Request,
    root: &Path,
    check: &(dyn Fn(&str) -> bool + Sync),
    seen: &Mutex<Vec<Attempt>>,
) -> Response {
    let (parts, body) = request.into_parts();
    let given = credentials(&parts.headers);
    let accepted = given.as_ref().is_some_and(|(_, p)| check(p));
    seen.lock()
        .expect("git attempts")
        .push(given.as_ref().map(|(u, _)| (u.clone(), accepted)));
    if !accepted {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Basic realm=\"git\"")
            .body(Body::from("credentials refused\n"))
            .expect("response");
    }
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut cgi = tokio::process::Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", given.map(|(u, _)| u).unwrap_or_default())
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cgi.spawn().expect("run git http-backend");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(&body)
        .await
        .expect("request body to the CGI");
    drop(stdin);
    let out = child.wait_with_output().await.expect("git http-backend");
    cgi_response(&out.stdout)
}

/// A CGI answer: header lines (`Status:` among them), a blank line, the body.
fn cgi_response(output: &[u8]) -> Response {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, gap)) = split else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::from(output.to_vec()))
            .expect("response");
    };
    let mut response = Response::builder();
    let mut status = StatusCode::OK;
    for line in String::from_utf8_lossy(&output[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("200");
            status = code.parse().unwrap_or(StatusCode::OK);
        } else if let Ok(v) = HeaderValue::from_str(value) {
            response = response.header(name, v);
        }
    }
    response
        .status(status)
        .body(Body::from(output[end + gap..].to_vec()))
        .expect("response")
}
