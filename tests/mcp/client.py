#!/usr/bin/env python3
"""Drives a stdio MCP server (e.g. Tokenwarden's bridge to server.py) and reports what happened.

    client.py [--calls N] [--expire-before-call K ...] [--stats-url URL] [--progress]
              [--timeout SECONDS] -- COMMAND ARGS...

Starts COMMAND ARGS with the official SDK's stdio client (environment passed through),
initializes, lists tools, calls `count` with n=3 once (collecting the notifications it
sends), then calls `echo` with "hello-<i>" N times, timing each call. Before echo call K
(1-based) for each --expire-before-call K it POSTs /test/expire on the server that
--stats-url points at. With --stats-url, /test/stats is fetched at the end too.

Prints one JSON object on stdout, nothing else:
    {"initialized": true, "protocol_version": ..., "server_info": {...},
     "tools": [names], "count": {"ok", "result", "error", "notifications", "by_method", "ms"},
     "echo": [{"ok", "text", "error", "ms"}], "expire": [...], "stats": {...} | null}
A failing call is recorded (ok false) and the run goes on. Exit 0 if the session initialized,
1 otherwise (the error also goes to stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import urllib.request
from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio

import mcp.types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


def test_url(stats_url: str, path: str) -> str:
    """http://127.0.0.1:PORT/test/stats -> http://127.0.0.1:PORT/<path>"""
    parts = urlsplit(stats_url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def http_json(method: str, url: str) -> Any:
    # Blocking stdlib HTTP is fine here: it runs between MCP calls, never during one.
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def describe(exc: BaseException) -> str:
    # anyio task groups wrap failures in ExceptionGroups; report the leaves.
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def timed_call(session: ClientSession, name: str, arguments: dict[str, Any], timeout: float,
                     **kwargs: Any) -> dict[str, Any]:
    start = time.perf_counter()
    entry: dict[str, Any] = {"ok": False, "text": None, "error": None}
    try:
        result = await session.call_tool(name, arguments, read_timeout_seconds=timeout, **kwargs)
        entry["text"] = text_of(result)
        if result.is_error:
            entry["error"] = entry["text"] or "tool returned isError"
        else:
            entry["ok"] = True
    except Exception as exc:
        entry["error"] = describe(exc)
    entry["ms"] = round((time.perf_counter() - start) * 1000, 3)
    return entry


async def run(args: argparse.Namespace, report: dict[str, Any]) -> None:
    notifications: Counter[str] = Counter()

    async def on_message(message: Any) -> None:
        if isinstance(message, Exception):
            print(f"transport error: {describe(message)}", file=sys.stderr)
        else:
            notifications[message.method] += 1

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        # Passing a callback is what makes the SDK send a progressToken; the notifications
        # themselves are counted in on_message, which the SDK also hands them to.
        pass

    params = StdioServerParameters(command=args.command[0], args=args.command[1:], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=args.timeout,
                                 message_handler=on_message) as session:
            try:
                with anyio.fail_after(args.timeout):
                    init = await session.initialize()
            except TimeoutError:
                raise TimeoutError(f"no answer to initialize within {args.timeout:g}s") from None
            report["initialized"] = True
            report["protocol_version"] = init.protocol_version
            report["server_info"] = init.server_info.model_dump(mode="json", exclude_none=True)

            try:
                report["tools"] = [t.name for t in (await session.list_tools()).tools]
            except Exception as exc:
                report["tools_error"] = describe(exc)

            before = notifications.copy()
            count = await timed_call(session, "count", {"n": 3}, args.timeout,
                                     progress_callback=on_progress if args.progress else None)
            # Notifications for a request arrive on its SSE stream before the answer; give any
            # straggler relayed out of order by a bridge a moment before counting.
            await anyio.sleep(0.2)
            during = notifications - before
            report["count"] = {
                "ok": count["ok"], "result": count["text"], "error": count["error"],
                "notifications": sum(during.values()), "by_method": dict(during), "ms": count["ms"],
            }

            expire_before = set(args.expire_before_call)
            for i in range(1, args.calls + 1):
                if i in expire_before:
                    entry: dict[str, Any] = {"before_call": i}
                    try:
                        entry.update(http_json("POST", test_url(args.stats_url, "/test/expire")))
                    except Exception as exc:
                        entry["error"] = describe(exc)
                    report["expire"].append(entry)
                report["echo"].append(await timed_call(session, "echo", {"text": f"hello-{i}"}, args.timeout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1, help="number of echo calls")
    parser.add_argument("--expire-before-call", type=int, action="append", default=[], metavar="K",
                        help="POST /test/expire before echo call K (1-based, repeatable); needs --stats-url")
    parser.add_argument("--stats-url", help="the server's /test/stats URL, e.g. http://127.0.0.1:PORT/test/stats")
    parser.add_argument("--progress", action="store_true",
                        help="ask for progress on the count call (the server then sends progress, not log, notifications)")
    parser.add_argument("--timeout", type=float, default=60, help="per request, seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args()
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("missing -- COMMAND ARGS...")
    if args.expire_before_call and not args.stats_url:
        parser.error("--expire-before-call needs --stats-url")

    report: dict[str, Any] = {"initialized": False, "protocol_version": None, "server_info": None,
                              "tools": [], "count": None, "echo": [], "expire": [], "stats": None}
    try:
        anyio.run(run, args, report)
    except BaseException as exc:  # noqa: BLE001 - any failure is reported, not raised
        if isinstance(exc, KeyboardInterrupt):
            raise
        report["error"] = describe(exc)
        print(f"client: {report['error']}", file=sys.stderr)
        if os.environ.get("MCP_CLIENT_DEBUG"):
            traceback.print_exc()

    if args.stats_url:
        try:
            report["stats"] = http_json("GET", args.stats_url)
        except Exception as exc:
            report["stats_error"] = describe(exc)

    print(json.dumps(report))
    return 0 if report["initialized"] else 1


if __name__ == "__main__":
    sys.exit(main())
