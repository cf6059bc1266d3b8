"""An httpx transport that puts a guard between the official ``openai`` client and the model.

Hand it to the client through its ``http_client``::

    import httpx
    import openai
    from guardrails.integrations.openai import GuardedTransport

    client = openai.OpenAI(http_client=httpx.Client(transport=GuardedTransport(guard)))
    aclient = openai.AsyncOpenAI(http_client=httpx.AsyncClient(transport=GuardedTransport(guard)))

It is an ``httpx`` transport. openai 3.x talks through ``httpx2`` and types ``http_client`` as
an ``httpx2`` client: give it `GuardedHttpx2Transport`, the same checks as an httpx2 transport
(``pip install guardrails-middleware[openai]``)::

    import httpx2
    from guardrails.integrations.openai import GuardedHttpx2Transport

    client = openai.OpenAI(http_client=httpx2.Client(transport=GuardedHttpx2Transport(guard)))

What is checked:

- Every POST to ``.../chat/completions``, ``.../responses`` or legacy ``.../completions``,
  whatever the base path (``/v1``, Azure's ``/openai/deployments/<name>``), as a prompt, before it
  leaves: the chat ``messages`` (as `Content` messages), or the Responses API ``instructions`` and
  ``input`` (a string, or a list of items: messages, tool calls, tool outputs; tool outputs are
  checked as user text: they are where indirect prompt injection comes in; the current turn's tool
  outputs, ``tool`` messages and ``function_call_output`` items, are also checked each on its own
  as a tool's output, a `ToolEvent`), and with them every
  other string of the request (tool descriptions, a stored prompt's ``variables``, a legacy
  ``prompt``), but for the settings that never reach the model (``model``, ``temperature``...).
- Every other POST, PUT or PATCH with a JSON body (conversations and their items, threads and
  their messages, runs with ``additional_messages``, embeddings, an endpoint newer than this
  library), by every string it holds: text that reaches the model through a side door (a
  conversation created first, then ``responses.create(conversation=..., input="continue")``) was
  checked when it went in. A JSON body that cannot be parsed is refused (`ExtractionError`).
- With ``scan_response`` (the default), the 2xx answer to a generating call. A JSON chat
  completion or Responses object is read whole and checked before the client sees a byte. A
  ``text/event-stream`` is checked as it streams, in windows of generated text (a small first
  window, ``stream_first_window`` characters, then windows doubling up to ``stream_window``; and
  whatever is held when the model goes quiet for ``stream_idle_flush`` seconds): each window's
  events reach the client only once their text is allowed (the client runs at most one window
  behind the model), and each window's text starts with the end of the previous one, so a
  phrase cut by a boundary is still seen whole. Blocked text is never handed to the client. The
  scanner is `guardrails._stream`'s, shared with the middlewares and the decorator.

GETs, DELETEs and uploads (multipart or octet-stream: files, audio) pass through untouched. A
file uploaded for the Batch API or a vector store is not read here.

How the official client surfaces it (checked against openai 3.x, which re-raises its own errors
and lets any exception that is not an httpx transport error out of its retry loop unchanged):

- A Block raises `OpenAIBlocked`, a `guardrails.Blocked` that is also an ``openai.OpenAIError``:
  ``except guardrails.Blocked`` catches it, with the `Verdict` on ``.verdict``. For a prompt or a
  JSON answer it comes out of ``create(...)``; for a stream, out of the stream's iterator at the
  first blocked window. It is never retried: the guard has spoken, and ``max_retries`` is for the
  network. (Being an ``OpenAIError`` is what keeps openai releases whose retry loop catches every
  other exception from retrying it. A release older still would retry it and raise
  ``openai.APIConnectionError`` with the `Blocked` as its ``__cause__``; give such a client
  ``max_retries=0``.)
- A guard failure, failing closed (the default), raises the `GuardError` (as it is in openai 3.x;
  releases that retry every exception retry it, then wrap it in ``APIConnectionError``); failing
  open, the call goes on unscanned and a warning is logged. Configuration errors (bad
  credentials) fail closed unless ``fail_open="always"``.
- A request body on a checked path that cannot be read raises `ExtractionError` (never sent).

Every check is recorded as a `Decision` (target ``"POST /v1/chat/completions"``, kind ``prompt``
or ``response``; one per stream window) and logged like the middlewares do, never with the text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Collection, Iterable, Iterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import httpx

from .._body import is_json_media_type
from .._events import DecisionHook, hooks_of, log_extra
from .._exceptions import Blocked, ExtractionError
from .._guard import GuardSource, InProcessGuard
from .._judge import Judge, MaskCallback, block_categories, guard_name
from .._masking import mask_json, same_texts
from .._models import Content
from .._policy import FailOpen, validate_fail_open
from .._shapes import (
    ALL_MESSAGES,
    GENERATING,
    Endpoint,
    MessageScope,
    StreamText,
    answer_content,
    endpoint_of,
    request_content,
)
from .._sse import SSEScanner, SSEWindow
from .._stream import CHECK_CONCURRENCY, ScanThread, StreamOptions, ascan
from ._tools import openai_tool_calls, openai_tool_results

try:
    from openai import OpenAIError as _SDKError
except ImportError:  # pragma: no cover - the transport serves any OpenAI-compatible client
    _SDKError = Exception  # type: ignore[misc,assignment]

if TYPE_CHECKING:
    from .._guard import Guard
    from ._openai2 import GuardedHttpx2Transport as GuardedHttpx2Transport

__all__ = ["GuardedHttpx2Transport", "GuardedTransport", "OpenAIBlocked"]


def __getattr__(name: str) -> Any:
    # The httpx2 transport needs httpx2 (the "openai" extra): imported only when asked for.
    if name == "GuardedHttpx2Transport":
        from ._openai2 import GuardedHttpx2Transport

        return GuardedHttpx2Transport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


logger = logging.getLogger("guardrails")


#: Bytes of events held back at most before their text is checked, whatever their text's length.
MAX_WINDOW_BYTES = 65536
_ENCODING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class OpenAIBlocked(Blocked, _SDKError):
    """The guard blocked a request to the model, or the model's answer.

    A `guardrails.Blocked` (``.verdict``) that is also an ``openai.OpenAIError`` when openai is
    installed, so that the client passes it through as it is instead of retrying it.
    """


# -- what is checked --------------------------------------------------------------------------------


def _endpoint(request: httpx.Request) -> Endpoint | None:
    media_type = str(request.headers.get("content-type", "")).split(";")[0].strip().lower()
    return endpoint_of(request.method, request.url.path, media_type)


# -- one call ---------------------------------------------------------------------------------------


class _Call:
    """One guarded API call: where it goes, and the judge of each of its checks.

    With ``mask``, a Block of sensitive data only that the guard masked lets the call go on
    masked: ``masked`` then holds the rewritten JSON body (of the request, then of the answer).
    """

    __slots__ = (
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
        guard: Guard,
        request: httpx.Request,
        *,
        fail_open: FailOpen,
        hooks: tuple[DecisionHook, ...],
        endpoint: Endpoint,
        block: frozenset[str] | None = None,
        mask: bool = False,
        scope: MessageScope = ALL_MESSAGES,
        incremental: bool = False,
    ) -> None:
        self.guard = guard
        self.guard_name = guard_name(guard)
        self.scope = scope
        self.judge = Judge(
            f"{request.method} {request.url.path}",
            hooks=hooks,
            fail_open=fail_open,
            blocked=OpenAIBlocked,
            incremental=incremental,
            block=block,
        )
        self.endpoint = endpoint
        self.path = request.url.path
        self.mask = mask
        self.masked: bytes | None = None
        self.metadata: dict[str, str] = {"route": request.url.path}
        self.prompt: str | None = None

    def prompt_content(self, endpoint: Endpoint, body: bytes, path: str) -> Content | None:
        try:
            content = request_content(endpoint, body, path, self.scope)
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
            return None
        self.metadata = content.metadata
        self.prompt = content.as_text()
        return content

    def response_content(self, body: bytes) -> Content | None:
        content = answer_content(body, metadata=self.metadata, prompt=self.prompt)
        if content is None:
            self.judge.record("skipped", guard=self.guard_name, kind="response")
        return content

    def window_content(self, text: str) -> Content:
        return Content(text, kind="response", metadata=self.metadata)

    def take_masked(self) -> bytes | None:
        """The body rewritten by the last check that went on masked (then forgotten)."""
        masked, self.masked = self.masked, None
        return masked

    def masker(self, body: bytes, content: Content) -> MaskCallback | None:
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
                    reread = request_content(self.endpoint, rewritten, self.path)
                else:
                    reread = answer_content(rewritten, metadata=self.metadata, prompt=self.prompt)
            except ExtractionError:
                return False
            if not same_texts(reread, masked):
                return False  # a string the rewrite cannot reach: the Block stands
            self.masked = rewritten
            return True

        return rewrite


def _masked_request(request: httpx.Request, body: bytes) -> httpx.Request:
    """`request` with a rewritten (masked) body and the length that goes with it."""
    headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _ENCODING_HEADERS]
    return httpx.Request(
        request.method, request.url, headers=headers, content=body, extensions=request.extensions
    )


def _media_type(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "")).split(";")[0].strip().lower()


def _decoded_headers(response: httpx.Response) -> list[tuple[str, str]]:
    # The body handed on is decoded: its encoding headers no longer describe it.
    return [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _ENCODING_HEADERS]


def _rebuilt(
    response: httpx.Response,
    request: httpx.Request,
    *,
    stream: httpx.SyncByteStream | httpx.AsyncByteStream | None = None,
    body: bytes = b"",
) -> httpx.Response:
    """The response handed on: decoded, with a checked body or a stream that checks as it goes."""
    return httpx.Response(
        response.status_code,
        headers=_decoded_headers(response),
        content=None if stream is not None else body,
        stream=stream,
        extensions=response.extensions,
        request=request,
    )


class _SyncEventStream(httpx.SyncByteStream):
    """A sync event stream checked as it streams: read by a helper thread (`ScanThread`), so that
    held text is checked and handed on when the model goes quiet for ``stream_idle_flush``."""

    def __init__(
        self, response: httpx.Response, call: _Call, windows: SSEScanner, idle_flush: float | None
    ) -> None:
        self._response = response
        self._call = call
        self._windows = windows
        self._idle_flush = idle_flush

    def __iter__(self) -> Iterator[bytes]:
        # The helper thread reads the network; closing the response is what ends a read in progress.
        remote = not isinstance(self._call.guard, InProcessGuard)
        scan = ScanThread(
            self._response.iter_bytes(),
            self._windows,
            self._allowed,
            idle_flush=self._idle_flush,
            concurrency=CHECK_CONCURRENCY if remote else 1,
        )
        try:
            for window in scan:
                yield window.data
        finally:
            self._response.close()
            scan.close()

    def _allowed(self, window: SSEWindow) -> bool:
        # A Block raises (OpenAIBlocked) out of the stream's iterator.
        self._call.judge.ask(self._call.guard, self._call.window_content(window.text))
        return True

    def close(self) -> None:
        self._response.close()


class _AsyncEventStream(httpx.AsyncByteStream):
    def __init__(
        self, response: httpx.Response, call: _Call, windows: SSEScanner, idle_flush: float | None
    ) -> None:
        self._response = response
        self._call = call
        self._windows = windows
        self._idle_flush = idle_flush

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            windows = ascan(
                self._response.aiter_bytes(), self._windows, self._allowed, idle_flush=self._idle_flush
            )
            async with aclosing(windows):
                async for window in windows:
                    yield window.data
        finally:
            await self._response.aclose()

    async def _allowed(self, window: SSEWindow) -> bool:
        await self._call.judge.aask(self._call.guard, self._call.window_content(window.text))
        return True

    async def aclose(self) -> None:
        await self._response.aclose()


# -- the transport ------------------------------------------------------------------------------------


class GuardedTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport, sync and async, that checks OpenAI API calls with a guard.

    Args:
        guard: the guard asked; None: `guard_from_env()`, resolved at the first checked call.
        transport: the transport that sends the requests (``httpx.MockTransport`` in tests, an
            ``httpx.HTTPTransport(retries=..., proxy=...)`` to configure the network); by default
            an ``httpx.HTTPTransport()`` for `httpx.Client` and an ``httpx.AsyncHTTPTransport()``
            for `httpx.AsyncClient`, each made at first use.
        scan_response: also check the model's answers (JSON and streamed).
        fail_open: what a guard failure does: False (raise the `GuardError`, the default), True
            (the call goes on unscanned on transient errors) or ``"always"`` (also on
            configuration errors).
        stream_window: the most characters of streamed text per check. Smaller windows reach
            the client sooner and ask the guard more often.
        stream_first_window: characters of a stream's first check; each next window doubles, up
            to ``stream_window`` (a short answer reaches the client after one small check).
        stream_overlap: characters of the text before a window checked again with it (default
            100), so that a phrase cut by a boundary is seen whole.
        stream_idle_flush: seconds of quiet from the model after which the held text is checked
            and handed to the client without waiting for a window's worth (None: never).
        on_decision: a hook, or hooks, called with every `Decision` of this transport.
        roles: the roles of the chat messages checked (None: every role, the default: an API
            client controls every role it sends); every other string of a request is still checked.
        last_turn: check only the messages after the last assistant message.
        incremental: a chat message this guard already allowed, exactly, is not checked again;
            every other message is (see `guardrails._incremental`).
        block: the categories that block; a Block whose categories are all outside it is
            recorded as ``monitored`` and the call goes on (None, the default: every Block
            blocks; a Block with no category always blocks).
        mask: when a Block's only category is ``sensitive_data`` and the guard masked it, the
            request is sent with the masked strings in its JSON body (and a JSON answer handed
            back masked); outcome ``masked``. A body that does not read back as exactly the
            masked content, and a stream window, stay blocked.

    Closing the httpx client closes what this transport made (its default inner transport, and
    the guard when it was made from the environment), never what it was given: a `transport=` or
    `guard` passed in is its owner's to close.
    """

    def __init__(
        self,
        guard: Guard | None = None,
        *,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
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
        if transport is not None and not isinstance(
            transport, (httpx.BaseTransport, httpx.AsyncBaseTransport)
        ):
            raise TypeError(f"transport must be an httpx transport, not {type(transport).__name__}")
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
        self._sync: httpx.BaseTransport | None = (
            transport if isinstance(transport, httpx.BaseTransport) else None
        )
        self._async: httpx.AsyncBaseTransport | None = (
            transport if isinstance(transport, httpx.AsyncBaseTransport) else None
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"GuardedTransport(guard={self._guards!r}, scan_response={self.scan_response!r}, "
            f"fail_open={self.fail_open!r}, stream_window={self.stream_window}, stream_overlap={self.stream_overlap})"
        )

    # -- parts made at first use ----------------------------------------------------------------

    @property
    def guard(self) -> Guard:
        """The guard asked (made from the environment at first use when none was given)."""
        return self._guards.get()

    def _sync_transport(self) -> httpx.BaseTransport:
        inner = self._sync
        if inner is None:
            with self._lock:
                if self._sync is None:
                    if self._transport is not None:
                        raise TypeError("the wrapped transport is async only: use it with httpx.AsyncClient")
                    self._sync = httpx.HTTPTransport()
                inner = self._sync
        return inner

    def _async_transport(self) -> httpx.AsyncBaseTransport:
        inner = self._async
        if inner is None:
            with self._lock:
                if self._async is None:
                    if self._transport is not None:
                        raise TypeError("the wrapped transport is sync only: use it with httpx.Client")
                    self._async = httpx.AsyncHTTPTransport()
                inner = self._async
        return inner

    def _windows(self) -> SSEScanner:
        return SSEScanner(
            window_chars=self.stream.window,
            overlap=self.stream.overlap,
            first_window=self.stream.first_window,
            max_window_bytes=MAX_WINDOW_BYTES,
            event_text=StreamText(),
        )

    # -- sync ------------------------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Check the request, send it, and hand back the response (checked as it is read)."""
        inner = self._sync_transport()
        endpoint = _endpoint(request)
        if endpoint is None:
            return inner.handle_request(request)
        call = _Call(
            self.guard,
            request,
            fail_open=self.fail_open,
            hooks=self.hooks,
            scope=self.scope,
            incremental=self.incremental,
            endpoint=endpoint,
            block=self.block,
            mask=self.mask,
        )
        body = request.read()
        content = call.prompt_content(endpoint, body, request.url.path)
        if content is not None:
            call.judge.ask(call.guard, content, mask=call.masker(body, content))
            masked = call.take_masked()
            if masked is not None:
                request = _masked_request(request, masked)
            for tool in openai_tool_results(endpoint, body, call.metadata):
                call.judge.ask(call.guard, tool)
        response = inner.handle_request(request)
        if not self.scan_response or endpoint not in GENERATING or not response.is_success:
            return response
        media_type = _media_type(response)
        if media_type == "text/event-stream":
            return _rebuilt(
                response,
                request,
                stream=_SyncEventStream(response, call, self._windows(), self.stream.idle_flush),
            )
        if not is_json_media_type(media_type):
            return response
        try:
            body = response.read()
        finally:
            response.close()
        content = call.response_content(body)
        if content is not None:
            call.judge.ask(call.guard, content, mask=call.masker(body, content))
            for tool in openai_tool_calls(body, call.metadata):
                call.judge.ask(call.guard, tool)
            body = call.take_masked() or body
        return _rebuilt(response, request, body=body)

    def close(self) -> None:
        """Close the sync side: the wrapped transport (and a guard made from the environment)."""
        with self._lock:
            inner = self._sync if self._transport is None else None
        if inner is not None:
            inner.close()
        self._guards.close()

    # -- async -----------------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Check the request, send it, and hand back the response (checked as it is read)."""
        inner = self._async_transport()
        endpoint = _endpoint(request)
        if endpoint is None:
            return await inner.handle_async_request(request)
        call = _Call(
            self.guard,
            request,
            fail_open=self.fail_open,
            hooks=self.hooks,
            scope=self.scope,
            incremental=self.incremental,
            endpoint=endpoint,
            block=self.block,
            mask=self.mask,
        )
        body = await request.aread()
        content = call.prompt_content(endpoint, body, request.url.path)
        if content is not None:
            await call.judge.aask(call.guard, content, mask=call.masker(body, content))
            masked = call.take_masked()
            if masked is not None:
                request = _masked_request(request, masked)
            for tool in openai_tool_results(endpoint, body, call.metadata):
                await call.judge.aask(call.guard, tool)
        response = await inner.handle_async_request(request)
        if not self.scan_response or endpoint not in GENERATING or not response.is_success:
            return response
        media_type = _media_type(response)
        if media_type == "text/event-stream":
            return _rebuilt(
                response,
                request,
                stream=_AsyncEventStream(response, call, self._windows(), self.stream.idle_flush),
            )
        if not is_json_media_type(media_type):
            return response
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        content = call.response_content(body)
        if content is not None:
            await call.judge.aask(call.guard, content, mask=call.masker(body, content))
            for tool in openai_tool_calls(body, call.metadata):
                await call.judge.aask(call.guard, tool)
            body = call.take_masked() or body
        return _rebuilt(response, request, body=body)

    async def aclose(self) -> None:
        """Close the async side: the wrapped transport (and a guard made from the environment)."""
        with self._lock:
            inner = self._async if self._transport is None else None
        if inner is not None:
            await inner.aclose()
        await self._guards.aclose()
