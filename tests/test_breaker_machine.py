"""The circuit breaker as a state machine, proven with hypothesis stateful tests.

Two machines, both on a fake clock:

- `BreakerMachine` drives `CircuitBreaker` alone: calls start and end in any order (success,
  transient or configuration failure, release), time passes.
- `GuardMachine` drives a real `RemoteGuard` on an event loop the test steps by hand, over a
  transport whose every request waits until the test answers it: checks of one or many windows
  start, requests are answered (success, 5xx, timeout) in any order, checks are cancelled by their
  caller, a window's failure cancels its siblings, time passes, the vendor recovers at any step.

Invariants, after every step:

- at most one probe of the current opening is out;
- a permit ends (recorded or released) when its call ends, however it ends: once no call is in
  flight, no permit is outstanding, and a half-open breaker has its probe slot free;
- after the vendor recovers, once the calls in flight at the time have ended, the breaker closes
  within one cool-down plus one check (of several windows, in `GuardMachine`).

``GUARDRAILS_TEST_BUDGET`` multiplies the examples (1 in CI; the fault-model report ran it at 20).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from guardrails._client import RemoteGuard
from guardrails._exceptions import ContentTooLarge, GuardAuthError, GuardError, GuardUnavailable
from guardrails._exchange import GuardResponse
from guardrails._models import Action, Content, Verdict
from guardrails._policy import BreakerState, CircuitBreaker, Permit

BUDGET = int(os.environ.get("GUARDRAILS_TEST_BUDGET", "1"))
COOLDOWN = 10.0
TRANSIENT = GuardUnavailable("down", guard="test")
CONFIGURATION = GuardAuthError("bad key", guard="test")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TracingBreaker(CircuitBreaker):
    """A `CircuitBreaker` that keeps the permits it handed out until they are ended."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.outstanding: list[Permit] = []

    def before_call(self, guard: str = "unknown") -> Permit:
        permit = super().before_call(guard)
        self.outstanding.append(permit)
        return permit

    def _end(self, permit: Permit | None) -> None:
        assert permit is not None, "the exchange ends every attempt with its permit"
        self.outstanding.remove(permit)

    def record_success(self, permit: Permit | None = None) -> None:
        self._end(permit)
        super().record_success(permit)

    def record_failure(self, error: GuardError, permit: Permit | None = None) -> None:
        self._end(permit)
        super().record_failure(error, permit)

    def release(self, permit: Permit) -> None:
        self._end(permit)
        super().release(permit)

    def current_probes(self) -> int:
        return sum(1 for permit in self.outstanding if permit.probe and permit.epoch == self._epoch)


def check_breaker_invariants(breaker: TracingBreaker) -> None:
    assert breaker.current_probes() <= 1
    if not breaker.outstanding:
        assert not breaker.probing, "a half-open breaker is wedged: its probe slot is taken by nobody"


