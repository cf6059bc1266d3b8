"""An httpx2 transport that puts a guard between the official ``anthropic`` client and the model.

anthropic 2.x accepts only ``httpx2`` clients; one transport serves the sync and the async one::

    import anthropic
    import httpx2
    from guardrails.integrations.anthropic import GuardedTransport

    client = anthropic.Anthropic(http_client=httpx2.Client(transport=GuardedTransport(guard)))
    aclient = anthropic.AsyncAnthropic(http_client=httpx2.AsyncClient(transport=GuardedTransport(guard)))

What is checked:

- Every POST to ``.../messages`` (or the legacy ``.../complete``) as a prompt, before it leaves:
  the ``system`` prompt and every message as chat messages (every string of every content block:
  text, ``tool_use`` inputs, ``tool_result`` contents, documents' text), and every other string of
  the request but for the settings (tool descriptions included). The ``tool_result`` blocks of the
  current turn are also checked each as a tool's output (a `ToolEvent` with the call's name and
  input): tool results are where indirect prompt injection comes in.
- Every other POST with a JSON body (``count_tokens``, message batches, an endpoint newer than this
  library) by every string it holds. A body that cannot be parsed is refused (`ExtractionError`).
- With ``scan_response`` (the default), the answer of a generating call: a JSON message whole,
  before the client sees a byte (its text, thinking and ``tool_use`` inputs; each ``tool_use`` also
  as a tool call), or an event stream as it streams with the scanner every shell shares
  (`guardrails._stream`): windows of generated text (text, thinking and tool-input deltas; a
  small first window of ``stream_first_window`` characters, then doubling up to
  ``stream_window``, and whatever is held once the model goes quiet for ``stream_idle_flush``
  seconds), each window's events released only once allowed, in order.

How the client surfaces it (anthropic 2.x wraps any exception of a transport that is not an
``anthropic.AnthropicError`` in ``APIConnectionError`` and retries it): everything this transport
raises is also an ``AnthropicError``, so the SDK hands it over as it is, never retried. A Block
raises `AnthropicBlocked` (a `guardrails.Blocked`, ``.verdict``) out of ``messages.create(...)``
or, for a stream, out of its iterator; a guard failure failing closed raises the `GuardError` (its
own class, e.g. `GuardUnavailable`, made an ``AnthropicError`` too); a body it cannot read, the
`ExtractionError` the same way. Failing open, the call goes on unscanned and a warning is logged.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from anthropic import AnthropicError

from .._body import json_strings
from .._exceptions import Blocked, ExtractionError, GuardrailsError
from .._models import Content
from .._shapes import ALL_MESSAGES, AnthropicStreamText, MessageScope
from ._httpx2 import Httpx2Transport
from ._tools import anthropic_tool_calls, anthropic_tool_results
from ._transport_core import Api, endpoint_by_path

__all__ = ["AnthropicBlocked", "GuardedTransport"]

# Request fields that configure the call and never reach the model as text.
_SETTINGS = frozenset(
    {
        "model",
        "max_tokens",
        "max_tokens_to_sample",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "metadata",
        "service_tier",
        "tool_choice",
        "thinking",
        "stop_sequences",
        "container",
        "inference_geo",
    }
)
# Keys of content blocks that name the block's kind or wire it up, not text of the conversation.
_BLOCK_WIRING = frozenset({"type", "id", "tool_use_id", "cache_control", "media_type", "signature"})
_ENDPOINTS = {"/messages": "messages", "/complete": "complete"}
_GENERATING = frozenset(_ENDPOINTS.values())


class AnthropicBlocked(Blocked, AnthropicError):
    """The guard blocked a request to the model, or its answer.

    A `guardrails.Blocked` (``.verdict``) that is also an ``anthropic.AnthropicError``: the client
    passes it through as it is instead of retrying it.
    """


_variants: dict[type[GuardrailsError], type[GuardrailsError]] = {}
_variants_lock = threading.Lock()


def _sdk_variant(cls: type[GuardrailsError]) -> type[GuardrailsError]:
    """``cls`` made an ``AnthropicError`` too (one class per error class, made once)."""
    with _variants_lock:
        variant = _variants.get(cls)
        if variant is None:
            variant = type(cls.__name__, (cls, AnthropicError), {"__module__": cls.__module__})
            _variants[cls] = variant
        return variant


def _block_texts(value: Any) -> Iterator[str]:
    """Every string of a content block (or of a list of them), but for its wiring."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key in _BLOCK_WIRING:
                continue
            if key == "source" and isinstance(item, Mapping) and item.get("type") == "base64":
                continue  # an image or a PDF as base64: not text
            yield from _block_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _block_texts(item)


