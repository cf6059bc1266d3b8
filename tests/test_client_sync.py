"""The remote-guard core driven by the blocking shell (`check`), against `httpx.MockTransport`.

`test_client_async.py` mirrors this module for `acheck`; the scripted service and the tiny guard
defined here serve both.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from guardrails._client import ConnectionKeywords, ConnectionOptions, RemoteGuard
from guardrails._exceptions import (
    ContentTooLarge,
    GuardAuthError,
    GuardError,
    GuardRateLimited,
    GuardResponseError,
    GuardTimeout,
    GuardUnavailable,
)
from guardrails._exchange import GuardResponse
from guardrails._models import Action, Content, Verdict
from guardrails._policy import BreakerState, CircuitBreaker, parse_retry_after

BASE_URL = "https://guard.test"
API_KEY = "sk-tiny-0123456789abcdef"
# Slack for "returns within the deadline" on a shared, busy machine.
MARGIN = 0.5


class TinyGuard(RemoteGuard):
    """A minimal vendor: one ``POST /scan {"text": window}`` per ``|``-separated window."""

    name = "tiny"

    def __init__(self, *, api_key: str = API_KEY, **options: Any) -> None:
        options.setdefault("base_url", BASE_URL)
        options.setdefault("backoff", 0.001)
        super().__init__(api_key=SecretStr(api_key), **options)

    def _build_requests(self, content: Content) -> list[httpx.Request]:
        headers = {"Authorization": f"Bearer {self._key.get_secret_value()}"}
        return [
            httpx.Request("POST", f"{self.base_url}/scan", json={"text": window}, headers=headers)
            for window in content.as_text().split("|")
        ]

    def _parse_response(self, response: GuardResponse) -> Verdict:
        # Deliberately naive (bad JSON, a missing key or a non-object raise as they come): the core
        # must turn those into GuardResponseError.
        payload = response.json()
        action = Action.parse(payload["action"])
        if action is None:
            raise GuardResponseError("tiny guard answered an unknown action", guard=self.name)
        return Verdict(
            action=action,
            reasons=payload.get("reasons", []),
            id=payload.get("id"),
            guard=self.name,
            raw=payload,
        )


@dataclass(frozen=True)
class Answer:
    """One scripted HTTP answer (built fresh for every request: a response body streams once)."""

    status: int = 200
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def build(self) -> httpx.Response:
        if self.content is not None:
            return httpx.Response(self.status, content=self.content, headers=self.headers)
        return httpx.Response(self.status, json=self.json, headers=self.headers)


Reply = Answer | type[httpx.TransportError]

ALLOW = Answer(json={"action": "Allow", "id": "v-allow"})
BLOCK = Answer(json={"action": "Block", "id": "v-block", "reasons": ["prompt_attack"]})


class Service:
    """A scripted guard service: the n-th request gets the n-th reply, the last one repeats.

    A reply is an `Answer`, or an httpx transport error class to raise.
    """

    def __init__(self, *replies: Reply) -> None:
        self.replies = replies
        self.requests: list[httpx.Request] = []

    @property
    def calls(self) -> int:
        return len(self.requests)

    def reply(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        if isinstance(reply, Answer):
            return reply.build()
        raise reply("simulated transport failure", request=request)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        return self.reply(request)


def windows_service(request: httpx.Request) -> httpx.Response:
    """Blocks a window that contains "bad", with a reason naming the window."""
    text = json.loads(request.content)["text"]
    if "bad" in text:
        return httpx.Response(200, json={"action": "block", "id": f"v-{text}", "reasons": [f"r-{text}"]})
    return httpx.Response(200, json={"action": "allow", "id": f"v-{text}", "reasons": []})


class CountingCloseTransport(httpx.MockTransport):
    """A MockTransport that counts how often its client closed it."""

    def __init__(self, handler: Any) -> None:
        super().__init__(handler)
        self.closed = 0

    def close(self) -> None:
        self.closed += 1

    async def aclose(self) -> None:
        self.closed += 1


def tiny(service: Any, **options: Any) -> TinyGuard:
    return TinyGuard(transport=httpx.MockTransport(service), **options)


def retry_after_date(seconds: float) -> tuple[str, float]:
    """A Retry-After HTTP date about `seconds` from now (whole seconds), and the wait it means."""
    target = math.floor(time.time() + seconds + 0.5)
    header = email.utils.formatdate(target, usegmt=True)
    wait = parse_retry_after(header)
    assert wait is not None
    return header, wait


# -- success ---------------------------------------------------------------------------------------


def test_check_returns_the_parsed_verdict() -> None:
    """A 2xx answer is parsed into the guard's Verdict."""
    service = Service(BLOCK)
    with tiny(service) as guard:
        verdict = guard.check("hello")
    assert verdict == Verdict(
        action=Action.BLOCK, reasons=["prompt_attack"], id="v-block", guard="tiny", raw=BLOCK.json
    )
    assert service.calls == 1