# -- the breaker alone ----------------------------------------------------------------------------


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.breaker = TracingBreaker(failure_threshold=2, cooldown=COOLDOWN, clock=self.clock)
        self.calls: list[Permit] = []

    @rule()
    def call(self) -> None:
        try:
            self.calls.append(self.breaker.before_call("test"))
        except GuardUnavailable:
            assert self.breaker.state is not BreakerState.CLOSED

    @precondition(lambda self: self.calls)
    @rule(data=st.data(), outcome=st.sampled_from(["success", "transient", "configuration", "release"]))
    def end_call(self, data: st.DataObject, outcome: str) -> None:
        permit = self.calls.pop(data.draw(st.integers(0, len(self.calls) - 1)))
        if outcome == "success":
            self.breaker.record_success(permit)
        elif outcome == "transient":
            self.breaker.record_failure(TRANSIENT, permit)
        elif outcome == "configuration":
            self.breaker.record_failure(CONFIGURATION, permit)
        else:
            self.breaker.release(permit)

    @rule(seconds=st.sampled_from([0.0, 1.0, COOLDOWN / 2, COOLDOWN, COOLDOWN * 3]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(outcome=st.sampled_from(["success", "transient", "release"]))
    def vendor_recovers(self, outcome: str) -> None:
        """The calls in flight end (as they may); one cool-down later one call closes the breaker."""
        while self.calls:
            permit = self.calls.pop()
            if outcome == "success":
                self.breaker.record_success(permit)
            elif outcome == "transient":
                self.breaker.record_failure(TRANSIENT, permit)
            else:
                self.breaker.release(permit)
        self.clock.now += COOLDOWN
        permit = self.breaker.before_call("test")  # never fails fast here
        self.breaker.record_success(permit)
        assert self.breaker.state is BreakerState.CLOSED

    @invariant()
    def breaker_invariants(self) -> None:
        check_breaker_invariants(self.breaker)
        assert len(self.breaker.outstanding) == len(self.calls)


BreakerMachine.TestCase.settings = settings(
    max_examples=150 * BUDGET, stateful_step_count=40, deadline=None, suppress_health_check=list(HealthCheck)
)
test_the_breaker_state_machine = BreakerMachine.TestCase


# -- a real guard, stepped by hand ----------------------------------------------------------------


class HeldTransport(httpx.AsyncBaseTransport):
    """Every request waits until the test answers it."""

    def __init__(self) -> None:
        self.pending: list[tuple[httpx.Request, asyncio.Future[httpx.Response]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        future: asyncio.Future[httpx.Response] = asyncio.get_running_loop().create_future()
        entry = (request, future)
        self.pending.append(entry)
        try:
            return await future
        finally:
            if entry in self.pending:
                self.pending.remove(entry)


class WindowGuard(RemoteGuard):
    """One ``POST /scan`` per ``|``-separated window."""

    name = "machine"

    def _build_requests(self, content: Content) -> list[httpx.Request]:
        return [
            httpx.Request("POST", f"{self.base_url}/scan", json={"text": window})
            for window in content.as_text().split("|")
        ]

    def _parse_response(self, response: GuardResponse) -> Verdict:
        payload = json.loads(response.content)
        return Verdict(action=Action.parse(payload["action"]) or Action.BLOCK, guard=self.name)


OK = b'{"action": "Allow"}'


class GuardMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.breaker = TracingBreaker(failure_threshold=2, cooldown=COOLDOWN, clock=self.clock)
        self.transport = HeldTransport()
        self.tasks: list[asyncio.Task[Verdict]] = []

    @initialize(retries=st.integers(0, 2))
    def make_guard(self, retries: int) -> None:
        # A real deadline far away (the fake clock decides when a check times out).
        self.guard = WindowGuard(
            base_url="https://machine.test",
            transport=self.transport,
            breaker=self.breaker,
            timeout=60.0,
            retries=retries,
            backoff=0.0,
            window_concurrency=2,
            expected_latency=1.0,
        )

    def teardown(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.settle()
        self.loop.close()

    def settle(self) -> None:
        # Run every callback that is ready, until the tasks wait on the test again.
        for _ in range(30):
            self.loop.run_until_complete(asyncio.sleep(0))

    def running(self) -> list[asyncio.Task[Verdict]]:
        return [task for task in self.tasks if not task.done()]

    def reap(self) -> None:
        for task in [task for task in self.tasks if task.done()]:
            self.tasks.remove(task)
            if task.cancelled():
                continue
            error = task.exception()
            assert error is None or isinstance(error, GuardError | ContentTooLarge), repr(error)

    @rule(windows=st.integers(1, 5))
    def start_check(self, windows: int) -> None:
        content = "|".join(f"w{index}" for index in range(windows))
        self.tasks.append(self.loop.create_task(self.guard.acheck(content)))
        self.settle()

    @precondition(lambda self: self.transport.pending)
    @rule(data=st.data(), outcome=st.sampled_from(["ok", "500", "timeout", "refused"]))
    def answer(self, data: st.DataObject, outcome: str) -> None:
        request, future = self.transport.pending.pop(
            data.draw(st.integers(0, len(self.transport.pending) - 1))
        )
        self._answer(request, future, outcome)
        self.settle()
        self.reap()

    @staticmethod
    def _answer(request: httpx.Request, future: asyncio.Future[httpx.Response], outcome: str) -> None:
        if future.done():  # its check was cancelled meanwhile
            return
        if outcome == "ok":
            future.set_result(httpx.Response(200, content=OK))
        elif outcome == "500":
            future.set_result(httpx.Response(500))
        elif outcome == "timeout":
            future.set_exception(httpx.ReadTimeout("timed out", request=request))
        else:
            future.set_exception(httpx.ConnectError("refused", request=request))

    @precondition(lambda self: self.running())
    @rule(data=st.data())
    def caller_cancels(self, data: st.DataObject) -> None:
        running = self.running()
        running[data.draw(st.integers(0, len(running) - 1))].cancel()
        self.settle()
        self.reap()

    @rule(seconds=st.sampled_from([1.0, COOLDOWN / 2, COOLDOWN, 61.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(in_flight=st.sampled_from(["ok", "500", "timeout"]))
    def vendor_recovers(self, in_flight: str) -> None:
        """The vendor recovers now: once the checks in flight end, one cool-down plus one check of
        several windows closes the breaker. (It may fail again in the steps that follow.)

        The requests in flight were sent while it was down: they end with `in_flight`; whatever is
        sent from now on succeeds.
        """
        stale = list(self.transport.pending)
        self.transport.pending.clear()
        for request, future in stale:
            self._answer(request, future, in_flight)
        self.settle()
        for _ in range(100):
            if not self.transport.pending:
                break
            request, future = self.transport.pending.pop()
            self._answer(request, future, "ok")
            self.settle()
        self.reap()
        assert not self.running(), "a check is still running with nothing left to answer"
        self.clock.now += COOLDOWN
        task = self.loop.create_task(self.guard.acheck("a|b|c|d"))
        self.settle()
        for _ in range(10):
            if task.done():
                break
            while self.transport.pending:
                request, future = self.transport.pending.pop()
                self._answer(request, future, "ok")
            self.settle()
        assert task.result().allowed
        assert self.breaker.state is BreakerState.CLOSED

    @invariant()
    def breaker_invariants(self) -> None:
        check_breaker_invariants(self.breaker)
        if not self.running():
            assert not self.breaker.outstanding, "a check ended without ending its permit"


GuardMachine.TestCase.settings = settings(
    max_examples=60 * BUDGET, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)
)
test_a_guard_drives_the_breaker_state_machine = GuardMachine.TestCase


@pytest.mark.parametrize("outcome", ["success", "transient", "release"])
def test_a_stale_release_never_frees_the_current_probe(outcome: str) -> None:
    """A probe of an earlier opening ending late cannot let a second probe through."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=COOLDOWN, clock=clock)
    breaker.record_failure(TRANSIENT)
    clock.now += COOLDOWN
    old = breaker.before_call()
    breaker.record_failure(TRANSIENT, old)  # the probe failed: open again
    clock.now += COOLDOWN
    current = breaker.before_call()
    assert current.probe
    breaker.release(old)
    with pytest.raises(GuardUnavailable):
        breaker.before_call()


def test_a_failure_from_before_the_opening_does_not_reopen_a_half_open_breaker() -> None:
    """A call that started while closed and fails after the cool-down is old news."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=COOLDOWN, clock=clock)
    early = breaker.before_call()
    breaker.record_failure(TRANSIENT)  # another call opens it
    clock.now += COOLDOWN
    probe = breaker.before_call()
    breaker.record_failure(TRANSIENT, early)
    after_stale_failure = breaker.state
    breaker.record_success(probe)
    assert (after_stale_failure, breaker.state) == (BreakerState.HALF_OPEN, BreakerState.CLOSED)
