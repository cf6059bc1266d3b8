"""An OpenAI-compatible chat endpoint behind the guardrails ASGI middleware.

Run it with ``uvicorn examples.fastapi_app:app`` and point any OpenAI client at
``http://127.0.0.1:8000/v1``. The "model" is a local stand-in that echoes the last message; prompts
the guard blocks get a 403, which the OpenAI SDK raises as ``PermissionDeniedError``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import FastAPI, Request

from guardrails import LocalGuard, Route
from guardrails.asgi import GuardMiddleware

app = FastAPI(title="guarded chat")
app.add_middleware(
    GuardMiddleware,
    guard=LocalGuard(),  # no network; use guard_from_env() for a vendor guard
    routes=[Route("/v1/chat/completions", scan_response=True)],
    max_body_size=1_000_000,
)


def stand_in_model(messages: list[dict[str, Any]]) -> str:
    """A local stand-in for a real model: echo the last message."""
    last = messages[-1].get("content") if messages else ""
    return f"You said: {last}"


@app.post("/v1/chat/completions")
async def chat_completions(request: Request) -> dict[str, Any]:
    body = await request.json()
    answer = stand_in_model(body.get("messages", []))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "stand-in"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
