"""The direct remote path: plain requests and responses, httpx only at an httpx transport's edge."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from guardrails import Content, GuardTimeout, PaloAltoAIRS, TrendAIGuard
from guardrails._exchange import GuardRequest, GuardResponse, RequestHeaders
from guardrails._models import Action, Verdict
from guardrails._policy import CircuitBreaker
from guardrails.guards._common import parsed_verdict
from guardrails.testing.emulator import Emulator
from tests.helpers import PANW_KEY, TREND_KEY

pytestmark = pytest.mark.anyio


@pytest.fixture
def httpx_objects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every `httpx.Request` and `httpx.Response` built while the test runs, by class name."""
    built: list[str] = []
    for cls in (httpx.Request, httpx.Response):
        original = cls.__init__

        def counting(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            built.append(type(self).__name__)
            __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    return built


def trend(url: str, backend: str, **options: Any) -> TrendAIGuard:
    return TrendAIGuard(TREND_KEY, base_url=url, async_backend=backend, **options)  # type: ignore[arg-type]


async def test_an_aiohttp_check_builds_no_httpx_object(emulator_url: str, httpx_objects: list[str]) -> None:
    """With aiohttp, a check sends and reads without one `httpx.Request` or `httpx.Response`."""
    async with trend(emulator_url, "aiohttp") as guard:
        await guard.acheck("warm the pool up")
        httpx_objects.clear()
        verdicts = [await guard.acheck(f"What is the capital of France? ({n})") for n in range(3)]
    assert all(verdict.allowed for verdict in verdicts)
    assert httpx_objects == []


async def test_the_httpx_backend_converts_at_its_edge(emulator_url: str, httpx_objects: list[str]) -> None:
    """With ``async_backend="httpx"``, each attempt is one httpx request and one response."""
    async with trend(emulator_url, "httpx") as guard:
        await guard.acheck("warm the pool up")
        httpx_objects.clear()
        assert (await guard.acheck("What is the capital of France?")).allowed
    assert sorted(httpx_objects) == ["Request", "Response"]


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
async def test_a_slow_answer_times_out_within_the_deadline(
    emulator: Emulator, emulator_url: str, backend: str
) -> None:
    """Each attempt's timeout is what is left of the deadline, on either backend."""
    emulator.inject("latency", seconds=5.0)
    async with trend(emulator_url, backend, timeout=0.5, retries=3, breaker=CircuitBreaker()) as guard:
        started = time.monotonic()
        with pytest.raises(GuardTimeout):
            await guard.acheck("hello")
    assert time.monotonic() - started < 2.0


def test_the_httpx_edge_sends_each_attempt_with_the_time_left() -> None:
    """An httpx transport gets the plain request's method, URL, headers, body and timeout."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"id": "1", "action": "Allow", "reasons": []})

    guard = TrendAIGuard(
        TREND_KEY, base_url="https://trend.example.com", transport=httpx.MockTransport(answer), timeout=3.0
    )
    assert guard.check("hello").allowed
    [request] = sent
    assert request.method == "POST"
    assert str(request.url) == "https://trend.example.com/v3.0/aiSecurity/applyGuardrails"
    assert request.headers["authorization"] == f"Bearer {TREND_KEY}"
    assert request.headers["tmv1-request-type"] == "SimpleRequestGuard"
    assert json.loads(request.content) == {"prompt": "hello"}
    timeouts = request.extensions["timeout"]
    assert set(timeouts) == {"connect", "read", "write", "pool"}
    assert all(0 < value <= 3.0 for value in timeouts.values())


def test_a_request_repr_shows_neither_the_key_nor_the_prompt() -> None:
    """Requests, their headers and the guards' precomputed headers name headers, never values."""
    key = "super-secret-key-0123456789"
    trend_guard = TrendAIGuard(key, base_url="https://trend.example.com")
    panw_guard = PaloAltoAIRS(key, profile_name="p", base_url="https://airs.example.com")
    for guard in (trend_guard, panw_guard):
        [request] = guard._build_requests(Content("my secret prompt"))
        assert isinstance(request, GuardRequest)
        shown = [repr(request), repr(request.headers), str(request.headers), repr(guard)]
        for text in shown:
            assert key not in text
            assert "my secret prompt" not in text
    assert "Authorization" in repr(trend_guard._headers["SimpleRequestGuard"])
    assert repr(RequestHeaders({"x-pan-token": key})) == "RequestHeaders(['x-pan-token'])"


def response(payload: dict[str, Any]) -> GuardResponse:
    request = GuardRequest("POST", "https://guard.example.com/scan", RequestHeaders(), b"{}")
    return GuardResponse(200, httpx.Headers(), json.dumps(payload).encode(), request)


TREND_ANSWERS = [
    pytest.param({"id": "t-1", "action": "Allow", "reasons": []}, id="allow"),
    pytest.param({"id": 7, "action": "Block", "reasons": ["Prompt attack detected"]}, id="block"),
    pytest.param(
        {"action": "block", "harmfulContent": [{"hasPolicyViolation": True}], "reason": "x"}, id="detail"
    ),
]
PANW_ANSWERS = [
    pytest.param({"scan_id": "s-1", "action": "allow", "category": "benign"}, id="allow"),
    pytest.param(
        {
            "scan_id": "s-2",
            "action": "block",
            "category": "malicious",
            "prompt_detected": {"dlp": True, "injection": True},
            "prompt_masked_data": {"data": "XXXX"},
        },
        id="masked-block",
    ),
]


def shown_without_categories(verdict: Verdict) -> list[str]:
    return [f"{name}={value!r}" for name, value in verdict.__repr_args__() if name != "categories"]


def same_as_validated(verdict: Verdict) -> None:
    """`verdict` is what pydantic's validation of the same fields gives, down to the fields set."""
    validated = Verdict(**{name: getattr(verdict, name) for name in verdict.model_fields_set})
    assert verdict == validated
    assert verdict.model_fields_set == validated.model_fields_set
    # A frozenset's iteration order depends on how it was built, so the categories are compared
    # as sets and the rest of the repr as text.
    assert verdict.categories == validated.categories
    assert shown_without_categories(verdict) == shown_without_categories(validated)
    assert verdict.model_dump_json() == validated.model_dump_json()
    assert Verdict.model_validate_json(verdict.model_dump_json()) == verdict
    with pytest.raises(Exception, match="frozen"):
        verdict.guard = "other"


@pytest.mark.parametrize("payload", TREND_ANSWERS)
def test_trend_verdicts_are_the_validated_ones(payload: dict[str, Any]) -> None:
    guard = TrendAIGuard(TREND_KEY, base_url="https://trend.example.com")
    same_as_validated(guard._parse_response(response(payload)))


@pytest.mark.parametrize("payload", PANW_ANSWERS)
def test_palo_alto_verdicts_are_the_validated_ones(payload: dict[str, Any]) -> None:
    guard = PaloAltoAIRS(PANW_KEY, profile_name="p", base_url="https://airs.example.com")
    same_as_validated(guard._parse_response(response(payload)))


def test_a_parsed_verdict_keeps_masked_data_out_of_the_fields_set_when_none() -> None:
    """`masked_data` is set only when there is some, as the vendor guards pass it."""
    verdict = parsed_verdict(
        action=Action.BLOCK, reasons=["r"], id=None, guard="g", raw={}, categories=frozenset({"other"})
    )
    assert "masked_data" not in verdict.model_fields_set
    assert verdict.masked_data is None
    assert verdict.reasons == ["r"]
    assert verdict.categories == frozenset({"other"})
