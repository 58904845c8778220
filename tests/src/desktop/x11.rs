//! What the X display shows: the CLIPBOARD selection (`xclip`), the app's main window
//! (`scripts/x11-window.py`) and screenshots of the whole screen (`import`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::{python_json, WINDOW_TITLE};

/// The CLIPBOARD selection as `xclip -o -selection clipboard` prints it; `None` when nobody
/// owns it or it holds no text.
pub async fn clipboard() -> Option<String> {
    clipboard_as(None).await
}

/// The CLIPBOARD selection converted to `target` (`xclip -t TARGET`): `TARGETS` lists what
/// the owner offers, `x-kde-passwordManagerHint` is the clipboard-manager hint.
pub async fn clipboard_as(target: Option<&str>) -> Option<String> {
    let mut args = vec!["-o", "-selection", "clipboard"];
    if let Some(target) = target {
        args.extend(["-t", target]);
    }
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new("xclip")
            .args(&args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("xclip -o did not answer within 10 s")
    .expect("run xclip (Debian package xclip)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Whether `pid`'s window titled [`WINDOW_TITLE`] is mapped: `None` when it has none (yet).
pub async fn window_mapped(pid: u32) -> Option<bool> {
    let state = python_json("x11-window.py", &["state", &pid.to_string(), WINDOW_TITLE])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    state["window"].as_u64()?;
    state["mapped"].as_bool()
}

/// Sends WM_DELETE_WINDOW to `pid`'s main window, as a window manager's close button does.
pub async fn close_window(pid: u32) {
    let state = python_json("x11-window.py", &["close", &pid.to_string(), WINDOW_TITLE])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        state["window"].as_u64().is_some(),
        "process {pid} has no window titled {WINDOW_TITLE:?}"
    );
}

/// `tests/artifacts/screenshots/` (gitignored), created on demand.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/screenshots");
    std::fs::create_dir_all(&dir).expect("create tests/artifacts/screenshots");
    dir
}

/// Saves a screenshot of the whole X screen (`import -window root`) as
/// `tests/artifacts/screenshots/NAME.png`, e.g. to show the window without WebDriver.
pub async fn save_screenshot(name: &str) -> PathBuf {
    let path = screenshot_dir().join(format!("{name}.png"));
    let status = tokio::process::Command::new("import")
        .args(["-window", "root"])
        .arg(&path)
        .stdin(Stdio::null())
        .status()
        .await
        .expect("run import (Debian package imagemagick)");
    assert!(status.success(), "import -window root failed");
    path
}

/// Reads the PNG header: (width, height), or `None` when `bytes` is not a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((width, height))
}
