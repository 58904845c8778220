#!/usr/bin/env python3
"""Compares three ways for an MCP client to reach the same OAuth-guarded server (server.py).

    compare.py --setup-tokenwarden BIN [--calls 200]            (preferred)
    compare.py --tokenwarden "CMD ARGS..." [--restart-tokenwarden "CMD"] [--calls 200]

The ways:
  direct       the MCP SDK's own streamable HTTP client with a static bearer token that this
               script obtains itself (dynamic registration, authorize with PKCE, code exchange):
               the baseline, what the server and the client cost without any bridge.
  tokenwarden  `tokenwarden mcp NAME` as a stdio server. With --setup-tokenwarden BIN the script
               makes an isolated installation (config, data dir, keychain service of its own),
               runs `BIN serve` in the background as the engine, connects the account headless
               (`connect --no-browser`, the URL fetched with curl -sL) and restarts the engine by
               stopping and starting `serve`. With --tokenwarden CMD the command is run as is
               ({url} is replaced by the server's /mcp URL, also in --restart-tokenwarden, which
               is a shell command run at each restart; without it the restart is the bridge
               process's alone). Needs a Secret Service keychain: run the whole script under
               tests/scripts/session.sh.
  mcp-remote   the npm package, pinned (MCP_REMOTE_VERSION), installed under target/npm if
               missing, run as `mcp-remote URL PORT --allow-http` with its own config dir
               (MCP_REMOTE_CONFIG_DIR) and a fake browser (BROWSER, and xdg-open/gio/... first on
               PATH) that fetches the authorization URL with curl -sL, so consent needs nobody.

Phases, each one session of the official SDK client (the same timing code for every way; for
the stdio bridges the session starts the bridge process and ends it). Each session initializes,
lists tools and calls count(3) (its notifications must arrive) before its echo calls.
  warmup              5 echo calls (the first consent happens here, or at setup)
  overhead            --rounds rounds, interleaved across the ways (the order rotates): one
                      session per way with --warmup-calls untimed, then --calls timed echo
                      calls; p50/p99 over all timed calls of a way, and per round
  expiry              10 echo calls, POST /test/expire before call 3 (at least 6 s after the
                      newest token was issued: Tokenwarden ignores a 401 on a token < 5 s old)
  restart             restart (bridge process; Tokenwarden's engine too), 3 echo calls
  expire_then_restart expire every token, restart, 3 echo calls
The expiry phases run one way after the other: tokenwarden, mcp-remote (after a 1-call
"resync" session, since tokenwarden's expiries killed its token too), then direct's (a static
token: what an expiry costs with no refresher). Per phase: failed calls and the deltas of the
server's counters (authorizations = consents, registrations, refreshes, code exchanges, 401s that
carried a token); for mcp-remote also how often it opened the browser.

Human-readable progress and a markdown table go to stderr; stdout gets ONE JSON object.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import math
import os
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx2

import mcp.types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PYTHON = sys.executable
# `npm view mcp-remote version` on 2026-12-07. Bump deliberately: figures are per version.
MCP_REMOTE_VERSION = "0.15.1"
DEFAULT_NPM_PREFIX = REPO / "target" / "npm"
# Tokenwarden does not refresh on a 401 about a token less than 5 s old (its loop guard).
TOKEN_MIN_AGE = 6.0
COUNTERS = ("authorizations", "registrations", "refreshes", "refresh_failures", "code_exchanges",
            "rejected_with_token", "rejected", "mcp_requests")


def say(message: str) -> None:
    print(f"compare: {message}", file=sys.stderr, flush=True)


def describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100): with 200 values, p99 is the 198th smallest."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": round(percentile(values, 50), 3), "p90_ms": round(percentile(values, 90), 3),
            "p99_ms": round(percentile(values, 99), 3), "mean_ms": round(statistics.fmean(values), 3),
            "min_ms": round(min(values), 3), "max_ms": round(max(values), 3)}


# ---------------------------------------------------------------------------------------------
# The server


class Server:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.port = 0
        # monotonic time of the newest token issued (code exchange or refresh) as far as seen
        self.last_token_at = 0.0
        self._last_issued: int | None = None

    def start(self) -> None:
        port_file = self.workdir / "server.port"
        self.log = open(self.workdir / "server.log", "w")
        # Default token lifetime (server.py's, 3600 s): tokens die only when the test says so.
        self.proc = subprocess.Popen([PYTHON, str(HERE / "server.py"), "--port-file", str(port_file)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server.py did not come up; see {self.workdir / 'server.log'}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    async def stats(self) -> dict[str, Any]:
        async with httpx2.AsyncClient(timeout=10) as http:
            s = (await http.get(f"{self.base}/test/stats")).json()
        issued = s["code_exchanges"] + s["refreshes"]
        if self._last_issued is not None and issued != self._last_issued:
            self.last_token_at = time.monotonic()
        self._last_issued = issued
        return s

    async def expire(self, wait_for_age: bool = True) -> dict[str, Any]:
        # Every token must be old enough for a 401 about it to be acted on (see TOKEN_MIN_AGE).
        await self.stats()
        wait = self.last_token_at + TOKEN_MIN_AGE - time.monotonic()
        if wait > 0 and wait_for_age:
            say(f"  waiting {wait:.1f} s so the newest token is {TOKEN_MIN_AGE:g} s old before expiring it")
            await anyio.sleep(wait)
        async with httpx2.AsyncClient(timeout=10) as http:
            return (await http.post(f"{self.base}/test/expire")).json()


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in COUNTERS}


# ---------------------------------------------------------------------------------------------
# One MCP session, the same for every way


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def timed_call(session: ClientSession, name: str, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
    start = time.perf_counter()
    entry: dict[str, Any] = {"ok": False, "error": None}
    try:
        result = await session.call_tool(name, arguments, read_timeout_seconds=timeout)
        text = text_of(result)
        if result.is_error:
            entry["error"] = text or "tool returned isError"
        elif name == "echo" and text != arguments["text"]:
            entry["error"] = f"echo answered {text!r}"
        else:
            entry["ok"] = True
            entry["text"] = text
    except Exception as exc:
        entry["error"] = describe(exc)
    entry["ms"] = round((time.perf_counter() - start) * 1000, 3)
    return entry


async def run_session(transport: Callable[[], contextlib.AbstractAsyncContextManager], *, calls: int,
                      warmup: int = 0, expire_before: int | None = None, server: Server,
                      timeout: float, wait_for_age: bool = True) -> dict[str, Any]:
    """initialize, list tools, count(3), `warmup` untimed echo calls, then `calls` echo calls;
    POST /test/expire before call `expire_before` (1-based, of the `calls`)."""
    report: dict[str, Any] = {"initialized": False, "error": None, "tools": None, "count": None,
                              "echo": [], "expire": None}
    notifications: list[str] = []

    async def on_message(message: Any) -> None:
        if not isinstance(message, Exception):
            notifications.append(message.method)

    started = time.perf_counter()
    try:
        async with transport() as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=timeout, message_handler=on_message) as session:
                with anyio.fail_after(timeout):
                    await session.initialize()
                report["initialized"] = True
                report["init_ms"] = round((time.perf_counter() - started) * 1000, 3)
                report["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
                seen = len(notifications)
                count = await timed_call(session, "count", {"n": 3}, timeout)
                await anyio.sleep(0.1)
                count["notifications"] = len(notifications) - seen
                report["count"] = count
                for i in range(warmup):
                    await timed_call(session, "echo", {"text": f"warm-{i}"}, timeout)
                for i in range(1, calls + 1):
                    if i == expire_before:
                        report["expire"] = await server.expire(wait_for_age)
                    report["echo"].append(await timed_call(session, "echo", {"text": f"hello-{i}"}, timeout))
    except BaseException as exc:  # noqa: BLE001 - reported, the benchmark goes on
        if isinstance(exc, KeyboardInterrupt):
            raise
        report["error"] = describe(exc)
    report["seconds"] = round(time.perf_counter() - started, 3)
    ok = sum(1 for e in report["echo"] if e["ok"])
    report["failed_calls"] = calls - ok
    report["errors"] = sorted({e["error"] for e in report["echo"] if e["error"]})
    return report


async def phase(name: str, server: Server, session: Callable[[], Any],
                before_session: Callable[[], Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Runs one phase: counters before, optional step (restart, expiry), the session, counters after."""
    before = await server.stats()
    t0 = time.perf_counter()
    step: Any = None
    if before_session is not None:
        step = await before_session()
    report = await session()
    after = await server.stats()
    out: dict[str, Any] = {
        "calls": len(report["echo"]) if report["initialized"] else None,
        "failed_calls": report["failed_calls"],
        "consents": after["authorizations"] - before["authorizations"],
        "registrations": after["registrations"] - before["registrations"],
        "refreshes": after["refreshes"] - before["refreshes"],
        "server": delta(before, after),
        "session_seconds": report["seconds"],
        "phase_seconds": round(time.perf_counter() - t0, 3),
    }
    if report.get("init_ms") is not None:
        out["initialize_ms"] = report["init_ms"]
    if step is not None:
        out["step"] = step
    if report["expire"] is not None:
        out["expired"] = report["expire"]
    if report["error"]:
        out["session_error"] = report["error"]
    if report["errors"]:
        out["call_errors"] = report["errors"]
    if report["count"] is not None:
        out["count_ok"] = report["count"]["ok"] and report["count"]["notifications"] == 3
    out.update(extra)
    out["_echo"] = report["echo"]
    flag = "" if out["failed_calls"] == 0 and not report["error"] else "  <-- " + (report["error"] or "; ".join(report["errors"]))[:300]
    say(f"  {name}: {out['failed_calls']} failed of {len(report['echo'])} calls, consents +{out['consents']}, "
        f"registrations +{out['registrations']}, refreshes +{out['refreshes']}, 401s with a token "
        f"+{out['server']['rejected_with_token']} ({out['phase_seconds']:.1f} s){flag}")
    return out


