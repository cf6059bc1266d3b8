"""The remote-guard core driven by the async shell (`acheck`): the mirror of `test_client_sync.py`."""

from __future__ import annotations

import asyncio
import gc
import json
import time

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from guardrails._exceptions import (
    GuardAuthError,
    GuardError,
    GuardRateLimited,
    GuardResponseError,
    GuardTimeout,
    GuardUnavailable,
)
from guardrails._models import Action, Content, Verdict
from guardrails._policy import BreakerState, CircuitBreaker

from .servers import run_asgi
from .test_client_sync import (
    ALLOW,
    API_KEY,
    BASE_URL,
    BLOCK,
    MARGIN,
    Answer,
    CountingCloseTransport,
    Reply,
    Service,
    TinyGuard,
    retry_after_date,
    tiny,
    windows_service,
)

pytestmark = pytest.mark.anyio


# -- success ---------------------------------------------------------------------------------------


async def test_acheck_returns_the_parsed_verdict() -> None:
    """A 2xx answer is parsed into the guard's Verdict."""
    service = Service(BLOCK)
    async with tiny(service) as guard:
        verdict = await guard.acheck("hello")
    assert verdict == Verdict(
        action=Action.BLOCK, reasons=["prompt_attack"], id="v-block", guard="tiny", raw=BLOCK.json
    )
    assert service.calls == 1


async def test_acheck_sends_the_request_the_guard_built() -> None:
    """The request is the subclass's own: method, URL, body and headers."""
    service = Service(ALLOW)
    async with tiny(service) as guard:
        await guard.acheck(Content("hello"))
    (request,) = service.requests
    assert (request.method, str(request.url)) == ("POST", f"{BASE_URL}/scan")
    assert json.loads(request.content) == {"text": "hello"}
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


async def test_acheck_rejects_what_is_not_content() -> None:
    """Anything but a Content or a str is a TypeError, before any request."""
    service = Service(ALLOW)
    async with tiny(service) as guard:
        with pytest.raises(TypeError):
            await guard.acheck(b"bytes")  # type: ignore[arg-type]
    assert service.calls == 0


# -- retries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(Answer(500), id="500"),
        pytest.param(Answer(502), id="502"),
        pytest.param(Answer(503), id="503"),
        pytest.param(Answer(504), id="504"),
        pytest.param(Answer(429), id="429"),
        pytest.param(httpx.ConnectError, id="connect-error"),
        pytest.param(httpx.RemoteProtocolError, id="protocol-error"),
        pytest.param(httpx.ConnectTimeout, id="connect-timeout"),
        pytest.param(httpx.ReadTimeout, id="read-timeout"),
    ],
)
async def test_transient_failures_are_retried(failure: Reply) -> None:
    """Timeouts, connection errors, 5xx and 429 are retried; the next success is the answer."""
    service = Service(failure, failure, ALLOW)
    async with tiny(service, retries=2) as guard:
        assert (await guard.acheck("hello")).allowed
    assert service.calls == 3


@pytest.mark.parametrize(
    ("failure", "error_class", "status"),
    [
        pytest.param(Answer(503), GuardUnavailable, 503, id="503"),
        pytest.param(Answer(429), GuardRateLimited, 429, id="429"),
        pytest.param(httpx.ConnectError, GuardUnavailable, None, id="connect-error"),
        pytest.param(httpx.ReadTimeout, GuardTimeout, None, id="read-timeout"),
    ],
)
async def test_the_last_transient_failure_is_raised_after_the_retries(
    failure: Reply, error_class: type[GuardError], status: int | None
) -> None:
    """Once the retries are spent, the last failure is raised as a transient GuardError."""
    service = Service(failure)
    async with tiny(service, retries=2) as guard:
        with pytest.raises(error_class) as caught:
            await guard.acheck("hello")
    assert service.calls == 3
    assert caught.value.transient
    assert caught.value.status_code == status
    assert caught.value.guard == "tiny"


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        pytest.param(400, GuardResponseError, id="400"),
        pytest.param(401, GuardAuthError, id="401"),
        pytest.param(403, GuardAuthError, id="403"),
        pytest.param(404, GuardResponseError, id="404"),
    ],
)
async def test_configuration_errors_are_not_retried(status: int, error_class: type[GuardError]) -> None:
    """A 4xx other than 429 is raised after exactly one attempt, as a configuration error."""
    service = Service(Answer(status, json={"error": {"message": "nope"}}), ALLOW)
    async with tiny(service, retries=3) as guard:
        with pytest.raises(error_class) as caught:
            await guard.acheck("hello")
    assert service.calls == 1
    assert caught.value.transient is False
    assert caught.value.status_code == status


