"""The one guarded model transport: every option and behaviour, for httpx and httpx2 clients alike.

The model transports (`guardrails.integrations.openai.GuardedTransport` for httpx,
``GuardedHttpx2Transport`` for openai 3.x's httpx2, `guardrails.integrations.anthropic.GuardedTransport`)
are `TransportCore` with three class attributes, nothing else:

- ``wire``: the HTTP package's classes (`wire_of`: httpx and httpx2 have the same API in two
  packages, so the code that speaks it is written once, here);
- ``api``: how the API's calls are read (`Api`: which endpoints, what is checked in a request, in
  a JSON answer, in each event of a stream; its tool results and tool calls);
- ``blocked``: the `Blocked` subclass raised, one the SDK passes through as it is (and
  `TransportCore.sdk_error` for an SDK that retries every other exception).

What a request goes through is sans-I/O (`Call`: the reading, the `Judge` of each check, the
masking rewrite); what does I/O is the sync and the async handler of `TransportCore`, which only
read, ask, send and rebuild. Streams are checked by the scanner every shell shares
(`guardrails._stream`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, Protocol, TypeVar, cast

from .._body import is_json_media_type
from .._events import DecisionHook, hooks_of, log_extra
from .._exceptions import Blocked, ExtractionError, GuardrailsError
from .._guard import GuardSource, InProcessGuard
from .._judge import Judge, MaskCallback, block_categories, guard_name
from .._masking import mask_json, same_texts
from .._models import Content
from .._policy import FailOpen, validate_fail_open
from .._shapes import MessageScope
from .._sse import SSEScanner, SSEWindow
from .._stream import CHECK_CONCURRENCY, ScanThread, StreamOptions, ascan

if TYPE_CHECKING:
    from .._guard import Guard

__all__ = ["Api", "Call", "TransportCore", "Wire", "endpoint_by_path", "wire_of"]

logger = logging.getLogger("guardrails")

#: Bytes of events held back at most before their text is checked, whatever their text's length.
MAX_WINDOW_BYTES = 65536
_ENCODING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


# -- what httpx and httpx2 share ------------------------------------------------------------------


class _Headers(Protocol):
    def get(self, key: str) -> Any: ...

    def multi_items(self) -> list[tuple[str, str]]: ...


class _URL(Protocol):
    @property
    def path(self) -> str: ...


class _Message(Protocol):
    @property
    def headers(self) -> _Headers: ...

    @property
    def extensions(self) -> Any: ...

    def read(self) -> bytes: ...

    async def aread(self) -> bytes: ...


class _Request(_Message, Protocol):
    @property
    def method(self) -> str: ...

    @property
    def url(self) -> _URL: ...


class _Response(_Message, Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def is_success(self) -> bool: ...

    def iter_bytes(self) -> Iterator[bytes]: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


Req = TypeVar("Req", bound=_Request)
Resp = TypeVar("Resp", bound=_Response)
Req_contra = TypeVar("Req_contra", bound=_Request, contravariant=True)
Resp_co = TypeVar("Resp_co", bound=_Response, covariant=True)


class _Sender(Protocol[Req_contra, Resp_co]):
    def handle_request(self, request: Req_contra) -> Resp_co: ...

    def close(self) -> None: ...


class _AsyncSender(Protocol[Req_contra, Resp_co]):
    async def handle_async_request(self, request: Req_contra) -> Resp_co: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Wire:
    """The classes of one HTTP package (httpx or httpx2: the same API), made by `wire_of`."""

    package: str
    request: Callable[..., Any]
    response: Callable[..., Any]
    sync_base: type
    async_base: type
    sync_default: Callable[[], Any]
    async_default: Callable[[], Any]
    sync_events: type[SyncEvents]
    async_events: type[AsyncEvents]


def wire_of(package: ModuleType) -> Wire:
    """The `Wire` of ``httpx`` or ``httpx2`` (its event streams are its own byte stream classes)."""
    module = f"{__name__}.{package.__name__}"
    return Wire(
        package=package.__name__,
        request=package.Request,
        response=package.Response,
        sync_base=package.BaseTransport,
        async_base=package.AsyncBaseTransport,
        sync_default=package.HTTPTransport,
        async_default=package.AsyncHTTPTransport,
        sync_events=type("SyncEvents", (SyncEvents, package.SyncByteStream), {"__module__": module}),
        async_events=type("AsyncEvents", (AsyncEvents, package.AsyncByteStream), {"__module__": module}),
    )


def _media_type(headers: _Headers) -> str:
    return str(headers.get("content-type") or "").split(";")[0].strip().lower()


def _decoded(headers: _Headers) -> list[tuple[str, str]]:
    # A body handed on is whole or decoded: its encoding and length headers no longer describe it.
    return [(k, v) for k, v in headers.multi_items() if k.lower() not in _ENCODING_HEADERS]


# -- what an API says -----------------------------------------------------------------------------


def endpoint_by_path(method: str, path: str, media_type: str, endpoints: Mapping[str, str]) -> str | None:
    """A request's endpoint by the end of its path (`endpoints`: ending -> name, the first that
    matches); ``other`` for any other POST, PUT or PATCH but an upload (multipart, octet-stream):
    checked by every JSON string it holds. None (unchecked) for reads, deletes and uploads."""
    if method not in ("POST", "PUT", "PATCH"):
        return None
    path = path.rstrip("/")
    for ending, name in endpoints.items():
        if path.endswith(ending):
            return name
    if media_type.startswith("multipart/") or media_type == "application/octet-stream":
        return None  # file uploads
    return "other"


class _AnswerReader(Protocol):
    def __call__(
        self, body: bytes, *, metadata: Mapping[str, str] | None = None, prompt: str | None = None
    ) -> Content | None: ...


@dataclass(frozen=True, slots=True)
class Api:
    """How one model API's calls are read (OpenAI's, Anthropic's): the readers a `Call` asks.

    Attributes:
        generating: the endpoints whose answers are model output (checked with ``scan_response``).
        endpoint: ``(method, path, media_type)``: a name for what the request is; None for a
            request that passes unchecked.
        request: ``(endpoint, body, path, scope)``: what to check in a request body (`scope`
            narrows its chat messages), None when it holds no text; raises `ExtractionError` for
            a body that is not what the endpoint takes.
        tool_results: ``(endpoint, body, metadata)``: the current turn's tool results, each
            checked as a tool's output.
        answer: ``(body, *, metadata, prompt)``: what to check in a JSON answer; None: no text.
        tool_calls: ``(body, metadata)``: a JSON answer's tool calls, each checked as a tool call.
        event_text: a fresh reader of the generated text of each event of one stream.
    """

    generating: frozenset[str]
    endpoint: Callable[[str, str, str], str | None]
    request: Callable[[Any, bytes, str, MessageScope], Content | None]
    tool_results: Callable[[str, bytes, Mapping[str, str]], list[Content]]
    answer: _AnswerReader
    tool_calls: Callable[[bytes, Mapping[str, str]], list[Content]]
    event_text: Callable[[], Callable[[bytes], str]]


_Check = tuple[Content, "MaskCallback | None"]


class Call:
    """One guarded API call, sans I/O: where it goes, the judge of each of its checks, what it asked.

    With ``mask``, a Block of sensitive data only that the guard masked lets the call go on
    masked: `take_masked` then gives the rewritten JSON body (of the request, then of the answer).
    """

    __slots__ = (
        "api",
        "endpoint",
        "guard",
        "guard_name",
        "judge",
        "mask",
        "masked",
        "metadata",
        "path",
        "prompt",
        "scope",
    )

    def __init__(
        self,
        api: Api,
        guard: Guard,
        judge: Judge,
        endpoint: str,
        path: str,
        *,
        scope: MessageScope,
        mask: bool,
    ) -> None:
        self.api = api
        self.guard = guard
        self.guard_name = guard_name(guard)
        self.judge = judge
        self.endpoint = endpoint
        self.path = path
        self.scope = scope
        self.mask = mask
        self.masked: bytes | None = None
        self.metadata: Mapping[str, str] = {"route": path}
        self.prompt: str | None = None

    def prompt_checks(self, body: bytes) -> list[_Check]:
        """The checks of the request body: the prompt (maskable), then the turn's tool results.

        Raises:
            ExtractionError: the body cannot be read (recorded ``invalid``: it is never sent).
        """
        try:
            content = self.api.request(self.endpoint, body, self.path, self.scope)
        except ExtractionError as exc:
            decision = self.judge.record("invalid", guard=self.guard_name, error=exc)
            logger.error(
                "guardrails could not read the request of %s: refusing to send it",
                self.judge.target,
                extra=log_extra(decision),
            )
            raise
        if content is None:
            self.judge.record("skipped", guard=self.guard_name)
            return []
        self.metadata = content.metadata
        self.prompt = content.as_text()
        tools = self.api.tool_results(self.endpoint, body, self.metadata)
        return [(content, self._masker(body, content)), *((tool, None) for tool in tools)]

    def answer_checks(self, body: bytes) -> list[_Check]:
        """The checks of a JSON answer: its text (maskable), then its tool calls."""
        content = self.api.answer(body, metadata=self.metadata, prompt=self.prompt)
        if content is None:
            self.judge.record("skipped", guard=self.guard_name, kind="response")
            return []
        tools = self.api.tool_calls(body, self.metadata)
        return [(content, self._masker(body, content)), *((tool, None) for tool in tools)]

    def window(self, text: str) -> Content:
        """The check of one window of a streamed answer."""
        return Content(text, kind="response", metadata=self.metadata)

    def take_masked(self) -> bytes | None:
        """The body rewritten by the last check that went on masked (then forgotten)."""
        masked, self.masked = self.masked, None
        return masked

    def _masker(self, body: bytes, content: Content) -> MaskCallback | None:
        """Rewrites `body` (the request's, or a JSON answer's) with the masked strings."""
        if not self.mask:
            return None

        def rewrite(masked: Content) -> bool:
            self.masked = None
            rewritten = mask_json(body, content, masked)
            if rewritten is None:
                return False
            try:
                if content.kind == "prompt":
                    reread = self.api.request(self.endpoint, rewritten, self.path, self.scope)
                else:
                    reread = self.api.answer(rewritten, metadata=self.metadata, prompt=self.prompt)
            except ExtractionError:
                return False
            if not same_texts(reread, masked):
                return False  # a string the rewrite cannot reach: the Block stands
            self.masked = rewritten
            return True

        return rewrite


# -- the transport --------------------------------------------------------------------------------


class TransportCore(Generic[Req, Resp]):
    """A guarded transport, sync and async (the arguments: `guardrails.integrations.openai.GuardedTransport`).

    A subclass is also its package's ``BaseTransport`` and ``AsyncBaseTransport``, and sets
    ``wire``, ``api`` and ``blocked``.
    """

    wire: ClassVar[Wire]
    api: ClassVar[Api]
    #: The `Blocked` subclass raised on Block: one the SDK passes through as it is.
    blocked: ClassVar[type[Blocked]] = Blocked

    def __init__(
        self,
        guard: Guard | None = None,
        *,
        transport: _Sender[Req, Resp] | _AsyncSender[Req, Resp] | None = None,
        scan_response: bool = True,
        fail_open: FailOpen = False,
        stream_window: int = 1000,
        stream_overlap: int | None = None,
        on_decision: DecisionHook | Iterable[DecisionHook] | None = None,
        roles: Iterable[str] | None = None,
        last_turn: bool = False,
        incremental: bool = False,
        block: Collection[str] | None = None,
        mask: bool = False,
        stream_first_window: int = 48,
        stream_idle_flush: float | None = 0.05,
    ) -> None:
        self.stream = StreamOptions.of(
            stream_window=stream_window,
            stream_first_window=stream_first_window,
            stream_overlap=stream_overlap,
            stream_idle_flush=stream_idle_flush,
        )
        wire = self.wire
        if transport is not None and not isinstance(transport, (wire.sync_base, wire.async_base)):
            raise TypeError(f"transport must be an {wire.package} transport, not {type(transport).__name__}")
        self.scan_response = scan_response
        self.fail_open = validate_fail_open(fail_open)
        self.stream_window = self.stream.window
        self.stream_overlap = self.stream.overlap
        self.hooks = hooks_of(on_decision)
        self.scope = MessageScope(roles, last_turn=last_turn)
        self.incremental = bool(incremental)
        self.block = block_categories(block)
        self.mask = bool(mask)
        self._guards = GuardSource(guard)
        self._transport = transport
        self._sync = cast("_Sender[Req, Resp]", transport) if isinstance(transport, wire.sync_base) else None
        self._async = (
            cast("_AsyncSender[Req, Resp]", transport) if isinstance(transport, wire.async_base) else None
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(guard={self._guards!r}, scan_response={self.scan_response!r}, "
            f"fail_open={self.fail_open!r}, stream_window={self.stream_window}, stream_overlap={self.stream_overlap})"
        )

    @property
    def guard(self) -> Guard:
        """The guard asked (made from the environment at first use when none was given)."""
        return self._guards.get()

    def sdk_error(self, error: GuardrailsError) -> GuardrailsError:
        """The error to raise in place of `error` (the SDK's own error type, when it retries others)."""
        return error

    def _raise(self, error: GuardrailsError) -> NoReturn:
        translated = self.sdk_error(error)
        if translated is error:
            raise error
        raise translated from None

    # -- parts made at first use ----------------------------------------------------------------

    def _inner(self, sync: bool) -> Any:
        inner = self._sync if sync else self._async
        if inner is None:
            with self._lock:
                inner = self._sync if sync else self._async
                if inner is None:
                    if self._transport is not None:
                        other = "sync" if not sync else "async"
                        client = "AsyncClient" if not sync else "Client"
                        raise TypeError(
                            f"the wrapped transport is {other} only: use it with {self.wire.package}.{client}"
                        )
                    if sync:
                        inner = self._sync = self.wire.sync_default()
                    else:
                        inner = self._async = self.wire.async_default()
        return inner

    def _call(self, request: Req) -> Call | None:
        path = request.url.path
        endpoint = self.api.endpoint(request.method, path, _media_type(request.headers))
        if endpoint is None:
            return None
        judge = Judge(
            f"{request.method} {path}",
            hooks=self.hooks,
            fail_open=self.fail_open,
            blocked=self.blocked,
            incremental=self.incremental,
            block=self.block,
        )
        return Call(self.api, self.guard, judge, endpoint, path, scope=self.scope, mask=self.mask)

    def _sent(self, request: Req, call: Call) -> Req:
        """The request sent: as it came, or with the masked body (and the length that goes with it)."""
        body = call.take_masked()
        if body is None:
            return request
        masked: Req = self.wire.request(
            request.method,
            request.url,
            headers=_decoded(request.headers),
            content=body,
            extensions=request.extensions,
        )
        return masked

    def _streams(self, call: Call, response: Resp) -> bool | None:
        """How the answer is checked: streamed (True), read whole (False) or not at all (None)."""
        if not self.scan_response or call.endpoint not in self.api.generating or not response.is_success:
            return None
        media_type = _media_type(response.headers)
        if media_type == "text/event-stream":
            return True
        return False if is_json_media_type(media_type) else None

    def _rebuilt(self, response: Resp, request: Req, *, stream: object = None, body: bytes = b"") -> Resp:
        """The response handed on: decoded, with a checked body or a stream that checks as it goes."""
        rebuilt: Resp = self.wire.response(
            response.status_code,
            headers=_decoded(response.headers),
            content=None if stream is not None else body,
            stream=stream,
            extensions=response.extensions,
            request=request,
        )
        return rebuilt

    def scanner(self) -> SSEScanner:
        """A new scanner of one event stream, cut by this transport's `StreamOptions`."""
        return SSEScanner(
            window_chars=self.stream.window,
            overlap=self.stream.overlap,
            first_window=self.stream.first_window,
            max_window_bytes=MAX_WINDOW_BYTES,
            event_text=self.api.event_text(),
        )

    # -- sync ------------------------------------------------------------------------------------

    def handle_request(self, request: Req) -> Resp:
        """Check the request, send it, and hand back the response (checked as it is read)."""
        inner: _Sender[Req, Resp] = self._inner(True)
        try:
            call = self._call(request)
            if call is None:
                return inner.handle_request(request)
            for content, mask in call.prompt_checks(request.read()):
                call.judge.ask(call.guard, content, mask=mask)
        except GuardrailsError as exc:
            self._raise(exc)
        request = self._sent(request, call)
        response = inner.handle_request(request)
        streams = self._streams(call, response)
        if streams:
            return self._rebuilt(response, request, stream=self.wire.sync_events(self, call, response))
        if streams is None:
            return response
        try:
            body = response.read()
        finally:
            response.close()
        try:
            for content, mask in call.answer_checks(body):
                call.judge.ask(call.guard, content, mask=mask)
        except GuardrailsError as exc:
            self._raise(exc)
        return self._rebuilt(response, request, body=call.take_masked() or body)

    def close(self) -> None:
        """Close the sync side: the wrapped transport it made (and a guard made from the environment)."""
        with self._lock:
            inner = self._sync if self._transport is None else None
        if inner is not None:
            inner.close()
        self._guards.close()

    # -- async -----------------------------------------------------------------------------------

    async def handle_async_request(self, request: Req) -> Resp:
        """Check the request, send it, and hand back the response (checked as it is read)."""
        inner: _AsyncSender[Req, Resp] = self._inner(False)
        try:
            call = self._call(request)
            if call is None:
                return await inner.handle_async_request(request)
            for content, mask in call.prompt_checks(await request.aread()):
                await call.judge.aask(call.guard, content, mask=mask)
        except GuardrailsError as exc:
            self._raise(exc)
        request = self._sent(request, call)
        response = await inner.handle_async_request(request)
        streams = self._streams(call, response)
        if streams:
            return self._rebuilt(response, request, stream=self.wire.async_events(self, call, response))
        if streams is None:
            return response
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        try:
            for content, mask in call.answer_checks(body):
                await call.judge.aask(call.guard, content, mask=mask)
        except GuardrailsError as exc:
            self._raise(exc)
        return self._rebuilt(response, request, body=call.take_masked() or body)

    async def aclose(self) -> None:
        """Close the async side: the wrapped transport it made (and a guard made from the environment)."""
        with self._lock:
            inner = self._async if self._transport is None else None
        if inner is not None:
            await inner.aclose()
        await self._guards.aclose()


# -- streamed answers -------------------------------------------------------------------------------


class _Events:
    """An event stream whose windows reach the client once their text is allowed, in order."""

    def __init__(self, transport: TransportCore[Any, Any], call: Call, response: _Response) -> None:
        self._transport = transport
        self._call = call
        self._response = response


class SyncEvents(_Events):
    """Read by a helper thread (`ScanThread`), so held text is checked and handed on when the model
    goes quiet for ``stream_idle_flush`` seconds; a remote guard's checks of successive windows
    overlap in time (on worker threads), each window still released in order after its own check.
    """

    def __iter__(self) -> Iterator[bytes]:
        remote = not isinstance(self._call.guard, InProcessGuard)
        # The helper thread reads the network; closing the response is what ends a read in progress.
        scan = ScanThread(
            self._response.iter_bytes(),
            self._transport.scanner(),
            self._allowed,
            idle_flush=self._transport.stream.idle_flush,
            concurrency=CHECK_CONCURRENCY if remote else 1,
        )
        try:
            for window in scan:
                yield window.data
        finally:
            self._response.close()
            scan.close()

    def _allowed(self, window: SSEWindow) -> bool:
        # A Block raises (the transport's `blocked` class) out of the stream's iterator.
        try:
            self._call.judge.ask(self._call.guard, self._call.window(window.text))
        except GuardrailsError as exc:
            self._transport._raise(exc)
        return True

    def close(self) -> None:
        self._response.close()


class AsyncEvents(_Events):
    """`SyncEvents` for async clients (`ascan`: checks run in tasks, released in order)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            windows = ascan(
                self._response.aiter_bytes(),
                self._transport.scanner(),
                self._allowed,
                idle_flush=self._transport.stream.idle_flush,
            )
            async with aclosing(windows):
                async for window in windows:
                    yield window.data
        finally:
            await self._response.aclose()

    async def _allowed(self, window: SSEWindow) -> bool:
        try:
            await self._call.judge.aask(self._call.guard, self._call.window(window.text))
        except GuardrailsError as exc:
            self._transport._raise(exc)
        return True

    async def aclose(self) -> None:
        await self._response.aclose()
