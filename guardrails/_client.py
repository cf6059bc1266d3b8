"""The base of the remote guards, and the connection options they share.

`RemoteGuard` owns what every vendor guard needs around the I/O-free exchange of `_exchange`:
the connection pools, the verdict cache, the circuit breaker, one deadline per check, the windows
of one check sent with bounded parallelism, and a credential no exception message may contain. A
subclass turns a `Content` into requests and a response into a `Verdict`, with no I/O of its own.

`ConnectionOptions` holds the options every remote guard takes (``timeout=``, ``retries=``, ...):
the guards accept them as keywords, so adding one is one edit here.

How one check spends its time (the fault model of issue 22):

- One `Deadline` covers every request of the check, retries and backoff included.
- The requests of a check (windows of long text, a chat request next to plain text) go out at most
  `ConnectionOptions.window_concurrency` at a time. A check needing more requests than it can send
  within its deadline at the guard's normal latency (`ConnectionOptions.expected_latency`) is
  refused up front with `ContentTooLarge`, before any request.
- A check of more than one wave of requests (a *bulk* check) holds at most its share of the
  connection pool: bulk checks together use at most half of it, so that a few long prompts never
  make the short checks around them wait (and time out, and fail open). A bulk check that runs out
  of time raises `ContentTooLarge`: its size, not the guard, made it fail, so no policy lets it
  through unscanned. One whose rate budget (``rate_limit=``) runs out mid-way raises
  `GuardRateLimited`: the budget is shared by every check of the process, so the fail-open policy
  (or a `Fallback`) decides, as for a vendor 429.
- While the circuit breaker is not closed, a check of several requests sends its first request
  alone: it is the probe; the others follow once it succeeded. (Sent together, the siblings of the
  probe would fail fast and cancel it: a breaker that only sees multi-window checks would never
  close.)
- The first failure of a request cancels its siblings.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import functools
import importlib.util
import logging
import math
import ssl
import sys
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Literal, TypedDict, TypeVar, cast

import anyio
import httpx
from pydantic import SecretStr
from typing_extensions import Unpack

from ._budget import RateBudget, as_budget
from ._cache import VerdictCache, VerdictMemo, cache_key, resolve_cache
from ._events import spend
from ._exceptions import ContentTooLarge, GuardError, GuardRateLimited, GuardTimeout, GuardUnavailable
from ._exchange import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Flow,
    GuardRequest,
    GuardResponse,
    exchange,
    run_async,
    run_sync,
)
from ._models import Content, Verdict, as_content, combine_verdicts
from ._policy import BreakerState, CircuitBreaker, Deadline, Retry

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "AsyncBackend",
    "ConnectionKeywords",
    "ConnectionOptions",
    "SCANNED_EXTENSION",
    "RemoteGuard",
]

logger = logging.getLogger("guardrails")

# Slack given to the async shell's hard deadline over the per-operation timeouts.
_DEADLINE_MARGIN = 0.05

if sys.version_info >= (3, 11):
    # The hard deadline of an async check: asyncio's own timeout (one loop timer), a fraction of
    # the CPU of an anyio cancel scope; the async pools are asyncio's in any case.
    _hard_deadline = asyncio.timeout
else:  # pragma: no cover - Python 3.10

    @contextlib.asynccontextmanager
    async def _hard_deadline(seconds: float) -> AsyncGenerator[None, None]:
        with anyio.fail_after(seconds):
            yield


# Read on every check: a global costs a fraction of an enum member read through its class (3.11).
_OPEN = BreakerState.OPEN

_REDACTED = "[redacted]"
# A truncated message may end with the start of the key: redact such a tail from this many chars.
_MIN_KEY_FRAGMENT = 4

#: How `acheck` moves bytes: ``"aiohttp"`` (several times less CPU per check under concurrency),
#: ``"httpx"``, or ``"auto"``: aiohttp when it is installed and the loop is asyncio, else httpx.
AsyncBackend = Literal["auto", "httpx", "aiohttp"]

# Looked up, not imported: importing aiohttp costs more than the rest of guardrails.
_HAS_AIOHTTP = importlib.util.find_spec("aiohttp") is not None


@dataclass(frozen=True, kw_only=True)
class ConnectionOptions:
    """How a remote guard talks to its service; every remote guard takes these as keywords.

    Args:
        timeout: overall deadline of one check in seconds, every window, retry and backoff included.
        retries: retries after the first attempt, for transient failures only.
        backoff: base delay of the jittered exponential backoff, in seconds.
        transport: an httpx transport (e.g. `httpx.MockTransport`) used instead of the network. The
            guard never closes a transport it was given.
        breaker: the circuit breaker; a fresh one per guard by default.
        limits: connection pool limits (default: 100 connections, 20 kept alive).
        http2: use HTTP/2 (needs the ``h2`` extra).
        async_backend: how `acheck` sends: ``"auto"`` (aiohttp when installed, on asyncio: several
            times less CPU per check under concurrency), ``"aiohttp"`` or ``"httpx"``.
        verify: TLS verification: True (the default trust store), an `ssl.SSLContext` or the path
            of a CA bundle (a private CA), or False (not recommended: logged as a warning).
        cache: cache verdicts: None (default) or False for no cache, True for an in-memory
            `LRUCache`, or any `VerdictCache`; concurrent identical checks then share one call.
        max_response_bytes: the floor of the cap on a response body; the cap of each request is
            ``max(max_response_bytes, 4 x its body)`` (a masked echo of what was sent must fit).
        window_concurrency: requests of one check in flight at once.
        expected_latency: the guard's normal latency per request, in seconds: a check whose
            requests cannot all be answered within `timeout` at this latency (in waves of
            `window_concurrency`) is refused up front with `ContentTooLarge`.
        rate_limit: a budget of vendor calls (a `RateBudget`, e.g. ``RateLimit(5, burst=10)`` or
            a shared ``RedisRateLimit``), or calls per second; None (default) for no limit. Each
            request sent spends one unit (retries of it do not); with the budget spent the check
            raises `GuardRateLimited` without calling the vendor, so the fail-open policy (or a
            `Fallback`) decides, as for a vendor 429.
    """

    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.1
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None
    breaker: CircuitBreaker | None = None
    limits: httpx.Limits | None = None
    http2: bool = False
    async_backend: AsyncBackend = "auto"
    verify: ssl.SSLContext | str | bool = True
    cache: VerdictCache | bool | None = None
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    window_concurrency: int = 8
    expected_latency: float = 0.5
    rate_limit: RateBudget | float | None = None

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if self.backoff < 0:
            raise ValueError("backoff must not be negative")
        if self.async_backend not in ("auto", "httpx", "aiohttp"):
            raise ValueError(
                f"async_backend must be 'auto', 'httpx' or 'aiohttp', not {self.async_backend!r}"
            )
        if self.async_backend == "aiohttp" and not _HAS_AIOHTTP:
            raise ValueError(
                "async_backend='aiohttp' needs aiohttp: pip install 'guardrails-middleware[aiohttp]'"
            )
        if self.max_response_bytes < 1:
            raise ValueError("max_response_bytes must be at least 1")
        if self.window_concurrency < 1:
            raise ValueError("window_concurrency must be at least 1")
        if not self.expected_latency > 0:
            raise ValueError("expected_latency must be a positive number of seconds")

    @property
    def max_requests(self) -> int:
        """The most requests one check can send within `timeout` at `expected_latency`."""
        waves = max(1, math.floor(self.timeout / self.expected_latency))
        return waves * self.window_concurrency


class ConnectionKeywords(TypedDict, total=False):
    """`ConnectionOptions` as keyword arguments (a test pins that the two agree)."""

    timeout: float
    retries: int
    backoff: float
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None
    breaker: CircuitBreaker | None
    limits: httpx.Limits | None
    http2: bool
    async_backend: AsyncBackend
    verify: ssl.SSLContext | str | bool
    cache: VerdictCache | bool | None
    max_response_bytes: int
    window_concurrency: int
    expected_latency: float
    rate_limit: RateBudget | float | None


def _redact(message: str, secret: str) -> str:
    if secret in message:
        message = message.replace(secret, _REDACTED)
    # Service messages are truncated: the start of the key may be the end of the message.
    for length in range(min(len(secret) - 1, len(message)), _MIN_KEY_FRAGMENT - 1, -1):
        if message.endswith(secret[:length]):
            return message[:-length] + _REDACTED
    return message


def _scrub(error: BaseException, secret: str) -> None:
    """Redact `secret` from the messages of `error` and of the errors it was raised from."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, GuardError):
            current.args = tuple(
                _redact(arg, secret) if isinstance(arg, str) else arg for arg in current.args
            )
        current = current.__cause__ or current.__context__


