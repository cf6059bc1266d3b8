"""The fake guards users put in their own test suites: StaticGuard and FakeGuard."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from guardrails._exceptions import GuardUnavailable
from guardrails._guard import Guard
from guardrails._models import Action, Content, Verdict
from guardrails.testing import FakeGuard, StaticGuard
from guardrails.testing._fakes import DEFAULT_HISTORY


def contains_secret(content: Content) -> bool:
    return "secret" in content.as_text()


# -- StaticGuard -----------------------------------------------------------------------------------


def test_static_guard_allows_by_default() -> None:
    """StaticGuard() allows everything."""
    verdict = StaticGuard().check("anything")
    assert (verdict.allowed, verdict.reasons, verdict.guard) == (True, [], "static")


def test_static_guard_blocks_with_the_given_reasons() -> None:
    """StaticGuard(Action.BLOCK, reasons=[...]) blocks everything with those reasons."""
    guard = StaticGuard(Action.BLOCK, reasons=["prompt_attack"], name="trend-double")
    verdict = guard.check("anything")
    assert (verdict.blocked, verdict.reasons, verdict.guard) == (True, ["prompt_attack"], "trend-double")


@pytest.mark.anyio
async def test_static_guard_blocks_asynchronously() -> None:
    """acheck gives the same verdict as check."""
    guard = StaticGuard(Action.BLOCK, reasons=["pii"])
    assert await guard.acheck("anything") == guard.check("anything")


def test_static_guard_raises_the_given_error() -> None:
    """StaticGuard(error=...) raises that error on every check."""
    error = GuardUnavailable("down", guard="static")
    guard = StaticGuard(error=error)
    for _ in range(2):
        with pytest.raises(GuardUnavailable) as caught:
            guard.check("anything")
        assert caught.value is error


@pytest.mark.anyio
async def test_static_guard_raises_the_given_error_asynchronously() -> None:
    """acheck raises the configured error too."""
    with pytest.raises(GuardUnavailable):
        await StaticGuard(error=GuardUnavailable("down")).acheck("anything")


def test_static_guard_records_what_it_was_asked() -> None:
    """Every Content is recorded, in order; a str arrives as a prompt Content."""
    guard = StaticGuard(error=GuardUnavailable("down"))
    response = Content("r", kind="response")
    with pytest.raises(GuardUnavailable):
        guard.check("p")
    with pytest.raises(GuardUnavailable):
        guard.check(response)
    assert guard.seen == [Content("p"), response]
    assert guard.calls == 2


def test_static_guard_repr_names_the_action_or_error() -> None:
    """The repr says what the guard will do."""
    assert repr(StaticGuard(Action.BLOCK, reasons=["x"])) == "StaticGuard(BLOCK, reasons=['x'])"
    assert repr(StaticGuard(error=GuardUnavailable("down"))) == "StaticGuard(error=GuardUnavailable)"


# -- FakeGuard -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "blocked"),
    [pytest.param("my secret plan", True, id="block"), pytest.param("hello", False, id="allow")],
)
def test_fake_guard_rule_returning_a_bool_means_block(text: str, blocked: bool) -> None:
    """True blocks, False allows."""
    verdict = FakeGuard(contains_secret).check(text)
    assert verdict.blocked is blocked
    assert verdict.guard == "fake"


def test_fake_guard_block_has_a_reason() -> None:
    """A rule's Block comes with the reason "fake_rule"; an Allow with none."""
    guard = FakeGuard(contains_secret)
    assert guard.check("secret").reasons == ["fake_rule"]
    assert guard.check("public").reasons == []


@pytest.mark.parametrize("action", [Action.ALLOW, Action.BLOCK])
def test_fake_guard_rule_returning_an_action(action: Action) -> None:
    """An Action is the verdict's action."""
    assert FakeGuard(lambda content: action).check("x").action is action


def test_fake_guard_rule_returning_a_verdict_is_used_as_is() -> None:
    """A Verdict from the rule is returned unchanged."""
    verdict = Verdict(action=Action.BLOCK, reasons=["custom"], id="v-1", guard="mine")
    assert FakeGuard(lambda content: verdict).check("x") is verdict


