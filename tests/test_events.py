"""Decision events: counters per outcome, global and per-call hooks, stats snapshots."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from guardrails._events import (
    OUTCOMES,
    Decision,
    DecisionHook,
    add_hook,
    record,
    remove_hook,
    reset_stats,
    stats,
)

ALLOWED = Decision(outcome="allowed", guard="local", target="chat")
BLOCKED = Decision(outcome="blocked", guard="local", target="POST /v1/chat", reasons=("prompt_attack",))


@pytest.fixture(autouse=True)
def clean_counters() -> Iterator[None]:
    reset_stats()
    yield
    reset_stats()


@pytest.fixture
def register() -> Iterator[Callable[[DecisionHook], None]]:
    """add_hook for the duration of one test."""
    added: list[DecisionHook] = []

    def add(hook: DecisionHook) -> None:
        add_hook(hook)
        added.append(hook)

    yield add
    for hook in added:
        remove_hook(hook)


def test_stats_has_a_zero_counter_per_outcome() -> None:
    """After a reset every outcome reads zero."""
    assert stats() == dict.fromkeys([*OUTCOMES, "degraded"], 0)


def test_record_counts_each_outcome() -> None:
    """Each decision adds one to its own outcome's counter."""
    record(ALLOWED)
    record(ALLOWED)
    record(BLOCKED)
    record(Decision(outcome="failed_open", guard="trend", target="f", error="GuardTimeout"))
    zero: dict[str, int] = dict.fromkeys([*OUTCOMES, "degraded"], 0)
    assert stats() == {**zero, "allowed": 2, "blocked": 1, "failed_open": 1}


def test_stats_is_a_snapshot() -> None:
    """A stats() result does not change with later decisions, nor write back."""
    snapshot = stats()
    record(BLOCKED)
    assert snapshot["blocked"] == 0
    dict(snapshot)["blocked"] = 99
    assert stats()["blocked"] == 1


def test_reset_stats_zeroes_every_counter() -> None:
    """reset_stats() sets every counter back to zero."""
    for outcome in OUTCOMES:
        record(Decision(outcome=outcome, guard="g", target="t"))
    reset_stats()
    assert set(stats().values()) == {0}


def test_counting_is_thread_safe() -> None:
    """Decisions recorded from many threads are all counted."""
    threads, per_thread = 8, 500

    def work() -> None:
        for _ in range(per_thread):
            record(ALLOWED)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert stats()["allowed"] == threads * per_thread


def test_global_hooks_get_every_decision(register: Callable[[DecisionHook], None]) -> None:
    """A hook added with add_hook receives each recorded Decision."""
    seen: list[Decision] = []
    register(seen.append)
    record(ALLOWED)
    record(BLOCKED)
    assert seen == [ALLOWED, BLOCKED]


def test_per_call_hooks_get_their_decision() -> None:
    """Hooks passed to record() receive that decision only."""
    seen: list[Decision] = []
    record(ALLOWED, hooks=[seen.append])
    record(BLOCKED)
    assert seen == [ALLOWED]


def test_global_hooks_run_before_per_call_hooks(register: Callable[[DecisionHook], None]) -> None:
    """Process-wide hooks first, then the call site's."""
    order: list[str] = []
    register(lambda decision: order.append("global"))
    record(ALLOWED, hooks=[lambda decision: order.append("call")])
    assert order == ["global", "call"]


def test_a_removed_hook_is_no_longer_called(register: Callable[[DecisionHook], None]) -> None:
    """remove_hook stops the deliveries."""
    seen: list[Decision] = []
    register(seen.append)
    remove_hook(seen.append)
    record(ALLOWED)
    assert seen == []


def test_removing_an_unknown_hook_is_harmless() -> None:
    """remove_hook of a hook never added does nothing."""
    remove_hook(lambda decision: None)


def test_a_raising_hook_is_logged_and_does_not_propagate(
    register: Callable[[DecisionHook], None], caplog: pytest.LogCaptureFixture
) -> None:
    """The exception is logged on the guardrails logger; the other hooks still run; counting happened."""
    seen: list[Decision] = []

    def broken_hook(decision: Decision) -> None:
        raise RuntimeError("hook bug")

    register(broken_hook)
    with caplog.at_level(logging.ERROR, logger="guardrails"):
        record(BLOCKED, hooks=[broken_hook, seen.append])
    assert seen == [BLOCKED]
    assert stats()["blocked"] == 1
    assert [entry.name for entry in caplog.records] == ["guardrails", "guardrails"]
    assert all("broken_hook" in entry.getMessage() for entry in caplog.records)
    assert all(entry.exc_info is not None for entry in caplog.records)


def test_decision_is_frozen_and_slotted() -> None:
    """A hook cannot alter the event another hook will see."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        ALLOWED.outcome = "blocked"  # type: ignore[misc]
    assert not hasattr(ALLOWED, "__dict__")


def test_decision_defaults() -> None:
    """Only outcome, guard and target are required."""
    assert Decision(outcome="skipped", guard="", target="f") == Decision(
        outcome="skipped",
        guard="",
        target="f",
        kind="prompt",
        verdict_id=None,
        reasons=(),
        error=None,
        latency=0.0,
        cached=False,
    )