class _AsyncPool:
    """The async transport of one event loop, and what bounds the bulk checks on that loop."""

    __slots__ = ("bounded", "bulk", "closer", "drive", "transport")

    def __init__(self, transport: httpx.AsyncBaseTransport, bulk: anyio.Semaphore) -> None:
        self.transport = transport
        self.bulk = bulk
        self.closer: AsyncGenerator[None, None] | None = None
        # The transport bounds each attempt, whole, by the time it is given (`AiohttpTransport`).
        self.bounded = getattr(transport, "bounds_attempts", False) is True
        # Its own driver of an exchange, when it bounds attempts (see `RemoteGuard.acheck`).
        drive: Callable[[Flow, Deadline, int], Awaitable[Verdict]] | None = getattr(transport, "drive", None)
        self.drive = drive if self.bounded else None


async def _close_with_loop(transport: httpx.AsyncBaseTransport) -> AsyncGenerator[None, None]:
    # An async generator the loop finalizes when it shuts down (asyncio.run calls
    # shutdown_asyncgens) or when the guard drops it: the pool is closed on its own loop, so a
    # guard used from successive loops leaves no "Unclosed client session" behind.
    try:
        yield
    finally:
        await transport.aclose()


_T = TypeVar("_T", bound="RemoteGuard")

