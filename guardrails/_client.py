"""The I/O-free exchange every remote guard uses, and the two shells that drive it.

An exchange is a generator, written once: it yields an `httpx.Request` to send (and receives the
`httpx.Response`, or has the transport's exception thrown into it) or a `Sleep` to wait out a
backoff, and returns the `Verdict`. Retries, backoff, the overall deadline, the circuit breaker
and the mapping of HTTP outcomes to `GuardError` subclasses all live in `exchange`. `run_sync`
and `run_async` only send, read (with a size cap) and sleep.

`RemoteGuard` is the base of the vendor guards: a subclass turns a `Content` into requests and a
response into a `Verdict`, with no I/O of its own.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Collection, Generator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Literal, TypeVar

import anyio
import httpx

from ._cache import VerdictCache, VerdictMemo, cache_key, resolve_cache
from ._exceptions import (
    GuardAuthError,
    GuardError,
    GuardRateLimited,
    GuardResponseError,
    GuardTimeout,
    GuardUnavailable,
)
from ._models import Content, Verdict, as_content, combine_verdicts
from ._policy import BreakerState, CircuitBreaker, Deadline, Retry, parse_retry_after

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Flow",
    "RemoteGuard",
    "ResponseTooLarge",
    "Sleep",
    "error_for_response",
    "exchange",
    "run_async",
    "run_sync",
]

logger = logging.getLogger("guardrails")

DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
# Slack given to the async shell's hard deadline over the per-operation timeouts.
_DEADLINE_MARGIN = 0.05


@dataclass(frozen=True)
class Sleep:
    """An exchange step: wait this many seconds, then resume the exchange with None."""

    seconds: float


Step = httpx.Request | Sleep
Flow = Generator[Step, "httpx.Response | None", Verdict]


class ResponseTooLarge(Exception):
    """Raised by a shell into the exchange when the guard's response body passes the cap."""


def _credentials(response: httpx.Response) -> list[str]:
    """The credential values the request carried (``Bearer`` tokens, API-key headers)."""
    try:
        request = response.request
    except RuntimeError:  # a response built by hand, with no request
        return []
    secrets: list[str] = []
    for name, value in request.headers.items():
        if any(word in name.lower() for word in ("auth", "token", "key", "secret")):
            secrets.append(value)
            _, _, token = value.partition(" ")
            if token:
                secrets.append(token.strip())
    return [secret for secret in secrets if len(secret) >= 4]


def _error_message(response: httpx.Response) -> str:
    """The service's own error message, if its body has one; short, for logs and exceptions.

    Dropped if it echoes the request's credentials (some services quote a rejected key back).
    """
    try:
        payload = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return ""
    message: Any = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("code")
        elif isinstance(error, str):
            message = error
        message = message or payload.get("message") or payload.get("detail")
    if not isinstance(message, str):
        return ""
    if any(secret in message for secret in _credentials(response)) or _quotes_request(message, response):
        return ""
    return message[:200]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# Shortest run of characters shared with the request that counts as quoting it.
_QUOTE_RUN = 12


def _quotes_request(message: str, response: httpx.Response) -> bool:
    """Whether a service's error message quotes the request's text (and so, maybe, the prompt)."""
    try:
        body = response.request.content
    except (RuntimeError, httpx.RequestNotRead):
        return False
    try:
        text = "\n".join(_strings(json.loads(body)))
    except (ValueError, UnicodeDecodeError, RecursionError):
        text = body.decode("utf-8", "replace")
    if len(message) < _QUOTE_RUN:
        return len(message) >= 4 and message in text
    return any(message[i : i + _QUOTE_RUN] in text for i in range(len(message) - _QUOTE_RUN + 1))


