"""ASGI middleware guarding the LLM endpoints of a Starlette or FastAPI app.

Example::

    app = FastAPI()
    app.add_middleware(
        GuardMiddleware,
        guard=guard_from_env(),
        routes=[
            Route("/v1/chat/completions", scan_response=True),
            Route("/summarize", extract=json_field("document"), fail_open=True),
        ],
        max_body_size=1_000_000,
    )

The decisions (what to scan, what to answer) live in the I/O-free `guardrails._http`, shared with
the WSGI middleware; this module only moves ASGI messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator, Iterable, MutableMapping, Sequence
from contextlib import aclosing
from typing import Any

import anyio
import anyio.abc
import sniffio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._body import BodyError, UnsupportedEncoding, is_json_media_type, query_bytes
from ._encoded_sse import EncodedSSEScanner, event_stream_scanner, stream_error_event
from ._events import DecisionHook
from ._guard import Guard, InProcessGuard
from ._http import STATE_KEY, UNSCANNED_HEADER, GuardedRoutes, Inspection, Matched, stream_options
from ._models import Content
from ._policy import FailOpen
from ._replies import Reply
from ._routing import Route
from ._sse import SSEScanner, SSEWindow
from ._stream import FirstRefusal, StreamOptions, ascan
from ._websocket import GuardedWebSocket, websocket_route

__all__ = ["GuardMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]

_DISCONNECT: Message = {"type": "http.disconnect"}
#: A method `GuardedRoutes.known` has no answer for yet.
_UNKNOWN: Any = object()


def _route_path(scope: Scope) -> str:
    # What Starlette's router matches: the path below the app's root_path.
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path) and path[len(root_path) : len(root_path) + 1] in ("/", ""):
        return path[len(root_path) :] or "/"
    return path


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request headers, names lower case; repeated ones joined (``a, b``), as RFC 9110 reads them.

    Content-Type too: frameworks read the first or the last, and the body reader looks at every value.
    """
    if type(raw) is not list:
        raw = list(raw)
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}
    if len(headers) == len(raw):
        return headers  # no name repeated: the common case, one comprehension
    headers = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in headers:
            headers[name] += ", " + value
        else:
            headers[name] = value
    return headers


#: The request headers the default reading depends on (`guardrails._body.default_body`: the
#: Content-Type; `Inspection.prepare`: the Content-Encoding), and the Content-Length of the cap.
_READ_HEADERS = {
    name.encode("latin-1"): name for name in ("content-type", "content-encoding", "content-length")
}


def _read_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """`_headers` of the `_READ_HEADERS` only: what a route with the default reading reads.

    The others (a dozen on a browser's or an SDK's request) are not decoded.
    """
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = _READ_HEADERS.get(raw_name.lower())
        if name is not None:
            value = raw_value.decode("latin-1")
            if name in headers:
                headers[name] += ", " + value  # joined, as `_headers` does
            else:
                headers[name] = value
    return headers


def _has_body(scope: Scope) -> bool:
    """Whether the request declares a body: a Content-Length other than 0, or a Transfer-Encoding."""
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered == b"transfer-encoding" or (
            lowered == b"content-length" and value.strip() not in (b"0", b"")
        ):
            return True
    return False


async def _send_reply(send: Send, reply: Reply, *, body: bool = True) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body if body else b""})


def _response_headers(message: Message) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in message.get("headers", [])
    }


def _mark_unscanned(message: Message) -> Message:
    return {**message, "headers": [*message.get("headers", []), (UNSCANNED_HEADER.encode(), b"1")]}


