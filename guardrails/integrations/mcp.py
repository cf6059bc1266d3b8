"""Guard an MCP server (its streamable-HTTP ASGI app) and an MCP client session (the ``mcp`` SDK 2.x).

Server side, `MCPGuardMiddleware` wraps the app of ``MCPServer.streamable_http_app()``::

    app = MCPGuardMiddleware(server.streamable_http_app(), guard)

and reads the JSON-RPC messages going in and out (JSON bodies and server-sent-event streams alike):

=====================  =====================================  =============================================
message                what is checked                        on Block
=====================  =====================================  =============================================
``tools/call``         the arguments, before the tool runs    the tool never runs; the answer is a tool
                       (a `ToolEvent` without a result)       result with ``isError: true`` saying why
``tools/call`` result  its ``content`` and                    the result is replaced by one with
                       ``structuredContent`` (a `ToolEvent`)  ``isError: true``: no text, no structured data
``tools/list``,        each entry's description, title and   the poisoned entry is dropped from the listing
``prompts/list``,      schema strings                         (an error would break the SDK's client, which
``resources/list``                                            lists tools itself to validate results)
``prompts/get``,       every string of the result             a JSON-RPC error, code ``-32001``
``resources/read``
the server's requests  every string of the params (the        withheld from the client; the server gets a
to the client          sampling messages and system prompt    JSON-RPC error ``-32001`` in the client's
(``sampling/``         that go to the client's model, the     place (posted to the app in the client's
``createMessage``,     elicitation message shown to the       session), so its call raises, never waits
``elicitation/``       user), on the POST's stream and on
``create``...)         the GET stream
the server's           every string of the params (a log      withheld from the client
notifications          entry's ``data`` included)
=====================  =====================================  =============================================

Kinds (the rule of every shell, `guardrails.integrations._tools.tool_content`): ``tools/call``
arguments are checked as ``kind="response"`` (the model wrote them); a tool's result, listing
entries and ``prompts/get`` / ``resources/read`` results as ``kind="prompt"`` (they enter the
model's context).

A guard failure failing closed answers a JSON-RPC error (``-32603``) in place of the message it
could not check (failing open, the message goes on unchecked, logged); content too long to check
is refused (``-32600``) under every policy; a body that is not JSON is refused (``-32700``, 400)
before the app sees it. Error messages name the guard's reasons, never the text. The server's
GET stream is read like the events of a POST's stream (its requests and notifications checked);
lifespan, DELETEs and every other method pass through untouched. The SDK's own
client raises ``mcp.MCPError`` for the errors and hands the ``isError`` results to the agent.

Sizes: a request body over ``max_body_size`` (default 1,000,000 bytes, as `GuardMiddleware`) is
refused with 413 and a JSON-RPC error ``-32600``, the app never called; an answer to check over
``max_response_size`` (a JSON body, or one event of a stream; default ten times
``max_body_size``) is never forwarded: each request it answers gets a JSON-RPC error ``-32600``
in its place (in the JSON body, or as one more event that ends the stream). So is an answer
that cannot be read: a JSON answer that is not JSON, or an answer the app encoded
(``content-encoding``, e.g. gzip inside the app); compress outside this middleware instead.

Client side, `GuardedClientSession` wraps a connected ``ClientSession`` (same methods) and checks
what the agent receives from any server before the model sees it: ``call_tool`` arguments (before
they leave) and results, ``list_tools`` descriptions, ``get_prompt`` and ``read_resource``
content. A Block raises `MCPBlocked` (a `guardrails.Blocked`). The server's own requests to the
client (``sampling/createMessage``, ``elicitation/create``) reach the callbacks the app gave
``ClientSession`` without this wrapper: the SDK calls them from its receive loop, not through a
session method. Guard them in the callback (``@guarded`` on it) or serve the server behind
`MCPGuardMiddleware`, which checks them on the server's side.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import anyio

from .._events import DecisionHook, hooks_of
from .._exceptions import Blocked, ExtractionError, GuardError
from .._guard import GuardSource
from .._judge import Judge
from .._models import Content, ToolEvent
from .._policy import FailOpen, validate_fail_open
from ._tools import TOOL_RESULT_KIND, tool_content

if TYPE_CHECKING:
    from mcp import ClientSession

    from .._guard import Guard

__all__ = ["BLOCKED_CODE", "GuardedClientSession", "MCPBlocked", "MCPGuardMiddleware"]

logger = logging.getLogger("guardrails")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The JSON-RPC error code of a ``prompts/get`` or ``resources/read`` answer the guard blocked.
BLOCKED_CODE = -32001
_INTERNAL_ERROR = -32603
_INVALID_REQUEST = -32600
_PARSE_ERROR = -32700
#: The default of ``max_body_size``: bytes of a request body read at most (as `GuardMiddleware`).
MAX_BODY_BYTES = 1_000_000
#: Answers are read up to this many times ``max_body_size`` (as `GuardMiddleware` reads responses).
RESPONSE_FACTOR = 10
_LISTINGS = {"tools/list": "tools", "prompts/list": "prompts", "resources/list": "resources"}
_WATCHED = frozenset({"tools/call", "prompts/get", "resources/read", *_LISTINGS})
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class MCPBlocked(Blocked):
    """The guard blocked something an MCP server sent or was sent (`GuardedClientSession`)."""


def _reasons(blocked: Blocked) -> str:
    return "; ".join(blocked.verdict.reasons) or "no reason given"


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _tool_refusal(request_id: Any, why: str) -> dict[str, Any]:
    text = f"guardrails: {why}"
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "result": {"content": [{"type": "text", "text": text}], "isError": True},
    }


# Keys whose strings are not text a model reads: base64 payloads and wiring.
_NOT_TEXT = frozenset({"blob", "data", "mimeType", "mime_type", "type"})


def _result_texts(value: Any) -> list[str]:
    """Every non-empty string of a JSON-RPC result (or one entry), but for base64 data and wiring."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, Mapping):
        return [text for key, item in value.items() if key not in _NOT_TEXT for text in _result_texts(item)]
    if isinstance(value, list):
        return [text for item in value for text in _result_texts(item)]
    return []