def finish_overhead(p: dict[str, Any]) -> None:
    times = [e["ms"] for e in p["_echo"] if e["ok"]]
    p.update(latency(times))


def strip(p: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in p.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------------------------
# Way 1: direct, with a token from our own OAuth dance


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def oauth_dance(server: Server) -> dict[str, Any]:
    """Discovery, RFC 7591 registration, authorize (PKCE S256, RFC 8707 resource; the server
    approves at once with a 302 whose Location carries the code), code exchange."""
    redirect_uri = "http://127.0.0.1:1/callback"  # never listened on: the code is read from the 302
    async with httpx2.AsyncClient(timeout=10, follow_redirects=False) as http:
        prm = (await http.get(f"{server.base}/.well-known/oauth-protected-resource/mcp")).json()
        issuer = prm["authorization_servers"][0].rstrip("/")
        asm = (await http.get(f"{issuer}/.well-known/oauth-authorization-server")).json()
        r = await http.post(asm["registration_endpoint"], json={
            "client_name": "compare-direct", "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]})
        r.raise_for_status()
        client = r.json()
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        query = {"response_type": "code", "client_id": client["client_id"], "redirect_uri": redirect_uri,
                 "code_challenge": challenge, "code_challenge_method": "S256", "state": state,
                 "resource": server.url}
        r = await http.get(f"{asm['authorization_endpoint']}?{urlencode(query)}")
        location = r.headers.get("location", "")
        if r.status_code not in (302, 303) or not location:
            raise RuntimeError(f"authorize answered {r.status_code}: {r.text[:200]}")
        answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        if answer.get("state") != state or "code" not in answer:
            raise RuntimeError(f"authorize redirect without code or with another state: {answer}")
        form = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": redirect_uri,
                "client_id": client["client_id"], "code_verifier": verifier, "resource": server.url}
        if client.get("client_secret"):
            form["client_secret"] = client["client_secret"]
        r = await http.post(asm["token_endpoint"], data=form)
        r.raise_for_status()
        return r.json()


class Direct:
    """The baseline: the SDK's streamable HTTP client, a static token from our own OAuth dance."""

    name = "direct"

    def __init__(self, server: Server) -> None:
        self.server = server
        self.token: str | None = None

    async def setup(self) -> None:
        self.token = (await oauth_dance(self.server))["access_token"]

    def transport(self) -> contextlib.AbstractAsyncContextManager:
        token = self.token

        @contextlib.asynccontextmanager
        async def open_() -> AsyncIterator[Any]:
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                                   timeout=httpx2.Timeout(30, read=300)) as http,
                streamable_http_client(self.server.url, http_client=http) as streams,
            ):
                yield streams

        return open_()


