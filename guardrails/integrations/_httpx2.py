"""The guarded ``httpx2`` transport both model integrations build on (openai 3.x, anthropic 2.x).

One class for sync and async clients. A subclass says what is checked (`Httpx2Transport.endpoint`,
`prompt_contents`, `answer_contents`, `event_text`) and which exceptions its SDK passes through
(`blocked`, `sdk_error`); this module does the rest: it asks every check through one `Judge`
(the pipeline every shell shares), sends the request, reads a JSON answer whole before the client
sees a byte, and checks an event stream as it streams with the scanner every shell shares
(`guardrails._stream`: adaptive windows, an idle flush, concurrent checks for remote guards, text
released in order and only once checked).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import aclosing
from typing import TYPE_CHECKING, ClassVar

import httpx2

from .._body import is_json_media_type
from .._events import DecisionHook, hooks_of, log_extra
from .._exceptions import Blocked, ExtractionError, GuardrailsError
from .._guard import GuardSource, InProcessGuard
from .._judge import Judge, guard_name
from .._models import Content
from .._policy import FailOpen, validate_fail_open
from .._sse import SSEScanner, SSEWindow
from .._stream import CHECK_CONCURRENCY, ScanThread, StreamOptions, ascan

if TYPE_CHECKING:
    from .._guard import Guard

__all__ = ["Call", "Httpx2Transport"]

logger = logging.getLogger("guardrails")

#: Bytes of events held back at most before their text is checked, whatever their text's length.
MAX_WINDOW_BYTES = 65536
_ENCODING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class Call:
    """One guarded API call: where it goes, the judge of each of its checks, what it asked."""

    __slots__ = ("endpoint", "guard", "guard_name", "judge", "metadata", "prompt")

    def __init__(self, guard: Guard, judge: Judge, endpoint: str, path: str) -> None:
        self.guard = guard
        self.guard_name = guard_name(guard)
        self.judge = judge
        self.endpoint = endpoint
        self.metadata: dict[str, str] = {"route": path}
        self.prompt: str | None = None


class Httpx2Transport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """The shared machinery of the guarded httpx2 transports (see the subclasses' docs)."""

    #: The `Blocked` subclass raised on Block: one the SDK passes through as it is.
    blocked: ClassVar[type[Blocked]] = Blocked

    def __init__(
        self,
        guard: Guard | None = None,
        *,
        transport: httpx2.BaseTransport | httpx2.AsyncBaseTransport | None = None,
        scan_response: bool = True,
        fail_open: FailOpen = False,
        stream_window: int = 1000,
        stream_overlap: int | None = None,
        on_decision: DecisionHook | Iterable[DecisionHook] | None = None,
        stream_first_window: int = 48,
        stream_idle_flush: float | None = 0.05,
    ) -> None:
        self.stream = StreamOptions.of(
            stream_window=stream_window,
            stream_first_window=stream_first_window,
            stream_overlap=stream_overlap,
            stream_idle_flush=stream_idle_flush,
        )
        if transport is not None and not isinstance(
            transport, (httpx2.BaseTransport, httpx2.AsyncBaseTransport)
        ):
            raise TypeError(f"transport must be an httpx2 transport, not {type(transport).__name__}")
        self.scan_response = scan_response
        self.fail_open = validate_fail_open(fail_open)
        self.stream_window = self.stream.window
        self.stream_overlap = self.stream.overlap
        self.hooks = hooks_of(on_decision)
        self._guards = GuardSource(guard)
        self._transport = transport
        self._sync = transport if isinstance(transport, httpx2.BaseTransport) else None
        self._async = transport if isinstance(transport, httpx2.AsyncBaseTransport) else None
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

    # -- what a subclass says ---------------------------------------------------------------------

    def endpoint(self, method: str, path: str, media_type: str) -> str | None:
        """A name for what the request is; None for requests that pass unchecked."""
        raise NotImplementedError

    def generating(self, endpoint: str) -> bool:
        """Whether the endpoint's answer is model output (checked with ``scan_response``)."""
        raise NotImplementedError

    def prompt_contents(self, call: Call, body: bytes) -> list[Content]:
        """What to check in the request body (raise `ExtractionError` for a body it cannot read)."""
        raise NotImplementedError

    def answer_contents(self, call: Call, body: bytes) -> list[Content]:
        """What to check in a JSON answer."""
        raise NotImplementedError

    def event_text(self) -> Callable[[bytes], str]:
        """A fresh reader of the generated text of each event of one stream."""
        raise NotImplementedError

    def sdk_error(self, error: GuardrailsError) -> GuardrailsError:
        """The error to raise in place of `error` (the SDK's own error type, when it retries others)."""
        return error

    @contextlib.contextmanager
    def _sdk_errors(self) -> Iterator[None]:
        try:
            yield
        except GuardrailsError as exc:
            translated = self.sdk_error(exc)
            if translated is exc:
                raise
            raise translated from None

    # -- the parts made at first use ----------------------------------------------------------------

    def _sync_transport(self) -> httpx2.BaseTransport:
        with self._lock:
            if self._sync is None:
                if self._transport is not None:
                    raise TypeError("the wrapped transport is async only: use it with httpx2.AsyncClient")
                self._sync = httpx2.HTTPTransport()
            return self._sync

    def _async_transport(self) -> httpx2.AsyncBaseTransport:
        with self._lock:
            if self._async is None:
                if self._transport is not None:
                    raise TypeError("the wrapped transport is sync only: use it with httpx2.Client")
                self._async = httpx2.AsyncHTTPTransport()
            return self._async

    def _call(self, request: httpx2.Request) -> Call | None:
        media_type = str(request.headers.get("content-type", "")).split(";")[0].strip().lower()
        endpoint = self.endpoint(request.method, request.url.path, media_type)
        if endpoint is None:
            return None
        judge = Judge(
            f"{request.method} {request.url.path}",
            hooks=self.hooks,
            fail_open=self.fail_open,
            blocked=self.blocked,
        )
        return Call(self.guard, judge, endpoint, request.url.path)

    def _prompts(self, call: Call, body: bytes) -> list[Content]:
        try:
            contents = self.prompt_contents(call, body)
        except ExtractionError as exc:
            decision = call.judge.record("invalid", guard=call.guard_name, error=exc)
            logger.error(
                "guardrails could not read the request of %s: refusing to send it",
                call.judge.target,
                extra=log_extra(decision),
            )
            raise
        if not contents:
            call.judge.record("skipped", guard=call.guard_name)
        return contents

    def _answers(self, call: Call, body: bytes) -> list[Content]:
        contents = self.answer_contents(call, body)
        if not contents:
            call.judge.record("skipped", guard=call.guard_name, kind="response")
        return contents

    def _stream_windows(self) -> SSEScanner:
        """A new scanner of one event stream, cut by this transport's `StreamOptions`."""
        return SSEScanner(
            window_chars=self.stream.window,
            overlap=self.stream.overlap,
            first_window=self.stream.first_window,
            max_window_bytes=MAX_WINDOW_BYTES,
            event_text=self.event_text(),
        )

    def _checked_answer(self, call: Call, response: httpx2.Response) -> str | None:
        """How the answer is checked: ``"stream"``, ``"json"`` or None (handed on as it is)."""
        if not self.scan_response or not self.generating(call.endpoint) or not response.is_success:
            return None
        media_type = str(response.headers.get("content-type", "")).split(";")[0].strip().lower()
        if media_type == "text/event-stream":
            return "stream"
        return "json" if is_json_media_type(media_type) else None

    # -- sync ------------------------------------------------------------------------------------

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Check the request, send it, and hand back the response (checked as it is read)."""
        inner = self._sync_transport()
        with self._sdk_errors():
            call = self._call(request)
            if call is None:
                return inner.handle_request(request)
            for content in self._prompts(call, request.read()):
                call.judge.ask(call.guard, content)
        response = inner.handle_request(request)
        how = self._checked_answer(call, response)
        if how == "stream":
            return _rebuilt(response, request, stream=_SyncEvents(self, response, call))
        if how is None:
            return response
        try:
            body = response.read()
        finally:
            response.close()
        with self._sdk_errors():
            for content in self._answers(call, body):
                call.judge.ask(call.guard, content)
        return _rebuilt(response, request, body=body)

    def close(self) -> None:
        """Close the sync side: the wrapped transport it made (and a guard made from the environment)."""
        with self._lock:
            inner = self._sync if self._transport is None else None
        if inner is not None:
            inner.close()
        self._guards.close()

    # -- async -----------------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Check the request, send it, and hand back the response (checked as it is read)."""
        inner = self._async_transport()
        with self._sdk_errors():
            call = self._call(request)
            if call is None:
                return await inner.handle_async_request(request)
            for content in self._prompts(call, await request.aread()):
                await call.judge.aask(call.guard, content)
        response = await inner.handle_async_request(request)
        how = self._checked_answer(call, response)
        if how == "stream":
            return _rebuilt(response, request, stream=_AsyncEvents(self, response, call))
        if how is None:
            return response
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        with self._sdk_errors():
            for content in self._answers(call, body):
                await call.judge.aask(call.guard, content)
        return _rebuilt(response, request, body=body)

    async def aclose(self) -> None:
        """Close the async side: the wrapped transport it made (and a guard made from the environment)."""
        with self._lock:
            inner = self._async if self._transport is None else None
        if inner is not None:
            await inner.aclose()
        await self._guards.aclose()


def _rebuilt(
    response: httpx2.Response,
    request: httpx2.Request,
    *,
    stream: httpx2.SyncByteStream | httpx2.AsyncByteStream | None = None,
    body: bytes = b"",
) -> httpx2.Response:
    """The response handed on: decoded (its encoding headers dropped), checked or checking."""
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _ENCODING_HEADERS]
    return httpx2.Response(
        response.status_code,
        headers=headers,
        content=None if stream is not None else body,
        stream=stream,
        extensions=response.extensions,
        request=request,
    )