class _Exchange:
    """One POST (or the GET stream): the requests it carries, and the checks of what comes back."""

    __slots__ = ("guard", "judge", "middleware", "pending", "scope")

    def __init__(self, middleware: MCPGuardMiddleware, judge: Judge, guard: Guard, scope: Scope) -> None:
        self.middleware = middleware
        self.judge = judge
        self.guard = guard
        self.scope = scope
        # id -> (method, params) of the requests whose answers are checked.
        self.pending: dict[str, tuple[str, Mapping[str, Any]]] = {}

    async def ask(self, content: Content) -> Blocked | None:
        """Check `content`; the `Blocked` to act on, or None when it goes on. Failures raise."""
        try:
            await self.judge.aask(self.guard, content)
        except Blocked as blocked:
            return blocked
        return None

    async def request(self, message: Any) -> dict[str, Any] | None:
        """Check one incoming message; the answer to send in its place, or None to let it through."""
        if (
            not isinstance(message, Mapping)
            or not isinstance(message.get("method"), str)
            or "id" not in message
        ):
            return None  # notifications and answers from the client
        method: str = message["method"]
        raw = message.get("params")
        params: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        if method in _WATCHED:
            self.pending[json.dumps(message["id"])] = (method, params)
        if method != "tools/call":
            return None
        name = params.get("name")
        event = ToolEvent(
            name=name if isinstance(name, str) else "unknown",
            server=self.middleware.server_name,
            arguments=params.get("arguments") or {},
            ecosystem="mcp",
            method=method,
        )
        try:
            blocked = await self.ask(tool_content(event))
        except (GuardError, ExtractionError) as exc:
            return self.failure(message["id"], exc)
        if blocked is None:
            return None
        self.pending.pop(json.dumps(message["id"]), None)
        return _tool_refusal(message["id"], f"the tool call was blocked ({_reasons(blocked)})")

    def failure(self, request_id: Any, exc: Exception) -> dict[str, Any]:
        if isinstance(exc, ExtractionError):
            return _error(
                request_id, _INVALID_REQUEST, "guardrails: the content is too long or unreadable to check"
            )
        return _error(request_id, _INTERNAL_ERROR, "guardrails: the guard could not check this message")

    async def answer(self, message: Any) -> Any:
        """Check one outgoing message; the message to send in its place (itself when allowed, None
        to send nothing)."""
        if isinstance(message, Mapping) and isinstance(message.get("method"), str):
            return await self.server_message(message)
        if not isinstance(message, Mapping) or "result" not in message:
            return message
        watched = self.pending.pop(json.dumps(message.get("id")), None)
        if watched is None or not isinstance(message["result"], Mapping):
            return message
        method, params = watched
        result: Mapping[str, Any] = message["result"]
        request_id = message.get("id")
        try:
            if method in _LISTINGS:
                return {**message, "result": await self.listing(method, result)}
            if method == "tools/call":
                return await self.tool_result(request_id, params, message, result)
            texts = _result_texts(result)
            if not texts:
                return message
            blocked = await self.ask(Content("\n".join(texts), kind=TOOL_RESULT_KIND))
        except (GuardError, ExtractionError) as exc:
            return self.failure(request_id, exc)
        if blocked is None:
            return message
        return _error(
            request_id, BLOCKED_CODE, f"guardrails: the {method} result was blocked ({_reasons(blocked)})"
        )

    async def server_message(self, message: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Check a request or notification of the server to the client; None: withheld.

        Its text reaches the client's model (``sampling/createMessage`` messages and system
        prompt), its user (``elicitation/create``) or its logs (notifications), so it is checked
        as ``kind="prompt"``. A withheld request is answered to the server with a JSON-RPC error
        in the client's place (a POST to the app in the client's session), so that the server's
        call (e.g. ``create_message``) raises rather than waits.
        """
        method: str = message["method"]
        params = message.get("params")
        texts = _result_texts(params)
        if method == "notifications/message" and isinstance(params, Mapping):
            # A log entry's ``data`` is its payload (any JSON), not base64.
            texts += _result_texts({"entry": params.get("data")})
        if not texts:
            return message
        try:
            blocked = await self.ask(Content("\n".join(texts), kind=TOOL_RESULT_KIND))
        except (GuardError, ExtractionError) as exc:
            refusal = self.failure(message.get("id"), exc)
        else:
            if blocked is None:
                return message
            refusal = _error(
                message.get("id"),
                BLOCKED_CODE,
                f"guardrails: the {method} message was blocked ({_reasons(blocked)})",
            )
        if "id" in message:
            await self.middleware._reply_to_server(self.scope, refusal)
        return None

    async def tool_result(
        self,
        request_id: Any,
        params: Mapping[str, Any],
        message: Mapping[str, Any],
        result: Mapping[str, Any],
    ) -> Any:
        name = params.get("name")
        checked = {key: result[key] for key in ("content", "structuredContent") if key in result}
        if not _result_texts(checked):
            return message
        event = ToolEvent(
            name=name if isinstance(name, str) else "unknown",
            server=self.middleware.server_name,
            arguments=params.get("arguments") or {},
            result=checked,
            ecosystem="mcp",
        )
        blocked = await self.ask(tool_content(event))
        if blocked is None:
            return message
        return _tool_refusal(request_id, f"the tool result was withheld ({_reasons(blocked)})")

    async def listing(self, method: str, result: Mapping[str, Any]) -> dict[str, Any]:
        key = _LISTINGS[method]
        entries = result.get(key)
        if not isinstance(entries, list):
            return dict(result)
        kept = []
        for entry in entries:
            texts = _result_texts(entry)
            if texts and await self.ask(Content("\n".join(texts), kind=TOOL_RESULT_KIND)) is not None:
                continue  # poisoned: the agent never sees it
            kept.append(entry)
        return {**result, key: kept}


class MCPGuardMiddleware:
    """ASGI middleware around an MCP server's streamable-HTTP app (see the module docs).

    Args:
        app: the ASGI app (``MCPServer.streamable_http_app()``).
        guard: the guard asked; None: `guard_from_env()`, made at the first check.
        fail_open: what a guard failure does: False (answer a JSON-RPC error, the default), True
            (the message goes on unchecked on transient errors) or ``"always"``.
        server_name: the server's name in tool events (Palo Alto's ``server_name``).
        on_decision: a hook, or hooks, called with every `Decision`.
        max_body_size: the most bytes of a request body read (413 with a JSON-RPC error
            ``-32600`` above it, the app never called), the default as `GuardMiddleware`'s. An
            answer to check (a JSON body, or one event of a stream) is read up to
            ``max_response_size`` bytes.
        max_response_size: the most bytes of one answer checked: a JSON body, or one event of
            an event stream (default ten times ``max_body_size``, as `GuardMiddleware` reads
            responses). A larger answer is never forwarded: each request it answers gets a
            JSON-RPC error ``-32600`` instead, and the rest of the app's body is dropped.
    """

    def __init__(
        self,
        app: ASGIApp,
        guard: Guard | None = None,
        *,
        fail_open: FailOpen = False,
        server_name: str = "mcp",
        on_decision: DecisionHook | Iterable[DecisionHook] | None = None,
        max_body_size: int = MAX_BODY_BYTES,
        max_response_size: int | None = None,
    ) -> None:
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int) or max_body_size < 0:
            raise ValueError("max_body_size must be a number of bytes, 0 or more")
        if max_response_size is None:
            max_response_size = max_body_size * RESPONSE_FACTOR
        if (
            isinstance(max_response_size, bool)
            or not isinstance(max_response_size, int)
            or max_response_size < 0
        ):
            raise ValueError("max_response_size must be a number of bytes, 0 or more (or None)")
        self.max_body_size = max_body_size
        self.max_response_size = max_response_size
        self.app = app
        self.fail_open = validate_fail_open(fail_open)
        self.server_name = server_name
        self.hooks = hooks_of(on_decision)
        self._guards = GuardSource(guard)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "GET":
            await self._stream(scope, receive, send)
            return
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_size:
                await _reply(
                    send, 413, _error(None, _INVALID_REQUEST, "guardrails: the request body is too large")
                )
                return
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            await _reply(send, 400, _error(None, _PARSE_ERROR, "guardrails: the request body is not JSON"))
            return
        judge = Judge(f"POST {scope.get('path', '')}", hooks=self.hooks, fail_open=self.fail_open)
        exchange = _Exchange(self, judge, self._guards.get(), scope)
        messages = document if isinstance(document, list) else [document]
        refusals = [await exchange.request(message) for message in messages]
        if any(refusals):
            # Nothing of a message with a refused call reaches the app: answer every request of it.
            answers: list[Any] = [
                refusal
                if refusal is not None
                else _error(message.get("id"), _INVALID_REQUEST, "guardrails: refused with a blocked call")
                for message, refusal in zip(messages, refusals, strict=True)
                if refusal is not None
                or (isinstance(message, Mapping) and "id" in message and "method" in message)
            ]
            await _reply(send, 200, answers if isinstance(document, list) else answers[0], scope)
            return

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        # Every answer goes through: a stream may carry the server's own requests (sampling...).
        await self.app(scope, replay, _Responder(exchange, send).send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The server's GET stream: its requests and notifications to the client are checked."""
        judge = Judge(f"GET {scope.get('path', '')}", hooks=self.hooks, fail_open=self.fail_open)
        exchange = _Exchange(self, judge, self._guards.get(), scope)
        await self.app(scope, receive, _Responder(exchange, send).send)

    async def _reply_to_server(self, scope: Scope, answer: Mapping[str, Any]) -> None:
        """POST `answer` (a JSON-RPC error to a withheld request) to the app, in the client's session."""
        body = json.dumps(answer, separators=(",", ":")).encode()
        kept = {b"mcp-session-id", b"mcp-protocol-version", b"host", b"authorization"}
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() in kept]
        headers += [
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            (b"content-length", str(len(body)).encode()),
        ]
        done = anyio.Event()
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                done.set()

        post = {**scope, "method": "POST", "headers": headers, "query_string": b""}
        try:
            await self.app(post, receive, send)
        finally:
            done.set()


