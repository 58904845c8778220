//! [`Output`]: what one command of the binary did, and the checks most tests make on it.

use std::fmt;

/// What one command did.
#[derive(Clone, Debug)]
pub struct Output {
    pub args: Vec<String>,
    /// Exit code; -1 when a signal ended the process.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`tokenwarden {}` exited {}\n--- stdout\n{}\n--- stderr\n{}\n---",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

impl Output {
    /// Panics with everything the command printed unless it exited 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success:\n{self}");
        self
    }

    /// Panics unless the command exited 1 with exactly one `tokenwarden: ` line on stderr
    /// (other stderr lines are logs); returns that line.
    #[track_caller]
    pub fn failure_line(&self) -> String {
        assert_eq!(self.code, 1, "expected exit code 1:\n{self}");
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("tokenwarden: "))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one `tokenwarden: ` line on stderr:\n{self}"
        );
        lines[0].to_string()
    }

    pub fn stdout_trimmed(&self) -> &str {
        self.stdout.trim_end_matches(['\n', '\r'])
    }
}
