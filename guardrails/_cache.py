"""The verdict cache of remote guards, and single-flight for concurrent identical checks.

Opt-in per guard (``TrendAIGuard(..., cache=True)``):

- `VerdictCache` is the plug-in point: ``get(key)`` and ``set(key, verdict)``, thread-safe and
  quick (``acheck`` calls them inline, on the event loop). `LRUCache` is the in-memory one.
- `cache_key` is a BLAKE2b digest of the guard's configuration identity and of what is scanned: the
  cache holds digests and verdicts, never the prompt text. The digest is 256 bits, so crafting a
  prompt that collides with another one's (to borrow its Allow) is out of reach.
- `VerdictMemo` sits in front of a guard's checks: a hit returns the stored verdict; on a miss,
  concurrent identical checks share one guard call: threads calling ``check`` with each other,
  tasks calling ``acheck`` with the other tasks of their event loop.

What is cached: Allow and Block verdicts alike, never errors. Verdicts carrying ``masked_data``
(Palo Alto's masked copy of the prompt or response) or ``masked`` are not stored, since masked
text is still the user's text; they are still shared with the identical checks in flight.

Verdicts that did not come from the caller's own guard call (a hit, or a shared call) have
``cached=True``. They are one object shared by every such caller (and share `Verdict.raw` with
the verdict the first caller got): treat verdicts, their lists and dicts included, as read-only.

A `SharedVerdictCache` (``guardrails.redis.RedisCache``) is shared by several processes: the memo
awaits it in ``acheck``, and single-flight reaches the other processes through its lease (one
process calls the guard, the others wait for the verdict it stores).

A cache that fails (a remote backend down) never fails a check: the error is logged as a warning
and the check goes on as a miss.

When the shared call fails, every check waiting on it raises a copy of the same error (no
stampede of retries against a guard that just failed). When it ends without an outcome (the
leading task was cancelled, the leading thread interrupted), a waiting check takes the lead and
calls the guard itself.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import SecretStr

from ._models import Content, Verdict

if TYPE_CHECKING:
    import anyio

logger = logging.getLogger("guardrails")

__all__ = [
    "LRUCache",
    "SharedVerdictCache",
    "VerdictCache",
    "VerdictMemo",
    "cache_key",
    "resolve_cache",
    "secret_digest",
]


@runtime_checkable
class VerdictCache(Protocol):
    """Where a guard keeps verdicts by key. Implementations must be thread-safe.

    Both methods are called inline by ``check`` and ``acheck`` (on the event loop): they must not
    block for long. Keys are hex digests; values are frozen `Verdict` objects.
    """

    def get(self, key: str) -> Verdict | None:
        """The verdict stored under `key`, or None if there is none (or it expired)."""
        ...

    def set(self, key: str, verdict: Verdict) -> None:
        """Store `verdict` under `key`."""
        ...


@runtime_checkable
class SharedVerdictCache(VerdictCache, Protocol):
    """A `VerdictCache` shared by several processes (``guardrails.redis.RedisCache``), with I/O.

    `VerdictMemo` drives it instead of the plain `get`/`set` when a cache has these methods:
    ``acheck`` awaits `aget`/`aclaim`/`aset`, and single-flight reaches across processes through a lease.
    The check that leads in its process `claim`s the key; the one process that gets the lease
    calls the guard and stores the verdict (which ends the lease), the others `follow` it: they
    wait for the verdict, and when the lease ends without one (the leader failed, or died), claim
    again. Every method degrades rather than raises when the backend is down: `claim` then leads.
    """

    async def aget(self, key: str) -> Verdict | None:
        """`get` without blocking the event loop."""
        ...

    async def aset(self, key: str, verdict: Verdict) -> None:
        """`set` without blocking the event loop."""
        ...

    def claim(self, key: str) -> tuple[bool, Verdict | None]:
        """Take the lease of `key`: ``(True, None)`` to call the guard, ``(False, verdict)`` when
        the verdict is stored already, ``(False, None)`` when another process holds the lease."""
        ...

    async def aclaim(self, key: str) -> tuple[bool, Verdict | None]:
        """`claim` without blocking the event loop."""
        ...

    def follow(self, key: str) -> Verdict | None:
        """Wait (bounded by the lease) for the lease holder's verdict; None when the lease ended without one."""
        ...

    async def afollow(self, key: str) -> Verdict | None:
        """`follow` without blocking the event loop."""
        ...

    def release(self, key: str) -> None:
        """End the lease of `key` without a verdict (the call failed): a follower takes over."""
        ...

    async def arelease(self, key: str) -> None:
        """`release` without blocking the event loop."""
        ...


