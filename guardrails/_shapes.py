"""The shapes of OpenAI API payloads, read in one place for every shell.

What text a chat-completions or Responses request holds (`request_content`), what text an answer
holds (`answer_content`), and what text each event of a stream adds (`StreamText` for OpenAI
chat-completion chunks and Responses events, `AnthropicStreamText` for Anthropic Messages
events): the OpenAI transport, both middlewares and the decorator read them here, so they never
disagree. A stream reader is a callable taking one server-sent event (its raw bytes) and giving
the text it adds; make one per stream, and hand it to `guardrails._sse.SSEScanner`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from ._body import json_strings
from ._exceptions import ExtractionError
from ._models import Content, message_texts

__all__ = [
    "ALL_MESSAGES",
    "GENERATING",
    "AnthropicStreamText",
    "ROLES",
    "Endpoint",
    "MessageScope",
    "endpoint_of",
    "StreamText",
    "answer_content",
    "event_data",
    "request_content",
    "responses_messages",
    "responses_texts",
]

#: What a request to the API is: text generation whose answer is checked too (``chat``,
#: ``responses``, ``completions``), or any other call that carries JSON (``other``: conversations,
#: threads, embeddings, an endpoint newer than this library), checked by every string it holds.
Endpoint = Literal["chat", "responses", "completions", "other"]
#: The endpoints whose answers are model output (checked with ``scan_response``).
GENERATING: frozenset[Endpoint] = frozenset({"chat", "responses", "completions"})
# Top-level request fields that configure the call and never reach the model as text. Every other
# string of a request is checked, whatever the endpoint: a field this library does not know yet
# (tool descriptions, prompt-template variables, conversation items) is never a hole.
_SETTINGS = frozenset(
    {
        "model",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "service_tier",
        "reasoning_effort",
        "modalities",
        "metadata",
        "store",
        "stream",
        "stream_options",
        "n",
        "temperature",
        "top_p",
        "seed",
        "logprobs",
        "top_logprobs",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "max_tool_calls",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "parallel_tool_calls",
        "truncation",
        "background",
        "include",
        "previous_response_id",
        "conversation",
        "verbosity",
        "encoding_format",
        "dimensions",
    }
)

_CHAT_ROLES = frozenset({"system", "developer", "user", "assistant"})
_RESPONSE_DONE = frozenset({"response.completed", "response.incomplete", "response.failed"})
# Fields of a chat completion or Responses object that the API writes, not the model: ids, names
# of things, timestamps. Every other top-level string is checked with the answer.
_ANSWER_METADATA = frozenset(
    {
        "id",
        "object",
        "created",
        "created_at",
        "model",
        "system_fingerprint",
        "service_tier",
        "usage",
        "status",
        "choices",
        "output",
        # A Responses object echoes the request: it was checked when it went out.
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "previous_response_id",
        "metadata",
        "truncation",
        "user",
        "safety_identifier",
        "prompt_cache_key",
    }
)
_LINE = re.compile(r"\r\n|\n|\r")


def event_data(event: bytes) -> str:
    """The data of one server-sent event: its ``data:`` lines, joined by newlines."""
    lines = _LINE.split(event.decode("utf-8", "replace"))
    return "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))


_NOT_FAST: Any = object()
_SCAN_JSON: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _fast_json(event: bytes) -> Any:
    """The JSON object of an event of the usual shape, read straight from its bytes; else `_NOT_FAST`.

    The usual shape: an optional ``event:`` line, then one ``data: {...}`` line, ending with
    ``\n\n`` and no ``\r``. Anything else (several data lines, comments, CRs, data that is
    not a JSON object or not UTF-8) is `_NOT_FAST`: read by `event_data` as always. Parsing the
    bytes skips the decode and the line split of `event_data`: the per-event cost of a stream.
    """
    if event[-2:] != b"\n\n" or b"\r" in event:
        return _NOT_FAST
    if event[:6] == b"event:":
        event = event[event.find(b"\n") + 1 :]
    if event[:5] != b"data:" or event.count(b"\n") != 2:
        return _NOT_FAST
    data = event[6:-2] if event[5:6] == b" " else event[5:-2]
    if data[:1] != b"{":
        return _NOT_FAST
    try:
        text = data.decode()
        # The decoder's scanner itself (json.loads adds an encoding sniff and a regex per call).
        document, end = _SCAN_JSON(text, 0)
    except (ValueError, StopIteration):
        return _NOT_FAST
    return document if end == len(text) and type(document) is dict else _NOT_FAST


# Keys of a chat chunk's delta read by the fast path (what `message_texts` reads of them).
_PLAIN_DELTA = frozenset({"content", "role", "refusal"})


def responses_texts(value: Any) -> Iterator[str]:
    """The text of a Responses API item, content part or event (never ids, types or URLs)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for part in value:
            yield from responses_texts(part)
    elif isinstance(value, Mapping):
        for key in ("text", "refusal", "arguments", "input", "code"):
            text = value.get(key)
            if isinstance(text, str):
                yield text
        for key in ("content", "output", "summary", "part", "item"):
            if key in value:
                yield from responses_texts(value[key])


