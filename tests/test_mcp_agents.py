"""MCP, second round: the kind rule in the middleware and the client session, the size caps of
the middleware, and the server's own requests to the client (sampling, elicitation)."""

from __future__ import annotations

import pytest

from guardrails.integrations.mcp import GuardedClientSession
from guardrails.testing._fakes import FakeGuard
from tests.test_mcp import _serve, connect


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