def error_for_response(response: httpx.Response, guard: str) -> GuardError | None:
    """The `GuardError` a non-success response stands for, or None for a 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    detail = _error_message(response)
    suffix = f": {detail}" if detail else ""
    if 300 <= status < 400:
        # A redirect means a wrong base URL (http vs https, a moved host): following it could
        # send the credentials somewhere else, so it is a configuration error, never followed.
        return GuardResponseError(
            f"{guard} guard answered a redirect ({status}), which is not followed: check base_url",
            guard=guard,
            transient=False,
            status_code=status,
        )
    if status in (401, 403):
        return GuardAuthError(
            f"{guard} guard refused the credentials ({status}){suffix}", guard=guard, status_code=status
        )
    if status == 429:
        return GuardRateLimited(
            f"{guard} guard is rate limiting (429){suffix}",
            guard=guard,
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if status in (408, 425) or status >= 500:
        return GuardUnavailable(f"{guard} guard failed ({status}){suffix}", guard=guard, status_code=status)
    return GuardResponseError(
        f"{guard} guard rejected the request ({status}){suffix}",
        guard=guard,
        transient=False,
        status_code=status,
    )


def exchange(
    request: httpx.Request,
    parse: Callable[[httpx.Response], Verdict],
    *,
    guard: str,
    retry: Retry,
    deadline: Deadline,
    breaker: CircuitBreaker,
) -> Flow:
    """Send `request` until `parse` gives a Verdict, retries and deadline permitting.

    Yields `httpx.Request` (send it, send back the response or throw the transport error in) and
    `Sleep` steps; returns the `Verdict` or raises a `GuardError`.
    """
    attempt = 0
    while True:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise GuardTimeout(
                f"{guard} guard check exceeded its {deadline.timeout:g}s deadline", guard=guard
            )
        probe = breaker.before_call(guard)
        request.extensions["timeout"] = {
            "connect": remaining,
            "read": remaining,
            "write": remaining,
            "pool": remaining,
        }
        attempt += 1
        error: GuardError
        try:
            response = yield request
        except httpx.TimeoutException as exc:
            error = GuardTimeout(f"{guard} guard timed out ({type(exc).__name__})", guard=guard)
        except httpx.TransportError as exc:
            error = GuardUnavailable(f"{guard} guard unreachable ({type(exc).__name__})", guard=guard)
        except ResponseTooLarge:
            error = GuardResponseError(f"{guard} guard response is larger than the cap", guard=guard)
        except BaseException:
            # Cancelled or closed mid-request: nothing was learnt about the guard's health, and a
            # half-open breaker must not keep its one probe slot taken forever.
            if probe:
                breaker.release_probe()
            raise
        else:
            assert response is not None
            failure = error_for_response(response, guard)
            if failure is None:
                try:
                    verdict = parse(response)
                except GuardError as exc:
                    failure = exc
                except Exception as exc:
                    # Bad JSON, a missing key...: the service misbehaved, which may pass. Not
                    # chained: the parser's message may quote the response, and so the prompt.
                    failure = GuardResponseError(
                        f"{guard} guard sent a response that could not be parsed ({type(exc).__name__})",
                        guard=guard,
                    )
                else:
                    breaker.record_success()
                    return verdict
            error = failure
        breaker.record_failure(error)
        delay = retry.delay(attempt, error, deadline)
        if delay is None:
            if error.transient and deadline.expired and not isinstance(error, GuardTimeout):
                raise GuardTimeout(
                    f"{guard} guard check exceeded its {deadline.timeout:g}s deadline (last error: {error})",
                    guard=guard,
                ) from error
            raise error
        yield Sleep(delay)


def _strip_encoding(response: httpx.Response, body: bytes) -> httpx.Response:
    # The body was read decoded; a copy without the encoding headers carries it as plain content.
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        extensions=response.extensions,
    )


def _plain_and_small(response: httpx.Response, max_bytes: int) -> bool:
    """An unencoded body whose declared length is under the cap: read whole, no copy needed."""
    headers = response.headers
    length = headers.get("content-length")
    encoding = headers.get("content-encoding")
    return (
        length is not None
        and length.isdigit()
        and int(length) <= max_bytes
        and (encoding is None or encoding.strip().lower() == "identity")
    )


def _send_sync(
    transport: httpx.BaseTransport, request: httpx.Request, max_bytes: int, deadline: Deadline
) -> httpx.Response:
    # Straight to the transport: a client would add cookies, auth and redirect handling, all of
    # which a guard must not have, at a cost larger than the rest of the exchange.
    response = transport.handle_request(request)
    response.request = request
    if _plain_and_small(response, max_bytes):
        try:
            response.read()
        finally:
            response.close()
        return response
    try:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise ResponseTooLarge
            if deadline.expired:
                raise httpx.ReadTimeout("overall deadline passed while reading the body", request=request)
    finally:
        response.close()
    return _strip_encoding(response, bytes(body))


async def _send_async(
    transport: httpx.AsyncBaseTransport, request: httpx.Request, max_bytes: int, deadline: Deadline
) -> httpx.Response:
    response = await transport.handle_async_request(request)
    response.request = request
    if _plain_and_small(response, max_bytes):
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response
    try:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise ResponseTooLarge
            if deadline.expired:
                raise httpx.ReadTimeout("overall deadline passed while reading the body", request=request)
    finally:
        await response.aclose()
    return _strip_encoding(response, bytes(body))


def run_sync(transport: httpx.BaseTransport, flow: Flow, *, max_bytes: int, deadline: Deadline) -> Verdict:
    """Drive an exchange with a blocking transport."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                step = flow.send(None)
                continue
            try:
                response = _send_sync(transport, step, max_bytes, deadline)
            except (httpx.HTTPError, ResponseTooLarge) as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(response)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()


