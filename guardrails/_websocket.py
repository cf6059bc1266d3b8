"""WebSocket connections on guarded routes: each message checked on its way in (and out).

`GuardedWebSocket` wraps the ``receive`` and ``send`` of one connection. Every inbound
``websocket.receive`` message is checked before the app gets it; on a ``scan_response`` route every
``websocket.send`` of the app is checked before it goes out. A message that is not allowed closes
the connection (the app then receives ``websocket.disconnect``; what it sends afterwards goes
nowhere), with a close code and a short reason that never quote the message:

=====================================================  ======  ================================
what happened                                           code    reason
=====================================================  ======  ================================
the guard said Block (either direction)                 1008    ``blocked by the guardrail``
guard failure, failing closed (fail-open: goes on)      1011    ``guardrail unavailable``
inbound message over ``max_body_size`` bytes            1009    ``message too large``
inbound binary message that is not UTF-8 text           1003    ``message cannot be checked``
inbound message that cannot be read (lone surrogate)    1007    ``message cannot be read``
outbound message that cannot be checked                 1011    ``response cannot be checked``
=====================================================  ======  ================================

Close before the app accepted the connection is answered 403 by the server (the ASGI spec).

The handshake's query string is checked when the app accepts (a Block then closes before the
accept: the server answers 403). The text of a message is read like a request body: JSON (a text frame, or a binary frame that
decodes as UTF-8) by `default_body`, anything else as the text itself; the app's messages like a
response body (`answer_content`). Asking, policy, decisions and log lines are the `Judge`'s, as for
every other check. No I/O of its own beyond the ``send`` and ``receive`` it wraps.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from ._body import BodyTooLarge, HTTPBody, InvalidBody, default_body
from ._exceptions import Blocked, ContentTooLarge, ExtractionError, GuardError, GuardrailsError
from ._guard import Guard
from ._http import STATE_KEY, Inspection, _check_text
from ._models import Content
from ._routing import Route, Router, normalize_path
from ._shapes import answer_content

__all__ = ["GuardedWebSocket", "close_for", "query_text", "websocket_route"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]

_JSON_HEADERS = {"content-type": "application/json"}


def websocket_route(router: Router, path: str) -> Route | None:
    """The route guarding a WebSocket at ``path``: the first whose path matches, whatever its methods.

    A route names an LLM endpoint by its path; its methods speak of HTTP requests, and a WebSocket
    at the same path carries the same text, so it is guarded too (with the route's ``fail_open``
    and ``scan_response``). With no routes configured (`DEFAULT_ROUTE`) every WebSocket is guarded.
    """
    normalized = normalize_path(path)
    for route in router.routes:
        # Route.matches wants a method: any method the route lists makes it a path match.
        if route.matches(route.methods[0], normalized):
            return route
    return None


def close_for(error: GuardrailsError, kind: str = "prompt") -> tuple[int, str]:
    """The close code and reason for a check that ended in `error` (see the module's table)."""
    if isinstance(error, Blocked):
        return 1008, "blocked by the guardrail"
    if isinstance(error, GuardError):
        return 1011, "guardrail unavailable"
    if kind != "prompt":
        return 1011, "response cannot be checked"
    if isinstance(error, ContentTooLarge) or getattr(error, "status", None) == 413:
        return 1009, "message too large"
    if getattr(error, "code", None) == "binary_message":
        return 1003, "message cannot be checked"
    return 1007, "message cannot be read"


def query_text(query_string: bytes) -> str | None:
    """The names and values of a query string, percent-decoded as UTF-8 and as Latin-1, or None.

    Frameworks decode query parameters as UTF-8; the Latin-1 reading keeps bytes that are not
    UTF-8 visible to the guard instead of replacement characters.
    """
    texts: dict[str, None] = {}
    for encoding in ("utf-8", "latin-1"):
        query = query_string.decode(encoding, "replace")
        for name, value in parse_qsl(query, keep_blank_values=True, encoding=encoding, errors="replace"):
            texts.update(dict.fromkeys(text for text in (name, value) if text.strip()))
    return "\n".join(texts) if texts else None


def _message_bytes(message: Message) -> tuple[bytes | None, str | None]:
    text = message.get("text")
    if text is not None:
        return None, str(text)
    data = message.get("bytes")
    return (bytes(data) if data is not None else b""), None


class GuardedWebSocket:
    """One guarded WebSocket connection: its wrapped ``receive`` and ``send``.

    Args:
        inspection: the connection's inspection (its judge, route and guard name).
        guard: the guard asked, or None when it could not be made (``setup_error`` says why).
        setup_error: why there is no guard.
        scope: the connection's scope; ``scope["state"]["guardrails"]`` holds the verdict of the
            last inbound message (None when it went on unscanned).
        receive: the server's ``receive``.
        send: the server's ``send``.
        max_message_size: largest inbound message checked, in bytes (UTF-8); larger ones close
            the connection (1009).
        max_response_size: largest outbound message checked; larger ones close it (1011).
    """

    __slots__ = (
        "_app_closed",
        "_closed",
        "_receive",
        "_send",
        "guard",
        "inspection",
        "max_message_size",
        "max_response_size",
        "scope",
        "setup_error",
    )

    def __init__(
        self,
        inspection: Inspection,
        guard: Guard | None,
        setup_error: BaseException | None,
        scope: MutableMapping[str, Any],
        receive: Receive,
        send: Send,
        *,
        max_message_size: int,
        max_response_size: int,
    ) -> None:
        self.inspection = inspection
        self.guard = guard
        self.setup_error = setup_error
        self.scope = scope
        self.max_message_size = max_message_size
        self.max_response_size = max_response_size
        self._receive = receive
        self._send = send
        # (code, reason) once the guardrail closed the connection: nothing more goes out.
        self._closed: tuple[int, str] | None = None
        self._app_closed = False
        scope.setdefault("state", {})[STATE_KEY] = None

    @property
    def route(self) -> Route:
        return self.inspection.route

    def closed(self) -> bool:
        """Whether the guardrail closed the connection (a call: it changes across awaits)."""
        return self._closed is not None

    # -- the wrapped channels -------------------------------------------------------------------

    async def receive(self) -> Message:
        """The server's next message, once checked; a disconnect in place of a refused one."""
        if self.closed():
            return self._disconnect()
        message: Message = await self._receive()
        if message["type"] == "websocket.receive" and not self.closed():
            refusal = await self._check_inbound(message)
            if refusal is not None:
                await self._close(*refusal)
        if self.closed():
            # Refused, or closed by an outbound check while this receive waited.
            return self._disconnect()
        return message

    async def send(self, message: Message) -> None:
        """Pass on the app's message; on ``scan_response`` routes check ``websocket.send`` first."""
        if self.closed():
            return  # closed by the guardrail: the rest of the app's messages go nowhere
        kind = message["type"]
        if kind == "websocket.accept":
            refusal = await self._check_handshake()
            if refusal is not None:
                # Not accepted yet: the server answers the close with 403 (the ASGI spec).
                await self._close(*refusal)
                return
        elif kind == "websocket.close":
            self._app_closed = True
        elif kind == "websocket.send" and self.route.scan_response:
            refusal = await self._check_outbound(message)
            # The check awaited: the connection may have been closed meanwhile.
            if self.closed():
                return
            if refusal is not None:
                await self._close(*refusal)
                return
        await self._send(message)

    def _disconnect(self) -> Message:
        assert self._closed is not None
        code, reason = self._closed
        return {"type": "websocket.disconnect", "code": code, "reason": reason}

    async def _close(self, code: int, reason: str) -> None:
        if self._closed is not None:
            return
        self._closed = (code, reason)
        if self._app_closed:
            return  # the app closed it first: the server takes no second close
        # Before the app accepted, a close is a 403 to the handshake (the server ignores the code).
        await self._send({"type": "websocket.close", "code": code, "reason": reason})

    # -- the checks ---------------------------------------------------------------------------------

    async def _check_handshake(self) -> tuple[int, str] | None:
        """Check the handshake's query string (apps read query parameters) before accepting."""
        text = query_text(self.scope.get("query_string", b""))
        if text is None:
            return None
        return await self._ask(Content(text, metadata={"route": self.inspection.route_name}))

    async def _check_inbound(self, message: Message) -> tuple[int, str] | None:
        data, text = _message_bytes(message)
        if text is not None:
            # At most 4 bytes a character: encode only when the length alone cannot tell.
            if len(text) > self.max_message_size:
                return self._refused(BodyTooLarge("the WebSocket message is larger than the limit"))
            data = text.encode("utf-8", "surrogatepass")
        assert data is not None
        if len(data) > self.max_message_size:
            return self._refused(BodyTooLarge("the WebSocket message is larger than the limit"))
        if text is None:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                # Bytes that are not text cannot be checked: refuse them rather than guess.
                return self._refused(
                    InvalidBody("a binary WebSocket message is not UTF-8 text", code="binary_message")
                )
        try:
            content = self._inbound_content(text, data)
        except ExtractionError as exc:
            return self._refused(exc)
        if content is None:
            return None
        return await self._ask(content)

    def _inbound_content(self, text: str, data: bytes) -> Content | None:
        metadata = {"route": self.inspection.route_name}
        if not text.strip():
            return None
        body = HTTPBody("WEBSOCKET", self.inspection.path, _JSON_HEADERS, data, metadata=metadata)
        try:
            content = default_body(body)
        except InvalidBody as exc:
            if exc.code != "invalid_json":
                raise
            # Not JSON: the message is the text.
            content = Content(text, metadata=metadata)
        if content is not None:
            _check_text(content)
        return content

    async def _check_outbound(self, message: Message) -> tuple[int, str] | None:
        data, text = _message_bytes(message)
        if text is not None:
            data = text.encode("utf-8", "surrogatepass")
        assert data is not None
        if len(data) > self.max_response_size:
            return self._refused(
                BodyTooLarge("the WebSocket message is larger than the scanning cap"), kind="response"
            )
        if text is None:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                return self._refused(
                    InvalidBody("a binary WebSocket message is not UTF-8 text", code="binary_message"),
                    kind="response",
                )
        content = answer_content(data, metadata={"route": self.inspection.route_name})
        if content is None:
            return None
        return await self._ask(content)

    def _refused(self, error: ExtractionError, kind: str = "prompt") -> tuple[int, str]:
        self.inspection.refuse(error, kind)  # records the decision and its log line
        return close_for(error, kind)

    async def _ask(self, content: Content) -> tuple[int, str] | None:
        """Ask the guard through the inspection's judge; the close to answer with, or None to go on."""
        if self.guard is None:
            assert self.setup_error is not None
            return close_for(
                self.inspection.judge.setup_failed(self.setup_error, guard=self.inspection.guard_name)
            )
        try:
            verdict = await self.inspection.judge.aask(self.guard, content)
        except GuardrailsError as exc:
            return close_for(exc, content.kind)
        if verdict is None:
            self.inspection.unscanned = True
        if content.kind == "prompt":
            # The app reads the verdict of the message it is given (None: it went on unscanned).
            self.inspection.verdict = verdict
            self.scope.setdefault("state", {})[STATE_KEY] = verdict
        return None