# ---------------------------------------------------------------------------------------------
# The stdio bridges (tokenwarden, mcp-remote)


class Bridge:
    """How to start a stdio bridge and how to restart what stands behind it."""

    name = "bridge"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.sessions = 0

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    async def restart(self) -> dict[str, Any]:
        """Beyond the bridge process itself (each session starts its own)."""
        return {"restarted": "bridge process"}

    def transport(self) -> contextlib.AbstractAsyncContextManager:
        self.sessions += 1
        cmd = self.command()
        errlog = open(self.workdir / f"{self.name}-session-{self.sessions}.log", "w")

        @contextlib.asynccontextmanager
        async def open_() -> AsyncIterator[Any]:
            try:
                params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=self.env())
                async with stdio_client(params, errlog=errlog) as streams:
                    yield streams
            finally:
                errlog.close()

        return open_()


class CommandBridge(Bridge):
    """--tokenwarden CMD [--restart-tokenwarden CMD]: commands run as given, {url} substituted."""

    name = "tokenwarden"

    def __init__(self, workdir: Path, server: Server, cmd: str, restart_cmd: str | None) -> None:
        super().__init__(workdir)
        self.server = server
        self.cmd = cmd
        self.restart_cmd = restart_cmd

    def fill(self, text: str) -> str:
        return (text.replace("{url}", self.server.url).replace("{base}", self.server.base)
                .replace("{port}", str(self.server.port)))

    def command(self) -> list[str]:
        return shlex.split(self.fill(self.cmd))

    async def restart(self) -> dict[str, Any]:
        if not self.restart_cmd:
            return {"restarted": "bridge process (no --restart-tokenwarden)"}
        cmd = self.fill(self.restart_cmd)
        done = await anyio.to_thread.run_sync(lambda: subprocess.run(
            cmd, shell=True, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120))
        if done.returncode != 0:
            say(f"  --restart-tokenwarden exited {done.returncode}: {done.stderr.strip()[-500:]}")
        return {"restarted": "bridge process and --restart-tokenwarden", "restart_exit": done.returncode}