class _Responder:
    """Owns the wrapped `send` of one POST: checks the answers (JSON whole, SSE event by event)."""

    def __init__(self, exchange: _Exchange, send: Send) -> None:
        self.exchange = exchange
        self.inner = send
        self.start: Message | None = None
        self.stream: bool | None = None
        self.buffer = b""
        self.limit = exchange.middleware.max_response_size
        self.refused = False
        self.encoded = False

    async def too_large(self, why: str = "the answer is too large to check") -> None:
        """Refuse an answer that cannot be checked: an error for each request still waiting, nothing
        of the answer itself (over the cap, unreadable, or encoded)."""
        self.refused = True
        self.buffer = b""
        errors = [
            _error(json.loads(key), _INVALID_REQUEST, f"guardrails: {why}") for key in self.exchange.pending
        ]
        self.exchange.pending.clear()
        payload: Any = errors[0] if len(errors) == 1 else errors
        body = json.dumps(payload, separators=(",", ":")).encode()
        if self.stream:
            body = b"event: message\r\ndata: " + body + b"\r\n\r\n" if errors else b""
        else:
            assert self.start is not None
            headers = [
                *((k, v) for k, v in self.start.get("headers", []) if k.lower() != b"content-encoding"),
                (b"content-length", str(len(body)).encode()),
            ]
            await self.inner({**self.start, "headers": headers})
        await self.inner({"type": "http.response.body", "body": body, "more_body": False})

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the rest of an answer over the cap: dropped
        if message["type"] == "http.response.start":
            named = {k.lower(): v for k, v in message.get("headers", [])}
            media_type = named.get(b"content-type", b"").split(b";")[0].strip().lower()
            self.stream = media_type == b"text/event-stream"
            # A JSON answer holds only answers: nothing to check when no request of it is watched.
            plain = not self.stream and not self.exchange.pending
            if (
                plain
                or media_type not in (b"text/event-stream", b"application/json")
                or message.get("status") != 200
            ):
                self.stream = None
                await self.inner(message)
                return
            # An encoded answer (gzip...) cannot be read here: refused, never forwarded unread.
            self.encoded = named.get(b"content-encoding", b"identity").strip().lower() != b"identity"
            # Content-Length changes when an answer is rewritten; a refusal is not encoded.
            dropped = (
                (b"content-length", b"content-encoding")
                if self.stream and self.encoded
                else (b"content-length",)
            )
            message = {
                **message,
                "headers": [(k, v) for k, v in message.get("headers", []) if k.lower() not in dropped],
            }
            if self.stream:
                await self.inner(message)
            else:
                self.start = message
            return
        if message["type"] != "http.response.body" or self.stream is None:
            await self.inner(message)
            return
        if self.encoded:
            await self.too_large("the answer is encoded (content-encoding) and cannot be checked")
            return
        self.buffer += message.get("body", b"")
        more = message.get("more_body", False)
        if self.stream:
            out = b""
            start = 0
            for end in _EVENT_END.finditer(self.buffer):
                if end.end() - start > self.limit:
                    break
                out += await self.event(self.buffer[start : end.end()])
                start = end.end()
            self.buffer = self.buffer[start:]
            if len(self.buffer) > self.limit:
                # One event over the cap (whole, or still arriving): the checked ones go first.
                if out:
                    await self.inner({"type": "http.response.body", "body": out, "more_body": True})
                await self.too_large()
                return
            if not more and self.buffer:
                out += await self.event(self.buffer)
                self.buffer = b""
            await self.inner({"type": "http.response.body", "body": out, "more_body": more})
            return
        if len(self.buffer) > self.limit:
            await self.too_large()
            return
        if more:
            return
        try:
            document = json.loads(self.buffer)
        except (ValueError, UnicodeDecodeError):
            await self.too_large("the answer is not JSON and cannot be checked")
            return
        body = await self.checked(self.buffer, document)
        assert self.start is not None
        headers = [*self.start.get("headers", []), (b"content-length", str(len(body)).encode())]
        await self.inner({**self.start, "headers": headers})
        await self.inner({"type": "http.response.body", "body": body, "more_body": False})

    async def json_body(self, body: bytes) -> bytes:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return body
        return await self.checked(body, document)

    async def checked(self, body: bytes, document: Any) -> bytes:
        """`body` (holding `document`) with each message checked: itself when all were allowed."""
        if isinstance(document, list):
            answers = [await self.exchange.answer(item) for item in document]
            checked: Any = [answer for answer in answers if answer is not None]
        else:
            checked = await self.exchange.answer(document)
            if checked is None:
                return b""  # withheld: nothing of it is sent
        if checked is document or (
            isinstance(document, list) and all(a is b for a, b in zip(checked, document, strict=False))
        ):
            return body
        return json.dumps(checked, separators=(",", ":")).encode()

    async def event(self, event: bytes) -> bytes:
        lines = event.splitlines()
        data = [line for line in lines if line.startswith(b"data:")]
        if not data:
            return event
        # An event's data is all its data lines joined (SSE): one JSON-RPC message.
        payload = b"\n".join(line[6:] if line.startswith(b"data: ") else line[5:] for line in data)
        checked = await self.json_body(payload)
        if checked is payload:
            return event
        if not checked:
            return b""
        kept = [line for line in lines if line and not line.startswith(b"data:")]
        return b"\r\n".join([*kept, b"data: " + checked]) + b"\r\n\r\n"