def responses_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Responses API ``instructions`` and ``input`` as chat messages with string contents."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        for item in items:
            if not isinstance(item, Mapping):
                raise ExtractionError("a Responses API input item is not an object")
            text = "\n".join(text for text in responses_texts(item) if text)
            if not text:
                continue
            role = item.get("role")
            if role not in _CHAT_ROLES:
                # Tool outputs come from outside: check them as user input. Other items
                # (function calls, reasoning) are the model's own earlier output.
                item_type = item.get("type")
                output = isinstance(item_type, str) and item_type.endswith("_output")
                role = "user" if output else "assistant"
            messages.append({"role": role, "content": text})
    elif items is not None:
        raise ExtractionError("the Responses API input is neither a string nor a list")
    return messages


def request_metadata(path: str, body: Mapping[str, Any]) -> dict[str, str]:
    metadata = {"route": path}
    model = body.get("model")
    if isinstance(model, str):
        metadata["model"] = model
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        metadata["user"] = user
    return metadata


def endpoint_of(method: str, path: str, media_type: str) -> Endpoint | None:
    """What a request to the API is; None for requests that carry no JSON to check (a GET, a file
    upload)."""
    if method not in ("POST", "PUT", "PATCH"):
        return None
    path = path.rstrip("/")
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith("/completions"):
        return "completions"
    if media_type.startswith("multipart/") or media_type == "application/octet-stream":
        return None  # uploads: files, audio, images
    return "other"


def _other_strings(document: Mapping[str, Any], handled: tuple[str, ...]) -> list[str]:
    return [
        text
        for key, value in document.items()
        if key not in _SETTINGS and key not in handled
        for text in json_strings(value)
        if text
    ]


#: The chat roles a `MessageScope` may name (OpenAI's, and Anthropic's ``system`` field as "system").
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class MessageScope:
    """Which messages of a conversation are scanned: by role, and only the last turn or all.

    Args:
        roles: the roles scanned (``("user", "tool")``); None (the default) scans every role, since
            an API client controls every role it sends. A message whose role is not a known chat
            role (`ROLES`, compared case-insensitively), or that has none, is always scanned.
        last_turn: scan only the messages after the last assistant message (the new turn: the
            user's message and any tool results); every message when there is no assistant one.

    A scope only narrows the chat messages of a request: every other string of it is still scanned.
    """

    __slots__ = ("last_turn", "roles")

    def __init__(self, roles: Iterable[str] | None = None, *, last_turn: bool = False) -> None:
        if isinstance(roles, str):
            raise TypeError("roles takes a sequence of role names, e.g. roles=('user', 'tool')")
        if roles is not None:
            chosen = frozenset(role.lower() if isinstance(role, str) else role for role in roles)
            unknown = [role for role in chosen if role not in ROLES]
            if unknown:
                raise ValueError(f"roles must be chat roles ({', '.join(sorted(ROLES))}), not {unknown[0]!r}")
            if not chosen:
                raise ValueError("roles must name at least one role (None scans every role)")
            self.roles: frozenset[str] | None = chosen
        else:
            self.roles = None
        self.last_turn = bool(last_turn)

    @property
    def narrows(self) -> bool:
        """Whether this scope leaves any message out (the default one does not)."""
        return self.roles is not None or self.last_turn

    def keeps_role(self, role: object) -> bool:
        """Whether a message of this role is scanned (unknown roles always are)."""
        if self.roles is None or not isinstance(role, str):
            return True
        folded = role.lower()
        return folded not in ROLES or folded in self.roles

    def select(self, messages: Sequence[Any]) -> list[int]:
        """The indexes of the messages scanned, in order."""
        start = 0
        if self.last_turn:
            for index in range(len(messages) - 1, -1, -1):
                message = messages[index]
                role = message.get("role") if isinstance(message, Mapping) else getattr(message, "role", None)
                if isinstance(role, str) and role.lower() == "assistant":
                    start = index + 1
                    break
        return [index for index in range(start, len(messages)) if self.keeps_role(_role(messages[index]))]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessageScope):
            return NotImplemented
        return (self.roles, self.last_turn) == (other.roles, other.last_turn)

    def __hash__(self) -> int:
        return hash((self.roles, self.last_turn))

    def __repr__(self) -> str:
        roles = None if self.roles is None else tuple(sorted(self.roles))
        return f"MessageScope(roles={roles!r}, last_turn={self.last_turn})"


