"""An OpenAI-compatible chat endpoint in Flask, behind the guardrails WSGI middleware.

Run it with ``python examples/flask_app.py`` (or ``flask --app examples.flask_app run``) and point any
OpenAI client at ``http://127.0.0.1:5000/v1``. The "model" is a local stand-in that echoes the last
message; prompts the guard blocks get a 403, which the OpenAI SDK raises as ``PermissionDeniedError``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Flask, request

from guardrails import LocalGuard, Route
from guardrails.wsgi import GuardMiddleware

app = Flask(__name__)
app.wsgi_app = GuardMiddleware(  # type: ignore[method-assign]
    app.wsgi_app,
    guard=LocalGuard(),  # no network; use guard_from_env() for a vendor guard
    routes=[Route("/v1/chat/completions", scan_response=True)],
    max_body_size=1_000_000,
)


def stand_in_model(messages: list[dict[str, Any]]) -> str:
    """A local stand-in for a real model: echo the last message."""
    last = messages[-1].get("content") if messages else ""
    return f"You said: {last}"


@app.post("/v1/chat/completions")
def chat_completions() -> dict[str, Any]:
    body = request.get_json(force=True)
    verdict = request.environ["guardrails.verdict"]  # the guard's Allow (None if unscanned)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "stand-in"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": stand_in_model(body["messages"])}}
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "guardrails_verdict_id": verdict.id if verdict is not None else None,
    }


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000, threaded=True)