#: The `httpx.Request` extension where a guard that builds httpx requests says how many characters
#: a request sends for scanning (`GuardRequest.scanned` says it for the plain requests).
SCANNED_EXTENSION = "guardrails_scanned"


class RemoteGuard:
    """Base of the guards that ask a remote service.

    Subclasses set `name` and implement `_build_requests` (one `GuardRequest` per window of the
    content, or an `httpx.Request`, converted once; raise `ContentTooLarge` for more than the
    guard checks) and `_parse_response` (a `GuardResponse`: `status_code`, `headers.get`,
    `content`, `json()`); both are pure.
    This class owns the HTTP pools, the retry schedule, the deadline, the circuit breaker, the
    verdict cache and the API key: every `GuardError` leaving `check`/`acheck` is scrubbed of it (a
    service may echo the credential in an error body). A subclass whose verdicts depend on more
    than its base URL says so in `_cache_identity`, and names the metadata its requests use in
    `_cache_metadata`.

    Args:
        base_url: the service's base URL.
        api_key: the credential, if the guard has one.
        options: the connection options; keywords (``timeout=...``) override its fields.
        **connection: any `ConnectionOptions` field.

    Attributes:
        options: the `ConnectionOptions` in force.
        max_requests: the most requests one check may need (see `ConnectionOptions.max_requests`).
    """

    name: ClassVar[str] = "remote"
    #: Characters per billing unit where the vendor documents one (Palo Alto: 4 per token).
    billing_chars_per_unit: ClassVar[int | None] = None
    #: The `Content.metadata` entries the requests use (they are part of the cache key); None: all.
    _cache_metadata: ClassVar[Collection[str] | None] = None
    _api_key: SecretStr | None = None

    def __init__(
        self,
        *,
        base_url: str,
        api_key: SecretStr | None = None,
        options: ConnectionOptions | None = None,
        **connection: Unpack[ConnectionKeywords],
    ) -> None:
        options = dataclasses.replace(options or ConnectionOptions(), **connection)
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an absolute http(s) URL, not {base_url!r}")
        self.options = options
        self.base_url = str(url).rstrip("/")
        if api_key is not None:
            self._api_key = api_key
        self.timeout = float(options.timeout)
        self.retry = Retry(attempts=options.retries + 1, backoff=options.backoff)
        self.breaker = options.breaker if options.breaker is not None else CircuitBreaker()
        # Deadlines run on the breaker's clock: one notion of time per guard (a fake one in tests).
        self._clock = self.breaker.clock
        self.max_response_bytes = options.max_response_bytes
        self.cache = resolve_cache(options.cache)
        self.rate_limit = as_budget(options.rate_limit)
        self._memo = VerdictMemo(self.cache) if self.cache is not None else None
        self._transport = options.transport
        self._limits = options.limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._http2 = options.http2
        self.async_backend: AsyncBackend = options.async_backend
        verify = options.verify
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        if verify is False and url.scheme == "https":
            logger.warning("%s guard: TLS certificate verification is off for %s", self.name, url.host)
        self._verify: ssl.SSLContext | bool = verify
        # Bulk checks together hold at most half the pool (see the module docstring).
        capacity = self._limits.max_connections or 100
        self._bulk_slots = max(1, capacity // 2)
        self._lock = threading.Lock()
        self._sync_pool: httpx.BaseTransport | None = None
        self._sync_bulk = threading.BoundedSemaphore(self._bulk_slots)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._async_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncPool] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def _key(self) -> SecretStr:
        """The credential (for subclasses that have one)."""
        if self._api_key is None:
            raise TypeError(f"{type(self).__name__} has no API key")
        return self._api_key

    @functools.cached_property
    def max_requests(self) -> int:
        """The most requests one check may need; more is refused with `ContentTooLarge`."""
        return self.options.max_requests

    # -- what subclasses provide ---------------------------------------------------------------

    def _build_requests(self, content: Content) -> list[GuardRequest] | list[httpx.Request]:
        """The requests that check `content` (several for long text split into windows)."""
        raise NotImplementedError

    def _parse_response(self, response: GuardResponse) -> Verdict:
        """Turn a 2xx response into a Verdict; raise `GuardResponseError` if it is not usable."""
        raise NotImplementedError

    def _text_request(self, text: str) -> GuardRequest | None:
        """The one request that checks plain `text` (a `Content` of text alone), built without a
        `Content`; None (the default) when the guard has no such shortcut or the text needs more.

        An optional fast path of `acheck`, for a guard whose request for text alone depends on
        neither the Content's kind nor its metadata: when given, it is the request
        `_build_requests` gives for such a Content (the same bytes), and it raises as that would.
        """
        return None

    def _cache_identity(self) -> tuple[object, ...]:
        """What, besides the content, makes this guard's verdicts what they are (never a secret in clear)."""
        cls = type(self)
        return (f"{cls.__module__}.{cls.__qualname__}", self.base_url)

    # -- checks -----------------------------------------------------------------------------------

    def _flow(self, request: GuardRequest, deadline: Deadline) -> Flow:
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
        """Check `content`, blocking; returns a Verdict or raises a `GuardError`.

        Raises:
            ContentTooLarge: more than the guard checks in one call (before any request).
        """
        content = as_content(content)
        try:
            memo = self._memo
            if memo is not None:
                key = self._cache_key(content)
                if key is not None:
                    return memo.check(key, lambda: self._check(content))
            return self._check(content)
        except GuardError as exc:
            self._scrub(exc)
            raise

    async def acheck(self, content: Content | str) -> Verdict:
        """Check `content` without blocking the event loop; windows are checked concurrently.

        Raises:
            ContentTooLarge: more than the guard checks in one call (before any request).
        """
        try:
            if self._memo is None and self.rate_limit is None:
                pool = self._async_pools.get(asyncio.get_running_loop())
                if pool is not None and pool.drive is not None:
                    # The hot path, plain text of one request on a transport that bounds each
                    # attempt whole: the same exchange, driven by the transport with no hard-stop
                    # timer (see `_acheck`), with no `Content` built and two coroutine frames fewer.
                    text = content if type(content) is str else _plain_text(content)
                    if text is not None:
                        self._fail_if_open()
                        request = self._text_request(text)
                        if request is not None:
                            self._count(request)
                            deadline = Deadline(self.timeout, clock=self._clock)
                            flow = self._flow(request, deadline)
                            return await pool.drive(flow, deadline, self.max_response_bytes)
            content = as_content(content)
            memo = self._memo
            if memo is not None:
                key = self._cache_key(content)
                if key is not None:
                    return await memo.acheck(key, lambda: self._acheck(content))
            return await self._acheck(content)
        except GuardError as exc:
            self._scrub(exc)
            raise

    def _scrub(self, error: GuardError) -> None:
        if self._api_key is not None:
            _scrub(error, self._api_key.get_secret_value())

    def _fail_if_open(self) -> None:
        # Checked before any work: building the requests costs more than failing fast should.
        if self.breaker.state is _OPEN:
            raise GuardUnavailable(
                f"{self.name} guard circuit breaker is open: failing fast", guard=self.name, circuit_open=True
            )

    def _requests(self, content: Content) -> list[GuardRequest]:
        built = self._build_requests(content)
        if built and not isinstance(built[0], GuardRequest):  # a subclass that builds httpx requests
            built = [_from_httpx(request) for request in built]
        requests = cast("list[GuardRequest]", built)
        if len(requests) > self.max_requests:
            raise ContentTooLarge(
                f"{self.name} guard: this content needs {len(requests)} requests, more than the "
                f"{self.max_requests} one check can send within its {self.timeout:g}s deadline",
                limit=self.max_requests,
            )
        return requests

    def _is_bulk(self, requests: list[GuardRequest]) -> bool:
        return len(requests) > self.options.window_concurrency

    def _size_failure(self, error: GuardError, count: int) -> ContentTooLarge:
        # A bulk check that ran out of time failed because of its size. One that ran out of rate
        # budget did not: the budget is the process's, spent by every check, so that stays a
        # `GuardRateLimited` and the fail-open policy decides.
        return ContentTooLarge(
            f"{self.name} guard: {count} requests could not be checked within the "
            f"{self.timeout:g}s deadline ({type(error).__name__})",
            limit=self.max_requests,
        )

    def _check(self, content: Content) -> Verdict:
        self._fail_if_open()
        requests = self._requests(content)
        deadline = Deadline(self.timeout, clock=self._clock)
        transport = self._sync_transport()
        if len(requests) == 1:
            return self._run_one(transport, requests[0], deadline)
        try:
            verdicts = self._run_windows(transport, requests, deadline)
        except GuardTimeout as exc:
            if self._is_bulk(requests):
                raise self._size_failure(exc, len(requests)) from None
            raise
        return combine_verdicts(verdicts, guard=self.name)

    def _run_one(self, transport: httpx.BaseTransport, request: GuardRequest, deadline: Deadline) -> Verdict:
        if self.rate_limit is not None:
            self._spent(self.rate_limit.take())
        self._count(request)
        return run_sync(
            transport, self._flow(request, deadline), deadline=deadline, max_bytes=self.max_response_bytes
        )

    def _run_windows(
        self, transport: httpx.BaseTransport, requests: list[GuardRequest], deadline: Deadline
    ) -> list[Verdict]:
        results: list[Verdict | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        if self.breaker.state is not BreakerState.CLOSED:
            results[0] = self._run_one(transport, requests[0], deadline)  # the probe, alone
            pending.pop(0)
        bulk = self._is_bulk(requests)
        executor = self._thread_pool()
        running: dict[concurrent.futures.Future[Verdict], int] = {}
        try:
            while pending or running:
                while pending and len(running) < self.options.window_concurrency:
                    # A bulk check takes its slot in its own thread, so that a waiting bulk check
                    # never holds a worker the short checks could use.
                    if bulk and not self._sync_bulk.acquire(timeout=deadline.remaining()):
                        raise GuardTimeout(
                            f"{self.name} guard check exceeded its {self.timeout:g}s deadline",
                            guard=self.name,
                        )
                    index = pending.pop(0)
                    # In a copy of the caller's context: its `Meter` counts what the window spends.
                    context = contextvars.copy_context()
                    future = executor.submit(context.run, self._run_one, transport, requests[index], deadline)
                    if bulk:
                        # Given back when the request ends, or is cancelled before it starts.
                        future.add_done_callback(self._release_bulk)
                    running[future] = index
                done, _ = concurrent.futures.wait(
                    running,
                    timeout=deadline.remaining() + _DEADLINE_MARGIN,
                    return_when=concurrent.futures.FIRST_COMPLETED,
                )
                if not done:  # a request that ignores its timeouts (DNS, a stuck TLS handshake)
                    raise GuardTimeout(
                        f"{self.name} guard check exceeded its {self.timeout:g}s deadline", guard=self.name
                    )
                for future in done:
                    results[running.pop(future)] = future.result()  # the first failure ends the check
        finally:
            # Siblings not started are cancelled; those in flight end within the deadline.
            for future in running:
                future.cancel()
        return [verdict for verdict in results if verdict is not None]

    def _count(self, request: GuardRequest) -> None:
        """Count a request about to be sent: characters for scanning (`GuardRequest.scanned`; the
        body's length when it says nothing) and billing."""
        characters = request.scanned
        if characters is None:
            characters = len(request.content)
        per_unit = self.billing_chars_per_unit
        spend(self.name, characters, None if per_unit is None else -(-characters // per_unit))

    def _spent(self, wait: float) -> None:
        """Raise `GuardRateLimited` when the rate budget had nothing left (`wait` > 0)."""
        if wait > 0:
            raise GuardRateLimited(
                f"{self.name} guard rate budget spent: next call in {wait:.3g}s",
                guard=self.name,
                status_code=None,
                retry_after=wait,
            )

    def _release_bulk(self, _: object) -> None:
        self._sync_bulk.release()

    async def _acheck(self, content: Content) -> Verdict:
        self._fail_if_open()
        requests = self._requests(content)
        deadline = Deadline(self.timeout, clock=self._clock)
        pool = self._async_pools.get(asyncio.get_running_loop()) or await self._async_pool()
        if len(requests) == 1 and pool.bounded and self.rate_limit is None:
            # No hard stop needed: the exchange gives each attempt what is left of the deadline
            # and the transport bounds the attempt whole by it (DNS, connect, TLS, send, read),
            # and the backoff sleeps fit the deadline. A loop timer less per check.
            return await self._arun(pool.transport, requests[0], deadline)
        try:
            # A hard stop: per-operation timeouts alone cannot bound DNS or a slow TLS handshake.
            async with _hard_deadline(self.timeout + _DEADLINE_MARGIN):
                if len(requests) == 1:
                    return await self._arun(pool.transport, requests[0], deadline)
                verdicts = await self._arun_windows(pool, requests, deadline)
        except TimeoutError as exc:
            if self._is_bulk(requests):
                raise self._size_failure(GuardTimeout("deadline"), len(requests)) from None
            raise GuardTimeout(
                f"{self.name} guard check exceeded its {self.timeout:g}s deadline", guard=self.name
            ) from exc
        except GuardTimeout as exc:
            if self._is_bulk(requests):
                raise self._size_failure(exc, len(requests)) from None
            raise
        return combine_verdicts(verdicts, guard=self.name)

    async def _arun(
        self, transport: httpx.AsyncBaseTransport, request: GuardRequest, deadline: Deadline
    ) -> Verdict:
        if self.rate_limit is not None:
            self._spent(await self.rate_limit.atake())
        self._count(request)
        return await run_async(
            transport, self._flow(request, deadline), deadline=deadline, max_bytes=self.max_response_bytes
        )

    async def _arun_windows(
        self, pool: _AsyncPool, requests: list[GuardRequest], deadline: Deadline
    ) -> list[Verdict]:
        results: list[Verdict | None] = [None] * len(requests)
        errors: list[BaseException] = []
        first = 0
        if self.breaker.state is not BreakerState.CLOSED:
            results[0] = await self._arun(pool.transport, requests[0], deadline)  # the probe, alone
            first = 1
        check_slots = anyio.Semaphore(self.options.window_concurrency)
        bulk = pool.bulk if self._is_bulk(requests) else None

        async def one(index: int) -> None:
            try:
                async with check_slots:
                    if bulk is None:
                        results[index] = await self._arun(pool.transport, requests[index], deadline)
                        return
                    async with bulk:
                        results[index] = await self._arun(pool.transport, requests[index], deadline)
            except (GuardError, ContentTooLarge) as exc:
                errors.append(exc)
                group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            for index in range(first, len(requests)):
                group.start_soon(one, index)
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

    def _thread_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        executor = self._executor
        if executor is None:
            with self._lock:
                if self._executor is None:
                    workers = self._limits.max_connections or 100
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        max_workers=workers, thread_name_prefix=f"guardrails-{self.name}"
                    )
                executor = self._executor
        return executor

    async def _async_pool(self) -> _AsyncPool:
        # A pool's connections belong to the event loop that opened them: each loop gets a pool of
        # its own, closed when that loop shuts down (see `_close_with_loop`).
        loop = asyncio.get_running_loop()
        pool = self._async_pools.get(loop)
        if pool is not None:
            return pool
        given = self._transport
        if given is not None and not isinstance(given, httpx.AsyncBaseTransport):
            raise TypeError("this guard's transport has no async side: use check()")
        if given is not None:
            pool = _AsyncPool(given, anyio.Semaphore(self._bulk_slots))
        else:
            if self._use_aiohttp():
                transport = _aiohttp_transport(self._limits, self._verify)
            else:
                transport = httpx.AsyncHTTPTransport(**self._pool_options())
            pool = _AsyncPool(transport, anyio.Semaphore(self._bulk_slots))
            pool.closer = _close_with_loop(transport)
        self._async_pools[loop] = pool  # before awaiting: a concurrent first check shares it
        if pool.closer is not None:
            # First iterated here, so that this loop finalizes it when it shuts down.
            await pool.closer.__anext__()
        return pool

    def _use_aiohttp(self) -> bool:
        # aiohttp speaks asyncio only, and HTTP/1.1 only.
        if self.async_backend == "httpx" or self._http2:
            return False
        return _HAS_AIOHTTP

    def close(self) -> None:
        """Close the blocking connection pool (never a transport the guard was given)."""
        with self._lock:
            transport, self._sync_pool = self._sync_pool, None
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if transport is not None and transport is not self._transport:
            transport.close()

    async def aclose(self) -> None:
        """Close both connection pools of the running loop (never a transport the guard was given)."""
        self.close()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - trio
            return
        pool = self._async_pools.pop(loop, None)
        if pool is None:
            return
        if pool.closer is not None:
            await pool.closer.aclose()
        elif pool.transport is not self._transport:
            await pool.transport.aclose()

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


def _plain_text(content: object) -> str | None:
    """The text of a `Content` of text alone (what `RemoteGuard._text_request` takes), else None."""
    if (
        isinstance(content, Content)
        and content.messages is None
        and content.completion is None
        and content.tool is None
    ):
        return content.text
    return None


def _from_httpx(request: httpx.Request) -> GuardRequest:
    scanned = request.extensions.get(SCANNED_EXTENSION)
    return GuardRequest.from_httpx(request, scanned=scanned if isinstance(scanned, int) else None)


def _aiohttp_transport(limits: httpx.Limits, verify: ssl.SSLContext | bool) -> httpx.AsyncBaseTransport:
    from ._aiohttp import AiohttpTransport

    return AiohttpTransport(limits=limits, ssl=None if verify is True else verify)