def test_check_sends_the_request_the_guard_built() -> None:
    """The request is the subclass's own: method, URL, body and headers."""
    service = Service(ALLOW)
    with tiny(service) as guard:
        guard.check(Content("hello"))
    (request,) = service.requests
    assert (request.method, str(request.url)) == ("POST", f"{BASE_URL}/scan")
    assert json.loads(request.content) == {"text": "hello"}
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


def test_check_rejects_what_is_not_content() -> None:
    """Anything but a Content or a str is a TypeError, before any request."""
    service = Service(ALLOW)
    with tiny(service) as guard, pytest.raises(TypeError):
        guard.check(b"bytes")  # type: ignore[arg-type]
    assert service.calls == 0


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"timeout": 0}, id="zero-timeout"),
        pytest.param({"retries": -1}, id="negative-retries"),
        pytest.param({"base_url": "guard.test/v1"}, id="relative-url"),
        pytest.param({"base_url": "ftp://guard.test"}, id="not-http"),
    ],
)
def test_invalid_options_are_rejected(options: dict[str, Any]) -> None:
    """Bad settings fail at construction, not at the first check."""
    with pytest.raises(ValueError):
        TinyGuard(**options)


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
def test_transient_failures_are_retried(failure: Reply) -> None:
    """Timeouts, connection errors, 5xx and 429 are retried; the next success is the answer."""
    service = Service(failure, failure, ALLOW)
    with tiny(service, retries=2) as guard:
        assert guard.check("hello").allowed
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
def test_the_last_transient_failure_is_raised_after_the_retries(
    failure: Reply, error_class: type[GuardError], status: int | None
) -> None:
    """Once the retries are spent, the last failure is raised as a transient GuardError."""
    service = Service(failure)
    with tiny(service, retries=2) as guard, pytest.raises(error_class) as caught:
        guard.check("hello")
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
def test_configuration_errors_are_not_retried(status: int, error_class: type[GuardError]) -> None:
    """A 4xx other than 429 is raised after exactly one attempt, as a configuration error."""
    service = Service(Answer(status, json={"error": {"message": "nope"}}), ALLOW)
    with tiny(service, retries=3) as guard, pytest.raises(error_class) as caught:
        guard.check("hello")
    assert service.calls == 1
    assert caught.value.transient is False
    assert caught.value.status_code == status


def test_retry_after_seconds_is_honoured() -> None:
    """A 429's Retry-After in seconds is waited out before the retry."""
    service = Service(Answer(429, headers={"Retry-After": "0.3"}), ALLOW)
    with tiny(service, retries=1, timeout=5) as guard:
        start = time.monotonic()
        assert guard.check("hello").allowed
        elapsed = time.monotonic() - start
    assert service.calls == 2
    assert 0.3 <= elapsed < 0.3 + MARGIN


def test_retry_after_http_date_is_honoured() -> None:
    """A 429's Retry-After as an HTTP date is waited out before the retry."""
    header, wait = retry_after_date(1.0)
    service = Service(Answer(429, headers={"Retry-After": header}), ALLOW)
    with tiny(service, retries=1, timeout=5) as guard:
        start = time.monotonic()
        assert guard.check("hello").allowed
        elapsed = time.monotonic() - start
    assert service.calls == 2
    assert wait - 0.05 <= elapsed < wait + MARGIN


def test_retry_after_past_the_deadline_gives_up_at_once() -> None:
    """A Retry-After longer than the time left is not waited: the 429 is raised with its value."""
    service = Service(Answer(429, headers={"Retry-After": "30"}), ALLOW)
    start = time.monotonic()
    with tiny(service, retries=3, timeout=1) as guard, pytest.raises(GuardRateLimited) as caught:
        guard.check("hello")
    assert time.monotonic() - start < 1
    assert service.calls == 1
    assert caught.value.retry_after == 30


def test_retries_never_extend_past_the_deadline() -> None:
    """However many retries are allowed, the check ends within its deadline."""
    service = Service(Answer(429, headers={"Retry-After": "0.2"}))
    start = time.monotonic()
    with tiny(service, retries=50, timeout=0.5) as guard, pytest.raises(GuardRateLimited):
        guard.check("hello")
    # Without the deadline, 50 retries 0.2 s apart would take 10 s.
    assert time.monotonic() - start < 0.5 + MARGIN
    assert 2 <= service.calls <= 3


