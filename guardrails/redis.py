"""Verdict cache, circuit breaker and rate budget shared by every worker, on Redis (extra ``redis``).

Many workers (gunicorn processes, pods) guarding one app each keep their own cache, breaker and
budget: N workers send N identical checks, discover an outage N times, and overrun the vendor's
quota N times over. These three objects keep that state in Redis instead::

    from guardrails import TrendAIGuard
    from guardrails.redis import RedisBreaker, RedisCache, RedisRateLimit

    url = "rediss://guard:secret@redis.internal:6380/0"   # TLS and auth come with the URL
    guard = TrendAIGuard(
        "api-key",
        cache=RedisCache(url, ttl=300),                    # verdicts + single-flight, fleet-wide
        breaker=RedisBreaker(url, name="trend"),           # opens for every worker at once
        rate_limit=RedisRateLimit(url, rate=50, name="trend"),  # 50 calls/s for the whole fleet
    )

- `RedisCache` is a `SharedVerdictCache`: keys are the cache's digests, values the verdict's
  action, reasons, id, guard name and categories (never `Verdict.raw`, never a masked verdict: no
  prompt text reaches Redis). Identical checks in flight on several workers share one guard call:
  the first takes a lease (``SET NX PX``), the others poll for its verdict until the lease ends,
  then take the lead themselves.
- `RedisBreaker` is a `CircuitBreaker` whose state lives in one Redis hash, moved by one Lua script:
  the fleet opens together, and in half-open exactly one probe goes out across it (a probe whose
  worker died frees its slot after ``probe_timeout``).
- `RedisRateLimit` is a `RateBudget` (GCRA, one Lua script on the server's clock).

Redis slow or down never fails a check: every command has a short socket timeout (``timeout=``,
0.25 s by default) and is retried only on a broken connection (once, at once); a failed command
marks Redis down (one WARNING, ``outages`` + 1) and the object uses its in-process stand-in (an
`LRUCache`, the `CircuitBreaker` it is, a `RateLimit`) without trying Redis again for
``retry_interval`` seconds; the first command that succeeds after that marks it up again (one
WARNING, ``recoveries`` + 1). ``available`` says which side is in use.

Costs: a cache hit is one round trip (a ``GET``); a miss adds the claim script and one script
storing the verdict; the breaker runs its script for
the check's state, for each attempt's permit and for its outcome. The breaker's API is
synchronous (it is called inside the I/O-free exchange), so under ``acheck`` its commands run
inline on the event loop, each bounded by ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, Union

import anyio
import anyio.to_thread
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as _AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry as _SyncRetry

from ._budget import RateLimit
from ._cache import LRUCache, VerdictCache
from ._exceptions import GuardError, GuardUnavailable
from ._models import CATEGORIES, Action, Verdict
from ._policy import BreakerState, CircuitBreaker, Permit

__all__ = ["RedisBreaker", "RedisCache", "RedisRateLimit"]

logger = logging.getLogger("guardrails")

#: A Redis URL (``redis://``, ``rediss://`` for TLS, ``user:password@`` for auth), or a redis-py client.
RedisTarget = Union[str, "redis.Redis", "redis.asyncio.Redis"]

DEFAULT_PREFIX = "guardrails:"
DEFAULT_TIMEOUT = 0.25
DEFAULT_RETRY_INTERVAL = 1.0

_T = TypeVar("_T")

# One immediate retry on a broken connection, never on a timeout: after Redis restarted, each pooled
# connection fails once (it is replaced on the retry); a slow Redis is not asked twice.
_RECONNECT = (redis.exceptions.ConnectionError,)


class _Unavailable(Exception):
    """Redis cannot be used for this call: use the in-process stand-in."""


class _Lua:
    """A Lua script run with EVALSHA (EVAL once when the server does not know it yet)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

    def run(self, client: redis.Redis, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)

    async def arun(
        self, client: redis.asyncio.Redis, keys: Sequence[str], args: Sequence[str | int | float]
    ) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


