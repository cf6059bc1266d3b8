"""The aiohttp async backend: the guards' fast path under concurrency.

httpx's connection pool costs several times more CPU per request than aiohttp's under
concurrency (see benchmarks/README.md for the figures), and a guard sits on the critical path of
every LLM call. `AiohttpTransport.drive` drives an exchange, sending its plain `GuardRequest`s with
aiohttp and answering `GuardResponse`s: no httpx object is built for a check (building an
`httpx.Request` and wrapping the answer in an `httpx.Response` cost more CPU than the rest of the
exchange). It is also an `httpx.AsyncBaseTransport` (``handle_async_request``) for any caller that
has httpx requests. Used by the remote guards for `acheck` when aiohttp is installed (the
``aiohttp`` extra) and the loop is asyncio; pass ``async_backend="httpx"`` to a guard to opt out.

- No redirects are followed and no body is decompressed by aiohttp: a plain answer within the
  cap is read whole in one call; any other (encoded, no declared length, longer) is read through
  httpx's decoders under the size cap, so a decompression bomb stops at the cap.
- aiohttp's exceptions become the httpx exceptions the exchange knows: timeouts
  `httpx.ConnectTimeout` / `httpx.ReadTimeout`, connection failures `httpx.ConnectError`, a
  dropped connection or a broken body `httpx.RemoteProtocolError`, other transport faults
  `httpx.ReadError`, all in one mapping (`_mapped_errors`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
from yarl import URL

from ._exchange import Flow, GuardRequest, GuardResponse, ResponseTooLarge, Sleep, read_capped, response_cap
from ._models import Verdict
from ._policy import Deadline
from ._version import __version__

__all__ = ["AiohttpTransport"]

# Headers aiohttp computes itself from the request it sends.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# What a request without them says instead of aiohttp's defaults (its own User-Agent, ``Accept:
# */*`` and ``Accept-Encoding: gzip, deflate...``): an answer is read as sent (``auto_decompress``
# is off), so the guard asks for it unencoded. Sent, rather than skipped per session
# (``skip_auto_headers``, which copies every request's headers once more), since aiohttp adds a
# default only where a request has none.
_DEFAULT_HEADERS = (
    ("User-Agent", f"guardrails-middleware/{__version__}"),
    ("Accept", "application/json"),
    ("Accept-Encoding", "identity"),
)
# Parsed URLs kept per transport: a guard sends to one or two.
_MAX_URLS = 64


# What `_mapped` translates: aiohttp's exceptions, and the timeouts it raises as asyncio's.
_FOREIGN = (aiohttp.ClientError, asyncio.TimeoutError)


def _mapped(exc: BaseException, request: httpx.Request | None = None) -> httpx.HTTPError:
    """aiohttp's exception as the httpx one the exchange knows: the one mapping (as httpx's
    ``map_httpcore_exceptions``), for sending and for reading alike."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "connect timed out", request=request)
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return httpx.ReadTimeout(str(exc) or "timed out", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc), request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(str(exc), request=request)
    return httpx.ReadError(str(exc), request=request)


@contextmanager
def _mapped_errors(request: httpx.Request | None = None) -> Iterator[None]:
    try:
        yield
    except _FOREIGN as exc:
        raise _mapped(exc, request) from exc


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request | None) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors(self._request):
            async for chunk in self._response.content.iter_chunked(64 * 1024):
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