# -- unusable answers ------------------------------------------------------------------------------


def test_redirects_are_not_followed() -> None:
    """A 3xx is a configuration error and its Location is never requested."""
    service = Service(Answer(307, headers={"Location": "https://elsewhere.test/steal"}), ALLOW)
    with tiny(service, retries=2) as guard, pytest.raises(GuardResponseError) as caught:
        guard.check("hello")
    assert [request.url.host for request in service.requests] == ["guard.test"]
    assert caught.value.transient is False
    assert caught.value.status_code == 307


def test_a_response_over_the_size_cap_is_a_response_error() -> None:
    """A body one byte over max_response_bytes is refused, as a transient failure."""
    body = json.dumps({"action": "allow", "pad": "x" * 100}).encode()
    service = Service(Answer(content=body))
    with (
        tiny(service, retries=0, max_response_bytes=len(body) - 1) as guard,
        pytest.raises(GuardResponseError) as caught,
    ):
        guard.check("hello")
    assert caught.value.transient is True


def test_a_response_at_the_size_cap_is_read() -> None:
    """A body of exactly max_response_bytes is accepted."""
    body = json.dumps({"action": "allow", "pad": "x" * 100}).encode()
    service = Service(Answer(content=body))
    with tiny(service, retries=0, max_response_bytes=len(body)) as guard:
        assert guard.check("hello").allowed


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
def test_an_unparseable_response_is_a_transient_response_error(body: bytes) -> None:
    """Whatever the parser raises on a bad 2xx body becomes a GuardResponseError, and is retried."""
    service = Service(Answer(content=body))
    with tiny(service, retries=1) as guard, pytest.raises(GuardResponseError) as caught:
        guard.check("hello")
    assert caught.value.transient is True
    assert service.calls == 2


def test_the_parsers_own_guard_error_is_raised_as_is() -> None:
    """A GuardResponseError raised by the parser reaches the caller unchanged."""
    service = Service(Answer(json={"action": "maybe"}))
    with tiny(service, retries=0) as guard, pytest.raises(GuardResponseError, match="unknown action"):
        guard.check("hello")


# -- deadline --------------------------------------------------------------------------------------


def test_a_hanging_guard_times_out_within_the_deadline() -> None:
    """A guard that never answers ends in GuardTimeout within the check's timeout."""
    released = threading.Event()

    def hang(request: httpx.Request) -> httpx.Response:
        # Like a real transport: give up when the per-request read timeout runs out.
        released.wait(request.extensions["timeout"]["read"])
        raise httpx.ReadTimeout("no answer", request=request)

    start = time.monotonic()
    with tiny(hang, timeout=0.3, retries=3) as guard, pytest.raises(GuardTimeout) as caught:
        guard.check("hello")
    assert time.monotonic() - start < 0.3 + MARGIN
    assert caught.value.transient is True


def test_each_attempt_gets_the_remaining_budget_as_its_timeout() -> None:
    """Every attempt's httpx timeouts are what is left of the overall deadline."""
    seen: list[dict[str, float]] = []
    service = Service(Answer(503), Answer(503), ALLOW)

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.extensions["timeout"]))
        return service(request)

    with tiny(record, timeout=2, retries=2) as guard:
        guard.check("hello")
    reads = [timeouts["read"] for timeouts in seen]
    assert len(reads) == 3
    assert all(0 < read <= 2 for read in reads)
    assert reads == sorted(reads, reverse=True)
    assert all(set(timeouts.values()) == {timeouts["read"]} for timeouts in seen)


# -- circuit breaker -------------------------------------------------------------------------------


def test_the_breaker_opens_after_consecutive_transient_failures() -> None:
    """After failure_threshold transient failures, checks fail fast without a request."""
    service = Service(Answer(503))
    breaker = CircuitBreaker(failure_threshold=3, cooldown=60)
    with tiny(service, retries=0, breaker=breaker) as guard:
        for _ in range(3):
            with pytest.raises(GuardUnavailable) as caught:
                guard.check("hello")
            assert caught.value.circuit_open is False
        with pytest.raises(GuardUnavailable) as caught:
            guard.check("hello")
    assert caught.value.circuit_open is True
    assert caught.value.transient is True
    assert service.calls == 3