async def run_async(
    transport: httpx.AsyncBaseTransport, flow: Flow, *, max_bytes: int, deadline: Deadline
) -> Verdict:
    """Drive an exchange with an async transport; cancellation propagates as usual."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                await anyio.sleep(step.seconds)
                step = flow.send(None)
                continue
            try:
                response = await _send_async(transport, step, max_bytes, deadline)
            except (httpx.HTTPError, ResponseTooLarge) as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(response)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()


_T = TypeVar("_T", bound="RemoteGuard")

#: How `acheck` moves bytes: ``"aiohttp"`` (several times less CPU per check under concurrency),
#: ``"httpx"``, or ``"auto"``: aiohttp when it is installed and the loop is asyncio, else httpx.
AsyncBackend = Literal["auto", "httpx", "aiohttp"]

# Looked up, not imported: importing aiohttp costs more than the rest of guardrails.
_HAS_AIOHTTP = importlib.util.find_spec("aiohttp") is not None


def _aiohttp_transport(limits: httpx.Limits, verify: ssl.SSLContext | bool) -> httpx.AsyncBaseTransport:
    from ._aiohttp import AiohttpTransport

    return AiohttpTransport(limits=limits, ssl=None if verify is True else verify)


class RemoteGuard:
    """Base of the guards that ask a remote service.

    Subclasses set `name` and implement `_build_requests` (one request per window of the content)
    and `_parse_response`; both are pure. This class owns the HTTP clients, the retry schedule, the
    deadline, the circuit breaker and the verdict cache. A subclass whose verdicts depend on more
    than its base URL says so in `_cache_identity`, and names the metadata its requests use in
    `_cache_metadata`.

    Args:
        base_url: the service's base URL.
        timeout: overall deadline of one check in seconds, retries and backoff included.
        retries: retries after the first attempt, for transient failures only.
        transport: an httpx transport (e.g. `httpx.MockTransport`) used instead of the network.
        breaker: the circuit breaker; a fresh one per guard by default.
        max_response_bytes: cap on the guard's response body.
        limits: connection pool limits of the HTTP clients.
        http2: use HTTP/2 (needs the ``h2`` extra).
        backoff: base delay of the jittered exponential backoff, in seconds.
        cache: cache verdicts: None (default) or False for no cache, True for an in-memory
            `LRUCache` with its defaults, or any `VerdictCache`. With a cache, concurrent identical
            checks also share one guard call (see `guardrails._cache`).
        async_backend: how `acheck` sends: ``"auto"`` (aiohttp when installed, on asyncio),
            ``"aiohttp"`` or ``"httpx"``.
        verify: TLS verification: True (the default trust store), an `ssl.SSLContext` or the path
            of a CA bundle (a private CA), or False (not recommended: logged as a warning).
    """

    name: ClassVar[str] = "remote"
    #: The `Content.metadata` entries the requests use (they are part of the cache key); None: all.
    _cache_metadata: ClassVar[Collection[str] | None] = None

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float = 10.0,
        retries: int = 2,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        limits: httpx.Limits | None = None,
        http2: bool = False,
        backoff: float = 0.1,
        cache: VerdictCache | bool | None = None,
        async_backend: AsyncBackend = "auto",
        verify: ssl.SSLContext | str | bool = True,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if async_backend not in ("auto", "httpx", "aiohttp"):
            raise ValueError(f"async_backend must be 'auto', 'httpx' or 'aiohttp', not {async_backend!r}")
        if async_backend == "aiohttp" and not _HAS_AIOHTTP:
            raise ValueError(
                "async_backend='aiohttp' needs aiohttp: pip install 'guardrails-middleware[aiohttp]'"
            )
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an absolute http(s) URL, not {base_url!r}")
        self.base_url = str(url).rstrip("/")
        self.timeout = float(timeout)
        self.retry = Retry(attempts=retries + 1, backoff=backoff)
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.max_response_bytes = max_response_bytes
        self.cache = resolve_cache(cache)
        self._memo = VerdictMemo(self.cache) if self.cache is not None else None
        self._transport = transport
        self._limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._http2 = http2
        self.async_backend: AsyncBackend = async_backend
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        if verify is False and url.scheme == "https":
            logger.warning("%s guard: TLS certificate verification is off for %s", self.name, url.host)
        self._verify: ssl.SSLContext | bool = verify
        self._lock = threading.Lock()
        self._sync_pool: httpx.BaseTransport | None = None
        self._async_pool: httpx.AsyncBaseTransport | None = None
        self._async_pool_loop: object | None = None

    # -- what subclasses provide ---------------------------------------------------------------

    def _build_requests(self, content: Content) -> list[httpx.Request]:
        """The requests that check `content` (several for long text split into windows)."""
        raise NotImplementedError

    def _parse_response(self, response: httpx.Response) -> Verdict:
        """Turn a 2xx response into a Verdict; raise `GuardResponseError` if it is not usable."""
        raise NotImplementedError

    def _cache_identity(self) -> tuple[object, ...]:
        """What, besides the content, makes this guard's verdicts what they are (never a secret in clear)."""
        cls = type(self)
        return (f"{cls.__module__}.{cls.__qualname__}", self.base_url)

    # -- checks -----------------------------------------------------------------------------------

    def _flow(self, request: httpx.Request, deadline: Deadline) -> Flow:
        return exchange(
            request,
            self._parse_response,
            guard=self.name,
            retry=self.retry,
            deadline=deadline,
            breaker=self.breaker,
        )

    def _cache_key(self, content: Content) -> str | None:
        return cache_key(self._cache_identity(), content, self._cache_metadata)

    def check(self, content: Content | str) -> Verdict:
        """Check `content`, blocking; returns a Verdict or raises a `GuardError`."""
        content = as_content(content)
        memo = self._memo
        if memo is not None:
            key = self._cache_key(content)
            if key is not None:
                return memo.check(key, lambda: self._check(content))
        return self._check(content)

    async def acheck(self, content: Content | str) -> Verdict:
        """Check `content` without blocking the event loop; windows are checked concurrently."""
        content = as_content(content)
        memo = self._memo
        if memo is not None:
            key = self._cache_key(content)
            if key is not None:
                return await memo.acheck(key, lambda: self._acheck(content))
        return await self._acheck(content)

    def _fail_if_open(self) -> None:
        # Checked before any work: building the requests costs more than failing fast should.
        if self.breaker.state is BreakerState.OPEN:
            raise GuardUnavailable(
                f"{self.name} guard circuit breaker is open: failing fast", guard=self.name, circuit_open=True
            )

    def _check(self, content: Content) -> Verdict:
        self._fail_if_open()
        requests = self._build_requests(content)
        deadline = Deadline(self.timeout)
        transport = self._sync_transport()
        verdicts = [
            run_sync(
                transport, self._flow(request, deadline), max_bytes=self.max_response_bytes, deadline=deadline
            )
            for request in requests
        ]
        return combine_verdicts(verdicts, guard=self.name)

    async def _acheck(self, content: Content) -> Verdict:
        self._fail_if_open()
        requests = self._build_requests(content)
        deadline = Deadline(self.timeout)
        transport = self._async_transport()
        try:
            # A hard stop: per-operation timeouts alone cannot bound DNS or a slow TLS handshake.
            with anyio.fail_after(self.timeout + _DEADLINE_MARGIN):
                if len(requests) == 1:
                    return await self._arun(transport, requests[0], deadline)
                verdicts = await self._arun_all(transport, requests, deadline)
        except TimeoutError as exc:
            raise GuardTimeout(
                f"{self.name} guard check exceeded its {self.timeout:g}s deadline", guard=self.name
            ) from exc
        return combine_verdicts(verdicts, guard=self.name)

    async def _arun(
        self, transport: httpx.AsyncBaseTransport, request: httpx.Request, deadline: Deadline
    ) -> Verdict:
        return await run_async(
            transport, self._flow(request, deadline), max_bytes=self.max_response_bytes, deadline=deadline
        )

    async def _arun_all(
        self, transport: httpx.AsyncBaseTransport, requests: list[httpx.Request], deadline: Deadline
    ) -> list[Verdict]:
        results: list[Verdict | None] = [None] * len(requests)
        errors: list[BaseException] = []

        async def one(index: int, request: httpx.Request) -> None:
            try:
                results[index] = await self._arun(transport, request, deadline)
            except GuardError as exc:
                errors.append(exc)
                group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            for index, request in enumerate(requests):
                group.start_soon(one, index, request)
        if errors:
            raise errors[0]
        return [verdict for verdict in results if verdict is not None]

    # -- connection pools -------------------------------------------------------------------------

    def _pool_options(self) -> dict[str, Any]:
        # No proxies or certificates from the environment: the guard's traffic goes where its
        # configuration says, verified as it says.
        return {"limits": self._limits, "trust_env": False, "http2": self._http2, "verify": self._verify}

    def _sync_transport(self) -> httpx.BaseTransport:
        transport = self._sync_pool
        if transport is None:
            with self._lock:
                if self._sync_pool is None:
                    given = self._transport
                    if given is not None and not isinstance(given, httpx.BaseTransport):
                        raise TypeError("this guard's transport has no sync side: use acheck()")
                    self._sync_pool = given or httpx.HTTPTransport(**self._pool_options())
                transport = self._sync_pool
        return transport

    def _async_transport(self) -> httpx.AsyncBaseTransport:
        # A pool's connections belong to the event loop that opened them: a guard used from a
        # second loop (tests, asyncio.run() called twice) gets a pool of its own.
        try:
            loop: object | None = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - trio
            loop = None
        transport = self._async_pool
        if transport is None or self._async_pool_loop is not loop:
            with self._lock:
                if self._async_pool is None or self._async_pool_loop is not loop:
                    given = self._transport
                    if given is not None and not isinstance(given, httpx.AsyncBaseTransport):
                        raise TypeError("this guard's transport has no async side: use check()")
                    if given is not None:
                        self._async_pool = given
                    elif self._use_aiohttp(loop):
                        self._async_pool = _aiohttp_transport(self._limits, self._verify)
                    else:
                        self._async_pool = httpx.AsyncHTTPTransport(**self._pool_options())
                    self._async_pool_loop = loop
                transport = self._async_pool
        return transport

    def _use_aiohttp(self, loop: object | None) -> bool:
        # aiohttp speaks asyncio only, and HTTP/1.1 only.
        if self.async_backend == "httpx" or loop is None or self._http2:
            return False
        return _HAS_AIOHTTP

    def close(self) -> None:
        """Close the blocking connection pool."""
        with self._lock:
            transport, self._sync_pool = self._sync_pool, None
        if transport is not None:
            transport.close()

    async def aclose(self) -> None:
        """Close both connection pools."""
        self.close()
        with self._lock:
            transport, self._async_pool = self._async_pool, None
            self._async_pool_loop = None
        if transport is not None:
            await transport.aclose()

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self: _T) -> _T:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, timeout={self.timeout:g})"
