"""OpenTelemetry spans and metrics for guard decisions, when ``opentelemetry-api`` is installed.

`record` hands every `Decision` to `emit`, which adds:

- a span ``guardrails.check`` per decision, a child of the current span (the request's, the
  caller's), starting ``latency`` seconds before the decision was recorded, with the attributes
  ``guardrails.outcome``, ``.guard``, ``.target``, ``.kind``, ``.latency_ms``, ``.cached`` and, when
  known, ``.verdict_id``, ``.reasons`` and ``.error``; its status is ERROR when the outcome is
  ``error`` (failed closed);
- a counter ``guardrails.decisions`` with the attributes ``guardrails.outcome``, ``.guard`` and
  ``.kind``;
- a histogram ``guardrails.check.duration`` (seconds) of the decisions that asked a guard;
- counters ``guardrails.scanned_characters`` and ``guardrails.vendor_calls`` with the attribute
  ``guardrails.guard``: what the decisions' checks sent to the vendor (`Decision.scanned_characters`,
  `Decision.vendor_calls`; also span attributes when non-zero).

Spans and metrics go to the global providers (``trace.set_tracer_provider``,
``metrics.set_meter_provider``), or to the ones given to `instrument`. While the application has
set no global provider, nothing is built (a check of the global costs a fraction of a microsecond).

Without ``opentelemetry-api`` none of this costs anything: the import is attempted once, at the
first decision, never at ``import guardrails``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ._events import Decision

__all__ = ["SPAN_NAME", "emit", "idle", "instrument", "uninstrument", "wanted"]

logger = logging.getLogger("guardrails")

SPAN_NAME: Final = "guardrails.check"
DECISIONS_METRIC: Final = "guardrails.decisions"
DURATION_METRIC: Final = "guardrails.check.duration"
SCANNED_METRIC: Final = "guardrails.scanned_characters"
CALLS_METRIC: Final = "guardrails.vendor_calls"


class _Telemetry:
    """The tracer and instruments bound to one pair of providers."""

    __slots__ = (
        "_error",
        "_metrics_unset",
        "_status",
        "_tracing_unset",
        "calls",
        "decisions",
        "duration",
        "idle",
        "scanned",
        "tracer",
    )

    def __init__(self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None) -> None:
        from opentelemetry import metrics, trace

        from ._version import __version__

        # With no provider given these are the API's proxies: they start delegating to the SDK's
        # providers as soon as the application sets them, even after this point.
        self.tracer = trace.get_tracer("guardrails", __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("guardrails", __version__, meter_provider=meter_provider)
        self.decisions = meter.create_counter(
            DECISIONS_METRIC, unit="{decision}", description="Guard decisions, by outcome and guard."
        )
        self.duration = meter.create_histogram(
            DURATION_METRIC, unit="s", description="Time spent asking the guard, per decision."
        )
        self.scanned = meter.create_counter(
            SCANNED_METRIC,
            unit="{character}",
            description="Characters sent to a vendor for scanning, by guard.",
        )
        self.calls = meter.create_counter(
            CALLS_METRIC, unit="{call}", description="Requests sent to a vendor, by guard."
        )
        self._status = trace.Status
        self._error = trace.StatusCode.ERROR
        # While the application has set no provider the API's proxies would only build no-op spans
        # and instruments: skip the work (a few microseconds per decision) until it sets one.
        self._tracing_unset = _unset_check("opentelemetry.trace", "_TRACER_PROVIDER")
        self._metrics_unset = _unset_check("opentelemetry.metrics._internal", "_METER_PROVIDER")
        if tracer_provider is not None:
            self._tracing_unset = _never
        if meter_provider is not None:
            self._metrics_unset = _never
        self.idle = self._idle_check()

    def _idle_check(self) -> Any:
        """One function for `wanted`'s question, "is neither provider set?", asked at every
        decision: the two module globals read in one frame, not through the two checks above."""
        tracing, metrics = self._tracing_unset, self._metrics_unset
        if tracing is _never or metrics is _never:
            return _never
        trace_module = sys.modules.get("opentelemetry.trace")
        metrics_module = sys.modules.get("opentelemetry.metrics._internal")
        if trace_module is None or metrics_module is None:  # pragma: no cover - another layout
            return lambda: tracing() and metrics()
        return lambda: trace_module._TRACER_PROVIDER is None and metrics_module._METER_PROVIDER is None

    def emit(self, decision: Decision) -> None:
        if not self._tracing_unset():
            self._span(decision)
        if not self._metrics_unset():
            labels: dict[str, str | bool] = {
                "guardrails.outcome": decision.outcome,
                "guardrails.guard": decision.guard,
                "guardrails.kind": decision.kind,
            }
            if decision.degraded:
                labels["guardrails.degraded"] = True
            self.decisions.add(1, labels)
            if decision.latency > 0:
                self.duration.record(decision.latency, labels)
            if decision.vendor_calls:
                by_guard = {"guardrails.guard": decision.guard}
                self.scanned.add(decision.scanned_characters, by_guard)
                self.calls.add(decision.vendor_calls, by_guard)

    def _span(self, decision: Decision) -> None:
        end = time.time_ns()
        attributes: dict[str, Any] = {
            "guardrails.outcome": decision.outcome,
            "guardrails.guard": decision.guard,
            "guardrails.target": decision.target,
            "guardrails.kind": decision.kind,
            "guardrails.latency_ms": decision.latency * 1000.0,
            "guardrails.cached": decision.cached,
        }
        if decision.degraded:
            attributes["guardrails.degraded"] = True
        # OpenTelemetry attribute values cannot be None: leave the unknown ones out.
        if decision.verdict_id is not None:
            attributes["guardrails.verdict_id"] = decision.verdict_id
        if decision.reasons:
            attributes["guardrails.reasons"] = decision.reasons
        if decision.error is not None:
            attributes["guardrails.error"] = decision.error
        if decision.vendor_calls:
            attributes["guardrails.scanned_characters"] = decision.scanned_characters
            attributes["guardrails.vendor_calls"] = decision.vendor_calls
        span = self.tracer.start_span(
            SPAN_NAME, start_time=end - int(decision.latency * 1e9), attributes=attributes
        )
        if decision.outcome == "error":
            span.set_status(self._status(self._error, decision.error))
        span.end(end_time=end)


def _never() -> bool:
    return False


def _unset_check(module_name: str, attribute: str) -> Any:
    """A function telling whether the application has set no global provider yet.

    Reads the API's module global directly: ``get_tracer_provider()`` reads the environment on
    every call while no provider is set, which costs more than the rest of a decision.
    """
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError:  # pragma: no cover - an API laid out differently
        return _never
    if not hasattr(module, attribute):  # pragma: no cover - an API laid out differently
        return _never
    return lambda: getattr(module, attribute) is None


class _Pending:
    """Not loaded yet: the first decision tries the import."""


_PENDING: Final = _Pending()
_lock = threading.Lock()
# A `_Telemetry` when active; None when opentelemetry-api is absent or `uninstrument` was called.
_active: _Telemetry | _Pending | None = _PENDING


def _always() -> bool:
    return True


def _first_idle() -> bool:
    telemetry = _load_global()
    return telemetry is None or bool(telemetry.idle())


#: Whether a decision would reach no one in OpenTelemetry now: the question the judge asks at every
#: check, so it is one call. Rebound whenever `_active` changes: `_first_idle` until the first
#: decision (it tries the import), the active telemetry's check of the providers' globals, or
#: `_always` when there is none (read it as ``_otel.idle()``, never bind it elsewhere).
idle: Callable[[], bool] = _first_idle


def _activate(telemetry: _Telemetry | None) -> None:
    """Make `telemetry` the active one and `idle` its check (under `_lock`)."""
    global _active, idle
    _active = telemetry
    idle = _always if telemetry is None else telemetry.idle


def _load_global() -> _Telemetry | None:
    with _lock:
        if isinstance(_active, _Pending):
            try:
                _activate(_Telemetry(None, None))
            except ImportError:
                _activate(None)
        active = _active
    return None if isinstance(active, _Pending) else active


def wanted() -> bool:
    """Whether a decision would reach OpenTelemetry now (an SDK provider set, or `instrument` called)."""
    return not idle()


def emit(decision: Decision) -> None:
    """Report one decision to OpenTelemetry, if it is installed; never raises."""
    telemetry = _active
    if telemetry is None:
        return
    if isinstance(telemetry, _Pending):
        telemetry = _load_global()
        if telemetry is None:
            return
    try:
        telemetry.emit(decision)
    except Exception:
        # Telemetry must never break a request.
        logger.exception("guardrails could not report a decision to OpenTelemetry")


def instrument(
    *, tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> None:
    """Choose where guardrails' spans and metrics go.

    Not needed to use the global providers: decisions are reported to them by default. Call it to
    use other providers (tests, a second pipeline), or to turn reporting back on after
    `uninstrument`.

    Args:
        tracer_provider: the provider of the ``guardrails.check`` spans; None for the global one.
        meter_provider: the provider of the ``guardrails.*`` metrics; None for the global one.

    Raises:
        ImportError: ``opentelemetry-api`` is not installed (``pip install guardrails-middleware[otel]``).
    """
    try:
        telemetry = _Telemetry(tracer_provider, meter_provider)
    except ImportError as exc:
        raise ImportError(
            "guardrails.instrument() needs opentelemetry-api: pip install 'guardrails-middleware[otel]'"
        ) from exc
    with _lock:
        _activate(telemetry)


def uninstrument() -> None:
    """Stop reporting decisions to OpenTelemetry (until `instrument` is called)."""
    with _lock:
        _activate(None)
