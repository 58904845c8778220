#!/usr/bin/env python3
"""Checks server.py (and client.py) against the official MCP SDK's own OAuth client.

    selftest.py [--token-lifetime SECONDS (default 4)]

Starts server.py, then:
  1. without a token: POST /mcp is 401 with WWW-Authenticate naming the RFC 9728 metadata, and
     both .well-known documents say what the MCP authorization spec wants;
  2. with the SDK's streamable HTTP client + OAuthClientProvider (in-memory storage, a headless
     browser that reads the code from the 302): connect, list tools, echo, count (progress and
     log notifications); POST /test/expire and echo again (the SDK answers that 401 with a whole
     new authorization, not a refresh); outlive the token and echo again (now the SDK refreshes,
     because it tracks expires_in itself); replay the rotated-away refresh token (refused);
     revoke the live access token (then refused at /mcp);
  3. client.py through sdk_bridge.py (a stdio bridge made of the same SDK client), with an
     expiry before echo call 2.
Prints /test/stats at the end; exit 0 only if every check held. Server and client stderr go
to a temporary directory and are shown on failure.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2

from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, LoggingMessageNotificationParams, TextContent

sys.dont_write_bytecode = True  # importing the sibling below must not leave __pycache__ in the repo
from sdk_bridge import HeadlessBrowser, MemoryTokenStorage, oauth_provider  # noqa: E402

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
failures: list[str] = []


def check(ok: bool, what: str, detail: Any = None) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + ("" if ok or detail is None else f": {detail}"), file=sys.stderr)
    if not ok:
        failures.append(what)


def text_of(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


def start_server(workdir: Path, lifetime: int) -> tuple[subprocess.Popen, int]:
    port_file = workdir / "port"
    log = open(workdir / "server.log", "w")
    server = subprocess.Popen([PYTHON, str(HERE / "server.py"), "--port-file", str(port_file),
                               "--token-lifetime", str(lifetime)], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 20
    while not port_file.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server.py did not come up; see {workdir / 'server.log'}")
        time.sleep(0.05)
    return server, int(port_file.read_text())


async def unauthenticated(base: str) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        r = await http.post(f"{base}/mcp")
        www = r.headers.get("www-authenticate", "")
        check(r.status_code == 401, "POST /mcp without a token is 401", r.status_code)
        check(www.startswith("Bearer ") and
              f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"' in www,
              "WWW-Authenticate names the protected resource metadata", www)

        prm = (await http.get(f"{base}/.well-known/oauth-protected-resource/mcp")).json()
        check(prm.get("resource") == f"{base}/mcp", "PRM resource is the /mcp URL", prm)
        check(prm.get("authorization_servers") == [base], "PRM names this server as authorization server", prm)

        asm = (await http.get(f"{base}/.well-known/oauth-authorization-server")).json()
        check(asm.get("issuer") == base, "AS metadata issuer", asm.get("issuer"))
        for key, path in (("authorization_endpoint", "/authorize"), ("token_endpoint", "/token"),
                          ("registration_endpoint", "/register"), ("revocation_endpoint", "/revoke")):
            check(asm.get(key) == base + path, f"AS metadata {key}", asm.get(key))
        check(asm.get("code_challenge_methods_supported") == ["S256"], "AS metadata requires S256",
              asm.get("code_challenge_methods_supported"))


async def stats(base: str) -> dict[str, Any]:
    async with httpx2.AsyncClient(timeout=10) as http:
        return (await http.get(f"{base}/test/stats")).json()


async def sdk_client(base: str, lifetime: int) -> None:
    url = f"{base}/mcp"
    storage, browser = MemoryTokenStorage(), HeadlessBrowser()
    logs: list[LoggingMessageNotificationParams] = []
    progress: list[float] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    provider = oauth_provider(url, storage, browser, client_name="selftest")
    async with (
        httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, logging_callback=on_log, read_timeout_seconds=30) as session,
    ):
        await session.initialize()
        tools = sorted(t.name for t in (await session.list_tools()).tools)
        check(tools == ["count", "echo"], "tools are count and echo", tools)
        check(text_of(await session.call_tool("echo", {"text": "one"})) == "one", "echo one")

        result = await session.call_tool("count", {"n": 3}, progress_callback=on_progress)
        check(text_of(result) == "counted 3" and progress == [1, 2, 3],
              "count with a progressToken sends 3 progress notifications", (text_of(result), progress))
        result = await session.call_tool("count", {"n": 3})
        check(text_of(result) == "counted 3" and len(logs) == 3,
              "count without one sends 3 log notifications", (text_of(result), len(logs)))

        s = await stats(base)
        check((s["registrations"], s["authorizations"], s["code_exchanges"]) == (1, 1, 1),
              "one registration, one consent, one code exchange", s)
        check(s["resources"] == [url], "resource parameter sent and equal to the /mcp URL", s["resources"])

        async with httpx2.AsyncClient(timeout=10) as raw:
            expired = (await raw.post(f"{base}/test/expire")).json()
        check(expired.get("expired", 0) >= 1, "/test/expire expired the live token", expired)
        check(text_of(await session.call_tool("echo", {"text": "two"})) == "two", "echo after /test/expire")
        s = await stats(base)
        check(s["rejected_with_token"] >= 1, "the expired token was refused", s["rejected_with_token"])
        # mcp 2.3.0's OAuthClientProvider does not try its refresh token on a 401: it runs the
        # whole authorization again (reusing its registration).
        check(s["authorizations"] == 2 and s["registrations"] == 1 and s["refreshes"] == 0,
              "SDK re-authorized after the 401 (no refresh, no new registration)", s)

        await anyio.sleep(lifetime + 1.5)
        check(text_of(await session.call_tool("echo", {"text": "three"})) == "three", "echo after the token lapsed")
        s = await stats(base)
        check(s["refreshes"] == 1 and s["authorizations"] == 2,
              "SDK refreshed once its token lapsed (it tracks expires_in)", s)

    client = storage.client_info
    assert client is not None and storage.tokens is not None
    async with httpx2.AsyncClient(timeout=10) as raw:
        # history: [first authorization, second authorization, refresh]; the refresh spent the
        # second set's refresh token, which rotation must have killed.
        spent = storage.history[-2].refresh_token
        r = await raw.post(f"{base}/token", data={
            "grant_type": "refresh_token", "refresh_token": spent,
            "client_id": client.client_id, "client_secret": client.client_secret or ""})
        check(r.status_code == 400 and r.json().get("error") == "invalid_grant",
              "a rotated-away refresh token is refused", (r.status_code, r.text))

        live = storage.tokens.access_token
        r = await raw.post(f"{base}/revoke", data={
            "token": live, "client_id": client.client_id, "client_secret": client.client_secret or ""})
        check(r.status_code == 200, "revocation answered 200", r.status_code)
        r = await raw.post(f"{base}/mcp", headers={"authorization": f"Bearer {live}"})
        check(r.status_code == 401 and "invalid_token" in r.headers.get("www-authenticate", ""),
              "a revoked token is refused at /mcp", (r.status_code, r.headers.get("www-authenticate")))

    s = await stats(base)
    check(s["refresh_failures"] == 1 and s["revocations"] == 1, "stats count the refused refresh and the revocation", s)


def client_through_bridge(base: str, workdir: Path) -> None:
    before = anyio.run(stats, base)
    with open(workdir / "client.log", "w") as log:
        done = subprocess.run(
            [PYTHON, str(HERE / "client.py"), "--calls", "3", "--expire-before-call", "2",
             "--stats-url", f"{base}/test/stats", "--", PYTHON, str(HERE / "sdk_bridge.py"), f"{base}/mcp"],
            stdout=subprocess.PIPE, stderr=log, text=True, timeout=120)
    check(done.returncode == 0, "client.py exit 0", done.returncode)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        check(False, "client.py printed one JSON object", done.stdout[:500])
        return
    check(report["tools"] == ["echo", "count"] or sorted(report["tools"]) == ["count", "echo"],
          "client.py saw both tools", report["tools"])
    check(report["count"] and report["count"]["result"] == "counted 3" and report["count"]["notifications"] == 3,
          "client.py: count answered after 3 notifications", report["count"])
    check([e["text"] for e in report["echo"]] == ["hello-1", "hello-2", "hello-3"] and
          all(e["ok"] for e in report["echo"]), "client.py: three echoes", report["echo"])
    check(len(report["expire"]) == 1 and report["expire"][0]["before_call"] == 2 and report["expire"][0]["expired"] >= 1,
          "client.py: expired before call 2", report["expire"])
    after = report["stats"]
    check(after["registrations"] == before["registrations"] + 1 and
          after["authorizations"] == before["authorizations"] + 2,
          "the bridge registered once and authorized twice (once more after the expiry)",
          {k: (before[k], after[k]) for k in ("registrations", "authorizations", "refreshes")})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--token-lifetime", type=int, default=4,
                        help="short, so the SDK's own expiry tracking (and so its refresh) can be seen")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mcp-selftest-") as tmp:
        workdir = Path(tmp)
        server, port = start_server(workdir, args.token_lifetime)
        base = f"http://127.0.0.1:{port}"
        print(f"server.py on {base}", file=sys.stderr)
        try:
            anyio.run(unauthenticated, base)
            anyio.run(sdk_client, base, args.token_lifetime)
            client_through_bridge(base, workdir)
            print(json.dumps(anyio.run(stats, base), indent=2))
        except Exception as exc:
            check(False, "selftest ran to the end", repr(exc))
            raise
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                # uvicorn shuts down gracefully, then re-raises the signal it caught.
                check(server.wait(timeout=10) in (0, -signal.SIGTERM), "server.py exits on SIGTERM",
                      server.returncode)
            except subprocess.TimeoutExpired:
                server.kill()
                check(False, "server.py exits on SIGTERM", "killed after 10 s")
            if failures:
                for name in ("server.log", "client.log"):
                    if (workdir / name).exists():
                        print(f"----- {name}\n{(workdir / name).read_text()}", file=sys.stderr)

    print(f"{'FAILED: ' + ', '.join(failures) if failures else 'all checks passed'}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
