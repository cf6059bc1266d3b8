"""The `Guard` protocol every guard implements, and a base for in-process guards."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Protocol, runtime_checkable

from ._models import Content, Verdict, as_content

__all__ = ["Guard", "GuardSource", "InProcessGuard"]


@runtime_checkable
class Guard(Protocol):
    """A guard decides Allow or Block for a `Content` (or a plain string, taken as a prompt).

    `check` and `acheck` return a `Verdict` or raise a `GuardError` subclass. They never apply a
    fail-open policy themselves: the decorator and the middlewares do.
    """

    # Read-only, so a class-level constant (even a ClassVar) satisfies the protocol.
    @property
    def name(self) -> str:
        """The guard's name, put on verdicts, decision events and log lines."""
        ...

    def check(self, content: Content | str) -> Verdict:
        """Check synchronously."""
        ...

    async def acheck(self, content: Content | str) -> Verdict:
        """Check asynchronously."""
        ...

    def close(self) -> None:
        """Release resources held for `check` (e.g. the HTTP connection pool)."""
        ...

    async def aclose(self) -> None:
        """Release every resource, those held for `acheck` included."""
        ...


class InProcessGuard:
    """Base for guards that decide in-process with no I/O: `acheck` simply calls `_decide`.

    Subclasses implement `_decide(content) -> Verdict`.
    """

    name: str = "in-process"

    def _decide(self, content: Content) -> Verdict:
        raise NotImplementedError

    def check(self, content: Content | str) -> Verdict:
        return self._decide(as_content(content))

    async def acheck(self, content: Content | str) -> Verdict:
        # No I/O and microseconds of CPU: running inline beats a thread hop.
        return self._decide(as_content(content))

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def __enter__(self) -> InProcessGuard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> InProcessGuard:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class GuardSource:
    """Where a shell gets its guard: the one it was given, or ``guard_from_env()`` made once.

    The one provider of the default guard for the decorator, both middlewares and the OpenAI
    transport. It follows httpx's ownership rule: a guard made here from the environment is owned
    and closed by `close` / `aclose`; a guard that was given is the caller's, and never closed.

    Args:
        guard: the guard given, or None for ``guard_from_env()`` at first use (or at `get`).
    """

    __slots__ = ("_guard", "_lock", "owned")

    def __init__(self, guard: Guard | None = None) -> None:
        self._guard = guard
        self._lock = threading.Lock()
        self.owned = False

    @property
    def given(self) -> Guard | None:
        """The guard, if one was given or made already (never makes one)."""
        return self._guard

    def get(self) -> Guard:
        """The guard, made from the environment at the first call when none was given.

        Raises:
            GuardrailsError: the environment does not configure a usable guard (the message
                says what to set); the next call tries again.
        """
        guard = self._guard
        if guard is None:
            with self._lock:
                if self._guard is None:
                    # Imported here: reading the environment is the first use's job, not import's.
                    from ._settings import guard_from_env

                    self._guard = guard_from_env()
                    self.owned = True
                guard = self._guard
        return guard

    def reset(self) -> Guard | None:
        """Forget a guard made from the environment, so the next `get` reads it again.

        Returns the guard forgotten, if one was made, for the caller to close.
        """
        with self._lock:
            if not self.owned:
                return None
            guard, self._guard, self.owned = self._guard, None, False
        return guard

    def close(self) -> None:
        """Close the guard if it was made here (a given guard is its owner's to close)."""
        if self.owned and self._guard is not None:
            self._guard.close()

    async def aclose(self) -> None:
        """Close the guard, async side included, if it was made here."""
        if self.owned and self._guard is not None:
            await self._guard.aclose()

    def __repr__(self) -> str:
        return repr(self._guard) if self._guard is not None else "guard_from_env()"
