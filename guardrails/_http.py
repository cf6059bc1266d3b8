"""The request side both middlewares share: what to scan, and what to answer. No I/O.

- `Inspection`: one guarded request, step by step. A shell calls, in order:
  ``content_length_error(value)`` (a declared length over the cap), ``too_large()`` (the running
  total passed the cap), ``prepare(body)`` -> `Content` to check, a `Reply` to send, or None (nothing
  to scan: run the app); then ``check(guard, content)`` / ``acheck(guard, content)`` -> a `Reply`
  to send instead of the app's answer, or None to go on (``unscanned`` then says whether it failed
  open, so the shell adds `UNSCANNED_HEADER`; ``verdict`` holds the verdict). The asking, the policy,
  the decision and its log line are the `Judge`'s: the same pipeline as the decorator's. For
  ``scan_response`` routes: ``response_content(body, headers)`` and the same ``check`` / ``acheck``
  with a response `Content`; ``refuse_response(error)`` for a response that cannot be read.
  On ``mask`` routes a Block of sensitive data only may go on masked: ``masked_body`` (the request)
  or ``masked_response`` (the response) then holds the rewritten JSON body to use instead.
- `GuardedRoutes`: the configuration both middlewares share (routes, caps, policy, guard).

Error answers are built in `guardrails._replies`; event streams are cut in `guardrails._sse`.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence

from ._body import (
    BodyError,
    BodyTooLarge,
    HTTPBody,
    InvalidBody,
    decode_content_encoding,
    default_body,
    is_json_media_type,
    query_bytes,
    request_of,
)
from ._events import DecisionHook, hooks_of, log_extra
from ._exceptions import ExtractionError, GuardrailsError
from ._guard import Guard, GuardSource
from ._judge import Judge, MaskCallback, guard_name
from ._masking import mask_json, same_texts
from ._models import Content, Verdict
from ._policy import FailOpen, validate_fail_open
from ._replies import Reply, error_reply, reply_for
from ._routing import DEFAULT_ROUTE, Route, Router, normalize_path
from ._shapes import answer_content
from ._stream import StreamOptions

__all__ = [
    "STATE_KEY",
    "UNSCANNED_HEADER",
    "GuardedRoutes",
    "Inspection",
    "Matched",
    "Reply",
    "error_reply",
    "stream_options",
]

logger = logging.getLogger("guardrails")

#: Response header marking a request that reached the app unscanned because the guard failed open.
UNSCANNED_HEADER = "x-guardrails-unscanned"
#: Key of the `Verdict` in the request state (``request.state.guardrails``; None when unscanned).
STATE_KEY = "guardrails"


_new = object.__new__

_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(content: Content) -> None:
    for text in content.iter_texts():
        if _SURROGATE.search(text):
            # A lone surrogate (from a \ud800 escape or surrogatepass decoding) cannot be sent to a
            # guard as text, and an app passing it on would fail later: refuse it here.
            raise InvalidBody("the request body contains a lone surrogate", code="invalid_unicode")


def _encoded(headers: Mapping[str, str]) -> bool:
    """A body with a content encoding: rewriting it would mean re-encoding it; not done."""
    return headers.get("content-encoding", "identity").strip().lower() not in ("", "identity")


def _ascii_readings(request: HTTPBody) -> bool:
    """Whether every text the default extractor reads from `request` is ASCII (no lone surrogate).

    True for a JSON body of ASCII bytes without NUL (so read as UTF-8) and without ``\\u``
    (the one escape that makes a character beyond ASCII, e.g. ``\\ud800``), a query
    string of ASCII with no percent escape, and ASCII path parameters: the common chat request,
    whose surrogate scan would cost more than the rest of its reading.
    """
    query = request.query_string
    body = request.body
    media_type = request.media_type
    return (
        (media_type == "application/json" or is_json_media_type(media_type))
        and body.isascii()
        # A byte search (memchr) first: a two-byte search costs ~10x more, and most bodies
        # have no escape at all.
        and (b"\\" not in body or b"\\u" not in body)
        and b"\x00" not in body
        and (not query or (query.isascii() and b"%" not in query))
        and (not request.path_params or all(value.isascii() for value in request.path_params.values()))
    )


def _route_name(route: Route, path: str) -> str:
    """What decisions name a request's route by: the route template, not the path (paths carry
    ids and other user data), unless the catch-all default route matched: its template says
    nothing."""
    return normalize_path(path) if route is DEFAULT_ROUTE else route.path


def _judge(
    route: Route, method: str, route_name: str, *, hooks: Sequence[DecisionHook], fail_open: FailOpen
) -> Judge:
    return Judge(
        f"{method} {route_name}",
        hooks=hooks,
        fail_open=route.fail_open if route.fail_open is not None else fail_open,
        incremental=route.incremental,
        block=route.block,
    )


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
        query_string: the raw query string (given to extractors).
        path_params: the matched route's path parameters (given to extractors).
    """

    __slots__ = (
        "_response",
        "body",
        "content",
        "guard_name",
        "headers",
        "judge",
        "masked_body",
        "masked_response",
        "max_body_size",
        "metadata",
        "method",
        "path",
        "path_params",
        "query_string",
        "route",
        "route_name",
        "unscanned",
        "verdict",
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
        hooks: Sequence[DecisionHook] = (),
        query_string: bytes | str = b"",
        path_params: Mapping[str, str] | None = None,
        judge: Judge | None = None,
        route_name: str | None = None,
    ) -> None:
        self.route = route
        self.path_params: Mapping[str, str] = path_params or {}
        self.method = method
        self.path = path
        self.query_string = query_bytes(query_string)
        self.headers = headers
        self.guard_name = guard_name
        self.max_body_size = max_body_size
        if route_name is None:
            route_name = _route_name(route, path)
        self.route_name = route_name
        self.metadata: Mapping[str, str] = {"route": route_name}
        # A judge holds settings only: a shell that made one for this route and method already
        # (`Matched`) gives it, and none is made per request.
        self.judge = (
            judge
            if judge is not None
            else _judge(route, method, route_name, hooks=hooks, fail_open=fail_open)
        )
        self.body = b""
        self.masked_body: bytes | None = None
        self.masked_response: bytes | None = None
        self._response: tuple[bytes, Mapping[str, str], Content] | None = None
        self.unscanned = False
        self.verdict: Verdict | None = None
        self.content: Content | None = None

    # -- the request --------------------------------------------------------------------------------

    def content_length_error(self, content_length: str | None) -> Reply | None:
        """A 413 if the declared Content-Length is over the cap (a bad value is a 400), else None."""
        if content_length is None:
            return None
        value = content_length.strip()
        if not (value.isascii() and value.isdigit()):  # int() would read "²", which isdigit() accepts
            return self.refuse(InvalidBody("the Content-Length header is invalid", code="bad_length"))
        if int(value) > self.max_body_size:
            return self.too_large()
        return None

    def too_large(self) -> Reply:
        """The 413 for a body over the cap (recorded as ``too_large``)."""
        return self.refuse(BodyTooLarge("the request body is larger than the limit"))

    def refuse(self, error: ExtractionError, kind: str = "prompt") -> Reply:
        """Record input that cannot be checked; the answer refusing it (under every policy)."""
        try:
            self.judge.refused(error, guard=self.guard_name, kind=kind)
        except ExtractionError:
            return reply_for(error, kind)
        # Monitor mode only: the middlewares have none, so this is not reached today.
        return reply_for(error, kind)  # pragma: no cover

    def prepare(self, body: bytes) -> Content | Reply | None:
        """Decode and extract the content to check.

        Returns:
            The `Content` to check; a `Reply` (413, 415, 400, 500) to send instead of calling the
            app; or None when there is nothing to scan (recorded as ``skipped``: run the app).
        """
        self.body = body
        try:
            encoding = self.headers.get("content-encoding")
            decoded = (
                decode_content_encoding(body, encoding, max_size=self.max_body_size) if encoding else body
            )
            extract = self.route.extract
            request = request_of(
                self.method,
                self.path,
                self.headers,
                decoded,
                self.query_string,
                self.path_params,
                # The default reading copies it into its Content; an extractor gets its own.
                self.metadata if extract is None else dict(self.metadata),
            )
            extracted = default_body(request, self.route.scope) if extract is None else extract(request)
            if extracted is None:
                self.judge.record("skipped", guard=self.guard_name)
                return None
            content = Content(extracted) if isinstance(extracted, str) else extracted
            if not isinstance(content, Content):
                raise TypeError(
                    f"an extractor must return Content, str or None, not {type(content).__name__}"
                )
            if (extract is not None and extract is not default_body) or not _ascii_readings(request):
                _check_text(content)
        except BodyError as exc:
            return self.refuse(exc)
        except ExtractionError as exc:
            return self.refuse(InvalidBody(str(exc) or "the request body could not be read"))
        except Exception as exc:
            # A bug in a custom extractor: fail closed. Its message may quote the body: log the type.
            decision = self.judge.record("error", guard=self.guard_name, error=exc)
            logger.error(
                "guardrails extractor of %s raised %s: failing closed",
                self.judge.target,
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

    # -- asking (requests and responses alike) -------------------------------------------------------

    def check(self, guard: Guard, content: Content) -> Reply | None:
        """Ask the guard (``check``); the answer to send instead of the app's, or None to go on."""
        try:
            verdict = self.judge.ask(guard, content, mask=self._masker(content))
        except GuardrailsError as exc:
            return reply_for(exc, content.kind)
        self._went_on(verdict, content)
        return None

    async def acheck(self, guard: Guard, content: Content) -> Reply | None:
        """Ask the guard (``acheck``); the answer to send instead of the app's, or None to go on."""
        try:
            verdict = await self.judge.aask(
                guard, content, mask=self._masker(content) if self.route.mask else None
            )
        except GuardrailsError as exc:
            return reply_for(exc, content.kind)
        # `_went_on`, inline (per request).
        if verdict is None:
            self.unscanned = True
        elif content.kind == "prompt":
            self.verdict = verdict
        return None

    def _went_on(self, verdict: Verdict | None, content: Content) -> None:
        if verdict is None:
            self.unscanned = True
        elif content.kind == "prompt":
            self.verdict = verdict
        return

    # -- masking --------------------------------------------------------------------------------------

    def _masker(self, content: Content) -> MaskCallback | None:
        """How this request goes on masked, on a ``mask`` route (see `guardrails._masking`)."""
        if not self.route.mask:
            return None
        if content is self.content:
            return self._mask_request
        if self._response is not None and content is self._response[2]:
            return self._mask_response
        return None  # a stream window: what was sent cannot be rewritten

    def _mask_request(self, masked: Content) -> bool:
        assert self.content is not None
        if _encoded(self.headers):
            return False
        body = mask_json(self.body, self.content, masked)
        if body is None:
            return False
        request = HTTPBody(
            self.method,
            self.path,
            self.headers,
            body,
            metadata={"route": self.route_name},
            query_string=self.query_string,
            path_params=self.path_params,
        )
        try:
            extracted = (self.route.extract or default_body)(request)
        except Exception:
            return False
        if not same_texts(Content(extracted) if isinstance(extracted, str) else extracted, masked):
            return False
        self.masked_body = body
        return True

    def _mask_response(self, masked: Content) -> bool:
        assert self._response is not None
        body, headers, content = self._response
        if _encoded(headers):
            return False
        rewritten = mask_json(body, content, masked)
        if rewritten is None:
            return False
        try:
            reread = answer_content(rewritten, metadata={"route": self.route_name})
        except Exception:
            return False
        if not same_texts(reread, masked):
            return False
        self.masked_response = rewritten
        return True

    def setup_failed(self, error: BaseException) -> Reply:
        """The answer when the guard could not be made (bad settings): logged with the reason."""
        failure = self.judge.setup_failed(error, guard=self.guard_name)
        return reply_for(failure)

    # -- the response ---------------------------------------------------------------------------------

    def response_content(self, body: bytes, headers: Mapping[str, str]) -> Content | None:
        """What to check in a buffered response of the route: JSON only (else None).

        An OpenAI chat completion is checked as a completion, with every other string beside it;
        any other JSON by all its strings (see `guardrails._shapes.answer_content`).

        Raises:
            BodyError: the response cannot be decoded (an unknown encoding, over the cap).
        """
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if not is_json_media_type(media_type):
            return None
        decoded = decode_content_encoding(
            body, headers.get("content-encoding"), max_size=self.max_body_size * 10
        )
        content = answer_content(decoded, metadata={"route": self.route_name})
        if content is not None and self.route.mask:
            self._response = (body, headers, content)
        return content

    def refuse_response(self, error: ExtractionError) -> Reply:
        """The answer replacing a response that cannot be checked (undecodable, over the cap).

        Refused under every policy: a client can often choose what makes a response unreadable
        (an ``Accept-Encoding``, a prompt asking for a huge answer).
        """
        return self.refuse(error, kind="response")


#: Most paths `GuardedRoutes.known` remembers, and the longest.
_KNOWN_PATHS = 4096
_KNOWN_PATH_LENGTH = 512


class Matched:
    """A guarded (method, path): its route and what every request of it shares (see
    `GuardedRoutes.match`).

    Attributes:
        route: the route guarding it.
        path_params: the route template's parameters in the path (never changed: copied per request).
        route_name: what decisions call the route (`Inspection.route_name`).
        judge: the route's `Judge` for this method (settings only: shared by its requests).
        guard: the guard asked, when it is the same on every request (given, not made from the
            environment); else None, and each request asks the middleware for it.
        guard_name: its name.
        metadata: ``{"route": route_name}``, what the default reading puts on the `Content` (shared:
            never changed, an extractor gets a copy).
    """

    __slots__ = ("guard", "guard_name", "judge", "metadata", "path_params", "route", "route_name")

    def __init__(
        self, route: Route, path_params: dict[str, str], route_name: str, judge: Judge, guard: Guard | None
    ) -> None:
        self.route = route
        self.path_params = path_params
        self.route_name = route_name
        self.metadata: Mapping[str, str] = {"route": route_name}
        self.judge = judge
        self.guard = guard
        self.guard_name = "" if guard is None else guard_name(guard)


def stream_options(
    *,
    stream_window: int,
    stream_first_window: int,
    stream_overlap: int | None,
    stream_idle_flush: float | None,
    sse_window: int | None,
) -> StreamOptions:
    """A middleware's stream options; ``sse_window`` is the deprecated name of ``stream_window``.

    Raises:
        ValueError: an option out of range.
    """
    if sse_window is not None:
        warnings.warn(
            "sse_window is deprecated: use stream_window (the same option in every shell)",
            DeprecationWarning,
            stacklevel=3,
        )
        stream_window = sse_window
    return StreamOptions.of(
        stream_window=stream_window,
        stream_first_window=stream_first_window,
        stream_overlap=stream_overlap,
        stream_idle_flush=stream_idle_flush,
    )


class GuardedRoutes:
    """The configuration both middlewares share, and what they do before reading a request.

    Validates the options, holds the guard (given, or made once from the environment: see
    `GuardSource`), and starts the `Inspection` of a matched request. The middlewares subclass it
    and add only their I/O.
    """

    def __init__(
        self,
        *,
        guard: Guard | None,
        routes: Sequence[Route] | None,
        max_body_size: int,
        fail_open: FailOpen,
        on_decision: DecisionHook | Iterable[DecisionHook] | None,
        sse_window: int = 1000,
        max_response_size: int,
        stream: StreamOptions | None = None,
    ) -> None:
        if max_body_size < 0:
            raise ValueError("max_body_size must not be negative")
        if stream is None:
            stream = StreamOptions.of(stream_window=sse_window)
        if max_response_size < 0:
            raise ValueError("max_response_size must not be negative")
        self.router = Router(routes)
        #: What matching decided per path (below the root path) and method: a `Matched`, or None
        #: for a request no route guards, so that the next such request costs two lookups instead
        #: of matching (which normalises the path in several forms). Filled by `match` only with
        #: explicit routes, where the answer depends on nothing but the method and the path.
        self.known: dict[str, dict[str, Matched | None]] = {}
        self._remember = routes is not None
        self.max_body_size = max_body_size
        self.fail_open = validate_fail_open(fail_open)
        self.hooks = hooks_of(on_decision)
        #: How event streams of ``scan_response`` routes are cut and flushed.
        self.stream = stream
        self.sse_window = stream.window
        self.max_response_size = max_response_size
        self.guards = GuardSource(guard)
        for given in {
            id(g): g for g in (guard, *(r.guard for r in self.router.routes)) if g is not None
        }.values():
            self._check_capacity(given)

    def _check_capacity(self, guard: Guard) -> None:
        """Warn, once at start-up, when a body under the cap can hold more text than the guard checks.

        Such requests are refused (413 ``content_too_large``) under every policy, never let through:
        the warning is so that legitimate large documents are not a surprise in production.
        """
        limit = getattr(guard, "max_text_chars", None)
        if isinstance(limit, int) and self.max_body_size > limit:
            logger.warning(
                "max_body_size is %d bytes, but the %s guard checks at most %d characters "
                "in one call: requests with more text are refused with 413 (lower max_body_size, or "
                "raise the guard's limit)",
                self.max_body_size,
                guard_name(guard),
                limit,
            )

    def __repr__(self) -> str:
        return f"GuardMiddleware(guard={self.guards!r}, routes={list(self.router.routes)!r})"

    def _needs_default_guard(self) -> bool:
        return self.guards.given is None and any(route.guard is None for route in self.router.routes)

    def match(self, method: str, path: str, *, has_body: bool = False) -> Matched | None:
        """The route guarding ``method path`` (``path`` below the root path), and what a request of
        it needs that does not change from one request to the next; None when no route guards it.

        With explicit routes the answer is remembered in `known`. Bounded: the paths remembered
        are short, and when there are `_KNOWN_PATHS` of them they are all forgotten (a client
        sending endless distinct paths makes matching slower, never the memory larger).

        Args:
            method: the request method, as received.
            path: the request path below the app's root path, as received.
            has_body: whether the request declares a body (see `Router.resolve`).
        """
        resolved = self.router.resolve(method, path, has_body=has_body)
        matched = None if resolved is None else self._matched(method, path, *resolved)
        if self._remember and len(path) <= _KNOWN_PATH_LENGTH:
            known = self.known
            methods = known.get(path)
            if methods is None:
                if len(known) >= _KNOWN_PATHS:
                    known.clear()
                methods = known[path] = {}
            methods[method] = matched
        return matched

    def _matched(self, method: str, path: str, route: Route, path_params: dict[str, str]) -> Matched:
        route_name = _route_name(route, path)
        # A guard given (to the route or the middleware) is the same on every request; one made
        # from the environment is asked for on each (`_inspect`), so that bad settings are retried.
        guard = route.guard
        if guard is None and not self.guards.owned:
            guard = self.guards.given
        return Matched(
            route,
            path_params,
            route_name,
            _judge(route, method, route_name, hooks=self.hooks, fail_open=self.fail_open),
            guard,
        )

    def inspect(
        self,
        matched: Matched,
        *,
        method: str,
        path: str,
        headers: Mapping[str, str],
        query_string: bytes | str,
    ) -> tuple[Inspection, Guard | None, BaseException | None]:
        """Start the inspection of a request `match` found guarded: its guard, or why there is none."""
        return self.start(matched, method, path, headers, query_bytes(query_string))

    def start(
        self, matched: Matched, method: str, path: str, headers: Mapping[str, str], query_string: bytes
    ) -> tuple[Inspection, Guard | None, BaseException | None]:
        """`inspect` with positional arguments and the query string already bytes (per request)."""
        guard = matched.guard
        if guard is None:
            guard, name, setup_error = self._guard(matched.route)
        else:
            name, setup_error = matched.guard_name, None
        # What Inspection(...) makes with the matched route's judge and name, without its keyword
        # arguments and defaults: every slot set here.
        inspection: Inspection = _new(Inspection)
        inspection.route = matched.route
        params = matched.path_params
        # A copy: an extractor may change what it is given; the remembered match must not.
        inspection.path_params = dict(params) if params else {}
        inspection.method = method
        inspection.path = path
        inspection.query_string = query_string
        inspection.headers = headers
        inspection.guard_name = name
        inspection.max_body_size = self.max_body_size
        inspection.route_name = matched.route_name
        inspection.metadata = matched.metadata
        inspection.judge = matched.judge
        inspection.body = b""
        inspection.masked_body = None
        inspection.masked_response = None
        inspection._response = None
        inspection.unscanned = False
        inspection.verdict = None
        inspection.content = None
        return inspection, guard, setup_error

    def _guard(self, route: Route) -> tuple[Guard | None, str, BaseException | None]:
        try:
            guard = route.guard or self.guards.get()
            return guard, guard_name(guard), None
        except Exception as exc:
            return None, "unconfigured", exc

    def _inspect(
        self,
        route: Route,
        *,
        method: str,
        path: str,
        headers: Mapping[str, str],
        query_string: bytes | str = b"",
        path_params: Mapping[str, str] | None = None,
    ) -> tuple[Inspection, Guard | None, BaseException | None]:
        """Start a matched request's inspection: its guard, or why there is none (bad settings)."""
        guard, name, setup_error = self._guard(route)
        inspection = Inspection(
            route,
            method=method,
            path=path,
            headers=headers,
            guard_name=name,
            fail_open=self.fail_open,
            max_body_size=self.max_body_size,
            hooks=self.hooks,
            query_string=query_string,
            path_params=path_params,
        )
        return inspection, guard, setup_error