#: Every message of every role.
ALL_MESSAGES = MessageScope()


def _role(message: Any) -> object:
    return message.get("role") if isinstance(message, Mapping) else getattr(message, "role", None)


def request_content(
    endpoint: Endpoint, body: bytes, path: str, scope: MessageScope = ALL_MESSAGES
) -> Content | None:
    """What to check in a request body; None when it holds no text (images only, say).

    Chat messages go as messages (and Responses ``instructions`` and ``input`` as messages), so a
    vendor gets its chat format; every other string of the request goes with them as text, but for
    the settings that never reach the model (``model``, ``temperature``...).

    `scope` narrows the chat messages (and the Responses ``instructions`` and ``input``) scanned.

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
    metadata = request_metadata(path, document)
    messages: list[Any] | None = None
    if endpoint == "chat":
        messages = document.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
            raise ExtractionError("the chat completions request has no list of messages")
        rest = _other_strings(document, ("messages",))
    elif endpoint == "responses":
        messages = responses_messages(document) or None
        rest = _other_strings(document, ("input", "instructions"))
    else:
        rest = _other_strings(document, ())
    if messages and scope.narrows:
        messages = [messages[index] for index in scope.select(messages)] or None
    if not messages and not rest:
        return None
    content = Content("\n".join(rest) if rest else None, messages=messages, metadata=metadata)
    return content if any(content.iter_texts()) else None


def _is_completion(document: Mapping[str, Any]) -> bool:
    """A chat completion (or chunk): ``choices`` is a list of objects, each with a message,
    a delta or a legacy text. Anything else with a ``choices`` key is read by its strings."""
    choices = document.get("choices")
    return (
        isinstance(choices, list)
        and bool(choices)
        and all(
            isinstance(choice, Mapping) and ("message" in choice or "delta" in choice or "text" in choice)
            for choice in choices
        )
    )


def answer_content(
    body: bytes, *, metadata: Mapping[str, str] | None = None, prompt: str | None = None
) -> Content | None:
    """What to check in an answer (a response body, Content-Encoding undone); None if no text.

    A chat completion is checked as such (so a vendor gets its chat-response format), a Responses
    object by its ``output``; every other top-level string of either goes with it, so a field the
    reader does not know is never left out. Any other JSON is checked by all its strings, and a
    body that is not JSON as text.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace")
        return Content(text, kind="response", metadata=metadata, prompt=prompt) if text.strip() else None
    if isinstance(document, dict) and (_is_completion(document) or isinstance(document.get("output"), list)):
        rest = [
            text
            for key, value in document.items()
            if key not in _ANSWER_METADATA
            for text in json_strings(value)
            if text
        ]
        if _is_completion(document):
            content = Content(
                "\n".join(rest) if rest else None,
                completion=document,
                kind="response",
                metadata=metadata,
                prompt=prompt,
            )
            return content if any(content.iter_texts()) else None
        # Only the output of a Responses object: it also echoes the request's instructions and tools.
        texts = [text for text in responses_texts(document["output"]) if text] + rest
    else:
        texts = [text for text in json_strings(document) if text]
    if not texts:
        return None
    return Content("\n".join(texts), kind="response", metadata=metadata, prompt=prompt)