class SetupBridge(Bridge):
    """--setup-tokenwarden BIN: an isolated installation, `BIN serve` as the engine."""

    name = "tokenwarden"

    def __init__(self, workdir: Path, server: Server, binary: str) -> None:
        super().__init__(workdir)
        self.server = server
        self.binary = str(Path(binary).resolve())
        self.home = workdir / "tokenwarden"
        self.home.mkdir()
        self.api_port = free_port()
        self.vars = {
            "TOKENWARDEN_CONFIG": str(self.home / "config.toml"),
            "TOKENWARDEN_DATA_DIR": str(self.home / "data"),
            "TOKENWARDEN_KEYCHAIN_SERVICE": f"tw-bench-{secrets.token_hex(6)}",
        }
        (self.home / "data").mkdir()
        # [api] listen on a free port, so a Tokenwarden of the user's (8732) is never in the way.
        (self.home / "config.toml").write_text(
            f'[api]\nlisten = "127.0.0.1:{self.api_port}"\n\n'
            f'[[account]]\nname = "agent"\nprovider = "mcp"\nurl = "{server.url}"\n')
        self.serve: subprocess.Popen | None = None
        self.serves = 0
        self.connected = False

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.vars)
        # `cargo test` puts build-script folders on LD_LIBRARY_PATH; a user's process has none.
        env.pop("LD_LIBRARY_PATH", None)
        env.pop("RUST_LOG", None)
        return env

    def command(self) -> list[str]:
        return [self.binary, "mcp", "agent"]

    def start_serve(self) -> None:
        self.serves += 1
        log = open(self.workdir / f"tokenwarden-serve-{self.serves}.log", "w")
        self.serve = subprocess.Popen([self.binary, "serve"], env=self.env(), stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=log)
        deadline = time.monotonic() + 15
        while True:
            if self.serve.poll() is not None:
                raise RuntimeError(f"`tokenwarden serve` exited {self.serve.returncode}: "
                                   f"{(self.workdir / f'tokenwarden-serve-{self.serves}.log').read_text()[-1500:]}")
            try:
                with httpx2.Client(timeout=1) as http:
                    if http.get(f"http://127.0.0.1:{self.api_port}/healthz").status_code == 200:
                        return
            except httpx2.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("`tokenwarden serve` does not answer /healthz after 15 s")
            time.sleep(0.05)

    def stop_serve(self) -> None:
        if self.serve and self.serve.poll() is None:
            self.serve.send_signal(signal.SIGTERM)
            try:
                self.serve.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.serve.kill()
                self.serve.wait()
        self.serve = None

    def connect(self) -> None:
        """`connect agent --no-browser`: the authorization URL alone on stdout's first line; a
        "browser" that is curl -sL follows it to the loopback redirect listener."""
        log = open(self.workdir / "tokenwarden-connect.log", "w")
        proc = subprocess.Popen([self.binary, "connect", "agent", "--no-browser"], env=self.env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            line = proc.stdout.readline().strip()
            if not line.startswith("http"):
                raise RuntimeError(f"`tokenwarden connect --no-browser` printed {line!r} instead of a URL")
            curl = subprocess.run(["curl", "-sSL", "-o", "/dev/null", "-w", "%{http_code}", line],
                                  capture_output=True, text=True, timeout=60)
            rc = proc.wait(timeout=60)
            if rc != 0:
                raise RuntimeError(f"`tokenwarden connect` exited {rc} (browser: curl {curl.returncode} "
                                   f"HTTP {curl.stdout}): {(self.workdir / 'tokenwarden-connect.log').read_text()[-1500:]}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.connected = True

    async def setup(self) -> None:
        await anyio.to_thread.run_sync(self.start_serve)
        await anyio.to_thread.run_sync(self.connect)

    async def restart(self) -> dict[str, Any]:
        await anyio.to_thread.run_sync(self.stop_serve)
        await anyio.to_thread.run_sync(self.start_serve)
        return {"restarted": "bridge process and the engine (`tokenwarden serve` stopped with SIGTERM, started again)"}

    def cleanup(self) -> None:
        self.stop_serve()
        if self.connected:
            # Forget the grant and delete the keychain items of this throwaway service.
            with contextlib.suppress(Exception):
                subprocess.run([self.binary, "disconnect", "agent"], env=self.env(), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=30)


class McpRemote(Bridge):
    name = "mcp-remote"

    def __init__(self, workdir: Path, server: Server, npm_prefix: Path) -> None:
        super().__init__(workdir)
        self.server = server
        self.npm_prefix = npm_prefix
        self.bin = npm_prefix / "node_modules" / ".bin" / "mcp-remote"
        self.config_dir = workdir / "mcp-remote-config"
        self.config_dir.mkdir()
        self.fake_bin = workdir / "fake-browser-bin"
        self.browser_log = workdir / "browser.log"
        # Explicit and the same in every session: the registered redirect_uri carries the port.
        self.callback_port = free_port()
        self.version: str | None = None

    def install(self) -> str:
        if not self.bin.exists():
            say(f"mcp-remote: npm install --prefix {self.npm_prefix} mcp-remote@{MCP_REMOTE_VERSION}")
            done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(self.npm_prefix),
                                   f"mcp-remote@{MCP_REMOTE_VERSION}"],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
            if done.returncode != 0 or not self.bin.exists():
                raise RuntimeError(f"npm install mcp-remote@{MCP_REMOTE_VERSION} failed ({done.returncode}): "
                                   f"{(done.stderr or done.stdout).strip()[-800:]}")
        package = json.loads((self.npm_prefix / "node_modules" / "mcp-remote" / "package.json").read_text())
        self.version = package["version"]
        if self.version != MCP_REMOTE_VERSION:
            say(f"mcp-remote: {self.version} is installed under {self.npm_prefix}, not the pinned {MCP_REMOTE_VERSION}")
        return self.version

    def make_fake_browser(self) -> None:
        """mcp-remote opens the authorization URL with the `open` package, whose bundled xdg-open
        honours $BROWSER when no desktop is detected (DISPLAY unset here); if that fails it tries
        /usr/bin/xdg-open, gio, x-www-browser and sensible-browser. All of them but the absolute
        /usr/bin/xdg-open are this script; it GETs the URL with curl -sL, following the 302 into
        mcp-remote's loopback callback, and logs one line per step."""
        self.fake_bin.mkdir()
        script = self.fake_bin / "fake-browser"
        script.write_text(
            "#!/bin/sh\n"
            "for url; do :; done\n"  # the last argument (gio is called as `gio open URL`)
            f"log={shlex.quote(str(self.browser_log))}\n"
            'echo "open $(basename "$0") $url" >>"$log"\n'
            'curl -sSL -o /dev/null -w "browser HTTP %{http_code} %{url_effective}\\n" --retry 3 '
            '--retry-connrefused "$url" >>"$log" 2>&1\n')
        script.chmod(0o755)
        for name in ("xdg-open", "gio", "x-www-browser", "sensible-browser", "www-browser"):
            (self.fake_bin / name).symlink_to("fake-browser")

    def browser_opens(self) -> int:
        if not self.browser_log.exists():
            return 0
        return sum(1 for line in self.browser_log.read_text().splitlines() if line.startswith("open "))

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP", "XDG_SESSION_DESKTOP", "DESKTOP_SESSION",
                    "KDE_FULL_SESSION", "GNOME_DESKTOP_SESSION_ID"):
            env.pop(var, None)
        env["PATH"] = f"{self.fake_bin}{os.pathsep}{env.get('PATH', '')}"
        env["BROWSER"] = str(self.fake_bin / "fake-browser")
        env["MCP_REMOTE_CONFIG_DIR"] = str(self.config_dir)
        return env

    def command(self) -> list[str]:
        return [str(self.bin), self.server.url, str(self.callback_port), "--allow-http"]