def request_content(
    endpoint: str, body: bytes, path: str, scope: MessageScope = ALL_MESSAGES
) -> Content | None:
    """What to check in a request body; None when it holds no text.

    `scope` narrows the chat messages checked (the ``system`` prompt is one, of role ``system``).

    Raises:
        ExtractionError: the body is not the JSON object the endpoint takes.
    """
    if endpoint == "other" and not body.strip():
        return None
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ExtractionError(f"the {endpoint} request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise ExtractionError(f"the {endpoint} request body is not a JSON object")
    metadata = {"route": path}
    if isinstance(document.get("model"), str):
        metadata["model"] = document["model"]
    messages: list[dict[str, str]] = []
    handled: tuple[str, ...] = ()
    if endpoint == "messages":
        turns = document.get("messages")
        if not isinstance(turns, list) or not all(isinstance(m, Mapping) for m in turns):
            raise ExtractionError("the messages request has no list of messages")
        system = "\n".join(text for text in _block_texts(document.get("system")) if text)
        messages.append({"role": "system", "content": system})
        for turn in turns:
            role = turn.get("role")
            text = "\n".join(text for text in _block_texts(turn.get("content")) if text)
            messages.append({"role": role if role in ("user", "assistant") else "user", "content": text})
        if scope.narrows:
            messages = [messages[index] for index in scope.select(messages)]
        messages = [message for message in messages if message["content"]]
        handled = ("messages", "system")
    rest = [
        text
        for key, value in document.items()
        if key not in _SETTINGS and key not in handled
        for text in json_strings(value)
        if text
    ]
    if not messages and not rest:
        return None
    return Content("\n".join(rest) if rest else None, messages=messages or None, metadata=metadata)


def answer_content(
    body: bytes, *, metadata: Mapping[str, str] | None = None, prompt: str | None = None
) -> Content | None:
    """What to check in a JSON answer: every string of its content blocks (any other JSON: all)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace")
        return Content(text, kind="response", metadata=metadata, prompt=prompt) if text.strip() else None
    if isinstance(document, dict) and isinstance(document.get("content"), list):
        texts = [text for text in _block_texts(document["content"]) if text]
    elif isinstance(document, dict) and isinstance(document.get("completion"), str):
        texts = [document["completion"]]
    else:
        texts = [text for text in json_strings(document) if text]
    if not texts:
        return None
    return Content("\n".join(texts), kind="response", metadata=metadata, prompt=prompt)


#: The reader of the generated text of each event of a Messages stream (the shape module's).
StreamText = AnthropicStreamText


def endpoint_of(method: str, path: str, media_type: str) -> str | None:
    """What a request is (``messages``, ``complete``, ``other``); None: it passes unchecked."""
    return endpoint_by_path(method, path, media_type, _ENDPOINTS)


def _tool_results(endpoint: str, body: bytes, metadata: Mapping[str, str]) -> list[Content]:
    return anthropic_tool_results(body, metadata) if endpoint == "messages" else []


#: How Anthropic API calls are read.
ANTHROPIC_API = Api(
    generating=_GENERATING,
    endpoint=endpoint_of,
    request=request_content,
    tool_results=_tool_results,
    answer=answer_content,
    tool_calls=anthropic_tool_calls,
    event_text=AnthropicStreamText,
)


class GuardedTransport(Httpx2Transport):
    """An httpx2 transport, sync and async, that checks Anthropic API calls with a guard.

    It takes the arguments of the OpenAI `guardrails.integrations.openai.GuardedTransport` (the
    same code: `guardrails.integrations._transport_core`), with ``transport`` an httpx2 transport
    (``httpx2.MockTransport`` in tests; by default an ``httpx2.HTTPTransport()`` or
    ``httpx2.AsyncHTTPTransport()``, made at first use): ``guard``, ``scan_response``,
    ``fail_open``, ``on_decision``, the ``stream_*`` windows, and ``roles``/``last_turn`` (the
    ``system`` prompt is a message of role ``system``; ``tool_result`` blocks are in ``user``
    turns), ``incremental``, ``block`` and ``mask`` (the masked strings rewritten in the JSON body).

    Closing the client closes what this transport made, never a ``transport`` or ``guard`` given.
    """

    api = ANTHROPIC_API
    blocked = AnthropicBlocked

    def sdk_error(self, error: GuardrailsError) -> GuardrailsError:
        if not isinstance(error, AnthropicError):
            # The same error, of a class that is also an AnthropicError: never wrapped, never retried.
            error.__class__ = _sdk_variant(type(error))
        return error
