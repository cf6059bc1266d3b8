"""The decision core shared by the ASGI and WSGI middlewares. No I/O, no framework types.

API:

- `Reply`: an answer the middleware sends instead of calling the app (status, headers, body).
- ``error_reply(status, type, message, code=..., reasons=(), verdict_id=None) -> Reply``: a JSON
  error in the OpenAI error shape ``{"error": {"message", "type", "code", "reasons", "verdict_id"}}``,
  so OpenAI SDK clients surface it. Types: ``guardrail_blocked`` (403), ``guardrail_unavailable``
  (503), ``request_too_large`` (413), ``unsupported_media_type`` (415), ``invalid_request`` (400),
  ``server_error`` (500: a custom extractor raised).
- `Inspection`: one guarded request, step by step. A shell calls, in order:
  ``content_length_error(value)`` (a declared length over the cap), ``too_large()`` (the running
  total passed the cap), ``prepare(body)`` -> `Content` to check, a `Reply` to send, or None (nothing
  to scan: run the app); then ``verdict(v, latency)`` or ``failure(exc, latency)`` -> a `Reply`, or
  None to run the app (``unscanned`` says whether it failed open, so the shell adds
  `UNSCANNED_HEADER`). For ``scan_response`` routes: ``response_content(body, headers)`` and
  ``response_verdict`` / ``response_failure``. Each step records one `Decision` and logs: INFO on
  Block, WARNING on failing open or a transient failure, ERROR on a configuration error; never the
  scanned text.
- `SSEScanner`: cuts a ``text/event-stream`` response into windows of text to check, holding back
  at most one window of events; ``sse_error_event(reply)`` is the event sent in place of the rest of
  the stream on Block.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ._body import (
    BodyError,
    BodyExtractor,
    BodyTooLarge,
    HTTPBody,
    InvalidBody,
    decode_content_encoding,
    default_body,
    is_json_media_type,
    json_strings,
    parse_json,
)
from ._events import Decision, DecisionHook, Outcome, log_extra
from ._exceptions import ExtractionError, GuardError
from ._guard import Guard
from ._judge import Judge, as_guard_error
from ._models import Content, Verdict
from ._policy import FailOpen, validate_fail_open
from ._routing import DEFAULT_ROUTE, Route, Router, normalize_path

__all__ = [
    "STATE_KEY",
    "UNSCANNED_HEADER",
    "GuardedRoutes",
    "Inspection",
    "Reply",
    "SSEScanner",
    "SSEWindow",
    "error_reply",
    "event_data",
    "guard_setup_error",
    "sse_error_event",
    "unreadable_response_error",
]

logger = logging.getLogger("guardrails")

#: Response header marking a request that reached the app unscanned because the guard failed open.
UNSCANNED_HEADER = "x-guardrails-unscanned"
#: Key of the `Verdict` in the request state (``request.state.guardrails``; None when unscanned).
STATE_KEY = "guardrails"


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer given instead of the app's.

    Attributes:
        status: the status code.
        headers: the headers, names lower case.
        body: the body (JSON).
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def error_reply(
    status: int,
    type: str,
    message: str,
    *,
    code: str | None = None,
    reasons: Sequence[str] = (),
    verdict_id: str | None = None,
) -> Reply:
    """A JSON error in the OpenAI error shape. ``message`` must never contain request text."""
    error: dict[str, object] = {"message": message, "type": type, "code": code or type}
    if reasons:
        error["reasons"] = list(reasons)
    if verdict_id is not None:
        error["verdict_id"] = verdict_id
    body = json.dumps({"error": error}, separators=(",", ":")).encode()
    headers = (
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("cache-control", "no-store"),
    )
    return Reply(status, headers, body)


def _blocked_reply(verdict: Verdict, kind: str) -> Reply:
    what = "request" if kind == "prompt" else "response"
    return error_reply(
        403,
        "guardrail_blocked",
        f"The {what} was blocked by the {verdict.guard} guardrail.",
        code="content_blocked",
        reasons=verdict.reasons,
        verdict_id=verdict.id,
    )


def _unavailable_reply(error: GuardError) -> Reply:
    code = "guard_misconfigured" if not error.transient else "guard_unavailable"
    return error_reply(
        503,
        "guardrail_unavailable",
        "The guardrail could not check this request; try again later.",
        code=code,
    )


def _body_error_reply(error: BodyError) -> Reply:
    return error_reply(error.status, error.type, str(error), code=error.code)


def guard_setup_error(error: BaseException, guard_name: str) -> GuardError:
    """The `GuardError` for a guard that could not be built (bad settings): a configuration error."""
    if isinstance(error, GuardError):
        return error
    return GuardError(
        f"the guard could not be set up ({type(error).__name__})", guard=guard_name, transient=False
    )


def unreadable_response_error(error: BodyError, guard_name: str) -> GuardError:
    """The `GuardError` for a response that cannot be decoded for scanning.

    Nothing the guard can fix: a configuration matter, failing open only under ``"always"``.
    """
    return GuardError(
        f"the response could not be decoded for scanning ({error.code})", guard=guard_name, transient=False
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(content: Content) -> None:
    for text in content.iter_texts():
        if _SURROGATE.search(text):
            # A lone surrogate (from a \ud800 escape or surrogatepass decoding) cannot be sent to a
            # guard as text, and an app passing it on would fail later: refuse it here.
            raise InvalidBody("the request body contains a lone surrogate", code="invalid_unicode")


class Inspection:
    """One guarded request's decision, driven step by step by a middleware shell.

    Args:
        route: the matched route.
        method: the request method.
        path: the request path as the app sees it (given to extractors).
        headers: the request headers, names lower case.
        guard_name: the name of the guard that will be asked.
        fail_open: the middleware's default, used when the route does not say.
        max_body_size: the cap on the body, before and after decompression.
        hooks: per-middleware decision hooks.
    """

    __slots__ = (
        "content",
        "guard_name",
        "headers",
        "judge",
        "max_body_size",
        "method",
        "path",
        "route",
        "route_name",
        "target",
        "unscanned",
    )

    def __init__(
        self,
        route: Route,
        *,
        method: str,
        path: str,
        headers: Mapping[str, str],
        guard_name: str,
        fail_open: FailOpen = False,
        max_body_size: int,
        hooks: Iterable[DecisionHook] = (),
    ) -> None:
        self.route = route
        self.method = method
        self.path = path
        self.headers = headers
        self.guard_name = guard_name
        self.max_body_size = max_body_size
        # The route template, not the path (paths carry ids and other user data), unless the
        # catch-all default route matched: its template says nothing.
        self.route_name = normalize_path(path) if route is DEFAULT_ROUTE else route.path
        self.target = f"{method} {self.route_name}"
        self.judge = Judge(
            self.target,
            hooks=tuple(hooks),
            fail_open=route.fail_open if route.fail_open is not None else fail_open,
        )
        self.unscanned = False
        self.content: Content | None = None

    def _record(self, outcome: Outcome, *, error: BaseException | None = None) -> Decision:
        return self.judge.record(outcome, guard=self.guard_name, error=error)

    # -- the request --------------------------------------------------------------------------------

    def content_length_error(self, content_length: str | None) -> Reply | None:
        """A 413 if the declared Content-Length is over the cap (a bad value is a 400), else None."""
        if content_length is None:
            return None
        value = content_length.strip()
        if not value.isdigit():
            return self._body_error(InvalidBody("the Content-Length header is invalid", code="bad_length"))
        if int(value) > self.max_body_size:
            return self.too_large()
        return None

    def too_large(self) -> Reply:
        """The 413 for a body over the cap (recorded as ``too_large``)."""
        return self._body_error(BodyTooLarge("the request body is larger than the limit"))

    def _body_error(self, error: BodyError) -> Reply:
        outcome: Outcome = "too_large" if isinstance(error, BodyTooLarge) else "invalid"
        decision = self._record(outcome, error=error)
        logger.info(
            "guardrails refused %s: %s (%d)",
            self.target,
            error.code,
            error.status,
            extra=log_extra(decision, status_code=error.status),
        )
        return _body_error_reply(error)

    def prepare(self, body: bytes) -> Content | Reply | None:
        """Decode and extract the content to check.

        Returns:
            The `Content` to check; a `Reply` (413, 415, 400, 500) to send instead of calling the
            app; or None when there is nothing to scan (recorded as ``skipped``: run the app).
        """
        try:
            decoded = decode_content_encoding(
                body, self.headers.get("content-encoding"), max_size=self.max_body_size
            )
            request = HTTPBody(
                self.method, self.path, self.headers, decoded, metadata={"route": self.route_name}
            )
            extract: BodyExtractor = self.route.extract or default_body
            extracted = extract(request)
            if extracted is None:
                self._record("skipped")
                return None
            content = Content(extracted) if isinstance(extracted, str) else extracted
            if not isinstance(content, Content):
                raise TypeError(
                    f"an extractor must return Content, str or None, not {type(content).__name__}"
                )
            _check_text(content)
        except BodyError as exc:
            return self._body_error(exc)
        except ExtractionError as exc:
            return self._body_error(InvalidBody(str(exc) or "the request body could not be read"))
        except Exception as exc:
            # A bug in a custom extractor: fail closed. Its message may quote the body: log the type.
            decision = self._record("error", error=exc)
            logger.error(
                "guardrails extractor of %s raised %s: failing closed",
                self.target,
                type(exc).__name__,
                extra=log_extra(decision),
            )
            return error_reply(
                500, "server_error", "The guardrail could not read this request.", code="extractor_failed"
            )
        if "route" not in content.metadata:
            content = content.model_copy(update={"metadata": {"route": self.route_name, **content.metadata}})
        self.content = content
        return content

    def verdict(self, verdict: Verdict, latency: float = 0.0) -> Reply | None:
        """A 403 on Block; None on Allow (run the app, the verdict in the request state)."""
        return self._verdict(verdict, latency, "prompt")

    def failure(self, error: BaseException, latency: float = 0.0) -> Reply | None:
        """A 503 when failing closed; None when failing open (`unscanned` is then True)."""
        return self._failure(error, latency, "prompt")

    # -- the response ---------------------------------------------------------------------------------

    def response_verdict(self, verdict: Verdict, latency: float = 0.0) -> Reply | None:
        """A 403 when the guard blocks the response; None to send the response."""
        return self._verdict(verdict, latency, "response")

    def response_failure(self, error: BaseException, latency: float = 0.0) -> Reply | None:
        """A 503 when failing closed on the response check; None to send the response unscanned."""
        return self._failure(error, latency, "response")

    def response_content(self, body: bytes, headers: Mapping[str, str]) -> Content | None:
        """What to check in a buffered response of the route: JSON only (else None).

        An OpenAI chat completion is checked as a completion; any other JSON by its strings.

        Raises:
            BodyError: the response cannot be decoded (an unknown encoding, over the cap).
        """
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if not is_json_media_type(media_type):
            return None
        decoded = decode_content_encoding(
            body, headers.get("content-encoding"), max_size=self.max_body_size * 10
        )
        try:
            document = parse_json(decoded)
        except InvalidBody:
            text = decoded.decode("utf-8", "replace")
            return Content(text, kind="response") if text.strip() else None
        if isinstance(document, dict) and isinstance(document.get("choices"), list):
            content = Content(completion=document, kind="response")
            return content if any(content.iter_texts()) else None
        texts = [text for text in json_strings(document) if text]
        return Content("\n".join(texts), kind="response") if texts else None

    # -- shared -------------------------------------------------------------------------------------------

    def _verdict(self, verdict: Verdict, latency: float, kind: str) -> Reply | None:
        if self.judge.verdict(verdict, kind=kind, latency=latency):
            return _blocked_reply(verdict, kind)
        return None

    def _failure(self, error: BaseException, latency: float, kind: str) -> Reply | None:
        failure = as_guard_error(error, self.guard_name)
        if self.judge.failure(failure, kind=kind, latency=latency):
            self.unscanned = True
            return None
        return _unavailable_reply(failure)


class GuardedRoutes:
    """The configuration both middlewares share, and what they do before reading a request.

    Validates the options, resolves the default guard lazily and once (thread-safe), and starts
    the `Inspection` of a matched request. The middlewares subclass it and add only their I/O.
    """

    def __init__(
        self,
        *,
        guard: Guard | None,
        routes: Sequence[Route] | None,
        max_body_size: int,
        fail_open: FailOpen,
        on_decision: DecisionHook | Iterable[DecisionHook] | None,
        sse_window: int,
        max_response_size: int,
    ) -> None:
        if max_body_size < 0:
            raise ValueError("max_body_size must not be negative")
        if sse_window < 1:
            raise ValueError("sse_window must be positive")
        if max_response_size < 0:
            raise ValueError("max_response_size must not be negative")
        self.router = Router(routes)
        self.max_body_size = max_body_size
        self.fail_open = validate_fail_open(fail_open)
        if on_decision is None:
            self.hooks: tuple[DecisionHook, ...] = ()
        elif callable(on_decision):
            self.hooks = (on_decision,)
        else:
            self.hooks = tuple(on_decision)
        self.sse_window = sse_window
        self.max_response_size = max_response_size
        self._guard = guard
        self._guard_lock = threading.Lock()

    def __repr__(self) -> str:
        guard = self._guard if self._guard is not None else "guard_from_env()"
        return f"GuardMiddleware(guard={guard!r}, routes={list(self.router.routes)!r})"

    def _default_guard(self) -> Guard:
        guard = self._guard
        if guard is None:
            with self._guard_lock:
                if self._guard is None:
                    from ._settings import guard_from_env

                    self._guard = guard_from_env()
                guard = self._guard
        return guard

    def _guards(self) -> list[Guard]:
        """Every guard configured (the middleware's and the routes'), each once."""
        guards = {id(g): g for g in [self._guard, *(r.guard for r in self.router.routes)] if g is not None}
        return list(guards.values())

    def _inspect(
        self, route: Route, *, method: str, path: str, headers: Mapping[str, str]
    ) -> tuple[Inspection, Guard | None, BaseException | None]:
        """Start a matched request's inspection: its guard, or why there is none (bad settings)."""
        guard: Guard | None
        try:
            guard = route.guard or self._default_guard()
            guard_name = getattr(guard, "name", type(guard).__name__)
            setup_error: BaseException | None = None
        except Exception as exc:
            guard, guard_name, setup_error = None, "unconfigured", exc
        inspection = Inspection(
            route,
            method=method,
            path=path,
            headers=headers,
            guard_name=guard_name,
            fail_open=self.fail_open,
            max_body_size=self.max_body_size,
            hooks=self.hooks,
        )
        return inspection, guard, setup_error