async def test_retry_after_seconds_is_honoured() -> None:
    """A 429's Retry-After in seconds is waited out before the retry."""
    service = Service(Answer(429, headers={"Retry-After": "0.3"}), ALLOW)
    async with tiny(service, retries=1, timeout=5) as guard:
        start = time.monotonic()
        assert (await guard.acheck("hello")).allowed
        elapsed = time.monotonic() - start
    assert service.calls == 2
    assert 0.3 <= elapsed < 0.3 + MARGIN


async def test_retry_after_http_date_is_honoured() -> None:
    """A 429's Retry-After as an HTTP date is waited out before the retry."""
    header, wait = retry_after_date(1.0)
    service = Service(Answer(429, headers={"Retry-After": header}), ALLOW)
    async with tiny(service, retries=1, timeout=5) as guard:
        start = time.monotonic()
        assert (await guard.acheck("hello")).allowed
        elapsed = time.monotonic() - start
    assert service.calls == 2
    assert wait - 0.05 <= elapsed < wait + MARGIN


async def test_retry_after_past_the_deadline_gives_up_at_once() -> None:
    """A Retry-After longer than the time left is not waited: the 429 is raised with its value."""
    service = Service(Answer(429, headers={"Retry-After": "30"}), ALLOW)
    async with tiny(service, retries=3, timeout=1) as guard:
        start = time.monotonic()
        with pytest.raises(GuardRateLimited) as caught:
            await guard.acheck("hello")
    assert time.monotonic() - start < 1
    assert service.calls == 1
    assert caught.value.retry_after == 30


async def test_retries_never_extend_past_the_deadline() -> None:
    """However many retries are allowed, the check ends within its deadline."""
    service = Service(Answer(429, headers={"Retry-After": "0.2"}))
    async with tiny(service, retries=50, timeout=0.5) as guard:
        start = time.monotonic()
        with pytest.raises(GuardRateLimited):
            await guard.acheck("hello")
    # Without the deadline, 50 retries 0.2 s apart would take 10 s.
    assert time.monotonic() - start < 0.5 + MARGIN
    assert 2 <= service.calls <= 3


# -- unusable answers ------------------------------------------------------------------------------


async def test_redirects_are_not_followed() -> None:
    """A 3xx is a configuration error and its Location is never requested."""
    service = Service(Answer(307, headers={"Location": "https://elsewhere.test/steal"}), ALLOW)
    async with tiny(service, retries=2) as guard:
        with pytest.raises(GuardResponseError) as caught:
            await guard.acheck("hello")
    assert [request.url.host for request in service.requests] == ["guard.test"]
    assert caught.value.transient is False
    assert caught.value.status_code == 307


async def test_a_response_over_the_size_cap_is_a_response_error() -> None:
    """A body one byte over max_response_bytes is refused, as a transient failure."""
    body = json.dumps({"action": "allow", "pad": "x" * 100}).encode()
    service = Service(Answer(content=body))
    async with tiny(service, retries=0, max_response_bytes=len(body) - 1) as guard:
        with pytest.raises(GuardResponseError) as caught:
            await guard.acheck("hello")
    assert caught.value.transient is True


async def test_a_response_at_the_size_cap_is_read() -> None:
    """A body of exactly max_response_bytes is accepted."""
    body = json.dumps({"action": "allow", "pad": "x" * 100}).encode()
    service = Service(Answer(content=body))
    async with tiny(service, retries=0, max_response_bytes=len(body)) as guard:
        assert (await guard.acheck("hello")).allowed


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"<html>oops</html>", id="not-json"),
        pytest.param(b'{"action": "allow"', id="truncated-json"),
        pytest.param(b'["allow"]', id="not-an-object"),
        pytest.param(b'{"reasons": []}', id="no-action"),
    ],
)
async def test_an_unparseable_response_is_a_transient_response_error(body: bytes) -> None:
    """Whatever the parser raises on a bad 2xx body becomes a GuardResponseError, and is retried."""
    service = Service(Answer(content=body))
    async with tiny(service, retries=1) as guard:
        with pytest.raises(GuardResponseError) as caught:
            await guard.acheck("hello")
    assert caught.value.transient is True
    assert service.calls == 2


