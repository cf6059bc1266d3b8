"""An httpx async transport on aiohttp: the guards' fast path under concurrency.

httpx's connection pool costs several times more CPU per request than aiohttp's under
concurrency (see benchmarks/README.md for the figures), and a guard sits on the critical path of
every LLM call. `AiohttpTransport` keeps every httpx type the guards use (`httpx.Request`,
`httpx.Response`, httpx's exceptions) and moves the bytes with aiohttp. Used by the remote guards
for `acheck` when aiohttp is installed (the ``aiohttp`` extra) and the loop is asyncio; pass
``async_backend="httpx"`` to a guard to opt out.

- No redirects are followed and no body is decompressed here (httpx decodes while the guard reads,
  under its size cap).
- aiohttp's exceptions become the httpx exceptions the retry policy knows: timeouts
  `httpx.ConnectTimeout` / `httpx.ReadTimeout`, connection failures `httpx.ConnectError`, a
  dropped connection or a broken body `httpx.RemoteProtocolError`, other transport faults
  `httpx.ReadError`, all in one mapping (`_mapped_errors`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx

__all__ = ["AiohttpTransport"]

# Headers aiohttp computes itself from the request it sends.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@contextmanager
def _mapped_errors(request: httpx.Request) -> Iterator[None]:
    """aiohttp's exceptions as the httpx ones the retry policy knows, in one place (as httpx's
    ``map_httpcore_exceptions``), for sending and for reading alike."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request) from exc
    except aiohttp.ClientPayloadError as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.ReadError(str(exc), request=request) from exc


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors(self._request):
            async for chunk in self._response.content.iter_chunked(64 * 1024):
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests with an `aiohttp.ClientSession`, created lazily in the running loop.

    Args:
        limits: the connection pool size (``max_connections``) and keep-alive expiry.
        ssl: an `ssl.SSLContext` (a private CA), False to skip verification, or None (default:
            the system's trust store).
    """

    def __init__(self, *, limits: httpx.Limits | None = None, ssl: Any = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._limit = limits.max_connections or 0
        self._keepalive = limits.keepalive_expiry if limits.keepalive_expiry is not None else 5.0
        self._ssl = ssl if ssl is not None else True
        self._session: aiohttp.ClientSession | None = None

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
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._session = session
        return session

    async def _send(self, request: httpx.Request) -> aiohttp.ClientResponse:
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _OWN_HEADERS]
        try:
            body = request.content  # a guard's body is bytes, already in memory
        except httpx.RequestNotRead:
            body = await request.aread()
        with _mapped_errors(request):
            return await self._session_now().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=timeout,
            )

    async def send_read(self, request: httpx.Request, max_bytes: int) -> tuple[httpx.Response, bool]:
        """Send `request`; read the answer whole when it is small and plain.

        The guards' common case is an unencoded answer whose declared length is within
        ``max_bytes``: it is read in one call and handed back as a read `httpx.Response` (the same
        status, headers and body `handle_async_request` would stream), which skips httpx's stream
        and decoder machinery. Any other answer (no declared length, longer, encoded) comes back
        as `handle_async_request` gives it, unread, for the caller to read under its cap.

        Returns:
            The response, and whether its body is already read.
        """
        response = await self._send(request)
        length = response.content_length
        encoding = response.headers.get("Content-Encoding")
        if (
            length is None
            or length > max_bytes
            or (encoding is not None and encoding.strip().lower() != "identity")
        ):
            return self._wrap(response, request), False
        try:
            with _mapped_errors(request):
                body = await response.read()
        finally:
            response.release()
        read = httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            content=body,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )
        return read, True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self._wrap(await self._send(request), request)

    @staticmethod
    def _wrap(response: aiohttp.ClientResponse, request: httpx.Request) -> httpx.Response:
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
