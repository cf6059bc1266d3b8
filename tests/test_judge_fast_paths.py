"""The judge's and the decorator's fast paths decide, count and report exactly as the full pipeline.

An allowed check nobody listens to (no hook, no OpenTelemetry) is only counted, without a lock;
``f(prompt)`` goes from the decorator's closure straight to the judge; an `InProcessGuard` keeping
the base class's ``check`` / ``acheck`` is asked through ``_decide``. Each is compared here with
the path it short-cuts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from guardrails import TrendAIGuard, guarded
from guardrails._events import Decision, add_hook, metered, remove_hook, reset_stats, stats, usage
from guardrails._exceptions import Blocked, GuardError, GuardUnavailable
from guardrails._guard import InProcessGuard
from guardrails._models import Action, Content, Verdict
from guardrails._otel import instrument, uninstrument
from guardrails.testing._fakes import FakeGuard
from guardrails.testing.emulator import Emulator
from tests.helpers import TREND_KEY

PROMPT = "What is the capital of France?"


@pytest.fixture(autouse=True)
def _fresh_stats() -> Iterator[None]:
    reset_stats()
    yield
    reset_stats()


def raising(error: Exception) -> Callable[[Content], Any]:
    def rule(content: Content) -> Any:
        raise error

    return rule


# name -> (the guard's rule, guarded() options)
ANSWERS: dict[str, tuple[Callable[[Content], Any], dict[str, Any]]] = {
    "allow": (lambda c: Action.ALLOW, {}),
    "block": (lambda c: Verdict(action=Action.BLOCK, reasons=["r"], categories=frozenset({"other"})), {}),
    "block-monitored": (lambda c: Action.BLOCK, {"monitor": True}),
    "block-on-block": (lambda c: Action.BLOCK, {"on_block": lambda blocked: "withheld"}),
    "block-let-through": (
        lambda c: Verdict(action=Action.BLOCK, categories=frozenset({"other"})),
        {"block": {"prompt_attack"}},
    ),
    "degraded-allow": (lambda c: Verdict(action=Action.ALLOW, degraded=True), {}),
    "transient-closed": (raising(GuardUnavailable("down")), {}),
    "transient-open": (raising(GuardUnavailable("down")), {"fail_open": True}),
    "broken-guard": (raising(RuntimeError("bug")), {"fail_open": True}),
}


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("returned", call())
    except (Blocked, GuardError) as exc:
        return ("raised", type(exc).__name__)


def _decisions(decisions: list[Decision]) -> list[Decision]:
    return [dataclasses.replace(decision, latency=0.0) for decision in decisions]


def _call(flavour: str, way: str, guard: FakeGuard, options: dict[str, Any]) -> Any:
    """Decorate a one-argument function and call it ``f(prompt)`` (fast) or ``f(prompt=...)``."""
    if flavour == "sync":

        def plain(prompt: str) -> str:
            return "ran"

        function = guarded(guard, **options)(plain)
        return _outcome(lambda: function(PROMPT) if way == "fast" else function(prompt=PROMPT))

    async def aplain(prompt: str) -> str:
        return "ran"

    afunction = guarded(guard, **options)(aplain)
    return _outcome(lambda: asyncio.run(afunction(PROMPT) if way == "fast" else afunction(prompt=PROMPT)))


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("hooked", [False, True], ids=["silent", "hooked"])
@pytest.mark.parametrize("answer", list(ANSWERS))
def test_the_closure_fast_path_and_the_shell_decide_alike(answer: str, hooked: bool, flavour: str) -> None:
    """``f(prompt)`` (the closure's fast path) and ``f(prompt=...)`` (the shell): same result or
    error, same decisions, same counters; with and without a hook (the judge's silent path)."""
    rule, options = ANSWERS[answer]
    runs: dict[str, tuple[Any, list[Decision], dict[str, int]]] = {}
    for way in ("fast", "shell"):
        reset_stats()
        decisions: list[Decision] = []
        guard = FakeGuard(rule)
        hooks = {"on_decision": decisions.append} if hooked else {}
        result = _call(flavour, way, guard, {**options, **hooks})
        assert guard.calls == 1
        assert guard.seen[0].text == PROMPT
        runs[way] = (result, _decisions(decisions), dict(stats()))
    assert runs["fast"] == runs["shell"]
    assert sum(count for name, count in runs["fast"][2].items() if name != "degraded") == 1
    if hooked:
        assert len(runs["fast"][1]) == 1


class _Overriding(InProcessGuard):
    """Overrides check and acheck: the judge must ask through them, not `_decide`."""

    name = "overriding"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def _decide(self, content: Content) -> Verdict:
        return Verdict(action=Action.ALLOW, guard=self.name)

    def check(self, content: Content | str) -> Verdict:
        self.asked.append("check")
        return Verdict(action=Action.BLOCK, guard=self.name, reasons=["from check"])

    async def acheck(self, content: Content | str) -> Verdict:
        self.asked.append("acheck")
        return Verdict(action=Action.BLOCK, guard=self.name, reasons=["from acheck"])


def test_an_in_process_guard_overriding_check_and_acheck_is_asked_through_them() -> None:
    guard = _Overriding()

    @guarded(guard)
    def plain(prompt: str) -> str:
        return prompt

    @guarded(guard)
    async def aplain(prompt: str) -> str:
        return prompt

    with pytest.raises(Blocked) as sync_block:
        plain(PROMPT)
    with pytest.raises(Blocked) as async_block:
        asyncio.run(aplain(PROMPT))
    assert guard.asked == ["check", "acheck"]
    assert sync_block.value.verdict.reasons == ["from check"]
    assert async_block.value.verdict.reasons == ["from acheck"]


def test_allowed_calls_from_many_threads_are_all_counted() -> None:
    """The silent path counts without a lock: not one allowed call is lost."""
    threads, calls = 4, 2500
    start = threading.Barrier(threads)

    @guarded(FakeGuard(lambda c: Action.ALLOW, history=0))
    def plain(prompt: str) -> str:
        return prompt

    def worker() -> None:
        start.wait()
        for _ in range(calls):
            plain(PROMPT)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert stats()["allowed"] == threads * calls
    reset_stats()
    assert set(stats().values()) == {0}
    plain(PROMPT)
    assert stats()["allowed"] == 1


def test_a_hook_added_after_decoration_gets_the_next_allowed_call() -> None:
    decisions: list[Decision] = []

    @guarded(FakeGuard(lambda c: Action.ALLOW))
    def plain(prompt: str) -> str:
        return prompt

    plain(PROMPT)
    add_hook(decisions.append)
    try:
        plain(PROMPT)
    finally:
        remove_hook(decisions.append)
    plain(PROMPT)
    assert [decision.outcome for decision in decisions] == ["allowed"]
    assert decisions[0].latency > 0
    assert stats()["allowed"] == 3


def test_a_remote_guards_usage_is_counted_silent_or_not(emulator: Emulator, emulator_url: str) -> None:
    """Silent, the check has no meter, yet `usage` counts what it sent; with a hook its `Decision`
    carries it; a `metered` block around a guarded call sees neither (the judge meters its own)."""
    decisions: list[Decision] = []
    with TrendAIGuard(TREND_KEY, base_url=emulator_url) as guard:

        @guarded(guard)
        def silent(prompt: str) -> str:
            return prompt

        @guarded(guard, on_decision=decisions.append)
        def hooked(prompt: str) -> str:
            return prompt

        with metered() as outer:
            silent(PROMPT)
        assert outer.vendor_calls == 0
        assert usage()[guard.name] == {
            "scanned_characters": len(PROMPT),
            "vendor_calls": 1,
            "billing_units": 0,
        }
        with metered() as outer:
            hooked(PROMPT + "!")
        assert outer.vendor_calls == 0
    assert [(d.outcome, d.scanned_characters, d.vendor_calls) for d in decisions] == [
        ("allowed", len(PROMPT) + 1, 1)
    ]
    assert usage()[guard.name]["scanned_characters"] == 2 * len(PROMPT) + 1
    assert stats()["allowed"] == 2


def test_opentelemetry_sees_allowed_calls_while_instrumented_only() -> None:
    """`instrument` and `uninstrument` switch the judge's one question ("is anyone listening?")."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    @guarded(FakeGuard(lambda c: Action.ALLOW))
    def plain(prompt: str) -> str:
        return prompt

    @guarded(FakeGuard(lambda c: Action.ALLOW))
    async def aplain(prompt: str) -> str:
        return prompt

    try:
        instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        plain(PROMPT)
        asyncio.run(aplain(PROMPT))
        uninstrument()
        plain(PROMPT)
        asyncio.run(aplain(PROMPT))
        instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        plain(PROMPT)
    finally:
        instrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()
    finished = spans.get_finished_spans()
    assert [span.attributes["guardrails.outcome"] for span in finished if span.attributes] == ["allowed"] * 3
    assert stats()["allowed"] == 5
