//! `make bench`: `tokenwarden mcp` beside `mcp-remote` (npm) and the MCP SDK's own HTTP client
//! with a static token, on one MCP SDK server with its own OAuth (tests/mcp/compare.py): time
//! per call (p50/p99 over 600 calls in rotating rounds), session start, calls failed across an
//! access token's expiry, consents needed across a restart. Prints `bench: mcp …` lines.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use tokenwarden_e2e::harness::bin_path;
use tokenwarden_e2e::python::{python, script};

fn ms(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.2}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: make bench"]
async fn mcp_bridge_beside_mcp_remote_and_a_direct_client() {
    let bin = std::env::var_os("TOKENWARDEN_BIN").map_or_else(bin_path, PathBuf::from);
    let out = tokio::process::Command::new(python())
        .arg(script("mcp/compare.py"))
        .arg("--setup-tokenwarden")
        .arg(&bin)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("run compare.py");
    assert!(out.status.success(), "compare.py failed");
    let r: Value = serde_json::from_slice(&out.stdout).expect("compare.py's JSON");
    let (tw, remote, direct) = (&r["tokenwarden"], &r["mcp-remote"], &r["direct"]);
    if let Some(e) = remote["error"].as_str() {
        println!("bench: mcp-remote could not be run: {e}");
    }
    println!(
        "bench: mcp per call p50/p99: tokenwarden mcp {}/{} ms, mcp-remote {} {}/{} ms, direct SDK HTTP client {}/{} ms",
        ms(&tw["overhead"]["p50_ms"]),
        ms(&tw["overhead"]["p99_ms"]),
        remote["version"].as_str().unwrap_or("?"),
        ms(&remote["overhead"]["p50_ms"]),
        ms(&remote["overhead"]["p99_ms"]),
        ms(&direct["overhead"]["p50_ms"]),
        ms(&direct["overhead"]["p99_ms"]),
    );
    println!(
        "bench: mcp session start (spawn to initialize answered): tokenwarden mcp {} ms, mcp-remote {} ms, direct {} ms",
        ms(&tw["overhead"]["initialize_ms"]),
        ms(&remote["overhead"]["initialize_ms"]),
        ms(&direct["overhead"]["initialize_ms"]),
    );
    println!(
        "bench: mcp failed calls of 10 across an expiry: tokenwarden mcp {}, mcp-remote {}, direct (static token) {}",
        tw["expiry"]["failed_calls"], remote["expiry"]["failed_calls"], direct["expiry"]["failed_calls"],
    );
    println!(
        "bench: mcp consents after a restart: tokenwarden {}, mcp-remote {}; after an expiry then a restart: tokenwarden {}, mcp-remote {}",
        tw["restart"]["consents"],
        remote["restart"]["consents"],
        tw["expire_then_restart"]["consents"],
        remote["expire_then_restart"]["consents"],
    );
    assert_eq!(tw["expiry"]["failed_calls"], 0, "{r}");
    assert_eq!(tw["restart"]["consents"], 0, "{r}");
}
