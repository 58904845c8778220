#!/usr/bin/env python3
"""A remote MCP server guarded by its own OAuth authorization server, on loopback, for tests.

    server.py --port-file FILE [--token-lifetime SECONDS] [--scope SCOPE ...]

Binds 127.0.0.1 on a free port, writes the port to FILE (atomically, once it is serving) and
serves until SIGTERM/SIGINT. Logs go to stderr only.

Built on the official MCP Python SDK (mcp 2.x): `MCPServer` serves Streamable HTTP at /mcp and,
given `AuthSettings` plus an `OAuthAuthorizationServerProvider`, also mounts the SDK's own
RFC 9728 protected resource metadata, RFC 8414 authorization server metadata, /authorize,
/token, /register (RFC 7591) and /revoke, and answers unauthenticated MCP requests with 401 +
`WWW-Authenticate: Bearer ... resource_metadata="..."`. This file only supplies the in-memory
provider, two tools, and what the SDK does not give a test: counters and a way to expire
tokens on demand (/test/expire, /test/stats, not behind OAuth).

The authorization endpoint approves at once: it answers 302 to the client's redirect_uri with
code and state, so a "browser" that is just curl completes consent. Access tokens live
--token-lifetime seconds; refresh tokens do not expire but rotate on every use. With --scope,
those scopes are advertised, granted by default and required on /mcp; without, none are.

Test control (no OAuth):
  POST /test/expire   every access token issued so far expires now -> {"expired": N};
                      with ?refresh_tokens=1 every refresh token is forgotten too.
  GET  /test/stats    counters: registrations, authorizations (consents that issued a code),
                      code_exchanges, refreshes / refresh_failures (refresh_token grants by
                      outcome), rejected (401s at /mcp) and rejected_with_token (those that
                      carried a Bearer token), mcp_requests (got through auth), resources (distinct
                      RFC 8707 values seen on /authorize and /token), resource_requests (each
                      authorize/token request with its grant_type and resource, valid or not),
                      clients ({client_id, redirect_uris, ...}), and a few more.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    RefreshToken,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from mcp.shared.exceptions import MCPDeprecationWarning

# mcp 2.x deprecates log notifications for protocol 2026-07-28 (SEP-2577) and warns on every
# ctx.info(); clients on the initialize handshake (2025-xx) still get them, which is what
# `count` is for.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning, message="The logging capability")

log = logging.getLogger("mcp-test-server")

# Every token is issued to this one resource owner. The SDK binds a Streamable HTTP session to
# (client_id, issuer, subject), so a stable subject keeps a session usable across refreshes.
SUBJECT = "test-user"
AUTH_CODE_LIFETIME = 300


@dataclass
class Stats:
    registrations: int = 0
    authorizations: int = 0
    code_exchanges: int = 0
    code_exchange_failures: int = 0
    refreshes: int = 0
    refresh_failures: int = 0
    revocations: int = 0
    rejected: int = 0
    rejected_with_token: int = 0
    mcp_requests: int = 0
    expire_calls: int = 0
    # Every authorize/token request in order, so a test can tell which step sent (or omitted)
    # the RFC 8707 resource parameter; `resources` in /test/stats is the distinct values.
    resource_requests: list[dict[str, Any]] = field(default_factory=list)


class MemoryProvider:
    """`OAuthAuthorizationServerProvider` keeping clients, codes and tokens in memory.

    The SDK's handlers do the protocol checks (PKCE S256, redirect_uri match, client secret,
    code/refresh expiry and ownership); this class only mints, stores and forgets.
    """

    def __init__(self, stats: Stats, token_lifetime: int, scopes: list[str]):
        self.stats = stats
        self.token_lifetime = token_lifetime
        self.scopes = scopes
        self.clients: dict[str, OAuthClientInformationFull] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        # access token <-> refresh token issued together, so revoking one revokes both
        self.partner: dict[str, str] = {}

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        self.clients[client_info.client_id] = client_info
        self.stats.registrations += 1
        log.info("registered client %s redirect_uris=%s auth=%s", client_info.client_id,
                 [str(u) for u in client_info.redirect_uris or []], client_info.token_endpoint_auth_method)

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        # No consent page: approve now and send the user agent straight back to the client.
        code = secrets.token_urlsafe(32)
        if params.scopes is not None:
            scopes = params.scopes
        elif client.scope:
            scopes = client.scope.split()
        else:
            scopes = list(self.scopes)
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=scopes,
            expires_at=time.time() + AUTH_CODE_LIFETIME,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
            subject=SUBJECT,
        )
        self.stats.authorizations += 1
        log.info("authorized client %s scopes=%s resource=%s", client.client_id, scopes, params.resource)
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(self, client: OAuthClientInformationFull, authorization_code: str):
        return self.codes.get(authorization_code)

    async def exchange_authorization_code(self, client: OAuthClientInformationFull,
                                          authorization_code: AuthorizationCode) -> OAuthToken:
        del self.codes[authorization_code.code]  # single use
        self.stats.code_exchanges += 1
        return self._issue(client.client_id, authorization_code.scopes, authorization_code.resource)

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str):
        return self.refresh_tokens.get(refresh_token)

    async def exchange_refresh_token(self, client: OAuthClientInformationFull, refresh_token: RefreshToken,
                                     scopes: list[str]) -> OAuthToken:
        # Rotation: the presented refresh token dies here; only the new one works from now on.
        # Its access token is left to live out its lifetime, as most real servers do.
        del self.refresh_tokens[refresh_token.token]
        self.partner.pop(refresh_token.token, None)
        return self._issue(client.client_id, scopes, refresh_token.resource)

    async def load_access_token(self, token: str) -> AccessToken | None:
        access = self.access_tokens.get(token)
        if access is None or (access.expires_at is not None and access.expires_at <= time.time()):
            return None
        return access

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        for t in (token.token, self.partner.get(token.token)):
            if t is not None:
                self.access_tokens.pop(t, None)
                self.refresh_tokens.pop(t, None)
                self.partner.pop(t, None)
        self.stats.revocations += 1

    def _issue(self, client_id: str, scopes: list[str], resource: str | None) -> OAuthToken:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.access_tokens[access] = AccessToken(
            token=access, client_id=client_id, scopes=scopes,
            expires_at=int(time.time()) + self.token_lifetime, resource=resource, subject=SUBJECT)
        self.refresh_tokens[refresh] = RefreshToken(
            token=refresh, client_id=client_id, scopes=scopes, resource=resource, subject=SUBJECT)
        self.partner[access], self.partner[refresh] = refresh, access
        return OAuthToken(access_token=access, expires_in=self.token_lifetime,
                          scope=" ".join(scopes) or None, refresh_token=refresh)

    def expire_access_tokens(self) -> int:
        now = int(time.time())
        live = [t for t in self.access_tokens.values() if t.expires_at is None or t.expires_at > now]
        for t in live:
            t.expires_at = now - 1
        return len(live)

    def drop_refresh_tokens(self) -> int:
        n = len(self.refresh_tokens)
        self.refresh_tokens.clear()
        return n


class Observer:
    """Outermost ASGI middleware: counts what the SDK's handlers decide, without changing it.

    The SDK hands the provider the `resource` of an authorize request but not that of a token
    request (neither grant passes it on), so the form body of /token is read here and replayed
    to the app untouched.
    """

    def __init__(self, app: ASGIApp, stats: Stats):
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/mcp":
            await self._mcp(scope, receive, send)
        elif path == "/authorize" and method in ("GET", "POST"):
            await self._authorize(scope, receive, send)
        elif path == "/token" and method == "POST":
            await self._token(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        has_bearer = any(k == b"authorization" and v[:7].lower() == b"bearer "
                         for k, v in scope["headers"])

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The SDK's RequireAuthMiddleware puts WWW-Authenticate on every refusal
                # (401 invalid_token, 403 insufficient_scope); anything else got through auth.
                refused = any(k.lower() == b"www-authenticate" for k, _ in message.get("headers", []))
                if message["status"] == 401:
                    self.stats.rejected += 1
                    self.stats.rejected_with_token += has_bearer
                elif not refused:
                    self.stats.mcp_requests += 1
            await send(message)

        await self.app(scope, receive, watch)

    async def _authorize(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "GET":
            form = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        else:
            body, receive = await _buffer_body(receive)
            form = dict(parse_qsl(body.decode("latin-1")))
        self._record("authorize", None, form)
        await self.app(scope, receive, send)

    async def _token(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, receive = await _buffer_body(receive)
        form = dict(parse_qsl(body.decode("latin-1")))
        grant = form.get("grant_type")
        self._record("token", grant, form)

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                ok = message["status"] == 200
                if grant == "refresh_token":
                    if ok:
                        self.stats.refreshes += 1
                    else:
                        self.stats.refresh_failures += 1
                    log.info("refresh grant -> %s", message["status"])
                elif grant == "authorization_code":
                    self.stats.code_exchange_failures += not ok
                    log.info("authorization_code grant -> %s", message["status"])
            await send(message)

        await self.app(scope, receive, watch)

    def _record(self, endpoint: str, grant: str | None, form: dict[str, str]) -> None:
        self.stats.resource_requests.append(
            {"endpoint": endpoint, "grant_type": grant, "resource": form.get("resource")})


async def _buffer_body(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole request body; return it and a `receive` that replays it to the app."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            # Client went away before sending the body; let the app see the disconnect.
            async def gone() -> Message:
                return message
            return b"".join(chunks), gone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def build_app(port: int, token_lifetime: int, scopes: list[str]) -> tuple[ASGIApp, MemoryProvider, Stats]:
    base = f"http://127.0.0.1:{port}"
    resource = f"{base}/mcp"
    stats = Stats()
    provider = MemoryProvider(stats, token_lifetime, scopes)
    auth = AuthSettings(
        # The SDK accepts an http issuer only on loopback (validate_issuer_url allows localhost,
        # 127.0.0.1 and [::1]); nothing to switch on.
        issuer_url=base,
        resource_server_url=resource,
        client_registration_options=ClientRegistrationOptions(
            enabled=True, valid_scopes=scopes or None, default_scopes=scopes or None),
        revocation_options=RevocationOptions(enabled=True),
        required_scopes=scopes or None,
        # Tokens remember the resource they were asked for (reported in /test/stats), but the
        # bearer check does not enforce it, so a client that omits `resource` still gets in and
        # the test can assert on what it sent. Set explicitly: unset warns in mcp 2.x.
        validate_token_resource=False,
    )
    mcp = MCPServer("tokenwarden-test", auth_server_provider=provider, auth=auth, log_level="INFO")

    @mcp.tool()
    def echo(text: str) -> str:
        """Returns the text unchanged."""
        return text

    @mcp.tool()
    async def count(n: int, ctx: Context) -> str:
        """Sends n notifications before answering, so the answer comes as an SSE stream of several
        events: progress notifications if the request carries a progressToken, log messages
        otherwise (exactly n either way)."""
        meta = ctx.request_context.meta or {}
        wants_progress = meta.get("progress_token", meta.get("progressToken")) is not None
        for i in range(1, n + 1):
            if wants_progress:
                await ctx.report_progress(i, n, f"step {i}")
            else:
                await ctx.info(f"count {i}/{n}")
            await asyncio.sleep(0.01)  # separate events on the wire, not one burst
        return f"counted {n}"

    @mcp.custom_route("/test/expire", methods=["POST"])
    async def test_expire(request: Request) -> JSONResponse:
        stats.expire_calls += 1
        answer = {"expired": provider.expire_access_tokens()}
        # ?refresh_tokens=1 also forgets every refresh token, forcing a fresh authorization.
        if request.query_params.get("refresh_tokens") in ("1", "true"):
            answer["refresh_tokens_dropped"] = provider.drop_refresh_tokens()
        log.info("test/expire: %s", answer)
        return JSONResponse(answer)

    @mcp.custom_route("/test/stats", methods=["GET"])
    async def test_stats(request: Request) -> JSONResponse:
        resources: list[str] = []
        for r in stats.resource_requests:
            if r["resource"] is not None and r["resource"] not in resources:
                resources.append(r["resource"])
        return JSONResponse({
            "registrations": stats.registrations,
            "authorizations": stats.authorizations,
            "code_exchanges": stats.code_exchanges,
            "code_exchange_failures": stats.code_exchange_failures,
            "refreshes": stats.refreshes,
            "refresh_failures": stats.refresh_failures,
            "revocations": stats.revocations,
            "rejected": stats.rejected,
            "rejected_with_token": stats.rejected_with_token,
            "mcp_requests": stats.mcp_requests,
            "expire_calls": stats.expire_calls,
            "resources": resources,
            "resource_requests": stats.resource_requests,
            "clients": [{"client_id": c.client_id,
                         "client_name": c.client_name,
                         "redirect_uris": [str(u) for u in c.redirect_uris or []],
                         "token_endpoint_auth_method": c.token_endpoint_auth_method,
                         "grant_types": c.grant_types,
                         "scope": c.scope}
                        for c in provider.clients.values()],
            "live_access_tokens": sum(1 for t in provider.access_tokens.values()
                                      if t.expires_at is None or t.expires_at > time.time()),
            "live_refresh_tokens": len(provider.refresh_tokens),
        })

    app = Observer(mcp.streamable_http_app(host="127.0.0.1"), stats)
    return app, provider, stats


def write_atomically(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


async def serve(args: argparse.Namespace) -> None:
    # Bind first: the issuer, resource and metadata URLs all carry the port.
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket's proto says TCP, and proto 0 (the default) does not. Without it, an SSE answer (the
    # headers, then the event a few ms later) waited for the client's delayed ACK: ~40 ms per call
    # for clients whose kernel delays it (mcp-remote/Node measured 48 ms a call instead of 8).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app, _, _ = build_app(port, args.token_lifetime, args.scope)

    config = uvicorn.Config(
        app,
        log_config=None,  # leave logging to the root logger (stderr); uvicorn's default puts access logs on stdout
        timeout_graceful_shutdown=2,  # open SSE streams must not hold up SIGTERM
        lifespan="on",
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        # Only once uvicorn accepts connections (after the app's lifespan started the session manager).
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.01)
        write_atomically(args.port_file, str(port))  # no newline: parses as-is
        log.info("serving http://127.0.0.1:%d/mcp (port written to %s)", port, args.port_file)

    announcer = asyncio.create_task(announce())
    try:
        await server.serve(sockets=[sock])  # handles SIGTERM/SIGINT itself
    finally:
        announcer.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port-file", required=True, help="where to write the port once serving")
    parser.add_argument("--token-lifetime", type=int, default=3600, help="access token lifetime, seconds")
    parser.add_argument("--scope", action="append", default=[],
                        help="require this scope on MCP requests (repeatable); default: no scopes")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
