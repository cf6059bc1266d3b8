"""Decision events end to end: every shell records one complete event per decision.

The unit behaviour of `record`, hooks and counters is in test_events.py; here the decorator and
both middlewares produce the events, hooks are per call site, and counting holds under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from guardrails._events import (
    OUTCOMES,
    Decision,
    DecisionHook,
    add_hook,
    log_extra,
    record,
    remove_hook,
    reset_stats,
    stats,
)
from guardrails._exceptions import Blocked, ExtractionError, GuardAuthError, GuardTimeout
from guardrails._models import Action, Content, Verdict
from guardrails._routing import Route
from guardrails.asgi import GuardMiddleware as ASGIGuardMiddleware
from guardrails.decorator import guarded
from guardrails.integrations.openai import GuardedTransport
from guardrails.testing._fakes import FakeGuard, StaticGuard
from guardrails.wsgi import GuardMiddleware as WSGIGuardMiddleware

BLOCK = Verdict(action=Action.BLOCK, reasons=["prompt_attack"], id="v-9", guard="fake")


@pytest.fixture(autouse=True)
def clean_counters() -> Iterator[None]:
    reset_stats()
    yield
    reset_stats()


class Collector:
    """A DecisionHook written as a class, as users write them."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def __call__(self, decision: Decision, /) -> None:
        self.decisions.append(decision)

    @property
    def only(self) -> Decision:
        (decision,) = self.decisions
        return decision


def broken_hook(decision: Decision) -> None:
    raise RuntimeError("hook bug")


# -- the event -------------------------------------------------------------------------------------


def test_a_decision_carries_everything_the_issue_lists() -> None:
    """Outcome, guard, route or function, kind, verdict id, reasons, error class, latency, cached."""
    assert [field.name for field in dataclasses.fields(Decision)] == [
        "outcome",
        "guard",
        "target",
        "kind",
        "verdict_id",
        "reasons",
        "error",
        "latency",
        "cached",
        "degraded",
        "scanned_characters",
        "vendor_calls",
        "billing_units",
    ]


def test_every_outcome_of_the_issue_has_a_counter() -> None:
    """The seven outcomes the issue names are counted (plus invalid, a body that cannot be read)."""
    assert {"allowed", "blocked", "error", "failed_open", "too_large", "skipped", "monitored"} <= set(stats())
    assert set(stats()) == {*OUTCOMES, "degraded"}  # degraded: counted beside the outcomes


def test_a_class_with_call_is_a_decision_hook() -> None:
    """DecisionHook is a Protocol: any callable taking the event fits."""
    collector: DecisionHook = Collector()
    record(Decision(outcome="allowed", guard="g", target="f"), hooks=[collector])
    assert isinstance(collector, Collector)
    assert collector.only.outcome == "allowed"


# -- counting under load ------------------------------------------------------------------------------