def _redacted_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0] if ":" in credentials else ""
    return f"{scheme}://{user + ':' if user else ''}***@{host}"


class _Link:
    """The connection of one object to Redis (a sync client, an asyncio client per event loop), and
    whether Redis is up: one WARNING per transition, counted."""

    def __init__(self, target: RedisTarget, *, timeout: float, retry_interval: float, what: str) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        if retry_interval < 0:
            raise ValueError("retry_interval must not be negative")
        self.what = what
        self.timeout = float(timeout)
        self.retry_interval = float(retry_interval)
        self.url: str | None = None
        self._sync: redis.Redis | None = None
        self._given_async: redis.asyncio.Redis | None = None
        if isinstance(target, str):
            if not target.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError("a Redis URL starts with redis://, rediss:// (TLS) or unix://")
            self.url = target
        elif isinstance(target, redis.asyncio.Redis):
            self._given_async = target
        elif isinstance(target, redis.Redis):
            self._sync = target
        else:
            raise TypeError(
                f"expected a Redis URL or a redis-py client (redis.Redis, redis.asyncio.Redis), "
                f"not {type(target).__name__}"
            )
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.available = True
        self.outages = 0
        self.recoveries = 0
        self._retry_at = 0.0

    # -- clients -----------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        # Short timeouts and no retries: a slow Redis must cost a check milliseconds, not seconds.
        return {"socket_timeout": self.timeout, "socket_connect_timeout": self.timeout}

    def sync_client(self) -> redis.Redis:
        client = self._sync
        if client is None:
            if self.url is None:  # only an asyncio client was given: check() uses the stand-in
                raise _Unavailable
            with self._lock:
                if self._sync is None:
                    self._sync = redis.Redis.from_url(
                        self.url, retry=_SyncRetry(NoBackoff(), 1, _RECONNECT), **self._options()
                    )
                client = self._sync
        return client

    async def async_client(self) -> redis.asyncio.Redis | None:
        """The running loop's client; None when only a sync client was given (run it in a thread)."""
        if self._given_async is not None:
            return self._given_async
        if self.url is None:
            return None
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is not None:
            return entry[0]
        # A connection belongs to the loop that opened it: one client per loop, closed when that
        # loop shuts down (see `_close_with_loop`) if nobody called `aclose` before.
        client = redis.asyncio.Redis.from_url(
            self.url, retry=_AsyncRetry(NoBackoff(), 1, _RECONNECT), **self._options()
        )
        closer = _close_with_loop(client)
        self._async[loop] = (client, closer)
        await closer.__anext__()
        return client

    # -- health --------------------------------------------------------------------------------

    def _due(self) -> bool:
        return self.available or time.monotonic() >= self._retry_at

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            self._retry_at = time.monotonic() + self.retry_interval
            if not self.available:
                return
            self.available = False
            self.outages += 1
        # The error's message is left out: it may quote the URL (and its password).
        logger.warning(
            "%s: Redis unavailable (%s): using the in-process stand-in, next try in %gs",
            self.what,
            type(error).__name__,
            self.retry_interval,
        )

    def _succeeded(self) -> None:
        if self.available:
            return
        with self._lock:
            # Another thread may have seen it come back first: one warning per transition.
            recovered, self.available = not self.available, True
            self.recoveries += recovered
        if recovered:
            logger.warning("%s: Redis is back: shared state in use again", self.what)

    def run(self, op: Callable[[redis.Redis], _T]) -> _T:
        """Run `op` on the sync client; raises `_Unavailable` when Redis is down or fails now."""
        if not self._due():
            raise _Unavailable
        client = self.sync_client()
        try:
            result = op(client)
        except (redis.exceptions.RedisError, OSError) as exc:
            self._failed(exc)
            raise _Unavailable from None
        self._succeeded()
        return result

    async def arun(
        self, op: Callable[[redis.asyncio.Redis], Awaitable[_T]], sync_op: Callable[[redis.Redis], _T]
    ) -> _T:
        """`run` for async callers: `op` on the loop's client, or `sync_op` in a worker thread."""
        if not self._due():
            raise _Unavailable
        try:
            client = await self.async_client()
            if client is None:
                result = await anyio.to_thread.run_sync(sync_op, self.sync_client())
            else:
                # The socket timeouts bound the connect, each write and each read (an overall
                # cancel scope would add a fifth to a hit's cost).
                result = await op(client)
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            raise _Unavailable from None
        self._succeeded()
        return result

    def close(self) -> None:
        if self.url is not None and self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        self.close()
        if self.url is None:
            return
        entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()

    def describe(self) -> str:
        if self.url is not None:
            return repr(_redacted_url(self.url))
        return type(self._sync or self._given_async).__name__


