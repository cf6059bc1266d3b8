"""OpenTelemetry: a span and metrics per decision, no import cost without the package.

In-process tests give `instrument` explicit SDK providers with in-memory exporters, so they never
touch (or depend on) the process-wide providers; what depends on global state (the lazy import,
the global providers) runs in a fresh interpreter.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from guardrails._events import OUTCOMES, Decision, record, reset_stats, stats
from guardrails._models import Action
from guardrails._otel import instrument, uninstrument
from guardrails._routing import Route
from guardrails.asgi import GuardMiddleware
from guardrails.decorator import guarded
from guardrails.testing._fakes import StaticGuard

BLOCKED = Decision(
    outcome="blocked",
    guard="trend",
    target="POST /chat",
    kind="prompt",
    verdict_id="v-123",
    reasons=("prompt_attack", "pii"),
    latency=0.25,
)


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider

    def finished(self) -> tuple[ReadableSpan, ...]:
        return self.spans.get_finished_spans()

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of the metric `name`."""
        data = self.metrics.get_metrics_data()
        found: list[tuple[dict[str, Any], Any]] = []
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found += [(dict(point.attributes or {}), point) for point in metric.data.data_points]
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """guardrails reporting to fresh in-memory SDK providers for one test."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield Telemetry(spans, reader, tracer_provider)
    instrument()
    tracer_provider.shutdown()
    meter_provider.shutdown()


def only_span(telemetry: Telemetry) -> ReadableSpan:
    (span,) = telemetry.finished()
    return span


def attributes(span: ReadableSpan) -> Mapping[str, Any]:
    return dict(span.attributes or {})


# -- spans -----------------------------------------------------------------------------------------


def test_a_decision_is_one_span_named_guardrails_check(telemetry: Telemetry) -> None:
    """record() ends exactly one span, guardrails.check."""
    record(BLOCKED)
    assert [span.name for span in telemetry.finished()] == ["guardrails.check"]


def test_span_attributes_describe_the_decision(telemetry: Telemetry) -> None:
    """Outcome, guard, target, kind, verdict id, reasons, latency in ms and cached are attributes."""
    record(BLOCKED)
    assert attributes(only_span(telemetry)) == {
        "guardrails.outcome": "blocked",
        "guardrails.guard": "trend",
        "guardrails.target": "POST /chat",
        "guardrails.kind": "prompt",
        "guardrails.verdict_id": "v-123",
        "guardrails.reasons": ("prompt_attack", "pii"),
        "guardrails.latency_ms": 250.0,
        "guardrails.cached": False,
    }


def test_the_error_class_is_an_attribute(telemetry: Telemetry) -> None:
    """A failed guard's exception class name is guardrails.error."""
    record(Decision(outcome="failed_open", guard="trend", target="f", error="GuardTimeout", latency=0.1))
    assert attributes(only_span(telemetry))["guardrails.error"] == "GuardTimeout"


def test_unknown_values_are_left_out_of_the_attributes(telemetry: Telemetry) -> None:
    """No verdict id, reasons or error: no attribute (OpenTelemetry has no None)."""
    record(Decision(outcome="skipped", guard="", target="f"))
    assert not {"guardrails.verdict_id", "guardrails.reasons", "guardrails.error"} & set(
        attributes(only_span(telemetry))
    )


def test_a_cached_verdict_is_marked(telemetry: Telemetry) -> None:
    """guardrails.cached carries Decision.cached."""
    record(Decision(outcome="allowed", guard="local", target="f", cached=True))
    assert attributes(only_span(telemetry))["guardrails.cached"] is True


def test_the_span_starts_latency_before_it_ends(telemetry: Telemetry) -> None:
    """The span covers the time spent asking the guard."""
    record(BLOCKED)
    span = only_span(telemetry)
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.end_time - span.start_time == pytest.approx(0.25e9, abs=1)


def test_failing_closed_sets_an_error_status(telemetry: Telemetry) -> None:
    """Outcome error: status ERROR, described by the error class."""
    record(Decision(outcome="error", guard="trend", target="f", error="GuardUnavailable", latency=0.1))
    status = only_span(telemetry).status
    assert (status.status_code, status.description) == (StatusCode.ERROR, "GuardUnavailable")


@pytest.mark.parametrize("outcome", [o for o in OUTCOMES if o != "error"])
def test_other_outcomes_leave_the_status_unset(telemetry: Telemetry, outcome: Any) -> None:
    """A block, an allow or a fail-open is the guard working, not a span error."""
    record(Decision(outcome=outcome, guard="g", target="f"))
    assert only_span(telemetry).status.status_code is StatusCode.UNSET


def test_the_span_is_a_child_of_the_current_span(telemetry: Telemetry) -> None:
    """Recorded inside a request's span, the check is part of that trace."""
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("request") as parent:
        record(BLOCKED)
    check = next(span for span in telemetry.finished() if span.name == "guardrails.check")
    assert check.parent is not None
    assert check.parent.span_id == parent.get_span_context().span_id


def test_the_scope_is_guardrails(telemetry: Telemetry) -> None:
    """Spans come from the guardrails instrumentation scope."""
    record(BLOCKED)
    scope = only_span(telemetry).instrumentation_scope
    assert scope is not None
    assert scope.name == "guardrails"


# -- metrics ---------------------------------------------------------------------------------------


def test_the_decisions_counter_counts_by_outcome_guard_and_kind(telemetry: Telemetry) -> None:
    """guardrails.decisions has one series per outcome, guard and kind."""
    record(BLOCKED)
    record(BLOCKED)
    record(Decision(outcome="allowed", guard="trend", target="f", kind="response", latency=0.1))
    counts = {
        (attrs["guardrails.outcome"], attrs["guardrails.guard"], attrs["guardrails.kind"]): point.value
        for attrs, point in telemetry.points("guardrails.decisions")
    }
    assert counts == {("blocked", "trend", "prompt"): 2, ("allowed", "trend", "response"): 1}


