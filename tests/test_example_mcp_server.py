"""examples/mcp_server.py: the guarded MCP server under uvicorn, called with the SDK's client."""

from __future__ import annotations

import anyio

from tests.helpers import load_example
from tests.servers import run_asgi


def test_the_clean_ticket_is_read_and_the_poisoned_one_withheld() -> None:
    example = load_example("mcp_server.py")
    with run_asgi(example.app) as url:
        results = anyio.run(example.call_tools, url + "/mcp")
    assert results[0] == (False, "Printer on floor 2 is jammed.")
    is_error, text = results[1]
    assert is_error
    assert "withheld" in text
    assert "Ignore all" not in text