class _SyncEvents(httpx2.SyncByteStream):
    """An event stream whose windows reach the client once their text is allowed.

    Read by a helper thread (`ScanThread`), so held text is checked and handed on when the model
    goes quiet for ``stream_idle_flush`` seconds; a remote guard's checks of successive windows
    overlap in time (on worker threads), each window still released in order after its own check.
    """

    def __init__(self, transport: Httpx2Transport, response: httpx2.Response, call: Call) -> None:
        self._transport = transport
        self._response = response
        self._call = call

    def __iter__(self) -> Iterator[bytes]:
        remote = not isinstance(self._call.guard, InProcessGuard)
        # The helper thread reads the network; closing the response is what ends a read in progress.
        scan = ScanThread(
            self._response.iter_bytes(),
            self._transport._stream_windows(),
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
        with self._transport._sdk_errors():
            content = Content(window.text, kind="response", metadata=self._call.metadata)
            self._call.judge.ask(self._call.guard, content)
        return True

    def close(self) -> None:
        self._response.close()


class _AsyncEvents(httpx2.AsyncByteStream):
    """`_SyncEvents` for async clients (`ascan`: checks run in tasks, released in order)."""

    def __init__(self, transport: Httpx2Transport, response: httpx2.Response, call: Call) -> None:
        self._transport = transport
        self._response = response
        self._call = call

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            windows = ascan(
                self._response.aiter_bytes(),
                self._transport._stream_windows(),
                self._allowed,
                idle_flush=self._transport.stream.idle_flush,
            )
            async with aclosing(windows):
                async for window in windows:
                    yield window.data
        finally:
            await self._response.aclose()

    async def _allowed(self, window: SSEWindow) -> bool:
        with self._transport._sdk_errors():
            content = Content(window.text, kind="response", metadata=self._call.metadata)
            await self._call.judge.aask(self._call.guard, content)
        return True

    async def aclose(self) -> None:
        await self._response.aclose()