async def _close_with_loop(client: redis.asyncio.Redis) -> AsyncGenerator[None, None]:
    # An async generator the loop finalizes when it shuts down (asyncio.run calls
    # shutdown_asyncgens): the client's connections are closed on their own loop.
    try:
        yield
    finally:
        await client.aclose()


class _Shared:
    """What the three objects share: the link, its health counters, closing."""

    _link: _Link

    @property
    def available(self) -> bool:
        """Whether Redis is in use (False: the in-process stand-in is)."""
        return self._link.available

    @property
    def outages(self) -> int:
        """Times Redis was found down (each logged once as a WARNING)."""
        return self._link.outages

    @property
    def recoveries(self) -> int:
        """Times Redis came back after an outage."""
        return self._link.recoveries

    def close(self) -> None:
        """Close the sync connection pool (never a client that was given)."""
        self._link.close()

    async def aclose(self) -> None:
        """Close the connection pools of the running loop (never a client that was given)."""
        await self._link.aclose()


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise TypeError("prefix must be a string")
    return prefix


# -- the verdict cache ----------------------------------------------------------------------------

# KEYS: value, lease. ARGV: lease token, lease ms. {0, value}: stored; {1}: lead; {2}: follow.
_CLAIM = _Lua("""
local v = redis.call('GET', KEYS[1])
if v then return {0, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
return {2}
""")
# KEYS: value, lease. ARGV: value, ttl ms. Storing the verdict ends the lease.
_STORE = _Lua("""
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
""")
# KEYS: value, lease. {value or false, lease ms left (< 0: no lease)}.
_PEEK = _Lua("""
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[2])}
""")
# KEYS: lease. ARGV: token. Only our own lease is ended.
_RELEASE = _Lua("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")

_FIRST_POLL = 0.002
_MAX_POLL = 0.05


def _encode(verdict: Verdict) -> str:
    # What is kept: the decision, never text. `raw` may quote the prompt (detailed answers), and
    # masked verdicts are the prompt: neither is ever stored.
    return json.dumps(
        {
            "a": verdict.action.value,
            "r": verdict.reasons,
            "i": verdict.id,
            "g": verdict.guard,
            "c": sorted(verdict.categories),
        },
        separators=(",", ":"),
    )


def _decode(value: object) -> Verdict | None:
    if not isinstance(value, (bytes, str)):
        return None
    try:
        data = json.loads(value)
        return Verdict(
            action=Action(data["a"]),
            reasons=[str(reason) for reason in data["r"]],
            id=data["i"],
            guard=str(data["g"]),
            categories=frozenset(c for c in data["c"] if c in CATEGORIES),
            cached=True,
        )
    except (ValueError, KeyError, TypeError):
        return None  # not ours, or from another version: a miss


