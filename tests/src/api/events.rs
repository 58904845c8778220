//! [`EventStream`], a background reader of `GET /v1/events` (Server-Sent Events), and the strict
//! parser of its blocks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Api;

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
    pub(super) async fn open(api: &Api) -> Self {
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