class LRUCache:
    """An in-memory `VerdictCache`: least recently used entries go first, entries expire.

    Args:
        maxsize: most entries kept; the least recently used one is dropped to make room.
        ttl: seconds an entry stays valid after it is stored; None for no expiry.
        clock: the monotonic clock the TTL is measured with (a fake one in tests).

    Attributes:
        hits: `get` calls that found a valid entry.
        misses: `get` calls that found none, or an expired one.
    """

    def __init__(
        self,
        maxsize: int = 10_000,
        ttl: float | None = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if ttl is not None and not ttl > 0:
            raise ValueError("ttl must be a positive number of seconds (or None)")
        self.maxsize = maxsize
        self.ttl = ttl
        self.hits = 0
        self.misses = 0
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Verdict]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Verdict | None:
        """The verdict stored under `key` if it has not expired; marks it most recently used."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if entry[0] > self._clock():
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry[1]
                del self._entries[key]
            self.misses += 1
            return None

    def set(self, key: str, verdict: Verdict) -> None:
        """Store `verdict` under `key` for `ttl` seconds, dropping the least recently used entry if full."""
        expires = math.inf if self.ttl is None else self._clock() + self.ttl
        with self._lock:
            self._entries[key] = (expires, verdict)
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry (the hit and miss counts are kept)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"LRUCache(maxsize={self.maxsize}, ttl={self.ttl!r}, size={len(self)})"


def resolve_cache(cache: VerdictCache | bool | None) -> VerdictCache | None:
    """A guard's ``cache=`` argument: None or False (no cache), True (a default `LRUCache`), or a cache.

    Raises:
        TypeError: `cache` is none of those.
    """
    if cache is None or cache is False:
        return None
    if cache is True:
        return LRUCache()
    if isinstance(cache, VerdictCache):
        return cache
    raise TypeError(f"cache must be None, True or a VerdictCache (get/set), not {type(cache).__name__}")


def secret_digest(secret: SecretStr) -> str:
    """A digest standing for a credential in a guard's cache identity (the key itself never is)."""
    return hashlib.blake2b(
        secret.get_secret_value().encode(), digest_size=16, person=b"guardrails-key"
    ).hexdigest()


@functools.lru_cache(maxsize=256)
def _seeded(identity: tuple[object, ...]) -> hashlib.blake2b:
    # Guards keep their identity for life: hash it once, and start each key from a copy.
    return hashlib.blake2b(
        repr(identity).encode("utf-8", "surrogatepass"), digest_size=32, person=b"guardrails"
    )


# One encoder for every key: json.dumps with options builds a new JSONEncoder per call.
_KEY_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _utf8(text: str | None) -> bytes:
    return b"" if text is None else text.encode("utf-8", "surrogatepass")


def cache_key(
    identity: tuple[object, ...], content: Content, metadata_keys: Collection[str] | None = None
) -> str | None:
    """The cache key of checking `content` with a guard configured as `identity`.

    Args:
        identity: what makes the guard's verdicts differ (class, URL, API variant, profile, a digest
            of the API key, ...): plain strings, numbers, booleans and None.
        content: what is scanned: its kind, text, messages, completion and prompt all count.
        metadata_keys: the metadata entries that change the guard's request (e.g. Palo Alto's
            session and transaction ids); None when they all do.

    Returns:
        A hex digest, or None when the content cannot be keyed (not JSON-serializable: the guard
        would refuse to send it anyway).
    """
    metadata = content.metadata
    if metadata and metadata_keys is not None:
        metadata = {key: metadata[key] for key in metadata_keys if key in metadata}
    structured = b""
    if (
        content.messages is not None
        or content.completion is not None
        or metadata
        or content.tool is not None
        or content.context is not None
    ):
        try:
            parts: list[Any] = [content.messages, content.completion, metadata]
            if content.tool is not None:
                # A tool event is keyed by all of it: name, server, arguments and result.
                parts.append(content.tool.model_dump(mode="json"))
            if content.context is not None:
                # A guard that reads context (Palo Alto) may decide differently with other context.
                parts.append({"context": content.context})
            structured = _KEY_ENCODER.encode(parts).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError):
            return None
    text = _utf8(content.text)
    prompt = _utf8(content.prompt)
    digest = _seeded(identity).copy()
    # Every part length-prefixed (-1 for an absent one): no two contents feed the same bytes.
    digest.update(
        b"%s %d %d %d;"
        % (
            content.kind.encode(),
            -1 if content.text is None else len(text),
            -1 if content.prompt is None else len(prompt),
            len(structured),
        )
    )
    digest.update(text)
    digest.update(prompt)
    digest.update(structured)
    return digest.hexdigest()