class GuardMiddleware(GuardedRoutes):
    """Checks the requests (and optionally responses) of guarded routes with a guard.

    Args:
        app: the ASGI app.
        guard: the guard asked; None: `guard_from_env()`, resolved on first use.
        routes: the guarded routes; None guards every POST, PUT and PATCH with the default
            extractor, and every WebSocket. Other requests and lifespan pass through untouched.
            A WebSocket is guarded when its path matches a route, whatever the route's
            ``methods`` (see below).
        max_body_size: largest request body accepted on a guarded route, in bytes, before and after
            decompression: 413 above it, the guard never asked.
        fail_open: what a guard failure does on routes that do not say: False (503, the default),
            True (the request goes on unscanned on transient errors, marked with the
            ``x-guardrails-unscanned: 1`` response header) or ``"always"`` (also on configuration
            errors).
        on_decision: a hook, or hooks, called with every `Decision` of this middleware.
        stream_window: on ``scan_response`` routes, the most characters of streamed text per
            check (event streams are held back until their text is checked).
        stream_first_window: characters of an event stream's first check; each next window
            doubles, up to ``stream_window``.
        stream_overlap: characters of the text before a window checked again with it (default
            100), so that a phrase cut by a window boundary is seen whole.
        stream_idle_flush: seconds of quiet after which an event stream's held text is checked
            and released without waiting for a window's worth (None: never).
        sse_window: deprecated name of ``stream_window``.
        max_response_size: largest JSON response buffered for checking on ``scan_response``
            routes; a larger one is a configuration error (503 unless ``fail_open="always"``).
            Also the most a gzip or deflate event stream may decode to (a decompression bomb is
            cut there) and the largest WebSocket message of the app checked (a larger one closes
            the connection, 1011).

    On Allow the `Verdict` is in the request state (``request.state.guardrails``; None when the
    request was not scanned). Error answers are JSON in the OpenAI error shape: 403
    ``guardrail_blocked``, 503 ``guardrail_unavailable``, 413 ``request_too_large``, 415
    ``unsupported_media_type`` (an unknown Content-Encoding), 400 ``invalid_request``.

    WebSockets on a guarded path: the handshake's query string is checked when the app accepts
    (a Block closes before the accept: 403); each inbound message (text, or binary that is UTF-8
    text) is checked before the app receives it, read like a request body (JSON by the default extractor,
    else as text; the route's ``extract`` is for HTTP bodies and is not used); on a
    ``scan_response`` route each message the app sends is checked before it goes out. A message
    not allowed closes the connection: 1008 on Block, 1011 on a guard failure failing closed (with
    ``fail_open`` the message goes on), 1009 over ``max_body_size``, 1003 for binary that is not
    text; the app then receives ``websocket.disconnect`` and what it sends afterwards is dropped.
    Close reasons never quote the message. ``websocket.state.guardrails`` holds the verdict of the
    last inbound message (see `guardrails._websocket`).

    A guard made from the environment (``guard=None``) is made when the app's lifespan starts, so
    that bad settings stop the app at startup with the reason, and closed when it shuts down;
    without a lifespan it is made at the first guarded request. A guard that was given is never
    closed here: it is its owner's.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        guard: Guard | None = None,
        routes: Sequence[Route] | None = None,
        max_body_size: int = 1_000_000,
        fail_open: FailOpen = False,
        on_decision: DecisionHook | Iterable[DecisionHook] | None = None,
        sse_window: int | None = None,
        max_response_size: int = 10_000_000,
        stream_window: int = 1000,
        stream_first_window: int = 48,
        stream_overlap: int | None = None,
        stream_idle_flush: float | None = 0.05,
    ) -> None:
        super().__init__(
            guard=guard,
            routes=routes,
            max_body_size=max_body_size,
            fail_open=fail_open,
            on_decision=on_decision,
            max_response_size=max_response_size,
            stream=stream_options(
                stream_window=stream_window,
                stream_first_window=stream_first_window,
                stream_overlap=stream_overlap,
                stream_idle_flush=stream_idle_flush,
                sse_window=sse_window,
            ),
        )
        self.app = app

    # -- ASGI ---------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # A (path, method) seen before costs two lookups (`GuardedRoutes.known`).
            path: str = scope["path"]
            if scope.get("root_path"):
                path = _route_path(scope)
            methods = self.known.get(path)
            if methods is not None:
                matched = methods.get(scope["method"], _UNKNOWN)
                if matched is None:
                    state = scope.get("state")
                    if state is None:
                        scope["state"] = {STATE_KEY: None}
                    else:
                        state[STATE_KEY] = None
                    await self.app(scope, receive, send)
                    return
                if matched is not _UNKNOWN:
                    await self._guarded(scope, receive, send, matched)
                    return
            matched = self.match(scope["method"], path, has_body=not self._remember and _has_body(scope))
            if matched is None:
                scope.setdefault("state", {})[STATE_KEY] = None
                await self.app(scope, receive, send)
                return
            await self._guarded(scope, receive, send, matched)
        elif scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = websocket_route(self.router, _route_path(scope))
        if route is None:
            scope.setdefault("state", {})[STATE_KEY] = None
            await self.app(scope, receive, send)
            return
        inspection, guard, setup_error = self._inspect(
            route,
            method="WEBSOCKET",
            path=scope["path"],
            headers=_headers(scope["headers"]),
            query_string=scope.get("query_string", b""),
        )
        connection = GuardedWebSocket(
            inspection,
            guard,
            setup_error,
            scope,
            receive,
            send,
            max_message_size=self.max_body_size,
            max_response_size=self.max_response_size,
        )
        await self.app(scope, connection.receive, connection.send)

    def _lifespan_send(self, send: Send) -> Send:
        failed = False

        async def lifespan_send(message: Message) -> None:
            nonlocal failed
            kind = message["type"]
            if failed:
                return  # the server was told already; the app reports its own unwinding
            if kind == "lifespan.startup.complete" and self._needs_default_guard():
                try:
                    guard = self.guards.get()
                except Exception as exc:
                    # Bad settings stop the app here, with the reason, not with a 503 per request:
                    # tell the server, then end the app's lifespan task.
                    failed = True
                    reason = f"guardrails: {exc}"
                    await send({"type": "lifespan.startup.failed", "message": reason})
                    raise RuntimeError(reason) from None
                self._check_capacity(guard)
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.guards.aclose()
            await send(message)

        return lifespan_send

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, matched: Matched) -> None:
        method: str = scope["method"]
        route = matched.route
        # The default reading depends on three headers only: the others are not decoded.
        headers = _headers(scope["headers"]) if route.extract is not None else _read_headers(scope["headers"])
        query = scope.get("query_string", b"")
        inspection, guard, setup_error = self.start(
            matched, method, scope["path"], headers, query if type(query) is bytes else query_bytes(query)
        )
        head = method == "HEAD"
        length = headers.get("content-length")
        if length is not None and not (
            length.isascii() and length.isdigit() and int(length) <= self.max_body_size
        ):
            reply = inspection.content_length_error(length)
            if reply is not None:
                await _send_reply(send, reply, body=not head)
                return

        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if message.get("more_body", False):
            # More than one message: buffer them (the common request comes whole, in one).
            chunks = bytearray(body)
            while True:
                if len(chunks) > self.max_body_size:
                    await _send_reply(send, inspection.too_large(), body=not head)
                    return
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks += message.get("body", b"")
                if not message.get("more_body", False):
                    break
            body = bytes(chunks)
        elif type(body) is not bytes:
            body = bytes(body)
        if len(body) > self.max_body_size:
            await _send_reply(send, inspection.too_large(), body=not head)
            return

        prepared = inspection.prepare(body)
        if isinstance(prepared, Reply):
            await _send_reply(send, prepared, body=not head)
            return
        if prepared is not None:
            if guard is None:
                assert setup_error is not None
                reply = inspection.setup_failed(setup_error)
            else:
                checked = await (
                    inspection.acheck(guard, prepared)
                    if isinstance(guard, InProcessGuard)
                    else _check(inspection, guard, prepared, receive)
                )
                if isinstance(checked, _Gone):
                    return  # the client left: no app, no answer
                reply = checked
            if reply is not None:
                await _send_reply(send, reply, body=not head)
                return

        if inspection.masked_body is not None:
            # Masked: the app reads the rewritten body, with a length that says so.
            body = inspection.masked_body
            scope["headers"] = _with_length(scope["headers"], len(body))
        state = scope.get("state")
        if state is None:
            scope["state"] = {STATE_KEY: inspection.verdict}
        else:
            state[STATE_KEY] = inspection.verdict
        app_send = send
        responder: _Responder | None = None
        if (route.scan_response and not head and guard is not None) or inspection.unscanned:
            responder = _Responder(
                inspection,
                guard if route.scan_response and not head else None,
                send,
                stream=route.stream_options(self.stream),
                max_size=self.max_response_size,
            )
            app_send = responder.send
        pending: Message | None = {"type": "http.request", "body": body, "more_body": False}

        async def replay() -> Message:
            nonlocal pending
            if pending is not None:
                message, pending = pending, None
                return message
            if responder is not None and responder.closed:
                # The response was cut short: tell an app that polls for a disconnect to stop.
                return dict(_DISCONNECT)
            # Later calls wait on the real receive (until the client disconnects): no spinning.
            return await receive()  # type: ignore[no-any-return]

        if responder is None or responder.guard is None:
            await self.app(scope, replay, app_send)
            return
        # An event stream is checked in a task of its own (`_Responder.stream`), so that held text
        # can be flushed while the app is quiet; the request ends when both are done.
        async with anyio.create_task_group() as tasks:
            responder.tasks = tasks
            try:
                await self.app(scope, replay, app_send)
                responder.app_returned()
            except Exception as exc:
                # Raised after the task group, which would wrap it in an ExceptionGroup.
                responder.error = responder.error or exc
                tasks.cancel_scope.cancel()
        if responder.error is not None:
            raise responder.error


def _with_length(headers: Iterable[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    """`headers` with ``content-length: length`` (and no transfer-encoding) for a rewritten body."""
    kept = [
        (name, value)
        for name, value in headers
        if name.lower() not in (b"content-length", b"transfer-encoding")
    ]
    return [*kept, (b"content-length", str(length).encode("ascii"))]


class _Gone:
    """The client disconnected while its request was being checked."""


_GONE = _Gone()


#: What sniffio reads to name the running async library (module globals: one lookup each).
_LIBRARY_THREAD = sniffio.thread_local
_LIBRARY_VAR = sniffio.current_async_library_cvar


def _on_asyncio() -> bool:
    """Whether this runs on asyncio (or a loop no library names), not on trio, without a system call.

    Trio names itself in every task's context (`sniffio.current_async_library_cvar`), anyio's
    tasks do too; a plain asyncio task (uvicorn's, hypercorn's) names nothing. Asking asyncio
    (``asyncio.get_running_loop``, what `sniffio.current_async_library` falls back to) costs a
    ``getpid`` system call on Python 3.11 (its check that the loop was not forked), ~1 us per
    request in a VM; this asks no one.
    """
    name = _LIBRARY_THREAD.name or _LIBRARY_VAR.get()
    return name is None or name == "asyncio"


async def _disconnected(receive: Receive) -> None:
    """Return once the client has disconnected (what else arrives meanwhile is dropped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _check(
    inspection: Inspection, guard: Guard, content: Content, receive: Receive
) -> Reply | _Gone | None:
    """Ask the guard; `_GONE` if the client disconnected meanwhile (the check is then cancelled).

    An `InProcessGuard` is not raced (no I/O and no await inside; `GuardMiddleware._guarded` awaits
    its check directly). On asyncio, where a task group per request costs ~75 us, more than most
    checks, the check is stepped once by hand: a guard that answers without waiting (a cache hit,
    an in-memory guard that is not an `InProcessGuard`) finishes there, and nothing is raced. Only
    a check that waits (on I/O) gets a watcher task, which cancels this task if the client
    disconnects; the check runs on in this task all along, so its own cancel scopes (deadlines)
    stay properly nested. On trio the check runs in a task group with the watcher (`_watched`):
    a check stepped first could have entered a cancel scope that the group's would then cut.
    """
    check = inspection.acheck(guard, content)
    if not _on_asyncio():
        return await _watched(check, receive)
    try:
        waiting = check.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    except BaseException:
        check.close()
        raise
    try:
        this = asyncio.current_task()
    except RuntimeError:  # no asyncio loop: a loop no library names; the check goes on, not raced
        this = None
    if this is None:
        return await _Resumed(check, waiting)  # type: ignore[no-any-return]
    disconnected = False

    async def watch_disconnect() -> None:
        nonlocal disconnected
        await _disconnected(receive)
        disconnected = True
        this.cancel()

    watcher = asyncio.get_running_loop().create_task(watch_disconnect())
    try:
        return await _Resumed(check, waiting)  # type: ignore[no-any-return]
    except asyncio.CancelledError:
        if not disconnected:
            raise  # cancelled from outside (server shutdown...): not ours to swallow
        uncancel = getattr(this, "uncancel", None)  # Python 3.11+ counts cancellation requests
        if uncancel is not None:
            uncancel()
        return _GONE
    finally:
        # Synchronously after the check: a watcher that saw the disconnect only now never cancels.
        watcher.cancel()


async def _watched(check: Coroutine[Any, Any, Reply | None], receive: Receive) -> Reply | _Gone | None:
    """`_check` off asyncio: the check (not started yet) beside a watcher, in a task group."""
    reply: Reply | None = None
    disconnected = False
    async with anyio.create_task_group() as group:

        async def watch_disconnect() -> None:
            nonlocal disconnected
            await _disconnected(receive)
            disconnected = True
            group.cancel_scope.cancel()

        group.start_soon(watch_disconnect)
        try:
            reply = await check
        finally:
            group.cancel_scope.cancel()
    return _GONE if disconnected else reply


class _Resumed:
    """Awaits a coroutine already stepped once (`waiting` is what its first step yielded).

    What ``yield from`` does, from the second step on: each value the coroutine yields goes up to
    the event loop, and what the loop sends or throws (a cancellation) goes down into it.
    """

    __slots__ = ("_coroutine", "_waiting")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self._coroutine = coroutine
        self._waiting = waiting

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, value = self._coroutine, self._waiting
        try:
            while True:
                try:
                    sent = yield value
                except GeneratorExit:
                    raise  # closed: the finally below closes the coroutine, as yield from does
                except BaseException as exc:
                    value = coroutine.throw(exc)
                else:
                    value = coroutine.send(sent)
        except StopIteration as done:
            return done.value
        finally:
            coroutine.close()  # a no-op once it finished


class _Responder:
    """The response side of one guarded request: the only wrapper of its ``send``.

    Marks a response that went on unscanned (``x-guardrails-unscanned: 1``, once), and on
    ``scan_response`` routes checks what the app sends: JSON responses are buffered, checked whole,
    and replaced by the error on Block; event streams are checked window by window as they stream,
    and end with an SSE ``error`` event on Block: the app's body messages go through a small
    buffer to a task (`stream`) that feeds the scanner, checks each window and sends what it
    allows, and checks and sends the text held when the app has been quiet for
    ``stream_idle_flush`` seconds. A gzip or deflate event stream is decoded for
    checking while its bytes pass unchanged; on Block it ends with the error event encoded where
    the encoding allows, else it stops (see `guardrails._encoded_sse`). One in an encoding that
    cannot be decoded is refused (502).
    Other responses pass through.
    """

    __slots__ = (
        "_blocked",
        "_buffer",
        "_headers",
        "_inbox",
        "_mode",
        "_scanner",
        "_send",
        "_start",
        "_stream",
        "closed",
        "error",
        "guard",
        "inspection",
        "max_size",
        "tasks",
    )

    def __init__(
        self, inspection: Inspection, guard: Guard | None, send: Send, *, stream: StreamOptions, max_size: int
    ) -> None:
        self.inspection = inspection
        self.max_size = max_size
        self.guard = guard
        self.closed = False
        self._send = send
        self._mode = "pass"
        self._start: Message | None = None
        self._headers: dict[str, str] = {}
        self._buffer = bytearray()
        self._stream = stream
        self._scanner: SSEScanner | EncodedSSEScanner = SSEScanner(window_chars=stream.window)
        # Set by the middleware before the app runs (scan_response routes).
        self.tasks: anyio.abc.TaskGroup | None = None
        self._inbox: MemoryObjectSendStream[bytes] | None = None
        # Checks run concurrently: the refusal of the first window in stream order is kept.
        self._blocked: FirstRefusal[tuple[Reply, SSEWindow]] = FirstRefusal()
        # What the app or the stream task raised, raised again once both are done.
        self.error: Exception | None = None

    async def _send_start(self, message: Message) -> None:
        # Read when the start goes out: the prompt or a response check may have failed open.
        if self.inspection.unscanned:
            message = {**message, "headers": [*message.get("headers", []), (UNSCANNED_HEADER.encode(), b"1")]}
        await self._send(message)

    async def send(self, message: Message) -> None:
        if self.closed:
            return  # after a refusal the rest of the app's response goes nowhere
        kind = message["type"]
        if kind == "http.response.start":
            if self.guard is None:
                await self._send_start(message)
                return
            self._headers = _response_headers(message)
            media_type = self._headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type == "text/event-stream":
                try:
                    # A compressed stream is decoded for checking; its bytes pass unchanged.
                    self._scanner = event_stream_scanner(
                        self._headers.get("content-encoding"),
                        window_chars=self._stream.window,
                        overlap=self._stream.overlap,
                        first_window=self._stream.first_window,
                        max_decoded_size=self.max_size,
                    )
                except UnsupportedEncoding:
                    # An encoding we cannot decode (br, zstd...) cannot be checked: refuse it.
                    self._mode = "refused"
                    self._start = message
                    return
                self._mode = "sse"
                assert self.tasks is not None
                inbox, outbox = anyio.create_memory_object_stream[bytes](32)
                self._inbox = inbox
                self.tasks.start_soon(self.stream, outbox)
            elif is_json_media_type(media_type):
                # Don't send the start until the body is checked: a refusal changes the status.
                self._mode = "json"
                self._start = message
                return
            await self._send_start(message)
        elif kind != "http.response.body" or self._mode == "pass":
            await self._send(message)
        elif self._mode == "json":
            self._buffer += message.get("body", b"")
            if len(self._buffer) > self.max_size:
                await self._refuse(
                    BodyError("the response is larger than the scanning cap", code="response_too_large")
                )
            elif not message.get("more_body", False):
                await self._send_json()
        elif self._mode == "refused":
            await self._refuse(
                UnsupportedEncoding(
                    "the event stream's Content-Encoding cannot be decoded", code="response_encoded"
                )
            )
        else:
            assert self._inbox is not None
            body = message.get("body", b"")
            try:
                if body:
                    try:
                        # No checkpoint while there is room: a fast stream costs no loop turn per chunk.
                        self._inbox.send_nowait(body)
                    except anyio.WouldBlock:
                        await self._inbox.send(body)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the stream ended (blocked, or cut short): the rest goes nowhere
            if not message.get("more_body", False):
                self._inbox.close()

    def app_returned(self) -> None:
        """The app returned: an event stream it did not end is ended (what it sent is checked)."""
        if self._inbox is not None:
            self._inbox.close()

    async def stream(self, outbox: MemoryObjectReceiveStream[bytes]) -> None:
        """Check the event stream window by window and send what is allowed (a task of its own)."""
        try:
            await self._stream_windows(outbox)
        except Exception as exc:
            # A send to a client that left, a bug: raised by the middleware once the app is stopped.
            self.error = self.error or exc
            assert self.tasks is not None
            self.tasks.cancel_scope.cancel()

    async def _stream_windows(self, outbox: MemoryObjectReceiveStream[bytes]) -> None:
        async with outbox:
            windows = ascan(outbox, self._scanner, self._allowed, idle_flush=self._stream.idle_flush)
            try:
                async with aclosing(windows):
                    async for window in windows:
                        if window.data:
                            await self._send(
                                {"type": "http.response.body", "body": window.data, "more_body": True}
                            )
            except BodyError as exc:
                # A compressed stream that does not decode (or decodes past the cap): end it here.
                self.inspection.refuse_response(exc)
                await self._end(b"")
                return
            if self._blocked.value is not None:
                await self._end(stream_error_event(self._scanner, *self._blocked.value))
            else:
                await self._end(b"")

    async def _allowed(self, window: SSEWindow) -> bool:
        assert self.guard is not None
        content = Content(window.text, kind="response", metadata={"route": self.inspection.route_name})
        ticket = self._blocked.ticket()
        reply = await self.inspection.acheck(self.guard, content)
        if reply is not None:
            self._blocked.record(ticket, (reply, window))
            return False
        return True

    async def _refuse(self, error: BodyError) -> None:
        self.closed = True
        self._buffer.clear()
        await _send_reply(self._send, self.inspection.refuse_response(error))

    async def _send_json(self) -> None:
        assert self._start is not None
        assert self.guard is not None
        start, body = self._start, bytes(self._buffer)
        self._buffer.clear()
        try:
            content = self.inspection.response_content(body, self._headers)
        except BodyError as exc:
            await self._refuse(exc)
            return
        if content is not None:
            reply = await self.inspection.acheck(self.guard, content)
            if reply is not None:
                self.closed = True
                await _send_reply(self._send, reply)
                return
        if self.inspection.masked_response is not None:
            body = self.inspection.masked_response
            start = {**start, "headers": _with_length(start.get("headers", []), len(body))}
        await self._send_start(start)
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    async def _end(self, body: bytes) -> None:
        """End a stream cut short with ``body`` (the SSE error event, encoded like the stream; or
        nothing)."""
        self.closed = True
        await self._send({"type": "http.response.body", "body": body, "more_body": False})
