//! A program that takes a token when told to (`tests/ask/taker.py` under the system's
//! Python), for ask first's tests: one process is one program instance the user answers
//! about, and it can take again (a second call of the same process).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub const PYTHON: &str = "/usr/bin/python3";

/// The executable the kernel names for [`PYTHON`] (`/usr/bin/python3.11`).
pub fn python_exe() -> String {
    std::fs::canonicalize(PYTHON)
        .expect("python3")
        .display()
        .to_string()
}

pub struct TakerProcess {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl TakerProcess {
    /// Starts the script; it takes `url` with `key` each time [`TakerProcess::take`] asks.
    pub fn start(url: &str, key: &str, expect: &str) -> Self {
        let mut child = Command::new(PYTHON)
            .arg(crate::python::script("ask/taker.py"))
            .env("URL", url)
            .env("KEY", key)
            .env("EXPECT", expect)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start tests/ask/taker.py");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self {
            child,
            stdin,
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Asks for a token without waiting for the answer ([`TakerProcess::answer`]).
    pub async fn ask(&mut self) {
        self.stdin.write_all(b"take\n").await.expect("write");
        self.stdin.flush().await.expect("flush");
    }

    /// The answer to the last ask: "200 ok", "403 not_approved <message>", ...
    pub async fn answer(&mut self, limit: Duration) -> String {
        tokio::time::timeout(limit, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no answer within {limit:?}"))
            .expect("read")
            .expect("the taker exited")
    }

    pub async fn take(&mut self, limit: Duration) -> String {
        self.ask().await;
        self.answer(limit).await
    }
}