class RedisCache(_Shared):
    """A verdict cache shared by every worker, with single-flight across them (a `SharedVerdictCache`).

    Args:
        url_or_client: a Redis URL (``redis://``, ``rediss://`` for TLS, ``user:password@`` for
            auth), or a redis-py client: a ``redis.Redis`` serves both ``check`` and ``acheck``
            (the latter in a worker thread); a ``redis.asyncio.Redis`` serves ``acheck`` only
            (``check`` then uses the in-process cache). A URL gives a client per event loop.
        ttl: seconds a verdict stays valid.
        prefix: what every key starts with (``{prefix}v:{digest}``, ``{prefix}l:{digest}``).
        lease: seconds the worker calling the guard holds the lease; the others wait for its
            verdict at most that long, then call the guard themselves.
        timeout: socket timeout of each Redis command, in seconds.
        retry_interval: seconds Redis is left alone after it failed, before it is tried again.
        local: the in-process cache used while Redis is down (default: an `LRUCache` of `ttl`).

    Attributes:
        hits: `get` calls served from Redis. misses: those that found nothing there.
    """

    def __init__(
        self,
        url_or_client: RedisTarget,
        *,
        ttl: float = 300.0,
        prefix: str = DEFAULT_PREFIX,
        lease: float = 5.0,
        timeout: float = DEFAULT_TIMEOUT,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        local: VerdictCache | None = None,
    ) -> None:
        if not ttl > 0:
            raise ValueError("ttl must be a positive number of seconds")
        if not lease > 0:
            raise ValueError("lease must be a positive number of seconds")
        self._link = _Link(url_or_client, timeout=timeout, retry_interval=retry_interval, what="RedisCache")
        self.ttl = float(ttl)
        self.prefix = _check_prefix(prefix)
        self.lease = float(lease)
        self.local: VerdictCache = local if local is not None else LRUCache(ttl=ttl)
        self.hits = 0
        self.misses = 0
        self._ttl_ms = max(1, round(self.ttl * 1000))
        self._lease_ms = max(1, round(self.lease * 1000))
        # Whose lease it is: only our own is ever released.
        self._token = uuid.uuid4().hex

    def _keys(self, key: str) -> tuple[str, str]:
        return f"{self.prefix}v:{key}", f"{self.prefix}l:{key}"

    def _got(self, value: object) -> Verdict | None:
        verdict = _decode(value)
        if verdict is None:
            self.misses += 1
        else:
            self.hits += 1
        return verdict

    # -- VerdictCache --------------------------------------------------------------------------

    def get(self, key: str) -> Verdict | None:
        name = self._keys(key)[0]
        try:
            value = self._link.run(lambda client: client.get(name))
        except _Unavailable:
            return self.local.get(key)
        return self._got(value)

    def set(self, key: str, verdict: Verdict) -> None:
        if verdict.masked is not None or verdict.masked_data:
            return  # masked text is the user's text
        keys, args = self._keys(key), (_encode(verdict), self._ttl_ms)
        try:
            self._link.run(lambda client: _STORE.run(client, keys, args))
        except _Unavailable:
            self.local.set(key, verdict)

    async def aget(self, key: str) -> Verdict | None:
        name = self._keys(key)[0]
        try:
            value = await self._link.arun(lambda client: client.get(name), lambda client: client.get(name))
        except _Unavailable:
            return self.local.get(key)
        return self._got(value)

    async def aset(self, key: str, verdict: Verdict) -> None:
        if verdict.masked is not None or verdict.masked_data:
            return
        keys, args = self._keys(key), (_encode(verdict), self._ttl_ms)
        try:
            await self._link.arun(
                lambda client: _STORE.arun(client, keys, args), lambda client: _STORE.run(client, keys, args)
            )
        except _Unavailable:
            self.local.set(key, verdict)

    # -- single-flight across processes ----------------------------------------------------------

    def _claimed(self, reply: Any) -> tuple[bool, Verdict | None]:
        if reply[0] == 0:
            verdict = _decode(reply[1])
            return (verdict is None, verdict)
        return (reply[0] == 1, None)

    def _claim_locally(self, key: str) -> tuple[bool, Verdict | None]:
        # Redis is down: the in-process cache stands in, and this process leads on a miss.
        verdict = self.local.get(key)
        return (verdict is None, verdict)

    def claim(self, key: str) -> tuple[bool, Verdict | None]:
        keys, args = self._keys(key), (self._token, self._lease_ms)
        try:
            return self._claimed(self._link.run(lambda client: _CLAIM.run(client, keys, args)))
        except _Unavailable:
            return self._claim_locally(key)

    async def aclaim(self, key: str) -> tuple[bool, Verdict | None]:
        keys, args = self._keys(key), (self._token, self._lease_ms)
        try:
            reply = await self._link.arun(
                lambda client: _CLAIM.arun(client, keys, args), lambda client: _CLAIM.run(client, keys, args)
            )
        except _Unavailable:
            return self._claim_locally(key)
        return self._claimed(reply)

    def follow(self, key: str) -> Verdict | None:
        keys = self._keys(key)
        deadline = time.monotonic() + self.lease + self._link.timeout
        pause = _FIRST_POLL
        while True:
            try:
                value, left = self._link.run(lambda client: _PEEK.run(client, keys, ()))
            except _Unavailable:
                return None
            verdict = _decode(value)
            remaining = deadline - time.monotonic()
            if verdict is not None or left < 0 or remaining <= 0:
                return verdict
            time.sleep(min(pause, left / 1000, remaining))  # a poll interval, bounded by the lease
            pause = min(pause * 2, _MAX_POLL)

    async def afollow(self, key: str) -> Verdict | None:
        keys = self._keys(key)
        deadline = time.monotonic() + self.lease + self._link.timeout
        pause = _FIRST_POLL
        while True:
            try:
                value, left = await self._link.arun(
                    lambda client: _PEEK.arun(client, keys, ()), lambda client: _PEEK.run(client, keys, ())
                )
            except _Unavailable:
                return None
            verdict = _decode(value)
            remaining = deadline - time.monotonic()
            if verdict is not None or left < 0 or remaining <= 0:
                return verdict
            await anyio.sleep(min(pause, left / 1000, remaining))
            pause = min(pause * 2, _MAX_POLL)

    def release(self, key: str) -> None:
        keys, args = self._keys(key)[1:], (self._token,)
        with contextlib.suppress(_Unavailable):
            self._link.run(lambda client: _RELEASE.run(client, keys, args))

    async def arelease(self, key: str) -> None:
        keys, args = self._keys(key)[1:], (self._token,)
        with contextlib.suppress(_Unavailable):
            await self._link.arun(
                lambda client: _RELEASE.arun(client, keys, args),
                lambda client: _RELEASE.run(client, keys, args),
            )

    def __repr__(self) -> str:
        return f"RedisCache({self._link.describe()}, ttl={self.ttl:g}, prefix={self.prefix!r})"


