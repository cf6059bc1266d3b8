"""WSGI middleware guarding the LLM endpoints of a Flask, Django or any WSGI app.

Example::

    app = Flask(__name__)
    app.wsgi_app = GuardMiddleware(
        app.wsgi_app,
        guard=guard_from_env(),
        routes=[Route("/chat", fail_open=True)],
    )

The decisions (what to scan, what to answer) live in the I/O-free `guardrails._http`, shared with
the ASGI middleware; this module only reads ``wsgi.input`` and moves the response along. Guards are
asked with the synchronous ``check``, on the server's request thread.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, Any

from ._body import BodyError, UnsupportedEncoding, is_json_media_type
from ._encoded_sse import EncodedSSEScanner, event_stream_scanner, stream_error_event
from ._events import DecisionHook
from ._guard import Guard, InProcessGuard
from ._http import UNSCANNED_HEADER, GuardedRoutes, Inspection, Matched, stream_options
from ._models import Content
from ._policy import FailOpen
from ._replies import Reply, error_reply
from ._routing import Route
from ._sse import SSEScanner, SSEWindow
from ._stream import CHECK_CONCURRENCY, FirstRefusal, ScanThread, StreamOptions

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ORIGINAL_INPUT_KEY", "VERDICT_KEY", "GuardMiddleware"]

#: Environ key of the `Verdict` on a guarded request that reached the app (None when unscanned).
VERDICT_KEY = "guardrails.verdict"
#: Environ key of the server's original ``wsgi.input``, replaced by a buffer of the same bytes.
ORIGINAL_INPUT_KEY = "guardrails.original_input"

Headers = list[tuple[str, str]]

_READ_SIZE = 64 * 1024
#: A method `GuardedRoutes.known` has no answer for yet.
_UNKNOWN: Any = object()


def _route_path(environ: WSGIEnvironment) -> str:
    # What the app routes on: PATH_INFO (below the SCRIPT_NAME mount), whose latin-1 characters are
    # the raw bytes of a UTF-8 path (PEP 3333), decoded as werkzeug and Django decode them.
    path: str = environ.get("PATH_INFO", "") or "/"
    try:
        return path.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return path


class _EnvironHeaders(Mapping[str, str]):
    """The request headers (names lower case), read from the environ on demand.

    Copying every ``HTTP_*`` key up front would cost more than everything else the middleware does
    for a request; the extractors only ever look at a few headers.
    """

    __slots__ = ("_environ",)

    def __init__(self, environ: WSGIEnvironment) -> None:
        self._environ = environ

    def __getitem__(self, name: str) -> str:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        value = self._environ.get(key)
        if not isinstance(value, str) or not value:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        for key, value in list(self._environ.items()):
            if not isinstance(value, str) or not value:
                continue
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                yield key.replace("_", "-").lower()
            elif key.startswith("HTTP_") and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                yield key[5:].replace("_", "-").lower()

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _send_reply(start_response: StartResponse, reply: Reply, *, body: bool = True) -> list[bytes]:
    start_response(_status_line(reply.status), list(reply.headers))
    return [reply.body] if body else []


def _mark_unscanned(headers: Headers) -> Headers:
    return [*headers, (UNSCANNED_HEADER, "1")]


def _response_headers(headers: Headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def _close(iterable: Iterable[bytes]) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class _Incomplete(Exception):
    """The input ended before its Content-Length: the client went away mid-body."""


def _read_exactly(stream: IO[bytes], length: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < length:
        chunk = stream.read(min(_READ_SIZE, length - len(chunks)))
        if not chunk:
            raise _Incomplete
        chunks += chunk
    return bytes(chunks)


def _read_capped(stream: IO[bytes], max_size: int) -> bytes | None:
    """Read a terminated input to its end; None as soon as it is longer than ``max_size``."""
    chunks = bytearray()
    while True:
        # Never ask for much more than the cap: the running total passing it is enough to refuse.
        chunk = stream.read(min(_READ_SIZE, max_size + 1 - len(chunks)))
        if not chunk:
            return bytes(chunks)
        chunks += chunk
        if len(chunks) > max_size:
            return None


def _is_chunked(environ: WSGIEnvironment) -> bool:
    codings = environ.get("HTTP_TRANSFER_ENCODING")
    if not codings:
        return False
    return "chunked" in (coding.strip().lower() for coding in codings.split(","))


class GuardMiddleware(GuardedRoutes):
    """Checks the requests (and optionally responses) of guarded routes with a guard.

    Args:
        app: the WSGI app (e.g. ``flask_app.wsgi_app``).
        guard: the guard asked (with ``check``); None: `guard_from_env()`, resolved once, on first use.
        routes: the guarded routes, matched on ``PATH_INFO`` (the path below the ``SCRIPT_NAME``
            mount, as the app routes it); None guards every POST, PUT and PATCH with the default
            extractor. Other requests pass through untouched.
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
            cut there).

    On a guarded request the body is read once (exactly ``CONTENT_LENGTH`` bytes, or a terminated
    chunked input to its end, capped) and the app gets ``wsgi.input`` as a buffer of the identical
    bytes, with a matching ``CONTENT_LENGTH`` (and no ``Transfer-Encoding``); the server's stream is kept, unclosed, in
    ``environ["guardrails.original_input"]``. On Allow the `Verdict` is in
    ``environ["guardrails.verdict"]`` (None when the request was not scanned). Error answers are JSON
    in the OpenAI error shape: 403 ``guardrail_blocked``, 503 ``guardrail_unavailable``, 413
    ``request_too_large``, 415 ``unsupported_media_type`` (an unknown Content-Encoding), 400
    ``invalid_request``.

    Thread-safe: all per-request state lives in locals, and a remote guard shares one connection
    pool between the server's threads. `close` releases the guards' HTTP clients.
    """

    def __init__(
        self,
        app: WSGIApplication,
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
        if self._needs_default_guard():
            # Bad settings fail here, at start-up, with the reason: not as a 503 on every request.
            self._check_capacity(self.guards.get())

    def close(self) -> None:
        """Close the guard made from the environment, if any (a guard given is its owner's)."""
        self.guards.close()

    # -- WSGI ---------------------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method: str = environ.get("REQUEST_METHOD", "GET").upper()
        path = _route_path(environ)
        # A (path, method) seen before costs two lookups (`GuardedRoutes.known`).
        methods = self.known.get(path)
        matched = _UNKNOWN if methods is None else methods.get(method, _UNKNOWN)
        if matched is _UNKNOWN:
            length = environ.get("CONTENT_LENGTH", "").strip()
            has_body = bool(length and length != "0") or "HTTP_TRANSFER_ENCODING" in environ
            matched = self.match(method, path, has_body=has_body)
        if matched is None:
            environ[VERDICT_KEY] = None
            return self.app(environ, start_response)
        return self._guarded(environ, start_response, matched)

    def _guarded(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        matched: Matched,
    ) -> Iterable[bytes]:
        method: str = environ.get("REQUEST_METHOD", "GET").upper()
        route = matched.route
        headers = _EnvironHeaders(environ)
        inspection, guard, setup_error = self.inspect(
            matched,
            method=method,
            path=_route_path(environ),
            headers=headers,
            query_string=environ.get("QUERY_STRING", ""),
        )
        head = method == "HEAD"

        body = self._read_body(environ, inspection)
        if isinstance(body, Reply):
            return _send_reply(start_response, body, body=not head)

        prepared = inspection.prepare(body)
        if isinstance(prepared, Reply):
            return _send_reply(start_response, prepared, body=not head)
        if prepared is not None:
            reply: Reply | None
            if guard is None:
                assert setup_error is not None
                reply = inspection.setup_failed(setup_error)
            else:
                reply = inspection.check(guard, prepared)
            if reply is not None:
                return _send_reply(start_response, reply, body=not head)

        if inspection.masked_body is not None:
            body = inspection.masked_body  # masked: the app reads the rewritten body
        environ[ORIGINAL_INPUT_KEY] = environ.get("wsgi.input")
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        # The app now reads a buffer of known length: a chunked body would otherwise be read as
        # empty by apps that ignore terminated inputs (Django), or to the end by others (werkzeug).
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ.pop("wsgi.input_terminated", None)
        environ[VERDICT_KEY] = inspection.verdict
        if route.scan_response and not head and guard is not None:
            return _scan_response(
                self.app,
                environ,
                start_response,
                inspection,
                guard,
                stream=route.stream_options(self.stream),
                max_size=self.max_response_size,
            )
        if not inspection.unscanned:
            return self.app(environ, start_response)

        def unscanned_start_response(
            status: str, headers: Headers, exc_info: OptExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            return start_response(status, _mark_unscanned(headers), exc_info)

        return self.app(environ, unscanned_start_response)

    def _read_body(self, environ: WSGIEnvironment, inspection: Inspection) -> bytes | Reply:
        """The request body as the app would read it (werkzeug's rules), or the answer refusing it."""
        stream: IO[bytes] | None = environ.get("wsgi.input")
        if stream is None:
            return b""
        declared: str | None = None if _is_chunked(environ) else environ.get("CONTENT_LENGTH") or None
        try:
            if declared is not None:
                reply = inspection.content_length_error(declared)
                if reply is not None:
                    return reply
                return _read_exactly(stream, int(declared))
            if environ.get("wsgi.input_terminated"):
                body = _read_capped(stream, self.max_body_size)
                return inspection.too_large() if body is None else body
        except (_Incomplete, OSError):
            # Werkzeug answers a client that went away mid-body with a 400 too; nothing to record.
            return error_reply(
                400,
                "invalid_request",
                "The request body ended before it was complete.",
                code="incomplete_body",
            )
        # No length and no terminated input: the app reads an empty body (werkzeug's safe fallback).
        return b""


# -- responses -------------------------------------------------------------------------------------------


class _Capture:
    """Holds the app's start_response call until the middleware knows what to send."""

    __slots__ = ("exc_info", "headers", "sent", "start_response", "status", "written")

    def __init__(self, start_response: StartResponse) -> None:
        self.start_response = start_response
        self.status: str | None = None
        self.headers: Headers = []
        self.exc_info: OptExcInfo | None = None
        self.sent = False
        self.written: list[bytes] = []

    def __call__(
        self, status: str, headers: Headers, exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        if self.sent:
            # Headers already went out: the server's start_response re-raises exc_info (PEP 3333).
            return self.start_response(status, headers, exc_info)
        self.status, self.headers, self.exc_info = status, list(headers), exc_info
        return self.written.append

    def send(self, status: str, headers: Headers) -> None:
        self.sent = True
        self.start_response(status, headers, self.exc_info)


def _scan_response(
    app: WSGIApplication,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    inspection: Inspection,
    guard: Guard,
    *,
    stream: StreamOptions,
    max_size: int,
) -> Iterable[bytes]:
    capture = _Capture(start_response)
    app_iter = app(environ, capture)
    try:
        items = iter(app_iter)
        pending = capture.written
        # Apps may call start_response lazily, on the first iteration: pull until they have.
        while capture.status is None:
            item = next(items, None)
            if item is None:
                raise RuntimeError("the WSGI app returned without calling start_response")
            pending.append(item)
        status, headers = capture.status, capture.headers
        media_type = _response_headers(headers).get("content-type", "").split(";")[0].strip().lower()
        response_headers = _response_headers(headers)
        scanner: SSEScanner | EncodedSSEScanner | None = None
        if media_type == "text/event-stream":
            try:
                # A compressed stream is decoded for checking; its bytes pass unchanged.
                scanner = event_stream_scanner(
                    response_headers.get("content-encoding"),
                    window_chars=stream.window,
                    overlap=stream.overlap,
                    first_window=stream.first_window,
                    max_decoded_size=max_size,
                )
            except UnsupportedEncoding as exc:
                # An encoding we cannot decode (br, zstd...) cannot be checked: refuse it.
                _close(app_iter)
                return _refused(capture, inspection, exc)
        if is_json_media_type(media_type):
            body = bytearray()
            for item in itertools.chain(pending, items):
                body += item
                if len(body) > max_size:
                    _close(app_iter)
                    return _refused(
                        capture,
                        inspection,
                        BodyError("the response is larger than the scanning cap", code="response_too_large"),
                    )
            pending.clear()
            _close(app_iter)
            return _checked_json(capture, inspection, guard, status, headers, bytes(body))
        capture.send(status, _mark_unscanned(headers) if inspection.unscanned else headers)
    except BaseException:
        _close(app_iter)
        raise
    if scanner is not None:
        return _EventStream(app_iter, items, pending, inspection, guard, scanner, stream.idle_flush)
    return _Passthrough(app_iter, items, pending)


def _refused(capture: _Capture, inspection: Inspection, error: BodyError) -> list[bytes]:
    reply = inspection.refuse_response(error)
    capture.send(_status_line(reply.status), list(reply.headers))
    return [reply.body]


def _checked_json(
    capture: _Capture, inspection: Inspection, guard: Guard, status: str, headers: Headers, body: bytes
) -> list[bytes]:
    try:
        content = inspection.response_content(body, _response_headers(headers))
    except BodyError as exc:
        return _refused(capture, inspection, exc)
    if content is not None:
        reply = inspection.check(guard, content)
        if reply is not None:
            capture.send(_status_line(reply.status), list(reply.headers))
            return [reply.body]
    if inspection.masked_response is not None:
        body = inspection.masked_response
        headers = [(name, value) for name, value in headers if name.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
    capture.send(status, _mark_unscanned(headers) if inspection.unscanned else headers)
    return [body]


class _Passthrough:
    """The app's response after what it wrote or yielded early; closes the app's iterable."""

    __slots__ = ("_app_iter", "_items", "_pending")

    def __init__(self, app_iter: Iterable[bytes], items: Iterator[bytes], pending: list[bytes]) -> None:
        self._app_iter = app_iter
        self._items = items
        self._pending = pending

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._pending:
            return self._pending.pop(0)
        return next(self._items)

    def close(self) -> None:
        _close(self._app_iter)


class _EventStream:
    """A ``text/event-stream`` response checked window by window as it streams (per request).

    A helper thread reads the app's iterable into a small queue (`ScanThread`), so that this side
    can wait with a timeout: when the app goes quiet for ``stream_idle_flush`` seconds, the text
    held back is checked and released without waiting for a window's worth. The helper thread
    closes the app's iterable (at its end, on an error, or once told to stop by `close`, as soon
    as the app's current ``next()`` returns) and then exits.

    On Block the client gets an SSE ``error`` event in place of the rest (on a gzip or deflate
    stream, encoded where the encoding allows, else the stream stops: see
    `guardrails._encoded_sse`).
    """

    __slots__ = ("_blocked", "_done", "_guard", "_inspection", "_out", "_scan", "_scanner", "_windows")

    def __init__(
        self,
        app_iter: Iterable[bytes],
        items: Iterator[bytes],
        pending: list[bytes],
        inspection: Inspection,
        guard: Guard,
        scanner: SSEScanner | EncodedSSEScanner,
        idle_flush: float | None,
    ) -> None:
        self._inspection = inspection
        self._guard = guard
        self._scanner = scanner
        self._out: list[bytes] = []
        self._done = False
        # Checks may run concurrently: the refusal of the first window in stream order is kept.
        self._blocked: FirstRefusal[tuple[Reply, SSEWindow]] = FirstRefusal()

        def chunks() -> Iterator[bytes]:
            # What the app wrote (its write() callable) goes before what it yields next.
            while pending:
                yield pending.pop(0)
            for item in items:
                while pending:
                    yield pending.pop(0)
                yield item
            while pending:
                yield pending.pop(0)

        self._scan = ScanThread(
            chunks(),
            scanner,
            self._allowed,
            idle_flush=idle_flush,
            close=lambda: _close(app_iter),
            # A remote guard's checks of successive windows overlap; an in-process one's gain nothing.
            concurrency=1 if isinstance(guard, InProcessGuard) else CHECK_CONCURRENCY,
        )
        self._windows = iter(self._scan)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        while not self._out:
            if self._done:
                raise StopIteration
            try:
                window = next(self._windows)
            except StopIteration:
                self._done = True
                if self._blocked.value is not None:
                    ending = stream_error_event(self._scanner, *self._blocked.value)
                    if ending:
                        self._out.append(ending)
                continue
            except BodyError as exc:
                # A compressed stream that does not decode (or decodes past the cap): end it here.
                self._inspection.refuse_response(exc)
                self._done = True
                continue
            if window.data:
                self._out.append(window.data)
        return self._out.pop(0)

    def _allowed(self, window: SSEWindow) -> bool:
        content = Content(window.text, kind="response", metadata={"route": self._inspection.route_name})
        ticket = self._blocked.ticket()
        reply = self._inspection.check(self._guard, content)
        if reply is not None:
            self._blocked.record(ticket, (reply, window))
            return False
        return True

    def close(self) -> None:
        self._scan.close()
        close_windows = getattr(self._windows, "close", None)
        if close_windows is not None:
            close_windows()