def test_counts_are_exact_with_threads_and_tasks_recording_at_once() -> None:
    """Threads each running many asyncio tasks, all recording: not one decision is lost."""
    threads, tasks, per_task = 6, 40, 25
    start = threading.Barrier(threads)

    async def task(index: int) -> None:
        for step in range(per_task):
            record(Decision(outcome=OUTCOMES[(index + step) % len(OUTCOMES)], guard="g", target="t"))
            if step % 5 == 0:
                await asyncio.sleep(0)  # interleave the tasks

    async def many_tasks() -> None:
        await asyncio.gather(*(task(index) for index in range(tasks)))

    def thread() -> None:
        start.wait()
        asyncio.run(many_tasks())

    workers = [threading.Thread(target=thread) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    expected: dict[str, int] = dict.fromkeys([*OUTCOMES, "degraded"], 0)
    for index in range(tasks):
        for step in range(per_task):
            expected[OUTCOMES[(index + step) % len(OUTCOMES)]] += threads
    assert stats() == expected
    assert sum(stats().values()) == threads * tasks * per_task


# -- the decorator's events ------------------------------------------------------------------------------


def fake(rule: Callable[[Content], Any]) -> FakeGuard:
    return FakeGuard(rule)


def raising(error: Exception) -> Callable[[Content], Any]:
    def rule(content: Content) -> Any:
        raise error

    return rule


@pytest.mark.parametrize(
    ("rule", "options", "expected"),
    [
        pytest.param(
            lambda c: Action.ALLOW, {}, {"outcome": "allowed", "verdict_id": "fake-1"}, id="allowed"
        ),
        pytest.param(
            lambda c: BLOCK,
            {},
            {"outcome": "blocked", "verdict_id": "v-9", "reasons": ("prompt_attack",)},
            id="blocked",
        ),
        pytest.param(
            lambda c: BLOCK,
            {"monitor": True},
            {"outcome": "monitored", "verdict_id": "v-9", "reasons": ("prompt_attack",)},
            id="monitored",
        ),
        pytest.param(
            raising(GuardTimeout("slow", guard="fake")),
            {"fail_open": True},
            {"outcome": "failed_open", "error": "GuardTimeout"},
            id="failed-open",
        ),
        pytest.param(
            raising(GuardAuthError("bad key", guard="fake")),
            {"fail_open": True},
            {"outcome": "error", "error": "GuardAuthError"},
            id="error",
        ),
    ],
)
def test_the_decorator_records_one_complete_event(
    rule: Callable[[Content], Any], options: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Guard name, function as target, prompt kind, and the outcome's own fields."""
    hook = Collector()

    @guarded(fake(rule), on_decision=hook, **options)
    def ask(prompt: str) -> str:
        return "answer"

    with contextlib.suppress(Blocked, GuardAuthError):
        ask("hello")
    decision = hook.only
    assert decision.guard == "fake"
    assert decision.target.endswith("ask")
    assert decision.kind == "prompt"
    assert decision.latency >= 0
    assert {name: getattr(decision, name) for name in expected} == expected
    assert stats()[expected["outcome"]] == 1


def test_the_decorator_records_skipped_when_there_is_nothing_to_scan() -> None:
    """No prompt in the arguments: one skipped event, the guard not asked."""
    hook = Collector()
    guard = StaticGuard()

    @guarded(guard, extract=lambda bound: None, on_decision=hook)
    def ask(prompt: str) -> str:
        return "answer"

    assert ask("hello") == "answer"
    assert (hook.only.outcome, guard.calls) == ("skipped", 0)


def test_the_decorator_records_invalid_when_extraction_fails() -> None:
    """An extractor failure is one invalid event."""
    hook = Collector()

    def extract(bound: Any) -> Content:
        raise ValueError("nope")

    @guarded(StaticGuard(), extract=extract, on_decision=hook)
    def ask(prompt: str) -> str:
        return "answer"

    with pytest.raises(ExtractionError):
        ask("hello")
    assert hook.only.outcome == "invalid"


@pytest.mark.anyio
async def test_an_async_guarded_function_records_the_same_event() -> None:
    """The async shell records what the sync one does."""
    hook = Collector()

    @guarded(fake(lambda c: BLOCK), on_decision=hook)
    async def ask(prompt: str) -> str:
        return "answer"

    with pytest.raises(Blocked):
        await ask("hello")
    assert (hook.only.outcome, hook.only.verdict_id) == ("blocked", "v-9")


# -- the middlewares' events ---------------------------------------------------------------------------


def asgi_app(**options: Any) -> ASGIGuardMiddleware:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return ASGIGuardMiddleware(app, routes=[Route("/chat")], max_body_size=100, **options)


def wsgi_app(**options: Any) -> WSGIGuardMiddleware:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"ok"]

    return WSGIGuardMiddleware(app, routes=[Route("/chat")], max_body_size=100, **options)


# (guard, request kwargs, status, expected decision fields)
MIDDLEWARE_CASES = [
    pytest.param(StaticGuard(), {"json": {"prompt": "hi"}}, 200, {"outcome": "allowed"}, id="allowed"),
    pytest.param(
        fake(lambda c: BLOCK),
        {"json": {"prompt": "hi"}},
        403,
        {"outcome": "blocked", "verdict_id": "v-9", "reasons": ("prompt_attack",)},
        id="blocked",
    ),
    pytest.param(
        StaticGuard(error=GuardTimeout("slow", guard="static")),
        {"json": {"prompt": "hi"}},
        503,
        {"outcome": "error", "error": "GuardTimeout"},
        id="error",
    ),
    pytest.param(StaticGuard(), {"content": b"x" * 101}, 413, {"outcome": "too_large"}, id="too-large"),
    pytest.param(StaticGuard(), {"content": b""}, 200, {"outcome": "skipped"}, id="skipped"),
    pytest.param(
        StaticGuard(),
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        400,
        {"outcome": "invalid"},
        id="invalid",
    ),
]


@pytest.mark.parametrize(("guard", "request_kwargs", "status", "expected"), MIDDLEWARE_CASES)
@pytest.mark.anyio
async def test_the_asgi_middleware_records_one_complete_event(
    guard: Any, request_kwargs: dict[str, Any], status: int, expected: dict[str, Any]
) -> None:
    """One event per request, with the route as target."""
    hook = Collector()
    app = asgi_app(guard=guard, on_decision=hook)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://app") as client:
        response = await client.post("/chat", **request_kwargs)
    assert response.status_code == status
    assert hook.only.target == "POST /chat"
    assert {name: getattr(hook.only, name) for name in expected} == expected
    assert stats()[expected["outcome"]] == 1


@pytest.mark.parametrize(("guard", "request_kwargs", "status", "expected"), MIDDLEWARE_CASES)
def test_the_wsgi_middleware_records_one_complete_event(
    guard: Any, request_kwargs: dict[str, Any], status: int, expected: dict[str, Any]
) -> None:
    """One event per request, with the route as target."""
    hook = Collector()
    app = wsgi_app(guard=guard, on_decision=hook)
    with httpx.Client(transport=httpx.WSGITransport(app), base_url="http://app") as client:
        response = client.post("/chat", **request_kwargs)
    assert response.status_code == status
    assert hook.only.target == "POST /chat"
    assert {name: getattr(hook.only, name) for name in expected} == expected
    assert stats()[expected["outcome"]] == 1


CACHED = Verdict(action=Action.ALLOW, id="v-cached", guard="fake", cached=True)


def cached_via_decorator(hook: Collector) -> None:
    @guarded(fake(lambda c: CACHED), on_decision=hook)
    def ask(prompt: str) -> str:
        return "answer"

    ask("hello")


def cached_via_asgi(hook: Collector) -> None:
    async def post() -> None:
        transport = httpx.ASGITransport(asgi_app(guard=fake(lambda c: CACHED), on_decision=hook))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            await client.post("/chat", json={"prompt": "hi"})

    asyncio.run(post())


def cached_via_wsgi(hook: Collector) -> None:
    app = wsgi_app(guard=fake(lambda c: CACHED), on_decision=hook)
    with httpx.Client(transport=httpx.WSGITransport(app), base_url="http://app") as client:
        client.post("/chat", json={"prompt": "hi"})


def cached_via_openai(hook: Collector) -> None:
    model = httpx.MockTransport(lambda request: httpx.Response(200, json={"choices": []}))
    transport = GuardedTransport(
        fake(lambda c: CACHED), transport=model, scan_response=False, on_decision=hook
    )
    with httpx.Client(transport=transport, base_url="http://llm") as client:
        client.post(
            "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        )


@pytest.mark.parametrize(
    "shell",
    [
        pytest.param(cached_via_decorator, id="decorator"),
        pytest.param(cached_via_asgi, id="asgi"),
        pytest.param(cached_via_wsgi, id="wsgi"),
        pytest.param(cached_via_openai, id="openai"),
    ],
)
def test_a_cached_verdict_is_recorded_as_cached(shell: Callable[[Collector], None]) -> None:
    """Decision.cached tells that the guard was not asked: the verdict came from its cache."""
    hook = Collector()
    shell(hook)
    assert (hook.only.outcome, hook.only.verdict_id, hook.only.cached) == ("allowed", "v-cached", True)


# -- hooks never break a request -----------------------------------------------------------------------


def test_a_raising_decorator_hook_does_not_break_the_call(caplog: pytest.LogCaptureFixture) -> None:
    """The function still returns; the hook's error is logged on the guardrails logger."""

    @guarded(StaticGuard(), on_decision=broken_hook)
    def ask(prompt: str) -> str:
        return "answer"

    with caplog.at_level(logging.ERROR, logger="guardrails"):
        assert ask("hello") == "answer"
    assert [r.name for r in caplog.records] == ["guardrails"]


@pytest.mark.anyio
async def test_a_raising_asgi_hook_does_not_break_the_request(caplog: pytest.LogCaptureFixture) -> None:
    """The request is answered as if the hook were not there; the error is logged."""
    app = asgi_app(guard=StaticGuard(), on_decision=broken_hook)
    with caplog.at_level(logging.ERROR, logger="guardrails"):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://app") as client:
            response = await client.post("/chat", json={"prompt": "hi"})
    assert response.status_code == 200
    assert [r.name for r in caplog.records] == ["guardrails"]


def test_a_raising_wsgi_hook_does_not_break_the_request(caplog: pytest.LogCaptureFixture) -> None:
    """The request is answered as if the hook were not there; the error is logged."""
    app = wsgi_app(guard=fake(lambda c: BLOCK), on_decision=broken_hook)
    with (
        caplog.at_level(logging.ERROR, logger="guardrails"),
        httpx.Client(transport=httpx.WSGITransport(app), base_url="http://app") as client,
    ):
        response = client.post("/chat", json={"prompt": "hi"})
    assert response.status_code == 403
    assert [r.name for r in caplog.records] == ["guardrails"]


def test_a_global_hook_sees_every_shell() -> None:
    """add_hook receives the decorator's and both middlewares' decisions."""
    hook = Collector()
    add_hook(hook)
    try:

        @guarded(StaticGuard())
        def ask(prompt: str) -> str:
            return "answer"

        ask("hello")
        with httpx.Client(
            transport=httpx.WSGITransport(wsgi_app(guard=StaticGuard())), base_url="http://a"
        ) as c:
            c.post("/chat", json={"prompt": "hi"})

        async def asgi_request() -> None:
            transport = httpx.ASGITransport(asgi_app(guard=StaticGuard()))
            async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
                await client.post("/chat", json={"prompt": "hi"})

        asyncio.run(asgi_request())
    finally:
        remove_hook(hook)
    assert [d.target.rsplit(".", 1)[-1] for d in hook.decisions] == ["ask", "POST /chat", "POST /chat"]


# -- structured log fields -------------------------------------------------------------------------------


def test_log_extra_names_every_field_with_the_guardrails_prefix() -> None:
    """One prefixed field per Decision field worth logging."""
    decision = Decision(
        outcome="blocked",
        guard="trend",
        target="POST /chat",
        verdict_id="v-1",
        reasons=("pii",),
        latency=0.0123,
    )
    assert log_extra(decision) == {
        "guardrails_outcome": "blocked",
        "guardrails_guard": "trend",
        "guardrails_target": "POST /chat",
        "guardrails_kind": "prompt",
        "guardrails_verdict_id": "v-1",
        "guardrails_reasons": ["pii"],
        "guardrails_error": None,
        "guardrails_latency_ms": 12.3,
    }


def test_log_extra_prefixes_the_fields_it_is_given() -> None:
    """More fields (a status code) get the same prefix."""
    decision = Decision(outcome="error", guard="trend", target="f", error="GuardAuthError")
    assert log_extra(decision, status_code=401)["guardrails_status_code"] == 401


def test_log_extra_can_be_passed_to_logging(caplog: pytest.LogCaptureFixture) -> None:
    """No field collides with a LogRecord attribute: logging accepts them and sets them."""
    decision = Decision(outcome="blocked", guard="trend", target="f")
    with caplog.at_level(logging.INFO, logger="guardrails"):
        logging.getLogger("guardrails").info("blocked", extra=log_extra(decision, status_code=None))
    assert getattr(caplog.records[0], "guardrails_outcome", None) == "blocked"