# -- the circuit breaker --------------------------------------------------------------------------

# KEYS: the breaker's hash. ARGV: op, cooldown ms, threshold, probe timeout ms, permit epoch
# (-1: no permit), permit seq, permit is the probe (1/0), error is transient (1/0).
# Fields: st (0 closed, 1 open, 2 half-open), f (consecutive failures), o (opened at, ms),
# e (epoch), p (seq of the probe out, 0 for none), px (when the probe's slot frees itself), s (seq).
# Replies {kind, epoch, seq} for "before" (kind 0 go, 1 probe, 2 fail fast), else {st, p, e}.
_BREAKER = _Lua("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'st', 'f', 'o', 'e', 'p', 'px', 's')
local st, f, o, e = tonumber(v[1] or 0), tonumber(v[2] or 0), tonumber(v[3] or 0), tonumber(v[4] or 0)
local p, px, s = tonumber(v[5] or 0), tonumber(v[6] or 0), tonumber(v[7] or 0)
local op = ARGV[1]
if st == 1 and now - o >= tonumber(ARGV[2]) then st = 2; p = 0 end
if st == 2 and p ~= 0 and now >= px then p = 0 end
local function save()
  redis.call('HSET', KEYS[1], 'st', st, 'f', f, 'o', string.format('%.0f', o), 'e', e, 'p', p,
    'px', string.format('%.0f', px), 's', s)
end
local function open() st = 1; o = now; e = e + 1; p = 0 end
if op == 'state' then return {st, p, e} end
if op == 'before' then
  if st == 0 then return {0, e, 0} end
  if st == 2 and p == 0 then
    s = s + 1; p = s; px = now + tonumber(ARGV[4]); save()
    return {1, e, s}
  end
  return {2, e, 0}
end
if op == 'success' then
  st = 0; f = 0; p = 0; save()
  return {st, p, e}
end
local pe, ps = tonumber(ARGV[5]), tonumber(ARGV[6])
if op == 'release' then
  if p == ps then p = 0; save() end
  return {st, p, e}
end
if op == 'free' then
  p = 0; save()
  return {st, p, e}
end
if ARGV[8] ~= '1' then
  f = 0
  if st == 2 then st = 0 end
  if pe == -1 or ps == p then p = 0 end
  save()
  return {st, p, e}
end
if pe ~= -1 and pe ~= e then return {st, p, e} end
if st == 2 then
  if pe ~= -1 and not (ARGV[7] == '1' and ps == p) then return {st, p, e} end
  open()
elseif st == 0 then
  f = f + 1
  if f >= tonumber(ARGV[3]) then open() end
end
save()
return {st, p, e}
""")

_STATES = {0: BreakerState.CLOSED, 1: BreakerState.OPEN, 2: BreakerState.HALF_OPEN}


class _SharedPermit(Permit):
    """A permit the shared state gave (one the in-process breaker gave is a plain `Permit`)."""


class RedisBreaker(CircuitBreaker, _Shared):
    """A `CircuitBreaker` whose state every worker shares: they open together, and in half-open
    exactly one probe goes out across the fleet. Pass it as ``breaker=`` to a remote guard.

    While Redis is down, the breaker is the in-process `CircuitBreaker` it also is.

    Args:
        url_or_client: a Redis URL or a redis-py ``redis.Redis`` client (see `RedisCache`).
        name: which breaker: the workers guarding with the same vendor and account share one name.
        failure_threshold: consecutive transient failures (fleet-wide) that open it; 0 disables it.
        cooldown: seconds it stays open before the probe.
        probe_timeout: seconds after which a probe that never reported (its worker died) frees
            the probe slot; longer than a check's deadline.
        prefix: what the key starts with (``{prefix}breaker:{name}``).
        timeout: socket timeout of each Redis command, in seconds.
        retry_interval: seconds Redis is left alone after it failed.
    """

    def __init__(
        self,
        url_or_client: RedisTarget,
        *,
        name: str = "default",
        failure_threshold: int = 5,
        cooldown: float = 10.0,
        probe_timeout: float = 30.0,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        super().__init__(failure_threshold=failure_threshold, cooldown=cooldown)
        if not probe_timeout > 0:
            raise ValueError("probe_timeout must be a positive number of seconds")
        self._link = _Link(url_or_client, timeout=timeout, retry_interval=retry_interval, what="RedisBreaker")
        self.name = name
        self.prefix = _check_prefix(prefix)
        self.probe_timeout = float(probe_timeout)
        self._key = f"{self.prefix}breaker:{name}"

    def _run(self, op: str, permit: Permit | None = None, transient: bool = True) -> list[int]:
        args = (
            op,
            round(self.cooldown * 1000),
            self.failure_threshold,
            round(self.probe_timeout * 1000),
            -1 if permit is None else permit.epoch,
            0 if permit is None else permit.seq,
            int(permit is not None and permit.probe),
            int(transient),
        )
        keys = (self._key,)
        reply = self._link.run(lambda client: _BREAKER.run(client, keys, args))
        return [int(item) for item in reply]

    @property
    def state(self) -> BreakerState:
        try:
            return _STATES[self._run("state")[0]]
        except _Unavailable:
            return super().state

    @property
    def probing(self) -> bool:
        try:
            return self._run("state")[1] != 0
        except _Unavailable:
            return super().probing

    def before_call(self, guard: str = "unknown") -> Permit:
        if self.failure_threshold == 0:
            return Permit(False, 0)
        try:
            kind, epoch, seq = self._run("before")
        except _Unavailable:
            return super().before_call(guard)
        if kind == 2:
            raise GuardUnavailable(
                f"{guard} guard circuit breaker is open: failing fast", guard=guard, circuit_open=True
            )
        return _SharedPermit(kind == 1, epoch, seq)

    def record_success(self, permit: Permit | None = None) -> None:
        if permit is None or isinstance(permit, _SharedPermit):
            try:
                self._run("success")
            except _Unavailable:
                pass
            else:
                if permit is not None:
                    return
        super().record_success(permit)

    def record_failure(self, error: GuardError, permit: Permit | None = None) -> None:
        if self.failure_threshold == 0:
            return
        if permit is not None and not isinstance(permit, _SharedPermit):
            super().record_failure(error, permit)
            return
        try:
            self._run("failure", permit, error.transient)
        except _Unavailable:
            super().record_failure(error, None)

    def release(self, permit: Permit) -> None:
        if not isinstance(permit, _SharedPermit):
            super().release(permit)
            return
        if permit.probe:
            with contextlib.suppress(_Unavailable):
                self._run("release", permit)

    def release_probe(self) -> None:
        with contextlib.suppress(_Unavailable):
            self._run("free")
        super().release_probe()

    def __repr__(self) -> str:
        return (
            f"RedisBreaker({self._link.describe()}, name={self.name!r}, "
            f"failure_threshold={self.failure_threshold}, cooldown={self.cooldown:g})"
        )


# -- the rate budget ------------------------------------------------------------------------------

# GCRA on the server's clock, in µs. KEYS: the budget's key. ARGV: µs per call, burst.
# Replies 0 (granted, one unit spent) or the µs until a call may go.
_GCRA = _Lua("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat + interval - tonumber(ARGV[2]) * interval
if now < allow_at then return math.max(1, math.ceil(allow_at - now)) end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return 0
""")


