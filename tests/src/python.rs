//! The real Python clients (the MCP SDK, google-auth) in the venv `make test` builds in
//! `target/py` from `tests/python-requirements.txt`, and the scripts under `tests/`.

use std::path::PathBuf;

/// The venv's interpreter; `TOKENWARDEN_TEST_PYTHON` names another.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TOKENWARDEN_TEST_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: `make test` (or `make target/py/.installed`) makes the venv with the MCP SDK and google-auth",
        venv.display()
    );
    venv
}

/// A file under `tests/`, e.g. `mcp/server.py`.
pub fn script(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}
