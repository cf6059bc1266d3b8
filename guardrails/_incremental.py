"""Incremental scanning of conversations: a chat message this guard already allowed is not sent again.

A chat request carries the whole history every turn; scanning all of it every turn costs the
square of the conversation's length at the vendor. With ``incremental=True`` (a `Route`,
`guarded`, the OpenAI transport) the `Judge` asks `plan` which messages of a prompt are new:

- A message counts as already scanned only if *this guard* (same identity and configuration: the
  guard's cache identity, see `RemoteGuard._cache_identity`) allowed *exactly that message* (a
  digest of the whole message: role, content, name, tool calls) before. Every other message is
  scanned, so a client that forges history (an assistant message it wrote itself, an old message
  edited) gains nothing: its forgery is new, and scanned.
- What was allowed is recorded in a `VerdictCache`: the guard's own cache when it has one (so a
  shared ``RedisCache`` shares it between processes), else an in-process `LRUCache`. Keys are
  digests: the cache never holds message text.
- Only a verdict that let the request go on unchanged records its messages: an Allow (never a
  Block, a monitored Block, a masked verdict, or a check that failed open).

The messages already allowed still reach the vendor as context where it takes context without
scanning it: `Content.context`, which the Palo Alto guard sends as the ``context`` field of its
``contents`` entry. Trend's chat request type (``OpenAIChatCompletionRequestV1``) scans every
message of the request it is given, so those messages are left out of what Trend is sent.

A trade-off to know: each message is judged once, with the messages new in its own turn. An attack
split over several turns, each harmless alone, is seen whole only by a guard that reads context.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from ._cache import LRUCache, VerdictCache
from ._models import Action, Content, Verdict

__all__ = ["Plan", "plan"]

# Guards with no cache of their own share this one; their identity is part of every key.
_fallback = LRUCache(maxsize=100_000, ttl=3600.0)
# Guards without a configuration identity (in-process guards, compositions) are told apart by the
# object itself: a token per live guard, never reused for another (an id() can be).
_tokens: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_token_lock = threading.Lock()
_counter = itertools.count(1)


def _identity(guard: object) -> tuple[object, ...]:
    identity = getattr(guard, "_cache_identity", None)
    if callable(identity):
        value = identity()
        if isinstance(value, tuple):
            return value
    try:
        with _token_lock:
            token = _tokens.get(guard)
            if token is None:
                token = _tokens[guard] = next(_counter)
    except TypeError:  # not weak-referenceable: the object's id, for as long as it lives
        token = -id(guard)
    cls = type(guard)
    return (f"{cls.__module__}.{cls.__qualname__}", "instance", token)


def _store(guard: object) -> VerdictCache:
    cache = getattr(guard, "cache", None)
    return cache if isinstance(cache, VerdictCache) else _fallback


def _key(seed: hashlib.blake2b, message: Mapping[str, Any]) -> str | None:
    try:
        encoded = json.dumps(
            message, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return None  # cannot be digested: scanned every time
    digest = seed.copy()
    digest.update(encoded)
    return digest.hexdigest()


class Plan:
    """What one incremental check scans, and how to record its messages once allowed.

    Attributes:
        content: what to send the guard (the new messages, the text beside them, the messages
            already allowed as `Content.context`); None when every message was already allowed
            and there is nothing else to scan.
        known: how many messages were left out as already allowed.
    """

    __slots__ = ("_fresh", "_store", "content", "known")

    def __init__(self, content: Content | None, known: int, fresh: list[str], store: VerdictCache) -> None:
        self.content = content
        self.known = known
        self._fresh = fresh
        self._store = store

    def remember(self, verdict: Verdict) -> None:
        """Record the new messages as allowed, if `verdict` let them through unchanged."""
        if not verdict.allowed or verdict.masked is not None or verdict.masked_data:
            return
        marker = Verdict(action=Action.ALLOW, guard=verdict.guard, id=verdict.id, cached=True)
        for key in self._fresh:
            try:
                self._store.set(key, marker)
            except Exception:  # a cache that fails never fails a check: the messages are rescanned
                return


def plan(guard: object, content: Content) -> Plan | None:
    """The incremental plan for checking `content` with `guard`; None when it does not apply
    (no chat messages: the content is checked as is)."""
    messages = content.messages
    if not messages:
        return None
    store = _store(guard)
    seed = hashlib.blake2b(
        repr((_identity(guard), content.kind)).encode("utf-8", "surrogatepass"),
        digest_size=32,
        person=b"guardrails-seen",
    )
    fresh_messages: list[dict[str, Any]] = []
    known_messages: list[dict[str, Any]] = []
    fresh: list[str] = []
    for message in messages:
        key = _key(seed, message)
        seen = None
        if key is not None:
            try:
                seen = store.get(key)
            except Exception:
                seen = None
        if seen is not None and seen.allowed:
            known_messages.append(message)
            continue
        fresh_messages.append(message)
        if key is not None:
            fresh.append(key)
    if not known_messages:
        return Plan(content, 0, fresh, store)
    if not fresh_messages and content.text is None and content.completion is None:
        return Plan(None, len(known_messages), [], store)
    narrowed = Content(
        content.text,
        messages=fresh_messages or None,
        completion=content.completion,
        kind=content.kind,
        metadata=content.metadata,
        prompt=content.prompt,
        context=known_messages,
    )
    return Plan(narrowed, len(known_messages), fresh, store)
