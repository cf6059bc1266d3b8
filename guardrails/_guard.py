"""The `Guard` protocol every guard implements, and a base for in-process guards."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, runtime_checkable

from ._models import Content, Verdict, as_content

__all__ = ["Guard", "InProcessGuard"]


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