def test_the_breaker_half_opens_after_the_cooldown_and_closes_on_success() -> None:
    """After the cooldown one probe goes through; its success closes the breaker."""
    service = Service(Answer(503), ALLOW)
    breaker = CircuitBreaker(failure_threshold=1, cooldown=0.05)
    with tiny(service, retries=0, breaker=breaker) as guard:
        with pytest.raises(GuardUnavailable):
            guard.check("hello")
        time.sleep(0.06)  # the cooldown itself is the behaviour under test
        after_cooldown = breaker.state
        assert guard.check("hello").allowed
        after_probe = breaker.state
        assert guard.check("hello").allowed
    assert (after_cooldown, after_probe) == (BreakerState.HALF_OPEN, BreakerState.CLOSED)
    assert service.calls == 3


def test_the_breaker_reopens_when_the_probe_fails() -> None:
    """A failed probe opens the breaker again: the next check fails fast."""
    service = Service(Answer(503))
    breaker = CircuitBreaker(failure_threshold=1, cooldown=0.05)
    with tiny(service, retries=0, breaker=breaker) as guard:
        with pytest.raises(GuardUnavailable):
            guard.check("hello")
        time.sleep(0.06)  # the cooldown itself is the behaviour under test
        with pytest.raises(GuardUnavailable) as probe:
            guard.check("hello")
        assert probe.value.circuit_open is False
        assert breaker.state is BreakerState.OPEN
        with pytest.raises(GuardUnavailable) as caught:
            guard.check("hello")
    assert caught.value.circuit_open is True
    assert service.calls == 2


@pytest.mark.parametrize("status", [pytest.param(400, id="400"), pytest.param(401, id="401")])
def test_configuration_errors_do_not_open_the_breaker(status: int) -> None:
    """A guard that answers 4xx is up: every check still reaches it."""
    service = Service(Answer(status))
    breaker = CircuitBreaker(failure_threshold=2, cooldown=60)
    with tiny(service, retries=0, breaker=breaker) as guard:
        for _ in range(5):
            with pytest.raises(GuardError):
                guard.check("hello")
    assert service.calls == 5
    assert breaker.state is BreakerState.CLOSED


def test_a_probe_that_ends_without_an_answer_lets_the_next_check_probe() -> None:
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
    with tiny(broken_then_fine, retries=0, breaker=breaker) as guard:
        with pytest.raises(RuntimeError):
            guard.check("hello")
        assert guard.check("hello").allowed
    assert breaker.state is BreakerState.CLOSED


# -- windows ---------------------------------------------------------------------------------------


def test_windows_are_each_checked_and_combined() -> None:
    """One request per window; any Block blocks and the reasons are merged."""
    with tiny(windows_service) as guard:
        verdict = guard.check("fine|bad-1|ok|bad-2")
    assert verdict.blocked
    assert verdict.reasons == ["r-bad-1", "r-bad-2"]
    assert verdict.id == "v-bad-1"
    assert verdict.guard == "tiny"


def test_windows_that_all_allow_allow() -> None:
    """The combined verdict allows when every window allows."""
    with tiny(windows_service) as guard:
        assert guard.check("one|two|three").allowed