# ---------------------------------------------------------------------------------------------
# Report


def table(result: dict[str, Any], calls: int) -> str:
    rows = [
        "| way | p50 per call | p99 per call | session start | failed calls across an expiry (of 10) "
        "| refreshes across it | consents after a restart | consents after an expiry + restart "
        "| failed calls after the restarts (of 6) | refreshes across the restarts |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ms(v: Any) -> str:
        return "–" if v is None else f"{v:.2f} ms"

    for way, label in (("direct", "direct (SDK HTTP client, static token)"),
                       ("tokenwarden", "`tokenwarden mcp`"), ("mcp-remote", "mcp-remote")):
        r = result.get(way)
        if r is None:
            continue
        if way == "mcp-remote" and r.get("version"):
            label = f"mcp-remote {r['version']}"
        if way == "tokenwarden" and r.get("mode") == "command" and r.get("command"):
            cmd = r["command"]
            label = "`" + " ".join([Path(cmd[0]).name] + ["URL" if c.startswith("http") else Path(c).name if c.startswith("/") else c for c in cmd[1:]])[:60] + "`"
        if "error" in r and "overhead" not in r:
            cell = " ".join(r["error"].split()).replace("|", "/")[:200]
            rows.append(f"| {label} | error: {cell} | | | | | | | | |")
            continue
        o, e = r.get("overhead", {}), r.get("expiry", {})
        rs, er = r.get("restart"), r.get("expire_then_restart")
        p50, p99 = ms(o.get("p50_ms")), ms(o.get("p99_ms"))
        if "added_p50_ms" in o:
            p50 += f" ({o['added_p50_ms']:+.2f})"
            p99 += f" ({o['added_p99_ms']:+.2f})"
        start = f"{o['initialize_ms']:.0f} ms" if o.get("initialize_ms") is not None else "–"
        if rs is None:
            rows.append(f"| {label} | {p50} | {p99} | {start} | {e.get('failed_calls', '–')} (static token) | "
                        f"{e.get('refreshes', '–')} | n/a | n/a | n/a | n/a |")
        else:
            rows.append(f"| {label} | {p50} | {p99} | {start} | {e.get('failed_calls')} | {e.get('refreshes')} | "
                        f"{rs['consents']} | {er['consents']} | {rs['failed_calls'] + er['failed_calls']} | "
                        f"{rs['refreshes'] + er['refreshes']} |")
    rounds = result.get("rounds", 1)
    notes = (f"Per call: {rounds} session{'s' if rounds != 1 else ''} per way, interleaved, each {calls} timed echo calls "
             f"after {result.get('warmup_calls')} untimed ones; percentiles over all "
             f"{rounds * calls} calls; (±x) is the difference from direct. Session start: from "
             "starting the transport (the bridge process) to the answer to initialize, median of the rounds. "
             "A consent is an authorization completed at the server.")
    return "\n".join(rows) + "\n\n" + notes


def clean(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            out[key] = {k: (strip(v) if isinstance(v, dict) else v) for k, v in value.items()}
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# The run


class Run:
    def __init__(self, server: Server, args: argparse.Namespace, workdir: Path) -> None:
        self.server = server
        self.args = args
        self.workdir = workdir
        self.result: dict[str, Any] = {}
        # the ways whose warm-up worked, in order: (key, way)
        self.ready: list[tuple[str, Any]] = []
        self.mcp_remote: McpRemote | None = None
        self.tokenwarden: Bridge | None = None
        self.browser_seen = 0

    def session(self, way: Any, **kw: Any) -> Callable[[], Any]:
        return lambda: run_session(way.transport, server=self.server, timeout=self.args.timeout, **kw)

    async def phase(self, key: str, way: Any, label: str, before_session: Callable[[], Any] | None = None,
                    **kw: Any) -> dict[str, Any]:
        p = await phase(f"{key} {label}", self.server, self.session(way, **kw), before_session=before_session)
        if key == "mcp-remote" and self.mcp_remote is not None:
            now = self.mcp_remote.browser_opens()
            p["browser_opens"] = now - self.browser_seen
            self.browser_seen = now
        return p

    async def warmup(self, key: str, way: Any, label: str = "warmup") -> bool:
        p = await self.phase(key, way, label, calls=5)
        self.result[key]["warmup"] = p
        if p["failed_calls"] or p.get("session_error"):
            self.result[key]["error"] = (f"warm-up session failed: "
                                         f"{p.get('session_error') or '; '.join(p.get('call_errors', []))}")
            return False
        self.ready.append((key, way))
        return True

    # -- setup and warm-up of each way

    async def setup_direct(self) -> None:
        way = Direct(self.server)
        say("direct: the SDK's streamable HTTP client, static bearer token from our own OAuth dance")
        before = await self.server.stats()
        await way.setup()
        after = await self.server.stats()
        self.result["direct"] = {"client": "mcp SDK streamable_http_client + httpx2, static Authorization header",
                                 "setup": {"consents": after["authorizations"] - before["authorizations"],
                                           "registrations": after["registrations"] - before["registrations"]}}
        await self.warmup("direct", way)

    async def setup_tokenwarden(self) -> Bridge:
        args = self.args
        if args.setup_tokenwarden:
            way = self.tokenwarden = SetupBridge(self.workdir, self.server, args.setup_tokenwarden)
            self.result["tokenwarden"] = info = {
                "mode": "setup", "binary": way.binary, "command": way.command(),
                "restart_how": "SIGTERM `tokenwarden serve`, start it again (and a new bridge process)"}
            say(f"tokenwarden: isolated setup of {way.binary} (keychain service "
                f"{way.vars['TOKENWARDEN_KEYCHAIN_SERVICE']}, engine `serve` on 127.0.0.1:{way.api_port})")
            before = await self.server.stats()
            try:
                await way.setup()
            finally:
                after = await self.server.stats()
                info["connect"] = {"consents": after["authorizations"] - before["authorizations"],
                                   "registrations": after["registrations"] - before["registrations"]}
            say(f"  connected: consents +{info['connect']['consents']}, registrations "
                f"+{info['connect']['registrations']}")
        else:
            way = self.tokenwarden = CommandBridge(self.workdir, self.server, args.tokenwarden,
                                                   args.restart_tokenwarden)
            self.result["tokenwarden"] = {
                "mode": "command", "command": way.command(),
                "restart_how": (way.fill(args.restart_tokenwarden) if args.restart_tokenwarden
                                else "a new bridge process only")}
        say(f"tokenwarden: {' '.join(way.command())}")
        await self.warmup("tokenwarden", way)

    async def setup_mcp_remote(self) -> None:
        way = self.mcp_remote = McpRemote(self.workdir, self.server, Path(self.args.npm_prefix))
        self.result["mcp-remote"] = info = {"pinned": MCP_REMOTE_VERSION}
        info["version"] = await anyio.to_thread.run_sync(way.install)
        info["command"] = way.command()
        say(f"mcp-remote {info['version']}: {' '.join(way.command())} (MCP_REMOTE_CONFIG_DIR={way.config_dir})")
        way.make_fake_browser()
        # The first consent must complete headless, or none of the rest means anything.
        if not await self.warmup("mcp-remote", way, "warmup (first consent)"):
            logs = sorted(self.workdir.glob("mcp-remote-session-*.log"))
            tail = logs[-1].read_text()[-1500:].strip() if logs else ""
            browser = (way.browser_log.read_text()[-800:].strip() if way.browser_log.exists()
                       else "(the browser was never opened)")
            info["error"] += (f"; consents +{info['warmup']['consents']}, browser opened "
                              f"{info['warmup'].get('browser_opens', 0)} times")
            info["error_detail"] = {"browser_log": browser, "mcp_remote_stderr": tail}

    # -- per-call overhead, interleaved

    async def overhead(self) -> None:
        """--rounds rounds; in each, one session per way (--warmup-calls untimed, then --calls
        timed echo calls), the order rotating from round to round, so that a slow spell of the
        machine does not land on one way only. Percentiles are over every timed call of a way."""
        rounds: dict[str, list[dict[str, Any]]] = {key: [] for key, _ in self.ready}
        n = len(self.ready)
        for r in range(self.args.rounds):
            order = self.ready[r % n:] + self.ready[:r % n] if n else []
            for key, way in order:
                p = await self.phase(key, way, f"overhead round {r + 1}/{self.args.rounds}",
                                     calls=self.args.calls, warmup=self.args.warmup_calls)
                finish_overhead(p)
                rounds[key].append(p)
        for key, ps in rounds.items():
            times = [e["ms"] for p in ps for e in p["_echo"] if e["ok"]]
            summary: dict[str, Any] = latency(times)
            summary.update({
                "rounds": len(ps), "calls_per_round": self.args.calls,
                "failed_calls": sum(p["failed_calls"] for p in ps),
                "round_p50_ms": [p.get("p50_ms") for p in ps], "round_p99_ms": [p.get("p99_ms") for p in ps],
                "initialize_ms": statistics.median([p["initialize_ms"] for p in ps if "initialize_ms" in p] or [0]),
                "consents": sum(p["consents"] for p in ps), "refreshes": sum(p["refreshes"] for p in ps),
                "count_ok": all(p.get("count_ok") for p in ps),
            })
            if any(p.get("session_error") for p in ps):
                summary["session_errors"] = [p["session_error"] for p in ps if p.get("session_error")]
            self.result[key]["overhead"] = summary
        base = self.result.get("direct", {}).get("overhead")
        for key, _ in self.ready:
            o = self.result[key]["overhead"]
            if key != "direct" and base and base.get("p50_ms") is not None and o.get("p50_ms") is not None:
                o["direct_p50_ms"], o["direct_p99_ms"] = base["p50_ms"], base["p99_ms"]
                o["added_p50_ms"] = round(o["p50_ms"] - base["p50_ms"], 3)
                o["added_p99_ms"] = round(o["p99_ms"] - base["p99_ms"], 3)
            say(f"{key}: p50 {o.get('p50_ms')} ms, p99 {o.get('p99_ms')} ms over {o.get('n')} calls "
                f"(per round p50 {o['round_p50_ms']}, p99 {o['round_p99_ms']}); session start "
                f"{o['initialize_ms']:.0f} ms")

    # -- expiry and restarts

    async def reliability(self, key: str, way: Bridge, resync: bool) -> None:
        out = self.result[key]
        if resync:
            # Another way's expiry killed this way's token too: one call lets it recover now,
            # so the expiry phase below sees only its own expiry.
            out["resync"] = await self.phase(key, way, "resync (after the other ways' expiries)", calls=1)
        out["expiry"] = await self.phase(key, way, "expiry", calls=10, expire_before=3)
        out["restart"] = await self.phase(key, way, "restart", calls=3, before_session=way.restart)

        async def expire_then_restart() -> dict[str, Any]:
            expired = await self.server.expire()
            return {"expired": expired, **(await way.restart())}

        out["expire_then_restart"] = await self.phase(key, way, "expire_then_restart", calls=3,
                                                      before_session=expire_then_restart)

    async def direct_expiry(self, way: Direct) -> None:
        # A static token has nobody to renew it: what an expiry costs without a refresher. The
        # bridges' expiries killed the first token: a new one (no refresher, so no age to wait for).
        await way.setup()
        p = await self.phase("direct", way, "expiry (static token, no refresher)", calls=10, expire_before=3,
                             wait_for_age=False)
        p["note"] = "static token: every call after the expiry fails, by design"
        self.result["direct"]["expiry"] = p


async def main_async(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    server = Server(workdir)
    server.start()
    say(f"server.py on {server.url} (default token lifetime), work dir {workdir}")
    run = Run(server, args, workdir)
    run.result.update({"server": server.url, "calls": args.calls, "warmup_calls": args.warmup_calls,
                       "rounds": args.rounds, "python_mcp_sdk": _sdk_version()})
    try:
        for key, setup in (("direct", run.setup_direct), ("tokenwarden", run.setup_tokenwarden),
                           ("mcp-remote", run.setup_mcp_remote)):
            if key in args.skip:
                continue
            try:
                await setup()
            except Exception as exc:
                run.result.setdefault(key, {})["error"] = describe(exc)
                say(f"{key} failed: {describe(exc)}")
        await run.overhead()
        ready = dict(run.ready)
        expired_before = False
        for key in ("tokenwarden", "mcp-remote"):
            if key in ready:
                try:
                    await run.reliability(key, ready[key], resync=expired_before)
                    expired_before = True
                except Exception as exc:
                    run.result[key]["error"] = describe(exc)
                    say(f"{key} failed: {describe(exc)}")
            if key == "tokenwarden" and isinstance(run.tokenwarden, SetupBridge):
                # Its engine must not act during the other ways' phases.
                await anyio.to_thread.run_sync(run.tokenwarden.stop_serve)
        if "direct" in ready:
            await run.direct_expiry(ready["direct"])
        run.result["server_stats_final"] = {k: v for k, v in (await server.stats()).items()
                                            if k not in ("resource_requests", "clients")}
    finally:
        if isinstance(run.tokenwarden, SetupBridge):
            await anyio.to_thread.run_sync(run.tokenwarden.cleanup)
        server.stop()
    return run.result


def _sdk_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("mcp")
    except Exception:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    how = parser.add_mutually_exclusive_group(required=False)
    how.add_argument("--setup-tokenwarden", metavar="BIN",
                     help="set up an isolated Tokenwarden (config, `BIN serve`, connect headless) and bridge with `BIN mcp agent`")
    how.add_argument("--tokenwarden", metavar="CMD", help='the bridge command, e.g. "tokenwarden mcp agent"; {url} is the server\'s /mcp URL')
    parser.add_argument("--restart-tokenwarden", metavar="CMD",
                        help="shell command restarting Tokenwarden's engine between phases (with --tokenwarden)")
    parser.add_argument("--calls", type=int, default=200, help="timed echo calls in the overhead session (default 200)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="overhead sessions per way, interleaved with the other ways' (default 3)")
    parser.add_argument("--warmup-calls", type=int, default=10, help="untimed echo calls before them, same session (default 10)")
    parser.add_argument("--timeout", type=float, default=60, help="per request, seconds (default 60)")
    parser.add_argument("--npm-prefix", default=str(DEFAULT_NPM_PREFIX), help=f"where mcp-remote is installed (default {DEFAULT_NPM_PREFIX})")
    parser.add_argument("--skip", action="append", default=[], choices=["direct", "tokenwarden", "mcp-remote"],
                        help="leave a way out (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs of every process)")
    args = parser.parse_args()
    if "tokenwarden" not in args.skip and not (args.setup_tokenwarden or args.tokenwarden):
        parser.error("--setup-tokenwarden BIN or --tokenwarden CMD is required (or --skip tokenwarden)")
    if args.restart_tokenwarden and not args.tokenwarden:
        parser.error("--restart-tokenwarden goes with --tokenwarden")

    workdir = Path(tempfile.mkdtemp(prefix="mcp-compare-"))
    failed = True
    try:
        result = anyio.run(main_async, args, workdir)
        failed = False
    finally:
        if args.keep or failed:
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result = clean(result)
    md = table(result, args.calls)
    print("\n" + md + "\n", file=sys.stderr)
    result["markdown"] = md
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