def _shared(verdict: Verdict) -> Verdict:
    """The copy handed to cache hits and to the checks that joined a call, marked as such."""
    # Shallow: a deep copy of `raw` would cost more than the rest of a miss. Verdicts are frozen
    # models, and their lists and dicts are read-only by contract.
    return verdict.model_copy(update={"cached": True})


def _cacheable(verdict: Verdict) -> bool:
    return not verdict.masked_data and verdict.masked is None


def _copy_error(error: Exception) -> Exception:
    """A copy of `error` for one more caller to raise: each raise gets a traceback of its own."""
    try:
        clone = copy.copy(error)
    except Exception:  # pragma: no cover - an exception class that cannot be copied
        return error
    clone.__cause__ = error.__cause__
    clone.__suppress_context__ = error.__suppress_context__
    return clone


class _Latch:
    """A one-shot gate for threads: shut when made, open for good once `set`.

    Cheaper to make than a `threading.Event`, and one is made per cache miss.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        self._lock.release()

    def wait(self) -> None:
        # Each waiter passes the lock on to the next as soon as it gets it.
        with self._lock:
            pass


_Done = TypeVar("_Done", _Latch, "anyio.Event")


class _Flight(Generic[_Done]):
    """One guard call in flight, which identical checks wait on."""

    __slots__ = ("done", "error", "verdict")

    def __init__(self, done: _Done) -> None:
        self.done: _Done = done
        self.verdict: Verdict | None = None
        self.error: Exception | None = None

    def outcome(self) -> Verdict | None:
        """The shared verdict; raises a copy of the shared error; None if the call ended without either."""
        if self.error is not None:
            raise _copy_error(self.error)
        return self.verdict


def _event_loop() -> object:
    # Waiters are keyed by event loop: an anyio.Event belongs to the loop that made it.
    import asyncio  # here: loaded already when a loop runs; not at import (tens of ms)

    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # pragma: no cover - trio: one loop per thread
        return threading.get_ident()


def _cache_failed(operation: str, error: Exception) -> None:
    # The exception's message is left out: a backend's error may quote the key or its payload.
    logger.warning("verdict cache %s failed (%s): going on without it", operation, type(error).__name__)


# Leases a check follows that end without a verdict before it asks the guard itself.
_FOLLOW_ROUNDS = 3


def _quietly(release: Callable[[str], None], key: str) -> None:
    try:
        release(key)
    except Exception as exc:
        _cache_failed("release", exc)


async def _aquietly(release: Callable[[str], Awaitable[None]], *, key: str) -> None:
    try:
        await release(key)
    except Exception as exc:
        _cache_failed("release", exc)


class VerdictMemo:
    """A `VerdictCache` in front of a guard's checks, with single-flight on misses.

    Args:
        cache: where verdicts are kept.
    """

    def __init__(self, cache: VerdictCache) -> None:
        self.cache = cache
        self._lock = threading.Lock()
        self._threads: dict[str, _Flight[_Latch]] = {}
        self._tasks: dict[tuple[object, str], _Flight[anyio.Event]] = {}
        # Calls finished so far: tells a new leader whether its cache miss may be stale.
        self._landed = 0
        # A cache shared across processes: single-flight reaches the other processes too.
        self._shared = cache if isinstance(cache, SharedVerdictCache) else None

    def check(self, key: str, call: Callable[[], Verdict]) -> Verdict:
        """The cached verdict for `key`, or the verdict of `call()` shared with identical checks."""
        landed = self._landed
        verdict = self._get(key)
        if verdict is not None:
            return verdict
        while True:
            with self._lock:
                flight = self._threads.get(key)
                leader = flight is None
                if flight is None:
                    flight = self._threads[key] = _Flight(_Latch())
                stale = self._landed != landed
            if leader:
                return self._lead(key, flight, call, recheck=stale)
            flight.done.wait()
            verdict = flight.outcome()
            if verdict is not None:
                return verdict
            landed = -1  # the leader gave up: whoever leads next looks at the cache again

    async def acheck(self, key: str, call: Callable[[], Awaitable[Verdict]]) -> Verdict:
        """The cached verdict for `key`, or the verdict of ``await call()`` shared with identical checks."""
        if self._shared is None:
            verdict = self._get(key)
            if verdict is not None:
                return verdict
        # No await between the miss and taking the lead, and flights are per event loop: unlike
        # threads, no other check can land in between, so the miss is never stale here. A shared
        # cache is asked by the leader only: the identical checks of this loop wait on the flight,
        # not on Redis.
        slot = (_event_loop(), key)
        while True:
            with self._lock:
                flight = self._tasks.get(slot)
                leader = flight is None
                if flight is None:
                    import anyio  # here, not at import: importing it costs milliseconds

                    flight = self._tasks[slot] = _Flight(anyio.Event())
            if leader:
                return await self._alead(slot, flight, call)
            await flight.done.wait()
            verdict = flight.outcome()
            if verdict is not None:
                return verdict

    def _lead(
        self, key: str, flight: _Flight[_Latch], call: Callable[[], Verdict], *, recheck: bool
    ) -> Verdict:
        shared = self._shared
        leased = False
        try:
            # An identical check may have stored its verdict and left between our cache miss and
            # our taking the lead: look again rather than call the guard twice.
            verdict = self._get(key) if recheck else None
            if verdict is None and shared is not None:
                verdict = self._lead_fleet(shared, key)
                leased = verdict is None
            if verdict is not None:
                flight.verdict = verdict
                return verdict
            verdict = call()
            leased = not self._publish(key, flight, verdict) and leased
            return verdict
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            if leased and shared is not None:
                # No verdict stored: end the lease now, so another process need not wait it out.
                _quietly(shared.release, key)
            # Interrupted or not, the waiters must wake: with no outcome, one of them takes the lead.
            with self._lock:
                del self._threads[key]
                self._landed += 1
            flight.done.set()

    async def _alead(
        self, slot: tuple[object, str], flight: _Flight[anyio.Event], call: Callable[[], Awaitable[Verdict]]
    ) -> Verdict:
        shared = self._shared
        leased = False
        try:
            if shared is not None:
                # A plain GET first: a hit costs the cheapest round trip; a miss then claims.
                verdict = await self._aget(shared, slot[1]) or await self._alead_fleet(shared, slot[1])
                if verdict is not None:
                    flight.verdict = verdict
                    return verdict
                leased = True
            verdict = await call()
            if shared is None:
                self._publish(slot[1], flight, verdict)
            else:
                leased = not await self._apublish(shared, slot[1], flight, verdict)
            return verdict
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            if leased and shared is not None:
                import anyio

                with anyio.CancelScope(shield=True):
                    await _aquietly(shared.arelease, key=slot[1])
            # Cancelled or not, the waiters must wake: with no outcome, one of them takes the lead.
            with self._lock:
                del self._tasks[slot]
            flight.done.set()

    def _publish(self, key: str, flight: _Flight[Any], verdict: Verdict) -> bool:
        """Hand `verdict` to the waiting checks and store it; whether it was stored."""
        shared = _shared(verdict)
        flight.verdict = shared
        if not _cacheable(verdict):
            return False
        try:
            self.cache.set(key, shared)
        except Exception as exc:
            _cache_failed("set", exc)
            return False
        return True

    async def _apublish(
        self, cache: SharedVerdictCache, key: str, flight: _Flight[Any], verdict: Verdict
    ) -> bool:
        shared = _shared(verdict)
        flight.verdict = shared
        if not _cacheable(verdict):
            return False
        try:
            await cache.aset(key, shared)
        except Exception as exc:
            _cache_failed("set", exc)
            return False
        return True

    def _get(self, key: str) -> Verdict | None:
        try:
            return self.cache.get(key)
        except Exception as exc:
            _cache_failed("get", exc)
            return None

    async def _aget(self, cache: SharedVerdictCache, key: str) -> Verdict | None:
        try:
            return await cache.aget(key)
        except Exception as exc:
            _cache_failed("get", exc)
            return None

    def _lead_fleet(self, cache: SharedVerdictCache, key: str) -> Verdict | None:
        """Lead across processes: None once this process holds the lease (or the cache is down),
        else the verdict another process stored."""
        try:
            for _ in range(_FOLLOW_ROUNDS):
                lead, verdict = cache.claim(key)
                if lead:
                    return None
                verdict = verdict or cache.follow(key)
                if verdict is not None:
                    return verdict
        except Exception as exc:
            _cache_failed("claim", exc)
        return None  # leases kept ending without a verdict: ask the guard ourselves

    async def _alead_fleet(self, cache: SharedVerdictCache, key: str) -> Verdict | None:
        try:
            for _ in range(_FOLLOW_ROUNDS):
                lead, verdict = await cache.aclaim(key)
                if lead:
                    return None
                verdict = verdict or await cache.afollow(key)
                if verdict is not None:
                    return verdict
        except Exception as exc:
            _cache_failed("claim", exc)
        return None

    def __repr__(self) -> str:
        return f"VerdictMemo({self.cache!r})"
