"""The OpenAI transport for ``httpx2`` clients (openai 3.x): see `guardrails.integrations.openai`."""

from __future__ import annotations

from collections.abc import Callable

from .._models import Content
from .._shapes import GENERATING, StreamText, answer_content, endpoint_of, request_content
from ._httpx2 import Call, Httpx2Transport
from ._tools import openai_tool_calls, openai_tool_results
from .openai import OpenAIBlocked

__all__ = ["GuardedHttpx2Transport"]


class GuardedHttpx2Transport(Httpx2Transport):
    """An httpx2 transport, sync and async, that checks OpenAI API calls with a guard.

    For openai 3.x, whose clients are ``httpx2`` clients::

        client = openai.OpenAI(http_client=httpx2.Client(transport=GuardedHttpx2Transport(guard)))
        aclient = openai.AsyncOpenAI(http_client=httpx2.AsyncClient(transport=GuardedHttpx2Transport(guard)))

    It checks what the httpx `GuardedTransport` checks, the same way (the same readings of
    requests, answers and streams, the same `Judge`), takes the same arguments (``transport``: an
    httpx2 transport) and raises the same `OpenAIBlocked`. On top of the prompt check, the tool
    results of the turn (``tool`` messages, ``function_call_output`` items) are each checked as a
    tool's output, and the tool calls of an answer as tool calls (`ToolEvent`).
    """

    blocked = OpenAIBlocked

    def endpoint(self, method: str, path: str, media_type: str) -> str | None:
        return endpoint_of(method, path, media_type)

    def generating(self, endpoint: str) -> bool:
        return endpoint in GENERATING

    def prompt_contents(self, call: Call, body: bytes) -> list[Content]:
        content = request_content(call.endpoint, body, call.metadata["route"])  # type: ignore[arg-type]
        if content is None:
            return []
        call.metadata = content.metadata
        call.prompt = content.as_text()
        return [content, *openai_tool_results(call.endpoint, body, call.metadata)]

    def answer_contents(self, call: Call, body: bytes) -> list[Content]:
        content = answer_content(body, metadata=call.metadata, prompt=call.prompt)
        if content is None:
            return []
        return [content, *openai_tool_calls(body, call.metadata)]

    def event_text(self) -> Callable[[bytes], str]:
        return StreamText()