async def test_the_parsers_own_guard_error_is_raised_as_is() -> None:
    """A GuardResponseError raised by the parser reaches the caller unchanged."""
    service = Service(Answer(json={"action": "maybe"}))
    async with tiny(service, retries=0) as guard:
        with pytest.raises(GuardResponseError, match="unknown action"):
            await guard.acheck("hello")


# -- deadline --------------------------------------------------------------------------------------


async def hang(request: httpx.Request) -> httpx.Response:
    """A guard that never answers (and ignores the per-request timeouts)."""
    await anyio.sleep(30)
    raise AssertionError("the check should have been cancelled")


async def test_a_hanging_guard_times_out_within_the_deadline() -> None:
    """A guard that never answers ends in GuardTimeout within the check's timeout."""
    async with tiny(hang, timeout=0.3, retries=3) as guard:
        start = time.monotonic()
        with pytest.raises(GuardTimeout) as caught:
            await guard.acheck("hello")
    assert time.monotonic() - start < 0.3 + MARGIN
    assert caught.value.transient is True


async def test_each_attempt_gets_the_remaining_budget_as_its_timeout() -> None:
    """Every attempt's httpx timeouts are what is left of the overall deadline."""
    seen: list[dict[str, float]] = []
    service = Service(Answer(503), Answer(503), ALLOW)

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.extensions["timeout"]))
        return service(request)

    async with tiny(record, timeout=2, retries=2) as guard:
        await guard.acheck("hello")
    reads = [timeouts["read"] for timeouts in seen]
    assert len(reads) == 3
    assert all(0 < read <= 2 for read in reads)
    assert reads == sorted(reads, reverse=True)
    assert all(set(timeouts.values()) == {timeouts["read"]} for timeouts in seen)


async def test_cancelling_the_caller_cancels_the_check() -> None:
    """A caller's cancel scope cancels the check: no verdict, no GuardError."""
    async with tiny(hang, timeout=10) as guard:
        with anyio.move_on_after(0.05) as scope:
            await guard.acheck("hello")
    assert scope.cancelled_caught


# -- circuit breaker -------------------------------------------------------------------------------


async def test_the_breaker_opens_after_consecutive_transient_failures() -> None:
    """After failure_threshold transient failures, checks fail fast without a request."""
    service = Service(Answer(503))
    breaker = CircuitBreaker(failure_threshold=3, cooldown=60)
    async with tiny(service, retries=0, breaker=breaker) as guard:
        for _ in range(3):
            with pytest.raises(GuardUnavailable) as caught:
                await guard.acheck("hello")
            assert caught.value.circuit_open is False
        with pytest.raises(GuardUnavailable) as caught:
            await guard.acheck("hello")
    assert caught.value.circuit_open is True
    assert caught.value.transient is True
    assert service.calls == 3


async def test_the_breaker_half_opens_after_the_cooldown_and_closes_on_success() -> None:
    """After the cooldown one probe goes through; its success closes the breaker."""
    service = Service(Answer(503), ALLOW)
    breaker = CircuitBreaker(failure_threshold=1, cooldown=0.05)
    async with tiny(service, retries=0, breaker=breaker) as guard:
        with pytest.raises(GuardUnavailable):
            await guard.acheck("hello")
        await anyio.sleep(0.06)  # the cooldown itself is the behaviour under test
        after_cooldown = breaker.state
        assert (await guard.acheck("hello")).allowed
        after_probe = breaker.state
        assert (await guard.acheck("hello")).allowed
    assert (after_cooldown, after_probe) == (BreakerState.HALF_OPEN, BreakerState.CLOSED)
    assert service.calls == 3


async def test_the_breaker_reopens_when_the_probe_fails() -> None:
    """A failed probe opens the breaker again: the next check fails fast."""
    service = Service(Answer(503))
    breaker = CircuitBreaker(failure_threshold=1, cooldown=0.05)
    async with tiny(service, retries=0, breaker=breaker) as guard:
        with pytest.raises(GuardUnavailable):
            await guard.acheck("hello")
        await anyio.sleep(0.06)  # the cooldown itself is the behaviour under test
        with pytest.raises(GuardUnavailable) as probe:
            await guard.acheck("hello")
        assert probe.value.circuit_open is False
        assert breaker.state is BreakerState.OPEN
        with pytest.raises(GuardUnavailable) as caught:
            await guard.acheck("hello")
    assert caught.value.circuit_open is True
    assert service.calls == 2