def test_a_failing_window_fails_the_check() -> None:
    """If one window cannot be checked, the whole check raises."""

    def second_refused(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["text"] == "two":
            return httpx.Response(403)
        return windows_service(request)

    with tiny(second_refused) as guard, pytest.raises(GuardAuthError):
        guard.check("one|two|three")


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
def test_the_key_never_appears_in_errors_or_reprs(failure: Reply) -> None:
    """Neither the guard's repr nor any error's message or repr carries the API key."""
    with tiny(Service(failure), retries=0, timeout=1) as guard, pytest.raises(GuardError) as caught:
        guard.check("hello")
    for text in (str(caught.value), repr(caught.value), repr(guard), str(guard)):
        assert API_KEY not in text


def test_the_services_error_message_is_kept_when_it_holds_no_secret() -> None:
    """The service's own error message is part of the GuardError: it explains configuration errors."""
    service = Service(Answer(400, json={"error": {"message": "application name is invalid"}}))
    with tiny(service) as guard, pytest.raises(GuardResponseError, match="application name is invalid"):
        guard.check("hello")


# -- lifecycle -------------------------------------------------------------------------------------


def test_the_guard_never_closes_a_transport_it_was_given() -> None:
    """httpx's ownership rule: a transport handed in stays open when the guard closes."""
    transport = CountingCloseTransport(Service(ALLOW))
    with TinyGuard(transport=transport) as guard:
        guard.check("hello")
    guard.close()
    assert transport.closed == 0
    assert guard.check("hello").allowed


def test_the_guard_closes_the_pool_it_made_once_and_reopens(monkeypatch: pytest.MonkeyPatch) -> None:
    """close() closes the pool the guard made, once; a later check opens a fresh one."""
    closed: list[object] = []
    monkeypatch.setattr(httpx.HTTPTransport, "close", lambda self: closed.append(self))
    guard = TinyGuard()
    first = guard._sync_transport()
    guard.close()
    guard.close()
    second = guard._sync_transport()
    guard.close()
    assert closed == [first, second]
    assert first is not second


def test_a_sync_check_from_many_threads_shares_one_guard() -> None:
    """Concurrent checks from threads all get their verdicts."""
    service = Service(ALLOW)
    with tiny(service) as guard:
        results: list[Verdict] = []
        threads = [threading.Thread(target=lambda: results.append(guard.check("x"))) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [verdict.allowed for verdict in results] == [True] * 8
    assert service.calls == 8


def test_a_413_from_the_guard_is_content_too_large_not_retried_not_counted() -> None:
    """The guard said our input is too large: client-caused, one attempt, the breaker untouched."""
    service = Service(Answer(413, json={"error": {"message": "too large"}}), ALLOW)
    breaker = CircuitBreaker(failure_threshold=1, cooldown=60)
    with tiny(service, retries=3, breaker=breaker) as guard, pytest.raises(ContentTooLarge):
        guard.check("hello")
    assert service.calls == 1
    assert breaker.state is BreakerState.CLOSED


def test_a_check_needing_more_requests_than_its_deadline_allows_is_refused_up_front() -> None:
    """window_concurrency x (timeout / expected_latency) bounds the requests of one check."""
    service = Service(ALLOW)
    with tiny(service, timeout=1, expected_latency=0.5, window_concurrency=2) as guard:
        assert guard.max_requests == 4
        assert guard.check("a|b|c|d").allowed
        with pytest.raises(ContentTooLarge, match="more than the 4") as caught:
            guard.check("a|b|c|d|e")
    assert caught.value.limit == 4
    assert service.calls == 4


def test_connection_keywords_and_connection_options_agree() -> None:
    """Every ConnectionOptions field is a constructor keyword (adding one is one edit, pinned here)."""
    fields = {field.name: field.type for field in dataclasses.fields(ConnectionOptions)}
    assert set(ConnectionKeywords.__annotations__) == set(fields)


def test_an_options_object_and_keywords_combine() -> None:
    """options= gives the defaults, keywords override its fields."""
    options = ConnectionOptions(timeout=3.0, retries=5)
    guard = TinyGuard(options=options, retries=1)
    assert (guard.timeout, guard.retry.attempts) == (3.0, 2)
    assert guard.options == dataclasses.replace(options, retries=1, backoff=0.001)  # TinyGuard sets backoff


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"timeout": 0}, id="timeout"),
        pytest.param({"retries": -1}, id="retries"),
        pytest.param({"window_concurrency": 0}, id="window_concurrency"),
        pytest.param({"expected_latency": 0}, id="expected_latency"),
        pytest.param({"max_response_bytes": 0}, id="max_response_bytes"),
        pytest.param({"async_backend": "curl"}, id="async_backend"),
    ],
)
def test_invalid_connection_options_are_refused(options: dict[str, Any]) -> None:
    """A bad option is a ValueError at construction."""
    with pytest.raises(ValueError):
        ConnectionOptions(**options)


def test_a_window_failure_cancels_the_windows_not_yet_sent() -> None:
    """One window's configuration error ends the check: its queued siblings are never sent."""
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["text"]
        sent.append(text)
        return httpx.Response(400, json={"error": {"message": "no"}}) if text == "bad" else ALLOW.build()

    with tiny(answer, window_concurrency=1) as guard, pytest.raises(GuardResponseError):
        guard.check("bad|b|c|d")
    assert sent == ["bad"]


def test_half_open_a_sync_check_of_several_windows_probes_with_its_first_window_alone() -> None:
    """As acheck: the first window is the probe; its siblings follow and the breaker closes."""
    order: list[str] = []
    lock = threading.Lock()

    def answer(request: httpx.Request) -> httpx.Response:
        with lock:
            order.append(json.loads(request.content)["text"])
        return ALLOW.build()

    breaker = CircuitBreaker(failure_threshold=1, cooldown=0)
    breaker.record_failure(GuardUnavailable("down"))
    with tiny(answer, retries=0, breaker=breaker) as guard:
        assert guard.check("first|second|third").allowed
    assert order[0] == "first"
    assert sorted(order[1:]) == ["second", "third"]
    assert breaker.state is BreakerState.CLOSED