# -- server-sent events ----------------------------------------------------------------------------------

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(r"\r\n|\n|\r")


@dataclass(frozen=True, slots=True)
class SSEWindow:
    """A run of complete events, held back until ``text`` is checked.

    Attributes:
        text: the text to check (the overlap with the previous window first); may be empty.
        data: the events' bytes, to send once the text is allowed.
    """

    text: str
    data: bytes


def event_data(event: bytes) -> str:
    """The data of one server-sent event: its ``data:`` lines, joined by newlines."""
    lines = _LINE.split(event.decode("utf-8", "replace"))
    return "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))


def _event_text(event: bytes) -> str:
    payload = event_data(event)
    if not payload.strip() or payload.strip() == "[DONE]":
        return ""
    try:
        document = json.loads(payload)
    except ValueError:
        return payload
    if isinstance(document, dict) and isinstance(document.get("choices"), list):
        return "".join(Content(completion=document, kind="response").iter_texts())
    return "\n".join(text for text in json_strings(document) if text)


class SSEScanner:
    """Cuts a server-sent-event stream into windows of text to check as it streams.

    Complete events are held back until their text reaches ``window_chars`` (or their bytes
    ``max_window_bytes``); then `feed` returns them as an `SSEWindow`. Each window's text starts
    with the last ``overlap`` characters of the previous one, so a phrase cut by a window boundary is
    still seen whole. By default, from an OpenAI chat-completion chunk the deltas' content and
    tool-call arguments are taken; from other JSON, its strings; from other data, the data itself.

    Args:
        window_chars: characters of text per window.
        overlap: characters of the previous window repeated at the start of the next.
        max_window_bytes: bytes of events held back at most, text or not.
        event_text: what text one event (its raw bytes) adds, if not the default above (the
            OpenAI transport reads Responses API streams, whose text needs state across events).
    """

    __slots__ = (
        "_chars",
        "_event_text",
        "_held",
        "_partial",
        "_tail",
        "_text",
        "max_window_bytes",
        "overlap",
        "window_chars",
    )

    def __init__(
        self,
        *,
        window_chars: int = 1000,
        overlap: int = 100,
        max_window_bytes: int = 65536,
        event_text: Callable[[bytes], str] | None = None,
    ) -> None:
        if window_chars < 1 or overlap < 0 or max_window_bytes < 1:
            raise ValueError("window_chars and max_window_bytes must be positive, overlap not negative")
        self._event_text = event_text or _event_text
        self.window_chars = window_chars
        self.overlap = overlap
        self.max_window_bytes = max_window_bytes
        self._partial = bytearray()
        self._held = bytearray()
        self._text: list[str] = []
        self._chars = 0
        self._tail = ""

    def _cut(self) -> SSEWindow:
        new_text = "".join(self._text)
        text = self._tail + new_text if new_text else ""
        window = SSEWindow(text, bytes(self._held))
        if new_text:
            self._tail = text[-self.overlap :] if self.overlap else ""
        self._held.clear()
        self._text.clear()
        self._chars = 0
        return window

    def feed(self, chunk: bytes) -> list[SSEWindow]:
        """Take the next piece of the stream; return the windows now complete (often none)."""
        self._partial += chunk
        windows: list[SSEWindow] = []
        start = 0
        for end in _EVENT_END.finditer(self._partial):
            self._take(bytes(self._partial[start : end.end()]))
            start = end.end()
            if self._chars >= self.window_chars or len(self._held) >= self.max_window_bytes:
                windows.append(self._cut())
        del self._partial[:start]
        return windows

    def finish(self) -> SSEWindow | None:
        """The stream ended: everything still held, the last incomplete event included."""
        if self._partial:
            self._take(bytes(self._partial))
            self._partial.clear()
        if not self._held:
            return None
        return self._cut()

    def _take(self, event: bytes) -> None:
        self._held += event
        text = self._event_text(event)
        if text:
            self._text.append(text)
            self._chars += len(text)


def sse_error_event(reply: Reply) -> bytes:
    """The ``error`` event that ends a stream in place of a blocked window (OpenAI SDKs raise it)."""
    return b"event: error\ndata: " + reply.body + b"\n\n"
