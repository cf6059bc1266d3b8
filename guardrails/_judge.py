"""The one check pipeline: ask a guard, then settle its answer the same way in every shell.

The decorator, both middlewares and the OpenAI transport each hold a `Judge` per call, request
or stream, and ask through it (`Judge.ask` in sync code, `Judge.aask` in async code). The judge
times the check, sorts whatever the guard raised, applies monitor mode and the fail-open policy,
records one `Decision` and writes the one log line about it. The shell only translates what comes
back:

===================================  ===========================  ===================================
what happened                         ``ask`` / ``aask``           outcome, log line
===================================  ===========================  ===================================
Allow                                 returns the `Verdict`        ``allowed``, none
Block                                 raises `Blocked`             ``blocked``, INFO
Block, monitor mode                   returns the `Verdict`        ``monitored``, INFO
Block of categories outside           returns the `Verdict`        ``monitored``, INFO
``block=`` (per-category blocking)
Block of sensitive data only, with    returns the `Verdict`, after ``masked``, INFO
masked content, and a ``mask``        ``mask(verdict.masked)``
callback that rewrote the call        returned True
guard failure, failing closed         raises the `GuardError`      ``error``, WARNING (ERROR if config)
guard failure, failing open           returns None (unscanned)     ``failed_open``, WARNING / ERROR
input the guard refuses (too long,    raises the                   ``too_large`` / ``invalid``, INFO
unreadable): caused by the client     `ExtractionError`, under
                                      every ``fail_open``
===================================  ===========================  ===================================

A guard that raises anything but a `GuardError` or an `ExtractionError` is broken: that is a
configuration error (never transient), so it fails closed unless ``fail_open="always"``. In
monitor mode nothing raises: every outcome above returns (None when no verdict was had).

An Allow that no one listens to (no hook, global or the call site's, and no OpenTelemetry
provider: asked once per check) is only counted in `stats`: no `Decision` is built, no second
clock read is taken and a remote guard's check gets no `Meter` (`usage` still counts what it
sent). That is the hot path of every shell; everything else is settled by `settle`.

With ``incremental=True`` the judge first leaves out the chat messages this guard already allowed
(`guardrails._incremental`): when none is new, the call goes on with a cached Allow and no guard
call. What each check sent to the vendor (characters, calls, billing units) is on its `Decision`.

Per-category blocking (``block=``): a Block whose categories are all outside ``block`` is recorded as
``monitored`` and the call goes on; a Block with no category at all blocks (a guard that does not
say why cannot be trusted to be harmless). Masking: a shell that can rewrite its call passes
``mask=``, a callback given the masked `Content` that returns True when the call will go on with
it, False when the call's structure cannot be rewritten faithfully (the Block then stands: nothing
unmasked is let through for it).

Log lines carry the structured fields of `log_extra` and never the scanned text, nor a guard's
own error message (a vendor's message may quote the request): only the error's class and status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from . import _events, _incremental, _otel
from ._events import (
    Decision,
    DecisionHook,
    Meter,
    Outcome,
    counter,
    log_extra,
    meter_var,
    quiet,
    record,
    safe_text,
)
from ._exceptions import Blocked, ContentTooLarge, ExtractionError, GuardError
from ._guard import InProcessGuard
from ._models import CATEGORIES, Action, Category, Content, Verdict
from ._policy import FailOpen, should_fail_open

if TYPE_CHECKING:
    from ._guard import Guard

__all__ = ["Judge", "MaskCallback", "as_guard_error", "block_categories", "guard_name", "maskable"]

#: A shell's way of going on with masked content: True when the call will go on with it.
MaskCallback = Callable[[Content], bool]

logger = logging.getLogger("guardrails")

_perf = time.perf_counter
_BLOCK = Action.BLOCK
_ALLOWED = counter("allowed")
# An `InProcessGuard` that keeps the base class's check / acheck decides with `_decide` alone.
_CHECK = InProcessGuard.check
_ACHECK = InProcessGuard.acheck


def guard_name(guard: object) -> str:
    """The name a guard goes by in decisions and log lines."""
    name = getattr(guard, "name", None)
    return name if isinstance(name, str) else type(guard).__name__


def as_guard_error(error: BaseException, guard: str) -> GuardError:
    """A `GuardError` for any exception a guard raised.

    A guard raising anything but a `GuardError` is broken: a configuration error, never transient.
    """
    if isinstance(error, GuardError):
        return error
    return GuardError(f"{guard} guard raised {type(error).__name__}", guard=guard, transient=False)


def maskable(verdict: Verdict) -> bool:
    """Whether a verdict may let the call go on masked: a Block whose only category is
    ``sensitive_data``, with the masked content attached."""
    return verdict.blocked and verdict.masked is not None and verdict.categories == {"sensitive_data"}


def block_categories(block: Collection[str] | None) -> frozenset[Category] | None:
    """Validate a ``block=`` option: None (every category blocks) or a set of `CATEGORIES`.

    Raises:
        TypeError: a string was given (``block="prompt_attack"`` would read as its letters).
        ValueError: a name is not one of `CATEGORIES`.
    """
    if block is None:
        return None
    if isinstance(block, str):
        raise TypeError(f"block must be a collection of categories, e.g. {{{block!r}}}, not a string")
    unknown = sorted(set(block) - set(CATEGORIES))
    if unknown:
        raise ValueError(
            f"unknown categories in block: {', '.join(unknown)}; choose from {', '.join(CATEGORIES)}"
        )
    return frozenset(block)  # type: ignore[arg-type]


class Judge:
    """Asks the guard and settles the answers about one call, request or stream.

    Args:
        target: what is guarded: a function's qualified name or ``"METHOD /route"`` (control
            characters are escaped and the length bounded: it may hold client input).
        hooks: the call site's own decision hooks.
        fail_open: the policy for guard failures (never for input the guard refuses).
        monitor: shadow mode: record and log, never block, never fail.
        blocked: the `Blocked` subclass raised on Block (the OpenAI transport raises one that is
            also an ``openai.OpenAIError``).
        incremental: chat messages this guard already allowed are not checked again (see
            `guardrails._incremental`).
        block: the categories that block (None: all); a Block of other categories only is
            recorded as ``monitored`` and the call goes on.
    """

    __slots__ = ("block", "blocked", "fail_open", "hooks", "incremental", "monitor", "target")

    def __init__(
        self,
        target: str,
        *,
        hooks: Sequence[DecisionHook] = (),
        fail_open: FailOpen = False,
        monitor: bool = False,
        blocked: type[Blocked] = Blocked,
        incremental: bool = False,
        block: Collection[str] | None = None,
    ) -> None:
        self.incremental = incremental
        self.block = block_categories(block)
        self.target = safe_text(target)
        self.hooks = hooks
        self.fail_open: FailOpen = fail_open
        self.monitor = monitor
        self.blocked = blocked

    # -- the pipeline ---------------------------------------------------------------------------

    def ask(self, guard: Guard, content: Content, *, mask: MaskCallback | None = None) -> Verdict | None:
        """Check `content` with ``guard.check`` and settle the answer.

        Returns:
            The `Verdict` when the call goes on with one (an Allow; a Block in monitor mode), None
            when it goes on unscanned (failing open, or monitor mode without a verdict).

        Raises:
            Blocked: the guard said Block (the judge's ``blocked`` class).
            GuardError: the guard failed and the policy fails closed.
            ExtractionError: the guard refused the input (`ContentTooLarge`...), whatever the policy.
        """
        plan = None
        if self.incremental:
            content, plan, known = self._narrowed(guard, content)
            if known is not None:
                return known
        silent, decide, meter, token = self._watch(guard, type(guard).check is _CHECK)
        started = _perf()
        try:
            verdict = decide(content) if decide is not None else guard.check(content)
        except Exception as exc:
            self._failed(exc, guard, content.kind, _perf() - started, meter)
            return None
        finally:
            if token is not None:
                meter_var.reset(token)
        if silent and plan is None and verdict.action is not _BLOCK and not verdict.degraded:
            next(_ALLOWED)  # the hot path: nobody would read the decision, nor its latency
            return verdict
        return self._conclude(verdict, content.kind, _perf() - started, meter, plan, mask)

    async def aask(
        self, guard: Guard, content: Content, *, mask: MaskCallback | None = None
    ) -> Verdict | None:
        """`ask` with ``await guard.acheck``: the same answers, raised or returned the same way."""
        plan = None
        if self.incremental:
            content, plan, known = self._narrowed(guard, content)
            if known is not None:
                return known
        silent, decide, meter, token = self._watch(guard, type(guard).acheck is _ACHECK)
        started = _perf()
        try:
            verdict = decide(content) if decide is not None else await guard.acheck(content)
        except Exception as exc:
            self._failed(exc, guard, content.kind, _perf() - started, meter)
            return None
        finally:
            if token is not None:
                meter_var.reset(token)
        if silent and plan is None and verdict.action is not _BLOCK and not verdict.degraded:
            next(_ALLOWED)
            return verdict
        return self._conclude(verdict, content.kind, _perf() - started, meter, plan, mask)

    def _narrowed(
        self, guard: Guard, content: Content
    ) -> tuple[Content, _incremental.Plan | None, Verdict | None]:
        """What an incremental check asks: the content narrowed to what is new, its plan, and the
        verdict already known when nothing is new (then nothing is asked)."""
        plan = _incremental.plan(guard, content)
        if plan is None:
            return content, None, None
        if plan.content is None:
            return content, plan, self._known(guard, content.kind)
        return plan.content, plan, None

    def _watch(
        self, guard: Guard, base_method: bool
    ) -> tuple[bool, Callable[[Content], Verdict] | None, Meter | None, Any]:
        """How a check is watched: whether it is silent, a direct `_decide`, the `Meter` and its token.

        Silent (asked once per check): with no hook and no telemetry an Allow is only counted, and
        what the check sent to the vendor (its `Meter`) would reach no one. An `InProcessGuard` has
        no vendor and no meter; when it keeps the base class's check (`base_method`), that check is
        `_decide`, called without its frames.
        """
        silent = not (self.hooks or _events._hooks) and _otel.idle()
        if isinstance(guard, InProcessGuard):
            return silent, (guard._decide if base_method else None), None, None
        if not silent or meter_var.get() is not None:
            meter = Meter()
            return silent, None, meter, meter_var.set(meter)
        return silent, None, None, None

    def _conclude(
        self,
        verdict: Verdict,
        kind: str,
        latency: float,
        meter: Meter | None,
        plan: _incremental.Plan | None,
        mask: MaskCallback | None,
    ) -> Verdict:
        """Settle a guard's answer, and remember the messages an incremental check allowed."""
        # A narrowed content (incremental) cannot be written back over the whole call: no masking.
        settled = self.settle(
            verdict, kind=kind, latency=latency, meter=meter, mask=mask if plan is None else None
        )
        if plan is not None:
            plan.remember(settled)
        return settled

    def _known(self, guard: object, kind: str) -> Verdict:
        """Every message was already allowed by this guard: an Allow without asking it."""
        verdict = Verdict(action=Action.ALLOW, guard=guard_name(guard), cached=True)
        return self.settle(verdict, kind=kind)

    def settle(
        self,
        verdict: Verdict,
        *,
        kind: str = "prompt",
        latency: float = 0.0,
        meter: Meter | None = None,
        mask: MaskCallback | None = None,
    ) -> Verdict:
        """Record a verdict; raise `Blocked` on Block outside monitor mode, else return it.

        A Block goes on as ``masked`` when `mask` rewrote the call with ``verdict.masked``, and as
        ``monitored`` when its categories are all outside the judge's ``block``.
        """
        if not verdict.blocked:
            if verdict.degraded or not quiet(self.hooks):
                self.record("allowed", kind=kind, verdict=verdict, latency=latency, meter=meter)
            else:
                next(_ALLOWED)  # nobody would read the event
            return verdict
        if mask is not None and not self.monitor and maskable(verdict):
            assert verdict.masked is not None
            if mask(verdict.masked):
                decision = self.record("masked", kind=kind, verdict=verdict, latency=latency, meter=meter)
                logger.info(
                    "%s guard found sensitive data in the %s of %s: it goes on masked (verdict id %s)",
                    safe_text(verdict.guard),
                    kind,
                    self.target,
                    safe_text(str(verdict.id)),
                    extra=log_extra(decision),
                )
                return verdict
        # A Block that names no category blocks: nothing says it is one the app lets through.
        let_through = (
            self.block is not None and bool(verdict.categories) and verdict.categories.isdisjoint(self.block)
        )
        monitored = self.monitor or let_through
        decision = self.record(
            "monitored" if monitored else "blocked", kind=kind, verdict=verdict, latency=latency, meter=meter
        )
        if self.monitor:
            done = "would have blocked (monitor mode)"
        elif let_through:
            done = "found categories this call does not block in"
        else:
            done = "blocked"
        logger.info(
            "%s guard %s the %s of %s: %s (verdict id %s)",
            safe_text(verdict.guard),
            done,
            kind,
            self.target,
            safe_text("; ".join(verdict.reasons) or "no reason given"),
            safe_text(str(verdict.id)),
            extra=log_extra(decision),
        )
        if monitored:
            return verdict
        raise self.blocked(verdict)

    def _failed(
        self, error: Exception, guard: object, kind: str, latency: float, meter: Meter | None
    ) -> None:
        name = guard_name(guard)
        if isinstance(error, ExtractionError):
            self.refused(error, guard=name, kind=kind, latency=latency, meter=meter)
            return
        failure = as_guard_error(error, name)
        if not self.failed(failure, guard=name, kind=kind, latency=latency, meter=meter):
            if failure is error:
                raise failure
            # Unchained: a foreign exception's message may quote the content.
            raise failure from None
        return

    def failed(
        self,
        error: GuardError,
        *,
        guard: str | None = None,
        kind: str = "prompt",
        latency: float = 0.0,
        meter: Meter | None = None,
    ) -> bool:
        """Record a guard failure; True when the call goes on (failing open, monitor mode).

        Args:
            error: what the guard raised.
            guard: the name of the guard asked (default: the error's).
            kind: ``"prompt"`` or ``"response"``.
            latency: seconds spent asking.
            meter: what the check sent to the vendor before it failed.
        """
        proceed = self.monitor or should_fail_open(self.fail_open, error)
        name = guard or error.guard
        decision = self.record(
            "failed_open" if proceed else "error",
            guard=name,
            kind=kind,
            error=error,
            latency=latency,
            meter=meter,
        )
        if self.monitor:
            then = "monitor mode: the call goes on"
        else:
            then = "failing open, unscanned" if proceed else "failing closed"
        # A configuration error is an ERROR even when the policy lets the call through.
        logger.log(
            logging.WARNING if error.transient else logging.ERROR,
            "%s guard %s (%s, status %s) checking the %s of %s: %s",
            safe_text(name),
            "failed" if error.transient else "configuration error",
            type(error).__name__,
            error.status_code,
            kind,
            self.target,
            then,
            extra=log_extra(decision, status_code=error.status_code),
        )
        return proceed

    def refused(
        self,
        error: ExtractionError,
        *,
        guard: str = "",
        kind: str = "prompt",
        latency: float = 0.0,
        meter: Meter | None = None,
    ) -> None:
        """Record input that cannot be checked (too long, unreadable): caused by the client.

        Refused under every fail-open policy: raises `error` unless in monitor mode.
        """
        too_large = isinstance(error, ContentTooLarge) or getattr(error, "status", None) == 413
        outcome: Outcome = "too_large" if too_large else "invalid"
        decision = self.record(outcome, guard=guard, kind=kind, error=error, latency=latency, meter=meter)
        # In monitor mode unscanned input goes on: something to fix, so an ERROR.
        logger.log(
            logging.ERROR if self.monitor else logging.INFO,
            "guardrails refused the %s of %s: %s%s",
            kind,
            self.target,
            # Our own messages: they name a limit or a format, never the text.
            safe_text(str(error)) or type(error).__name__,
            " (monitor mode: the call goes on)" if self.monitor else "",
            extra=log_extra(decision),
        )
        if not self.monitor:
            # Unchained: whatever failed before it may quote the content.
            raise error from None

    def setup_failed(self, error: BaseException, *, guard: str = "unconfigured") -> GuardError:
        """Log a guard that could not be made (bad settings), with the reason; the error to raise.

        The message of a settings error is ours and holds no secret (keys are never quoted), and
        without it the log says nothing useful: unlike a guard's answer, it is logged.
        """
        failure = (
            error
            if isinstance(error, GuardError)
            else GuardError(f"the guard could not be set up: {error}", guard=guard, transient=False)
        )
        decision = self.record("error", guard=guard, error=failure)
        logger.error(
            "the guard of %s could not be set up (%s): %s",
            self.target,
            type(error).__name__,
            safe_text(str(error), limit=500),
            extra=log_extra(decision),
        )
        return failure

    # -- recording ------------------------------------------------------------------------------

    def record(
        self,
        outcome: Outcome,
        *,
        guard: str = "",
        kind: str = "prompt",
        verdict: Verdict | None = None,
        error: BaseException | None = None,
        latency: float = 0.0,
        meter: Meter | None = None,
    ) -> Decision:
        """Record one decision (counters, OpenTelemetry, hooks) and return it."""
        characters, calls, units = 0, 0, None
        if meter is not None and meter.vendor_calls:
            characters, calls, units = meter.characters, meter.vendor_calls, meter.billing_units
        # Positional: a frozen dataclass's keyword call costs more than the rest of the recording.
        if verdict is not None:
            decision = Decision(
                outcome,
                verdict.guard,
                self.target,
                kind,
                verdict.id,
                tuple(verdict.reasons),
                None,
                latency,
                verdict.cached,
                verdict.degraded,
                characters,
                calls,
                units,
            )
        else:
            decision = Decision(
                outcome,
                guard,
                self.target,
                kind,
                None,
                (),
                type(error).__name__ if error else None,
                latency,
                False,
                False,
                characters,
                calls,
                units,
            )
        record(decision, self.hooks)
        return decision