def test_the_counter_has_no_high_cardinality_attributes(telemetry: Telemetry) -> None:
    """Targets and verdict ids stay on spans: one series per verdict would swamp a metrics backend."""
    record(BLOCKED)
    ((attrs, _),) = telemetry.points("guardrails.decisions")
    assert set(attrs) == {"guardrails.outcome", "guardrails.guard", "guardrails.kind"}


def test_the_duration_histogram_records_guard_latency_in_seconds(telemetry: Telemetry) -> None:
    """guardrails.check.duration sums the latencies of the checks."""
    record(BLOCKED)
    record(BLOCKED)
    ((_, point),) = telemetry.points("guardrails.check.duration")
    assert (point.count, point.sum) == (2, pytest.approx(0.5))


def test_decisions_without_a_check_have_no_duration(telemetry: Telemetry) -> None:
    """Skipped, too large, invalid: the guard was not asked, nothing to time."""
    for outcome in ("skipped", "too_large", "invalid"):
        record(Decision(outcome=outcome, guard="g", target="f"))
    assert telemetry.points("guardrails.check.duration") == []
    assert len(telemetry.points("guardrails.decisions")) == 3


# -- switching, failures -----------------------------------------------------------------------------


def test_uninstrument_stops_reporting(telemetry: Telemetry) -> None:
    """After uninstrument() decisions are still counted, but not reported."""
    reset_stats()
    uninstrument()
    record(BLOCKED)
    assert telemetry.finished() == ()
    assert stats()["blocked"] == 1


def test_instrument_again_resumes_reporting(telemetry: Telemetry) -> None:
    """instrument() after uninstrument() reports to the providers it is given."""
    uninstrument()
    instrument(tracer_provider=telemetry.tracer_provider)
    record(BLOCKED)
    assert len(telemetry.finished()) == 1


class _BrokenTracerProvider:
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("exporter bug")


def test_a_failing_tracer_never_breaks_record(caplog: pytest.LogCaptureFixture) -> None:
    """The error is logged on the guardrails logger; counting and hooks still happen."""
    reset_stats()
    seen: list[Decision] = []
    instrument(tracer_provider=_BrokenTracerProvider())  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.ERROR, logger="guardrails"):
            record(BLOCKED, hooks=[seen.append])
    finally:
        instrument()
    assert seen == [BLOCKED]
    assert stats()["blocked"] == 1
    assert [(r.name, r.levelno) for r in caplog.records] == [("guardrails", logging.ERROR)]
    assert "OpenTelemetry" in caplog.records[0].getMessage()


# -- through the decorator and the middleware ------------------------------------------------------------


def test_a_guarded_function_reports_its_block(telemetry: Telemetry) -> None:
    """The decorator's decision arrives as a span with the function as target."""
    guard = StaticGuard(Action.BLOCK, reasons=["prompt_attack"])

    @guarded(guard)
    def ask(prompt: str) -> str:
        return "answer"

    with pytest.raises(Exception, match="blocked"):
        ask("hello")
    attrs = attributes(only_span(telemetry))
    assert attrs["guardrails.outcome"] == "blocked"
    assert attrs["guardrails.guard"] == "static"
    assert str(attrs["guardrails.target"]).endswith("ask")


@pytest.mark.anyio
async def test_the_asgi_middleware_reports_each_request(telemetry: Telemetry) -> None:
    """Every guarded request is a span with the route as target."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guarded_app = GuardMiddleware(app, guard=StaticGuard(), routes=[Route("/chat")])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(guarded_app), base_url="http://app") as client:
        response = await client.post("/chat", json={"prompt": "hello"})
    assert response.status_code == 200
    attrs = attributes(only_span(telemetry))
    assert (attrs["guardrails.outcome"], attrs["guardrails.target"]) == ("allowed", "POST /chat")


# -- in a fresh interpreter ----------------------------------------------------------------------------

# Makes `opentelemetry` unimportable and counts the attempts.
_BLOCK_OTEL = """
import sys
attempts = []
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_guardrails_does_not_import_opentelemetry() -> None:
    """The import is deferred to the first decision: `import guardrails` costs nothing."""
    out = run_python(
        """
        import sys, guardrails, guardrails.asgi, guardrails.wsgi, guardrails.decorator
        print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
        """
    )
    assert out == "[]"


def test_without_opentelemetry_the_import_is_tried_once() -> None:
    """With the package absent, decisions are counted, and the import is attempted at the first only."""
    out = run_python(
        _BLOCK_OTEL
        + """
from guardrails._events import Decision, record, stats
assert attempts == []
for _ in range(3):
    record(Decision(outcome="blocked", guard="g", target="f", latency=0.1))
print(len(attempts), stats()["blocked"])
"""
    )
    assert out == "1 3"


def test_instrument_without_opentelemetry_says_what_to_install() -> None:
    """instrument() raises an ImportError naming the otel extra."""
    out = run_python(
        _BLOCK_OTEL
        + """
from guardrails._otel import instrument
try:
    instrument()
except ImportError as exc:
    print(exc)
"""
    )
    assert "guardrails-middleware[otel]" in out


def test_global_providers_set_after_the_first_decision_receive_the_spans() -> None:
    """With no SDK the first decision is a no-op; an SDK installed later gets the next ones."""
    out = run_python(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from guardrails._events import Decision, record

        record(Decision(outcome="allowed", guard="g", target="before"))
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        record(Decision(outcome="blocked", guard="g", target="after"))
        print([span.attributes["guardrails.target"] for span in exporter.get_finished_spans()])
        """
    )
    assert out == "['after']"