@pytest.mark.parametrize("status", [pytest.param(400, id="400"), pytest.param(401, id="401")])
async def test_configuration_errors_do_not_open_the_breaker(status: int) -> None:
    """A guard that answers 4xx is up: every check still reaches it."""
    service = Service(Answer(status))
    breaker = CircuitBreaker(failure_threshold=2, cooldown=60)
    async with tiny(service, retries=0, breaker=breaker) as guard:
        for _ in range(5):
            with pytest.raises(GuardError):
                await guard.acheck("hello")
    assert service.calls == 5
    assert breaker.state is BreakerState.CLOSED


async def test_a_probe_that_ends_without_an_answer_lets_the_next_check_probe() -> None:
    """A probe aborted by an unexpected transport error does not leave the breaker stuck."""
    calls = 0

    def broken_then_fine(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in a custom transport")
        return ALLOW.build()

    breaker = CircuitBreaker(failure_threshold=1, cooldown=0)
    breaker.record_failure(GuardUnavailable("down"))
    async with tiny(broken_then_fine, retries=0, breaker=breaker) as guard:
        with pytest.raises(RuntimeError):
            await guard.acheck("hello")
        assert (await guard.acheck("hello")).allowed
    assert breaker.state is BreakerState.CLOSED


async def test_half_open_a_check_of_several_windows_probes_with_its_first_window_alone() -> None:
    """Half-open, the first window is the probe, alone; the siblings follow once it succeeded.

    Sent together, the siblings would fail fast and cancel the probe: a breaker seeing only
    multi-window checks would never close.
    """
    order: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        order.append(json.loads(request.content)["text"])
        return ALLOW.build()

    breaker = CircuitBreaker(failure_threshold=1, cooldown=0)
    breaker.record_failure(GuardUnavailable("down"))
    async with tiny(answer, retries=0, breaker=breaker) as guard:
        assert (await guard.acheck("first|second|third")).allowed
    assert order[0] == "first"
    assert sorted(order[1:]) == ["second", "third"]
    assert breaker.state is BreakerState.CLOSED


async def test_a_probe_cancelled_by_its_caller_lets_the_next_check_probe() -> None:
    """The caller goes away mid-probe: the probe slot is released, the next check probes."""
    started = anyio.Event()

    async def probe_hangs(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["text"] == "hang":
            started.set()
            await anyio.sleep(30)
        return ALLOW.build()

    breaker = CircuitBreaker(failure_threshold=1, cooldown=0)
    breaker.record_failure(GuardUnavailable("down"))
    async with tiny(probe_hangs, retries=0, breaker=breaker, timeout=5) as guard:
        async with anyio.create_task_group() as group:
            group.start_soon(guard.acheck, "hang")
            await started.wait()
            assert breaker.probing
            group.cancel_scope.cancel()
        assert not breaker.probing
        assert (await guard.acheck("again")).allowed
    assert breaker.state is BreakerState.CLOSED


# -- windows ---------------------------------------------------------------------------------------


async def test_windows_are_each_checked_and_combined() -> None:
    """One request per window; any Block blocks and the reasons are merged."""
    async with tiny(windows_service) as guard:
        verdict = await guard.acheck("fine|bad-1|ok|bad-2")
    assert verdict.blocked
    assert verdict.reasons == ["r-bad-1", "r-bad-2"]
    assert verdict.id == "v-bad-1"
    assert verdict.guard == "tiny"


async def test_windows_that_all_allow_allow() -> None:
    """The combined verdict allows when every window allows."""
    async with tiny(windows_service) as guard:
        assert (await guard.acheck("one|two|three")).allowed


async def test_windows_are_checked_concurrently() -> None:
    """Every window's request is in flight at the same time."""
    windows = 4
    arrived = 0
    everyone_here = anyio.Event()

    async def rendezvous(request: httpx.Request) -> httpx.Response:
        nonlocal arrived
        arrived += 1
        if arrived == windows:
            everyone_here.set()
        # Sequential checks would wait here forever (until the guard's deadline).
        await everyone_here.wait()
        return windows_service(request)

    async with tiny(rendezvous, timeout=2) as guard:
        verdict = await guard.acheck("a|bad|c|d")
    assert verdict.blocked
    assert arrived == windows


async def test_a_failing_window_fails_the_check_without_waiting_for_the_others() -> None:
    """One window's error cancels the windows still in flight and is raised at once."""

    async def second_refused(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["text"] == "two":
            return httpx.Response(403)
        return await hang(request)

    async with tiny(second_refused, timeout=10) as guard:
        start = time.monotonic()
        with pytest.raises(GuardAuthError):
            await guard.acheck("one|two|three")
    assert time.monotonic() - start < MARGIN


# -- secrets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(Answer(401, json={"error": {"message": f"invalid key {API_KEY}"}}), id="401-echo"),
        pytest.param(Answer(400, json={"message": f"bad header Bearer {API_KEY}"}), id="400-echo"),
        pytest.param(Answer(500, json={"detail": API_KEY}), id="500-echo"),
        pytest.param(Answer(429, headers={"Retry-After": "60"}), id="429"),
        pytest.param(Answer(302, headers={"Location": f"https://x.test/?k={API_KEY}"}), id="redirect"),
        pytest.param(Answer(content=b"garbage"), id="garbage"),
        pytest.param(httpx.ConnectError, id="connect-error"),
    ],
)
async def test_the_key_never_appears_in_errors_or_reprs(failure: Reply) -> None:
    """Neither the guard's repr nor any error's message or repr carries the API key."""
    async with tiny(Service(failure), retries=0, timeout=1) as guard:
        with pytest.raises(GuardError) as caught:
            await guard.acheck("hello")
    for text in (str(caught.value), repr(caught.value), repr(guard), str(guard)):
        assert API_KEY not in text


# -- lifecycle -------------------------------------------------------------------------------------


async def test_the_guard_never_closes_a_transport_it_was_given() -> None:
    """httpx's ownership rule: a transport handed in stays open when the guard closes."""
    transport = CountingCloseTransport(Service(ALLOW))
    async with TinyGuard(transport=transport) as guard:
        guard.check("hello")
        await guard.acheck("hello")
    await guard.aclose()
    assert transport.closed == 0
    assert (await guard.acheck("hello")).allowed


async def test_aclose_closes_the_pool_it_made_once_and_reopens(monkeypatch: pytest.MonkeyPatch) -> None:
    """aclose() closes the async pool the guard made, once; a later check opens a fresh one."""
    closed: list[object] = []

    async def aclose(self: httpx.AsyncHTTPTransport) -> None:
        closed.append(self)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "aclose", aclose)
    guard = TinyGuard(async_backend="httpx")
    first = (await guard._async_pool()).transport
    await guard.aclose()
    await guard.aclose()
    second = (await guard._async_pool()).transport
    await guard.aclose()
    assert closed == [first, second]
    assert first is not second