def test_fake_guard_rule_gets_the_content() -> None:
    """The rule sees the Content itself: kind, messages and metadata included."""
    guard = FakeGuard(lambda content: content.kind == "response" and content.metadata.get("user") == "eve")
    assert guard.check(Content("x", kind="response", metadata={"user": "eve"})).blocked
    assert guard.check(Content("x", kind="prompt", metadata={"user": "eve"})).allowed


def test_fake_guard_rule_may_raise_a_guard_error() -> None:
    """A rule raising GuardError simulates a failing guard."""

    def down(content: Content) -> bool:
        raise GuardUnavailable("down", guard="fake")

    with pytest.raises(GuardUnavailable):
        FakeGuard(down).check("x")


def test_fake_guard_rejects_other_rule_results() -> None:
    """A rule returning anything else is a TypeError naming the type."""
    guard = FakeGuard(lambda content: "block")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="str"):
        guard.check("x")


@pytest.mark.anyio
async def test_fake_guard_decides_asynchronously() -> None:
    """acheck applies the same rule."""
    guard = FakeGuard(contains_secret)
    assert (await guard.acheck("secret")).blocked
    assert (await guard.acheck("public")).allowed


def test_fake_guard_records_every_content() -> None:
    """seen lists every Content asked about, in order, from check and acheck alike."""
    guard = FakeGuard(contains_secret)
    guard.check("one")
    guard.check(Content(messages=[{"role": "user", "content": "two"}]))
    assert [content.as_text() for content in guard.seen] == ["one", "two"]
    assert guard.calls == 2


def test_seen_is_a_copy() -> None:
    """Changing the returned list does not change the record."""
    guard = FakeGuard(contains_secret)
    guard.check("one")
    guard.seen.clear()
    assert guard.calls == 1


def test_reset_forgets_the_record() -> None:
    """reset() empties seen."""
    guard = FakeGuard(contains_secret)
    guard.check("one")
    guard.reset()
    assert (guard.seen, guard.calls) == ([], 0)


def test_recording_is_thread_safe() -> None:
    """Checks from many threads are all recorded, none lost."""
    guard = FakeGuard(contains_secret, history=2000)
    threads, per_thread = 8, 250

    def work(worker: int) -> None:
        for index in range(per_thread):
            guard.check(f"{worker}-{index}")

    workers = [threading.Thread(target=work, args=(worker,)) for worker in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    expected = {f"{worker}-{index}" for worker in range(threads) for index in range(per_thread)}
    assert {content.text for content in guard.seen} == expected
    assert guard.calls == threads * per_thread


def test_history_is_bounded_and_calls_count_everything() -> None:
    """A fake guard keeps only its latest `history` contents, however many checks it answers."""
    guard = StaticGuard(history=3)
    for index in range(10):
        guard.check(str(index))
    assert [content.text for content in guard.seen] == ["7", "8", "9"]
    assert guard.calls == 10


def test_history_zero_records_nothing() -> None:
    """history=0 keeps no content at all (benchmarks), and still counts."""
    guard = FakeGuard(contains_secret, history=0)
    guard.check("one")
    assert (guard.seen, guard.calls) == ([], 1)


def test_default_history_is_bounded() -> None:
    """By default a fake guard does not grow without end (it used to keep every content)."""
    guard = StaticGuard()
    for index in range(DEFAULT_HISTORY + 5):
        guard.check(str(index))
    assert len(guard.seen) == DEFAULT_HISTORY
    assert guard.seen[0].text == "5"


@pytest.mark.parametrize("history", [-1, 1.5, True])
def test_history_must_be_a_count(history: Any) -> None:
    """A nonsense history is a ValueError at construction."""
    with pytest.raises(ValueError, match="history"):
        StaticGuard(history=history)


# -- as guards -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "guard",
    [pytest.param(StaticGuard(), id="static"), pytest.param(FakeGuard(contains_secret), id="fake")],
)
def test_fakes_are_guards(guard: Guard) -> None:
    """Both satisfy the Guard protocol."""
    assert isinstance(guard, Guard)


def test_fakes_are_context_managers() -> None:
    """``with`` works and the guard keeps working after close()."""
    with StaticGuard() as guard:
        assert guard.check("x").allowed
    guard.close()
    assert guard.check("x").allowed


@pytest.mark.anyio
async def test_fakes_are_async_context_managers() -> None:
    """``async with`` works."""
    async with FakeGuard(contains_secret) as guard:
        assert (await guard.acheck("secret")).blocked
    await guard.aclose()
