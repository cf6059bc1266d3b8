"""Guards made of guards: `Sequential`, `Parallel` and `Fallback`.

A composition is a `Guard` like any other: the decorator, both middlewares, the OpenAI transport,
the CLI and `guard_from_spec` take one wherever they take a guard, and the same `Judge` settles its
verdicts (fail-open policy, monitor mode, per-category blocking, masking).

================  ==========================================================================
composition       what it does
================  ==========================================================================
``Sequential``    asks its guards in order and stops at the first Block: put ``LocalGuard()``
                  first and clear-cut attacks never cost a vendor call.
``Parallel``      asks every guard at once (threads for ``check``, a task group for ``acheck``);
                  the first Block decides and cancels the rest; Allow needs every guard's Allow.
``Fallback``      asks the primary; when it fails with a transient `GuardError` (timeout, 5xx,
                  429, network, an open circuit breaker) the secondary decides, and the verdict
                  says so (``Verdict.degraded``, copied into ``Decision.degraded``, counted under
                  ``stats()["degraded"]``) with a WARNING log line.
================  ==========================================================================

The verdict of a composition:

- names the guard that decided (``Verdict.guard``): the blocking guard on Block, the
  composition's own name (``local,trend``) on Allow, since every guard allowed;
- carries the reasons and categories of every guard asked, merged (first seen first);
- is ``cached`` when no guard had to be asked remotely: at least one verdict came from a cache and
  the others from caches or in-process guards (each guard keeps its own verdict cache: a
  composition adds none).

Failures. Input a guard refuses (`ExtractionError`, `ContentTooLarge`: caused by the client) is
never worked around: it propagates at once, from any guard. A guard that fails otherwise does not
stop `Sequential` or `Parallel` from asking the others, because a Block from another guard is a
better answer than an outage; when none blocks, the first failure is raised and the caller's
``fail_open`` policy applies to it. `Fallback` falls back on transient failures only: a
configuration error (bad credentials, a 400) of the primary is raised as is, so it fails closed
like a single guard's would. When the secondary fails too, its error is raised: every guard
failed, and ``fail_open`` decides.

Masking. A Block whose only category is ``sensitive_data`` and which carries `Verdict.masked` can
let the call go on masked (``mask=True`` in the shells). Such a Block does not end a composition:
`Sequential` hands the masked content to the next guard, so that what goes on masked has been
checked by every guard; `Parallel` lets the other guards finish. The composition's verdict then
carries the masked content, unless two guards masked (their masks are not merged: the call is
blocked).

Cancellation and deadlines are each guard's own: a cancelled ``acheck`` cancels every guard being
asked, and each guard keeps its own deadline (a `Sequential` takes at most the sum of its guards',
a `Parallel` the longest).

Closing a composition closes its guards.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar

import anyio

from ._events import safe_text
from ._exceptions import ExtractionError, GuardError
from ._guard import InProcessGuard
from ._judge import as_guard_error, guard_name, maskable
from ._models import Action, Content, Verdict, as_content

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._guard import Guard

__all__ = ["Fallback", "Parallel", "Sequential"]

logger = logging.getLogger("guardrails")


def _check_guards(guards: Sequence[object]) -> tuple[Guard, ...]:
    for guard in guards:
        if not (callable(getattr(guard, "check", None)) and callable(getattr(guard, "acheck", None))):
            raise TypeError(
                f"a composition takes guards (with check() and acheck()), not {type(guard).__name__}"
            )
    return tuple(guards)  # type: ignore[arg-type]


class _Composite:
    """What every composition shares: the guards, the name, closing, the merged verdict."""

    #: Joins the guards' names into the composition's name (the `guard_from_spec` operator).
    separator: ClassVar[str] = ","

    def __init__(self, *guards: Guard) -> None:
        if not guards:
            raise ValueError(f"{type(self).__name__} needs at least one guard")
        self.guards: tuple[Guard, ...] = _check_guards(guards)

    @property
    def name(self) -> str:
        """The guards' names joined by the composition's operator, e.g. ``local,trend``."""
        return self.separator.join(_operand(guard) for guard in self.guards)

    @property
    def max_text_chars(self) -> int | None:
        """The most characters every guard takes in one check (None when none says)."""
        limits = [getattr(guard, "max_text_chars", None) for guard in self.guards]
        known = [limit for limit in limits if isinstance(limit, int) and not isinstance(limit, bool)]
        return min(known) if known else None

    def _merged(
        self,
        asked: Sequence[Verdict],
        decider: Verdict | None,
        masked: Content | None = None,
        *,
        cached: bool = False,
    ) -> Verdict:
        """The composition's verdict: `decider`'s action (Allow when None), every guard's reasons."""
        lead = decider if decider is not None else asked[-1]
        return Verdict(
            action=Action.BLOCK if decider is not None else Action.ALLOW,
            reasons=list(dict.fromkeys(reason for verdict in asked for reason in verdict.reasons)),
            id=lead.id,
            guard=lead.guard if decider is not None else self.name,
            raw={"verdicts": [{"guard": v.guard, "action": v.action.value, "raw": v.raw} for v in asked]},
            masked_data=decider.masked_data if decider is not None else None,
            cached=cached,
            categories=frozenset(category for verdict in asked for category in verdict.categories),
            masked=masked,
            degraded=any(verdict.degraded for verdict in asked),
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every guard (all of them, even when one raises: the first error is raised)."""
        error: BaseException | None = None
        for guard in self.guards:
            try:
                guard.close()
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error

    async def aclose(self) -> None:
        """Close every guard, async side included."""
        error: BaseException | None = None
        for guard in self.guards:
            try:
                await guard.aclose()
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(guard) for guard in self.guards)})"


def _operand(guard: object) -> str:
    name = guard_name(guard)
    # A nested composition of another operator is bracketed, so the name reads unambiguously.
    if isinstance(guard, _Composite) and len(guard.guards) > 1:
        return f"({name})"
    return name


class _Outcomes:
    """The answers of a composition's guards, in the order they came, and how they settle."""

    __slots__ = ("asked", "blocks", "failure", "fresh", "masks", "refused")

    def __init__(self) -> None:
        self.fresh = False  # a remote guard was asked, not its cache
        self.asked: list[Verdict] = []
        self.blocks: list[Verdict] = []
        self.masks: list[Verdict] = []
        self.failure: GuardError | None = None
        self.refused: ExtractionError | None = None

    @property
    def cached(self) -> bool:
        """No remote guard was asked: a cache answered, and in-process guards for the rest."""
        return not self.fresh and any(verdict.cached for verdict in self.asked)

    def add(self, guard: object, answer: Verdict | Exception) -> bool:
        """Note one guard's answer; True when it ends the composition (a Block, a refusal)."""
        if isinstance(answer, ExtractionError):
            self.refused = self.refused or answer
            return True
        if isinstance(answer, Exception):
            self.failure = self.failure or as_guard_error(answer, guard_name(guard))
            return False
        self.asked.append(answer)
        self.fresh = self.fresh or not (answer.cached or isinstance(guard, InProcessGuard))
        if not answer.blocked:
            return False
        if maskable(answer):
            self.masks.append(answer)
            return False
        self.blocks.append(answer)
        return True


class Sequential(_Composite):
    """Asks its guards in order; the first Block decides and the guards after it are not asked.

    ``Sequential(LocalGuard(), TrendAIGuard())`` is a pre-filter: clear-cut attacks are blocked
    in microseconds without a vendor call, the rest goes on to the vendor. A maskable Block (only
    sensitive data, masked) hands the masked content on to the next guard instead (see the
    module docstring). Its name is its guards' names joined by ``,`` (``local,trend``).

    Args:
        *guards: the guards, in the order they are asked.
    """

    separator = ","

    def check(self, content: Content | str) -> Verdict:
        """Ask each guard's ``check`` in turn."""
        content = as_content(content)
        outcomes = _Outcomes()
        current = content
        for guard in self.guards:
            try:
                answer: Verdict | Exception = guard.check(current)
            except Exception as exc:
                answer = exc
            if outcomes.add(guard, answer):
                break
            if isinstance(answer, Verdict) and maskable(answer):
                assert answer.masked is not None
                current = answer.masked
        return _settle(self, outcomes, current if current is not content else None)

    async def acheck(self, content: Content | str) -> Verdict:
        """Await each guard's ``acheck`` in turn."""
        content = as_content(content)
        outcomes = _Outcomes()
        current = content
        for guard in self.guards:
            try:
                answer: Verdict | Exception = await guard.acheck(current)
            except Exception as exc:
                answer = exc
            if outcomes.add(guard, answer):
                break
            if isinstance(answer, Verdict) and maskable(answer):
                assert answer.masked is not None
                current = answer.masked
        return _settle(self, outcomes, current if current is not content else None)


def _settle(composite: _Composite, outcomes: _Outcomes, masked: Content | None = None) -> Verdict:
    """The verdict of a composition once its guards have answered (or raise what decides)."""
    if outcomes.blocks:
        return composite._merged(outcomes.asked, cached=outcomes.cached, decider=outcomes.blocks[0])
    if outcomes.refused is not None:
        # Unchained: a guard's refusal is ours, and what it wrapped may quote the content.
        raise outcomes.refused from None
    if outcomes.failure is not None:
        if outcomes.masks:
            # A guard found sensitive data, another could not check: block rather than let the
            # masked content go on unchecked by it (or, failing open, the unmasked one).
            return composite._merged(outcomes.asked, cached=outcomes.cached, decider=outcomes.masks[0])
        raise outcomes.failure from None
    if outcomes.masks:
        lead = outcomes.masks[0]
        if len(outcomes.masks) > 1 and masked is None:
            # Two guards masked the same content differently: no one masked copy holds both.
            return composite._merged(outcomes.asked, cached=outcomes.cached, decider=lead)
        return composite._merged(
            outcomes.asked,
            cached=outcomes.cached,
            decider=lead,
            masked=masked if masked is not None else lead.masked,
        )
    return composite._merged(outcomes.asked, cached=outcomes.cached, decider=None)


class Parallel(_Composite):
    """Asks every guard at once; any Block blocks (and cancels the rest), Allow needs them all.

    The latency of a check is the slowest guard's on Allow, the first blocking guard's on Block.
    ``check`` runs in-process guards (`LocalGuard`) in the calling thread and the others in a
    thread pool (threads already running a check end within their guard's deadline; those not
    started are cancelled);
    ``acheck`` runs them in a task group, cancelled at the first Block. Its name is its guards'
    names joined by ``+`` (``trend+palo-alto``).

    Args:
        *guards: the guards to ask together.
        max_workers: the threads of the pool ``check`` uses (shared by concurrent checks).
    """

    separator = "+"

    def __init__(self, *guards: Guard, max_workers: int = 32) -> None:
        super().__init__(*guards)
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="guardrails-parallel"
                )
            return self._pool

    def check(self, content: Content | str) -> Verdict:
        """Ask every guard's ``check`` at once."""
        content = as_content(content)
        outcomes = _Outcomes()
        # In-process guards take microseconds: they run in this thread, the others in the pool.
        inline = [guard for guard in self.guards if isinstance(guard, InProcessGuard)]
        pooled = [guard for guard in self.guards if not isinstance(guard, InProcessGuard)]
        futures: dict[concurrent.futures.Future[Verdict], Guard] = {}
        if pooled:
            executor = self._executor()
            futures = {executor.submit(guard.check, content): guard for guard in pooled}
        try:
            done = False
            for guard in inline:
                try:
                    answer: Verdict | Exception = guard.check(content)
                except Exception as exc:
                    answer = exc
                if outcomes.add(guard, answer):
                    done = True
                    break
            pending = set(futures)
            while pending and not done:
                finished, pending = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in finished:
                    error = future.exception()
                    answer = future.result() if error is None else _exception(error)
                    done = outcomes.add(futures[future], answer) or done
        finally:
            # Not started: cancelled. Running: each ends within its guard's own deadline.
            for future in futures:
                future.cancel()
        return _settle(self, outcomes)

    async def acheck(self, content: Content | str) -> Verdict:
        """Await every guard's ``acheck`` at once, in a task group."""
        content = as_content(content)
        outcomes = _Outcomes()
        async with anyio.create_task_group() as group:

            async def ask(guard: Guard) -> None:
                try:
                    answer: Verdict | Exception = await guard.acheck(content)
                except Exception as exc:
                    # Kept, not raised: a task group would wrap it in an ExceptionGroup.
                    answer = exc
                if outcomes.add(guard, answer):
                    group.cancel_scope.cancel()

            for guard in self.guards:
                group.start_soon(ask, guard)
        return _settle(self, outcomes)

    def close(self) -> None:
        """Close the thread pool, then every guard.

        Checks still running in the pool (the guards a Block did not wait for) are waited for,
        each within its guard's deadline: closing a guard under them would break their requests.
        """
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        super().close()

    async def aclose(self) -> None:
        """Close every guard, async side included, and the thread pool."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            await anyio.to_thread.run_sync(lambda: pool.shutdown(wait=True, cancel_futures=True))
        await super().aclose()


def _exception(error: BaseException) -> Exception:
    if isinstance(error, Exception):
        return error
    # A BaseException out of a worker thread (KeyboardInterrupt, SystemExit) is not a guard's answer.
    raise error


class Fallback(_Composite):
    """Asks the primary guard; when it fails with a transient error, the secondary decides.

    ``Fallback(TrendAIGuard(), LocalGuard())`` keeps a baseline of protection during a vendor
    outage instead of choosing between letting everything through and refusing everything. A
    fallback decision has ``Verdict.degraded`` set (and so ``Decision.degraded``), is counted in
    ``stats()["degraded"]`` and logs a WARNING. Configuration errors of the primary (bad
    credentials, a 400) and refused input are raised, never fallen back from. Its name is
    ``primary|secondary`` (``trend|local``).

    Args:
        primary: the guard that decides while it works.
        secondary: the guard that decides while the primary fails (or its breaker is open).
    """

    separator = "|"

    def __init__(self, primary: Guard, secondary: Guard) -> None:
        super().__init__(primary, secondary)
        self.primary, self.secondary = self.guards

    def check(self, content: Content | str) -> Verdict:
        """Ask the primary's ``check``; the secondary's on a transient failure."""
        content = as_content(content)
        try:
            return self.primary.check(content)
        except GuardError as exc:
            if not exc.transient:
                raise
            self._fell_back(exc, content)
        return _degraded(self.secondary.check(content))

    async def acheck(self, content: Content | str) -> Verdict:
        """Await the primary's ``acheck``; the secondary's on a transient failure."""
        content = as_content(content)
        try:
            return await self.primary.acheck(content)
        except GuardError as exc:
            if not exc.transient:
                raise
            self._fell_back(exc, content)
        return _degraded(await self.secondary.acheck(content))

    def _fell_back(self, error: GuardError, content: Content) -> None:
        # Only the error's class and status: a vendor's message may quote the request.
        logger.warning(
            "guardrails: %s guard failed (%s, status %s) checking a %s: %s decides (degraded)",
            safe_text(guard_name(self.primary)),
            type(error).__name__,
            error.status_code,
            content.kind,
            safe_text(guard_name(self.secondary)),
            extra={
                "guardrails_guard": safe_text(guard_name(self.primary)),
                "guardrails_fallback": safe_text(guard_name(self.secondary)),
                "guardrails_error": type(error).__name__,
                "guardrails_degraded": True,
            },
        )


def _degraded(verdict: Verdict) -> Verdict:
    return verdict.model_copy(update={"degraded": True})