async def _reply(send: Send, status: int, payload: Any, scope: Scope | None = None) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if scope is not None:
        # The client keeps its session: answer with the session it named.
        headers += [(k, v) for k, v in scope.get("headers", []) if k.lower() == b"mcp-session-id"]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# -- client side ---------------------------------------------------------------------------------------


class GuardedClientSession:
    """A connected ``mcp.ClientSession`` whose answers are checked before the agent sees them.

    Args:
        session: the ``ClientSession`` (initialized, or initialized through this wrapper).
        guard: the guard asked; None: `guard_from_env()`, made at the first check.
        fail_open: what a guard failure does: False (raise the `GuardError`), True (the answer goes
            on unchecked on transient errors) or ``"always"``.
        on_decision: a hook, or hooks, called with every `Decision`.

    ``call_tool`` checks the arguments before they are sent and the result before it is returned;
    ``list_tools`` every tool's description and schema; ``get_prompt`` and ``read_resource``
    their content. A Block raises `MCPBlocked`. Every other attribute is the session's.
    """

    def __init__(
        self,
        session: ClientSession,
        guard: Guard | None = None,
        *,
        fail_open: FailOpen = False,
        on_decision: DecisionHook | Iterable[DecisionHook] | None = None,
    ) -> None:
        self.session = session
        self.fail_open = validate_fail_open(fail_open)
        self.hooks = hooks_of(on_decision)
        self._guards = GuardSource(guard)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)

    async def __aenter__(self) -> GuardedClientSession:
        # ``async with GuardedClientSession(ClientSession(read, write), guard) as session:``
        await self.session.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return await self.session.__aexit__(*exc_info)

    def _server(self) -> str | None:
        info = getattr(self.session, "server_info", None)
        name = getattr(info, "name", None)
        return name if isinstance(name, str) and name else None

    async def _check(self, target: str, content: Content) -> None:
        judge = Judge(target, hooks=self.hooks, fail_open=self.fail_open, blocked=MCPBlocked)
        await judge.aask(self._guards.get(), content)

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        """``ClientSession.call_tool``, with its arguments and its result checked."""
        server = self._server()
        event = ToolEvent(name=name, server=server, arguments=arguments or {}, ecosystem="mcp")
        await self._check(f"mcp tools/call {name}", tool_content(event))
        result = await self.session.call_tool(name, arguments, *args, **kwargs)
        dumped = result.model_dump(mode="json", by_alias=True, include={"content", "structured_content"})
        if _result_texts(dumped):
            event = event.model_copy(update={"result": dumped})
            await self._check(f"mcp tools/call {name}", tool_content(event))
        return result

    async def list_tools(self, *args: Any, **kwargs: Any) -> Any:
        """``ClientSession.list_tools``, every tool's description and schema checked."""
        result = await self.session.list_tools(*args, **kwargs)
        for tool in result.tools:
            texts = _result_texts(tool.model_dump(mode="json", by_alias=True, exclude_none=True))
            await self._check(f"mcp tools/list {tool.name}", Content("\n".join(texts), kind=TOOL_RESULT_KIND))
        return result

    async def get_prompt(self, *args: Any, **kwargs: Any) -> Any:
        """``ClientSession.get_prompt``, its messages checked."""
        result = await self.session.get_prompt(*args, **kwargs)
        texts = _result_texts(result.model_dump(mode="json", by_alias=True, exclude_none=True))
        if texts:
            await self._check("mcp prompts/get", Content("\n".join(texts), kind=TOOL_RESULT_KIND))
        return result

    async def read_resource(self, *args: Any, **kwargs: Any) -> Any:
        """``ClientSession.read_resource``, its text contents checked (binary blobs are not text)."""
        result = await self.session.read_resource(*args, **kwargs)
        dumped = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        texts = [
            item["text"]
            for item in dumped.get("contents", [])
            if isinstance(item, dict) and isinstance(item.get("text"), str)
        ]
        if texts:
            await self._check("mcp resources/read", Content("\n".join(texts), kind=TOOL_RESULT_KIND))
        return result