class StreamText:
    """The generated text of each event of one stream (chat completion chunks or Responses events).

    Responses streams repeat their text: the deltas, then ``*.done`` events, then the whole
    response in ``response.completed``. The text of an item is taken from its deltas; its done
    events are read only when it had none, so no text goes unchecked and none is checked twice.
    """

    __slots__ = ("_streamed",)

    def __init__(self) -> None:
        self._streamed: set[str] = set()

    def __call__(self, event: bytes) -> str:
        document = _fast_json(event)
        if document is _NOT_FAST:
            payload = event_data(event).strip()
            if not payload or payload == "[DONE]":
                return ""
            try:
                document = json.loads(payload)
            except ValueError:
                return payload
            if not isinstance(document, dict):
                return "\n".join(text for text in json_strings(document) if text)
        choices = document.get("choices")
        if type(choices) is list and len(choices) == 1:
            # The usual chunk: one choice, a delta of content (and role): its text, no walk.
            choice = choices[0]
            delta = choice.get("delta") if type(choice) is dict else None
            if type(delta) is dict and delta.keys() <= _PLAIN_DELTA:
                content, refusal = delta.get("content"), delta.get("refusal")
                if (content is None or type(content) is str) and (refusal is None or type(refusal) is str):
                    return (content or "") + (refusal or "")
        if isinstance(choices, list):
            return "".join(
                text
                for choice in choices
                if isinstance(choice, Mapping) and isinstance(choice.get("delta"), Mapping)
                for text in message_texts(choice["delta"])
            )
        event_type = document.get("type")
        if isinstance(event_type, str) and event_type.startswith("response."):
            return self._responses_event(event_type, document)
        return "\n".join(text for text in json_strings(document) if text)

    def _responses_event(self, event_type: str, document: Mapping[str, Any]) -> str:
        item_id = document.get("item_id")
        if event_type.endswith(".delta"):
            delta = document.get("delta")
            # Audio deltas are base64 sound, not text (its transcript has events of its own).
            if not isinstance(delta, str) or event_type.endswith("audio.delta"):
                return ""
            if isinstance(item_id, str):
                self._streamed.add(item_id)
            return delta
        if event_type in _RESPONSE_DONE:
            response = document.get("response")
            output = response.get("output") if isinstance(response, Mapping) else None
            items = output if isinstance(output, list) else []
            return "\n".join(
                text
                for item in items
                if not self._was_streamed(item)
                for text in responses_texts(item)
                if text
            )
        if not event_type.endswith(".done") or item_id in self._streamed:
            return ""
        item = document.get("item")
        if item is not None and self._was_streamed(item):
            return ""
        fields = {key: value for key, value in document.items() if key not in ("type", "item_id")}
        return "\n".join(text for text in responses_texts(fields) if text)

    def _was_streamed(self, item: Any) -> bool:
        return isinstance(item, Mapping) and item.get("id") in self._streamed


# Anthropic Messages stream events that carry no generated text.
_ANTHROPIC_SILENT = frozenset({"ping", "message_stop", "content_block_stop", "message_delta"})
# Fields of Anthropic blocks and deltas that are not text: kinds, ids, names, signatures.
_ANTHROPIC_NOT_TEXT = frozenset({"type", "id", "name", "signature", "tool_use_id", "index", "stop_reason"})


def _anthropic_texts(value: Any) -> Iterator[str]:
    """Every string of an Anthropic block or delta but its kinds, ids, names and signatures."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for part in value:
            yield from _anthropic_texts(part)
    elif isinstance(value, Mapping):
        for key, part in value.items():
            if key not in _ANTHROPIC_NOT_TEXT:
                yield from _anthropic_texts(part)


class AnthropicStreamText:
    """The generated text of each event of one Anthropic Messages stream.

    Text comes in ``content_block_delta`` events (``text_delta`` text, ``input_json_delta``
    tool input, ``thinking_delta`` thinking, ``citations_delta`` cited text; not a
    ``signature_delta``) and, for blocks that arrive whole (a server tool's result), in
    ``content_block_start``; each is read once. ``message_start`` carries the message's content
    so far (normally none). Events with no text (``ping``, ``message_delta``, the stops) give "";
    an event of a type this reader does not know is read by every string it holds, so nothing
    new goes unchecked.
    """

    __slots__ = ()

    def __call__(self, event: bytes) -> str:
        document = _fast_json(event)
        if document is _NOT_FAST:
            payload = event_data(event).strip()
            if not payload:
                return ""
            try:
                document = json.loads(payload)
            except ValueError:
                return payload
            if not isinstance(document, dict):
                return "\n".join(text for text in json_strings(document) if text)
        event_type = document.get("type")
        if event_type in _ANTHROPIC_SILENT:
            return ""
        if event_type == "content_block_delta":
            delta = document.get("delta")
            if isinstance(delta, Mapping) and delta.get("type") == "signature_delta":
                return ""
            return "".join(_anthropic_texts(delta))
        if event_type == "content_block_start":
            return "".join(_anthropic_texts(document.get("content_block")))
        if event_type == "message_start":
            message = document.get("message")
            content = message.get("content") if isinstance(message, Mapping) else None
            return "\n".join(text for text in _anthropic_texts(content) if text)
        return "\n".join(text for text in _anthropic_texts(document) if text)
