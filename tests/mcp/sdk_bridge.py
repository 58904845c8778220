#!/usr/bin/env python3
"""A stdio-to-Streamable-HTTP MCP bridge built from the official SDK's OAuth client: a stand-in
for Tokenwarden's bridge, so client.py and server.py can be checked against each other.

    sdk_bridge.py URL        (e.g. http://127.0.0.1:PORT/mcp)

Serves MCP on stdin/stdout and relays every JSON-RPC message unchanged to URL, authorizing with
the SDK's `OAuthClientProvider` (discovery, dynamic registration, PKCE, refresh) and a headless
"browser" that follows the authorization URL itself. Everything is kept in memory.

Also a small library for selftest.py: `MemoryTokenStorage`, `HeadlessBrowser`, `oauth_provider`.
"""
from __future__ import annotations

import logging
import sys
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
from pydantic import AnyUrl

from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp.types import JSONRPCRequest, JSONRPCResponse

log = logging.getLogger("sdk-bridge")

# Registered with the authorization server but never listened on: HeadlessBrowser reads the code
# from the 302 Location instead of letting anything connect there.
REDIRECT_URI = "http://127.0.0.1:1/callback"


class MemoryTokenStorage:
    """The SDK's `TokenStorage` protocol, in memory. Keeps every token set it was given, so a test
    can replay a refresh token that has since been rotated away."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class HeadlessBrowser:
    """The SDK's redirect_handler/callback_handler pair without a browser: GET the authorization URL,
    do not follow its 302, and hand the code and state in the Location back as the callback."""

    def __init__(self) -> None:
        self.authorizations = 0
        self._result: AuthorizationCodeResult | None = None

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorizations += 1
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
            response = await http.get(authorization_url)
        location = response.headers.get("location")
        if response.status_code not in (302, 303) or not location:
            raise RuntimeError(f"authorization endpoint answered {response.status_code}: {response.text[:200]}")
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        if "error" in query:
            raise RuntimeError(f"authorization refused: {query}")
        self._result = AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    async def callback_handler(self) -> AuthorizationCodeResult:
        result, self._result = self._result, None
        if result is None:
            raise RuntimeError("callback before any authorization redirect")
        return result


def oauth_provider(url: str, storage: MemoryTokenStorage, browser: HeadlessBrowser,
                   client_name: str = "sdk-bridge") -> OAuthClientProvider:
    return OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name=client_name,
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )


async def bridge(url: str) -> None:
    provider = oauth_provider(url, MemoryTokenStorage(), HeadlessBrowser())
    # The streamable HTTP transport sends MCP-Protocol-Version only when a message's metadata
    # carries it (the SDK's ClientSession stamps it); relaying raw messages, we stamp it ourselves
    # from the initialize answer.
    state: dict[str, Any] = {"init_id": None, "version": None}

    async with (
        httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(url, http_client=http) as (remote_read, remote_write),
        stdio_server() as (local_read, local_write),
        anyio.create_task_group() as tg,
    ):
        async def upstream() -> None:
            async for item in local_read:
                if isinstance(item, Exception):
                    log.warning("unreadable message from stdin: %s", item)
                    continue
                message = item.message
                if isinstance(message, JSONRPCRequest) and message.method == "initialize":
                    state["init_id"] = message.id
                metadata = None
                if state["version"]:
                    metadata = ClientMessageMetadata(headers={MCP_PROTOCOL_VERSION_HEADER: state["version"]})
                await remote_write.send(SessionMessage(message, metadata=metadata))
            tg.cancel_scope.cancel()  # stdin closed: the client is gone

        async def downstream() -> None:
            async for item in remote_read:
                if isinstance(item, Exception):
                    log.warning("transport error from %s: %s", url, item)
                    continue
                message = item.message
                if isinstance(message, JSONRPCResponse) and message.id == state["init_id"]:
                    state["version"] = message.result.get("protocolVersion")
                await local_write.send(SessionMessage(message))
            tg.cancel_scope.cancel()

        tg.start_soon(upstream)
        tg.start_soon(downstream)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="sdk-bridge %(asctime)s %(name)s %(levelname)s %(message)s")
    anyio.run(bridge, sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
