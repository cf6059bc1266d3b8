"""Constants and small helpers shared by test modules (imported from here, never from a test file)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["EXAMPLES", "PANW_KEY", "TREND_KEY", "load_example"]

#: The runnable examples, each exercised by a test.
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: The keys the session's emulator accepts (its defaults, as the README says).
TREND_KEY = "test-v1-key"
PANW_KEY = "test-panw-key"


def load_example(filename: str) -> ModuleType:
    """Import ``examples/<filename>`` as a module (registered, so dataclasses and pickling work)."""
    path = EXAMPLES / filename
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def guarded_status(
    guard: Any, body: bytes, *, query: bytes = b"", content_type: bytes = b"application/json"
) -> int:
    """The status `GuardMiddleware` with `guard` on ``/chat`` gives one POST of `body` (in process)."""
    from guardrails import Route
    from guardrails.asgi import GuardMiddleware

    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/chat",
        "root_path": "",
        "query_string": query,
        "headers": [(b"content-type", content_type)],
    }
    await GuardMiddleware(app, guard=guard, routes=[Route("/chat")])(scope, receive, send)
    return int(sent[0]["status"])