async def test_concurrent_acheck_calls_share_one_guard() -> None:
    """Concurrent tasks all get their verdicts."""
    service = Service(ALLOW)
    results: list[Verdict] = []
    async with tiny(service) as guard:

        async def one() -> None:
            results.append(await guard.acheck("x"))

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(one)
    assert [verdict.allowed for verdict in results] == [True] * 8
    assert service.calls == 8


def allow_app() -> Starlette:
    async def scan(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"action": "allow", "id": "v-real"})

    return Starlette(routes=[Route("/scan", scan, methods=["POST"])])


# The first loop ends with a keep-alive connection the user never closed (no aclose() in it): its
# socket is reclaimed by the garbage collector, with a ResourceWarning, once the loop is gone.
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_one_guard_works_from_two_event_loops() -> None:
    """A guard used under two successive ``asyncio.run`` calls opens a client per loop."""
    with run_asgi(allow_app()) as base_url:
        guard = TinyGuard(base_url=base_url)

        async def check_once() -> Verdict:
            return await guard.acheck("hello")

        first = asyncio.run(check_once())

        async def check_then_close() -> Verdict:
            try:
                return await guard.acheck("hello")
            finally:
                await guard.aclose()

        second = asyncio.run(check_then_close())
        gc.collect()  # reclaim the first loop's connection here, under this test's warning filters
    assert (first.id, second.id) == ("v-real", "v-real")
