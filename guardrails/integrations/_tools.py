"""Tool results and tool calls in the wire formats of the model APIs, as `ToolEvent` contents.

An agent sends a tool's result back to the model in its next request: an OpenAI chat ``tool``
message, a Responses ``function_call_output`` item, an Anthropic ``tool_result`` block. Those
results are where indirect prompt injection comes in, so the transports check each of them as a
tool's output (a `ToolEvent` with the call's name and arguments when the request still holds the
call), on top of checking the whole request as a prompt. Only the results of the current turn are
taken: those after the last message of the user (earlier ones were checked on their own turn, and
they are in the prompt check anyway).

The answers' tool calls (arguments the model wants a tool run with) are checked as tool events
without a result: an argument may carry a secret out.

The kind rule, the same in every shell (``@guarded(kind="tool")``, the OpenAI and Anthropic
transports, `MCPGuardMiddleware` and `GuardedClientSession`), is `tool_content`'s: a tool's
result is text that enters the model's context, like a prompt, so an event holding a result is
checked as ``kind="prompt"``; a tool call without a result is the model's output (its arguments
were written by the model), so it is checked as ``kind="response"``. The same goes for the other
MCP content that reaches a model: ``prompts/get`` and ``resources/read`` results and listing
entries are ``"prompt"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .._models import Content, Kind, ToolEvent

__all__ = [
    "TOOL_CALL_KIND",
    "TOOL_RESULT_KIND",
    "anthropic_tool_calls",
    "anthropic_tool_results",
    "openai_tool_calls",
    "openai_tool_results",
    "tool_content",
]

#: The kind of a tool call checked before the tool runs: its arguments are the model's output.
TOOL_CALL_KIND: Kind = "response"
#: The kind of a tool's result checked before the model sees it: it enters the model's context.
TOOL_RESULT_KIND: Kind = "prompt"


def tool_content(event: ToolEvent, metadata: Mapping[str, str] | None = None) -> Content:
    """`event` as the `Content` every shell checks: ``"prompt"`` with a result, else ``"response"``."""
    kind = TOOL_CALL_KIND if event.result is None else TOOL_RESULT_KIND
    return Content(tool=event, kind=kind, metadata=metadata)


def _document(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None  # the prompt check refuses it
    return document if isinstance(document, dict) else None


def _tool(name: Any, arguments: Any, result: Any, ecosystem: str, metadata: Mapping[str, str]) -> Content:
    event = ToolEvent(
        name=name if isinstance(name, str) and name else "unknown",
        arguments=arguments,
        result=result if result is not None else "",
        ecosystem=ecosystem,
    )
    return tool_content(event, metadata)


def _after_last_user(items: Sequence[Any], is_user: Any) -> Sequence[Any]:
    for index in range(len(items) - 1, -1, -1):
        if is_user(items[index]):
            return items[index + 1 :]
    return items


def openai_tool_results(endpoint: str, body: bytes, metadata: Mapping[str, str]) -> list[Content]:
    """The current turn's tool results of a chat or Responses request, one `ToolEvent` each."""
    document = _document(body)
    if document is None:
        return []
    if endpoint == "chat":
        messages = document.get("messages")
        if not isinstance(messages, list):
            return []
        calls: dict[str, tuple[Any, Any]] = {}
        results: list[Content] = []
        turn = _after_last_user(messages, lambda m: isinstance(m, Mapping) and m.get("role") == "user")
        for message in turn:
            if not isinstance(message, Mapping):
                continue
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, Mapping) else None
                if isinstance(function, Mapping):
                    calls[str(call.get("id"))] = (function.get("name"), function.get("arguments"))
            if message.get("role") == "tool":
                name, arguments = calls.get(str(message.get("tool_call_id")), (None, None))
                results.append(_tool(name, arguments, message.get("content"), "openai", metadata))
        return results
    if endpoint == "responses":
        items = document.get("input")
        if not isinstance(items, list):
            return []
        calls = {}
        results = []
        turn = _after_last_user(
            items,
            lambda i: (
                isinstance(i, Mapping) and i.get("role") == "user" and i.get("type", "message") == "message"
            ),
        )
        for item in turn:
            if not isinstance(item, Mapping):
                continue
            kind = item.get("type")
            if kind == "function_call":
                calls[str(item.get("call_id"))] = (item.get("name"), item.get("arguments"))
            elif isinstance(kind, str) and kind.endswith("_call_output"):
                name, arguments = calls.get(str(item.get("call_id")), (kind[: -len("_call_output")], None))
                results.append(_tool(name, arguments, item.get("output"), "openai", metadata))
        return results
    return []


def openai_tool_calls(body: bytes, metadata: Mapping[str, str]) -> list[Content]:
    """The tool calls of a chat completion or Responses object, as events without a result."""
    document = _document(body)
    if document is None:
        return []
    calls: list[Content] = []
    for choice in document.get("choices") or ():
        message = choice.get("message") if isinstance(choice, Mapping) else None
        for call in (message.get("tool_calls") or ()) if isinstance(message, Mapping) else ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                calls.append(_call(function.get("name"), function.get("arguments"), metadata))
    for item in document.get("output") or ():
        if isinstance(item, Mapping) and item.get("type") == "function_call":
            calls.append(_call(item.get("name"), item.get("arguments"), metadata))
    return calls


def _call(name: Any, arguments: Any, metadata: Mapping[str, str]) -> Content:
    event = ToolEvent(
        name=name if isinstance(name, str) and name else "unknown",
        arguments=arguments if arguments is not None else {},
        ecosystem="openai",
    )
    return tool_content(event, metadata)


def anthropic_tool_results(body: bytes, metadata: Mapping[str, str]) -> list[Content]:
    """The current turn's ``tool_result`` blocks of a Messages request, one `ToolEvent` each."""
    document = _document(body)
    messages = document.get("messages") if document is not None else None
    if not isinstance(messages, list):
        return []
    calls: dict[str, tuple[Any, Any]] = {}
    results: list[Content] = []

    def opens_turn(message: Any) -> bool:
        # A user message holding only text opens a turn; one holding tool results continues it.
        if not isinstance(message, Mapping) or message.get("role") != "user":
            return False
        blocks = message.get("content")
        return isinstance(blocks, str) or not any(
            isinstance(block, Mapping) and block.get("type") == "tool_result" for block in blocks or ()
        )

    for message in _after_last_user(messages, opens_turn):
        blocks = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(blocks, list):
            continue
        for block in blocks:
            if not isinstance(block, Mapping):
                continue
            if block.get("type") in ("tool_use", "server_tool_use", "mcp_tool_use"):
                calls[str(block.get("id"))] = (block.get("name"), block.get("input"))
            elif block.get("type") == "tool_result":
                name, arguments = calls.get(str(block.get("tool_use_id")), (None, None))
                results.append(_tool(name, arguments, block.get("content"), "anthropic", metadata))
    return results


def anthropic_tool_calls(body: bytes, metadata: Mapping[str, str]) -> list[Content]:
    """The ``tool_use`` blocks of a Messages answer, as events without a result."""
    document = _document(body)
    blocks = document.get("content") if document is not None else None
    return [
        tool_content(
            ToolEvent(
                name=str(block.get("name") or "unknown"),
                arguments=block.get("input") if block.get("input") is not None else {},
                ecosystem="anthropic",
            ),
            metadata,
        )
        for block in (blocks if isinstance(blocks, list) else ())
        if isinstance(block, Mapping) and block.get("type") == "tool_use"
    ]