class RedisRateLimit(_Shared):
    """A `RateBudget` every worker spends from: `rate` calls per second for the whole fleet, bursts
    of up to `burst`. Pass it as ``rate_limit=`` to a remote guard.

    While Redis is down each worker spends from an in-process `RateLimit` of `local_rate` instead.

    Args:
        url_or_client: a Redis URL or a redis-py client (see `RedisCache`).
        rate: calls per second, fleet-wide (> 0).
        burst: the most calls that may go at once after a quiet spell; default ``max(1, rate)``.
        name: which budget: the workers spending the same vendor quota share one name.
        local_rate: each worker's rate while Redis is down (default `rate`: set it to
            ``rate / workers`` to stay under the quota through an outage).
        prefix: what the key starts with (``{prefix}rate:{name}``).
        timeout: socket timeout of each Redis command, in seconds.
        retry_interval: seconds Redis is left alone after it failed.
    """

    def __init__(
        self,
        url_or_client: RedisTarget,
        *,
        rate: float,
        burst: int | None = None,
        name: str = "default",
        local_rate: float | None = None,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        self.local = RateLimit(rate if local_rate is None else local_rate, burst)
        self.rate = float(rate)
        self.burst = burst if burst is not None else max(1, int(rate))
        if not self.rate > 0 or self.burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._link = _Link(
            url_or_client, timeout=timeout, retry_interval=retry_interval, what="RedisRateLimit"
        )
        self.name = name
        self.prefix = _check_prefix(prefix)
        self._keys = (f"{self.prefix}rate:{name}",)
        self._args = (1_000_000 / self.rate, self.burst)

    def take(self) -> float:
        try:
            waited = self._link.run(lambda client: _GCRA.run(client, self._keys, self._args))
        except _Unavailable:
            return self.local.take()
        return int(waited) / 1_000_000

    async def atake(self) -> float:
        try:
            waited = await self._link.arun(
                lambda client: _GCRA.arun(client, self._keys, self._args),
                lambda client: _GCRA.run(client, self._keys, self._args),
            )
        except _Unavailable:
            return self.local.take()
        return int(waited) / 1_000_000

    def __repr__(self) -> str:
        return f"RedisRateLimit({self._link.describe()}, rate={self.rate:g}, burst={self.burst}, name={self.name!r})"
