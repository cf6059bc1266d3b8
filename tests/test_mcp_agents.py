"""MCP, second round: the kind rule in the middleware and the client session, the size caps of
the middleware, and the server's own requests to the client (sampling, elicitation)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mcp import MCPError
from mcp.server.mcpserver import MCPServer

from guardrails import LocalGuard
from guardrails.integrations.mcp import GuardedClientSession, MCPGuardMiddleware
from guardrails.testing._fakes import FakeGuard
from tests.servers import run_asgi
from tests.test_mcp import _serve, _text, connect


def _tool_kinds(guard: FakeGuard) -> list[tuple[str, bool]]:
    return [(c.kind, c.tool.result is not None) for c in guard.seen if c.tool is not None]


@pytest.mark.anyio
async def test_the_middleware_checks_arguments_as_response_and_results_as_prompt() -> None:
    guard = FakeGuard(lambda c: False)
    for served in _serve(guard):
        async with connect(served.url) as session:
            await session.call_tool("echo", {"text": "hi"})
            await session.get_prompt("summary", {"topic": "cats"})
            await session.read_resource("res://clean")
            await session.list_tools()
    assert _tool_kinds(guard) == [("response", False), ("prompt", True)]
    assert {c.kind for c in guard.seen if c.tool is None} == {"prompt"}


@pytest.mark.anyio
async def test_the_client_session_checks_arguments_as_response_and_results_as_prompt() -> None:
    guard = FakeGuard(lambda c: False)
    for served in _serve(None, guarded=False):
        async with connect(served.url) as session:
            guarded = GuardedClientSession(session, guard)
            await guarded.call_tool("echo", {"text": "hi"})
            await guarded.get_prompt("summary", {"topic": "cats"})
            await guarded.read_resource("res://clean")
            await guarded.list_tools()
    assert _tool_kinds(guard) == [("response", False), ("prompt", True)]
    assert {c.kind for c in guard.seen if c.tool is None} == {"prompt"}


# -- size caps ------------------------------------------------------------------------------------


def _big_server(ran: list[str]) -> MCPServer:
    server = MCPServer("big")

    @server.tool()
    def big(size: int) -> str:
        """Return `size` characters."""
        ran.append("big")
        return "x" * size

    return server


@pytest.mark.anyio
@pytest.mark.parametrize("json_response", [False, True], ids=["sse", "json"])
async def test_an_answer_over_the_cap_is_refused_never_forwarded(json_response: bool) -> None:
    ran: list[str] = []
    app = MCPGuardMiddleware(
        _big_server(ran).streamable_http_app(json_response=json_response),
        LocalGuard(),
        max_response_size=4_000,
    )
    with run_asgi(app) as url:
        async with connect(url) as session:
            assert _text(await session.call_tool("big", {"size": 100})) == "x" * 100
            with pytest.raises(MCPError) as caught:
                await session.call_tool("big", {"size": 10_000})
            assert caught.value.code == -32600
            assert "too large" in str(caught.value)
            # The session goes on: the next call is answered.
            assert _text(await session.call_tool("big", {"size": 10})) == "x" * 10
    assert ran == ["big", "big", "big"]


@pytest.mark.anyio
async def test_a_request_over_max_body_size_is_refused_before_the_app() -> None:
    called: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append("app")
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guarded = MCPGuardMiddleware(app, LocalGuard(), max_body_size=1_000)
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "t", "arguments": {"a": "x" * 2_000}},
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded), base_url="http://mcp") as http:
        response = await http.post("/mcp", json=call)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == -32600
        small = {**call, "params": {"name": "t", "arguments": {"a": "x"}}}
        assert (await http.post("/mcp", json=small)).status_code == 202
    assert called == ["app"]


def test_the_caps_default_as_the_asgi_middleware_and_refuse_bad_values() -> None:
    middleware = MCPGuardMiddleware(_big_server([]).streamable_http_app(), LocalGuard())
    assert middleware.max_body_size == 1_000_000
    assert middleware.max_response_size == 10_000_000
    with pytest.raises(ValueError, match="max_body_size"):
        MCPGuardMiddleware(middleware.app, LocalGuard(), max_body_size=-1)
    with pytest.raises(ValueError, match="max_response_size"):
        MCPGuardMiddleware(middleware.app, LocalGuard(), max_response_size=True)