def _with_defaults(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` with the `_DEFAULT_HEADERS` they lack, as a new dict."""
    sendable = dict(headers)
    present = {name.lower() for name in sendable}
    for name, value in _DEFAULT_HEADERS:
        if name.lower() not in present:
            sendable[name] = value
    return sendable


def _attempt_timeout(total: float | None) -> aiohttp.ClientTimeout:
    # One timer for the whole attempt (connect, send, read), as the deadline means; per-operation
    # timeouts would add a read timer rescheduled on every chunk. Never rounded up to the next
    # second (aiohttp's default from 5 s): the deadline is exact.
    return aiohttp.ClientTimeout(total=total, ceil_threshold=math.inf)


def _plain_length(response: aiohttp.ClientResponse, max_bytes: int) -> bool:
    """An unencoded answer whose declared length is within the cap: read whole in one call."""
    length = response.content_length
    if length is None or length > max_bytes:
        return False
    encoding = response.headers.get("Content-Encoding")
    return encoding is None or encoding.strip().lower() == "identity"


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends the guards' requests with an `aiohttp.ClientSession`, created lazily in the running loop.

    Args:
        limits: the connection pool size (``max_connections``) and keep-alive expiry.
        ssl: an `ssl.SSLContext` (a private CA), False to skip verification, or None (default:
            the system's trust store).
    """

    #: `drive` bounds each attempt whole (DNS, connect, TLS, send, read) by its
    #: `GuardRequest.timeout`: the guard's shell needs no timer of its own around a lone request.
    bounds_attempts = True

    def __init__(self, *, limits: httpx.Limits | None = None, ssl: Any = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._limit = limits.max_connections or 0
        self._keepalive = limits.keepalive_expiry if limits.keepalive_expiry is not None else 5.0
        self._ssl = ssl if ssl is not None else True
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        # The sendable form of each header set seen (by identity: a guard shares one per request
        # type), with the header set itself, so that a recycled id never matches.
        self._headers: dict[int, tuple[Mapping[str, str], dict[str, str]]] = {}

    def _session_now(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                keepalive_timeout=self._keepalive,
                ssl=self._ssl,
                enable_cleanup_closed=False,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._session = session
        return session

    def _url(self, url: str) -> URL:
        # Parsed once per URL (aiohttp would parse the string of every request again).
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()
            parsed = self._urls[url] = URL(url)
        return parsed

    def _sendable(self, headers: Mapping[str, str]) -> dict[str, str]:
        """A request's headers with the `_DEFAULT_HEADERS` it lacks, computed once per header set."""
        known = self._headers.get(id(headers))
        if known is not None and known[0] is headers:
            return known[1]
        if len(self._headers) >= _MAX_URLS:
            self._headers.clear()
        sendable = _with_defaults(headers)
        self._headers[id(headers)] = (headers, sendable)
        return sendable

    async def drive(self, flow: Flow, deadline: Deadline, max_bytes: int) -> Verdict:
        """Drive an exchange over this transport (`_exchange.run_async` hands it here).

        The exchange decides everything (retries, backoff, deadline, breaker); this only sends its
        requests, sleeps its `Sleep` steps and throws transport failures back in, as
        `_exchange.run_async` does for any transport, in one coroutine frame between a check and
        aiohttp (every resumption of the task passes through each frame). The common answer
        (unencoded, its declared length within the cap) is read in one call; any other is read
        through httpx's decoders under the cap and the deadline. Transport failures reach the
        exchange as httpx's exceptions (aiohttp's mapped, see the module), an answer over the cap
        as `ResponseTooLarge`.

        Args:
            flow: the exchange.
            deadline: the check's deadline (bounds reading an answer that is not read whole).
            max_bytes: the floor of each response's size cap (see `_exchange.response_cap`).
        """
        session = self._session_now()
        try:
            step = next(flow)
            while True:
                if type(step) is Sleep:
                    await asyncio.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                assert isinstance(step, GuardRequest)
                cap = response_cap(step, max_bytes)
                try:
                    try:
                        response = await session.request(
                            step.method,
                            self._url(step.url),
                            headers=self._sendable(step.headers),
                            data=step.content,
                            allow_redirects=False,
                            timeout=_attempt_timeout(step.timeout),
                        )
                        if _plain_length(response, cap):
                            try:
                                body = await response.read()
                            finally:
                                response.release()
                            answer = GuardResponse(response.status, response.headers, body, step)
                        else:
                            answer = await read_capped(self._wrap(response, None), step, cap, deadline)
                    except _FOREIGN as exc:
                        raise _mapped(exc) from exc
                except (httpx.HTTPError, ResponseTooLarge) as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(answer)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            flow.close()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _OWN_HEADERS]
        present = {name.lower() for name, _ in headers}
        headers += [(name, value) for name, value in _DEFAULT_HEADERS if name.lower() not in present]
        try:
            body = request.content  # a guard's body is bytes, already in memory
        except httpx.RequestNotRead:
            body = await request.aread()
        timeout = aiohttp.ClientTimeout(
            connect=timeouts.get("pool"), sock_connect=timeouts.get("connect"), sock_read=timeouts.get("read")
        )
        with _mapped_errors(request):
            response = await self._session_now().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=timeout,
            )
        return self._wrap(response, request)

    @staticmethod
    def _wrap(response: aiohttp.ClientResponse, request: httpx.Request | None) -> httpx.Response:
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_ResponseStream(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
