"""PaloAltoAIRS: the scan requests it sends, how it reads answers, how it fails."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import httpx
import pytest

from guardrails._exceptions import (
    ContentTooLarge,
    ExtractionError,
    GuardAuthError,
    GuardConfigurationError,
    GuardError,
    GuardRateLimited,
    GuardResponseError,
    GuardTimeout,
    GuardUnavailable,
)
from guardrails._models import Action, Content, Verdict
from guardrails.guards.paloalto import MAX_PROMPT_CHARS, MAX_RESPONSE_CHARS, REGIONS, PaloAltoAIRS

KEY = "panw-Qk29vLx0SECRETtoken-55aa01f3c7"
SCAN_URL = "https://service.api.aisecurity.paloaltonetworks.com/v1/scan/sync/request"

# The response sample of the API Intercept reference (use case 1: sensitive financial data).
DLP_BLOCK: dict[str, Any] = {
    "action": "block",
    "category": "malicious",
    "profile_id": "2abba1a0-33ab-42f0-a25f-50eb2e466629",
    "profile_name": "airs-sec-profile",
    "prompt_detected": {"dlp": True, "injection": False, "url_cats": False},
    "report_id": "R1611eb31-9cb2-41c3-be04-e9d2587f4d36",
    "response_detected": {"dlp": False, "url_cats": False},
    "scan_id": "1611eb31-9cb2-41c3-be04-e9d2587f4d36",
}
BENIGN: dict[str, Any] = {
    "action": "allow",
    "category": "benign",
    "prompt_detected": {"dlp": False, "injection": False, "url_cats": False},
    "report_id": "R00000000-0000-0000-0000-000000000001",
    "scan_id": "00000000-0000-0000-0000-000000000001",
}

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Service:
    """A scripted service for `httpx.MockTransport`: answers in turn (the last one repeats)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = answers or (httpx.Response(200, json=BENIGN),)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            # A fresh copy per request: a response's stream can only be read once.
            return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)
        return answer(request)

    @property
    def bodies(self) -> list[Any]:
        return [json.loads(request.content) for request in self.requests]


def make_guard(service: Callable[[httpx.Request], httpx.Response], **options: Any) -> PaloAltoAIRS:
    options.setdefault("backoff", 0)
    options.setdefault("profile_name", "airs-sec-profile")
    return PaloAltoAIRS(KEY, transport=httpx.MockTransport(service), **options)


def verdict_for(payload: dict[str, Any]) -> Verdict:
    return make_guard(Service(httpx.Response(200, json=payload)), retries=0).check("hi")


Check = Callable[[PaloAltoAIRS, "Content | str"], Awaitable[Verdict]]


@pytest.fixture(params=["sync", "async"])
def check(request: pytest.FixtureRequest) -> Check:
    """`check` or `acheck`, so that one test specifies both."""
    if request.param == "sync":

        async def run_sync(guard: PaloAltoAIRS, content: Content | str) -> Verdict:
            return guard.check(content)

        return run_sync

    async def run_async(guard: PaloAltoAIRS, content: Content | str) -> Verdict:
        return await guard.acheck(content)

    return run_async


@pytest.fixture(autouse=True)
def _no_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PANW_AI_SEC_API_ENDPOINT", raising=False)


# -- configuration ---------------------------------------------------------------------------------


def test_key_defaults_to_the_panw_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without api_key, the key comes from PANW_AI_SEC_API_KEY."""
    monkeypatch.setenv("PANW_AI_SEC_API_KEY", "from-the-environment")
    service = Service()
    PaloAltoAIRS(profile_name="p", transport=httpx.MockTransport(service)).check("hi")
    assert service.requests[0].headers["x-pan-token"] == "from-the-environment"


def test_missing_key_is_a_value_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key anywhere fails at construction and says where to put one."""
    monkeypatch.delenv("PANW_AI_SEC_API_KEY", raising=False)
    with pytest.raises(ValueError, match="PANW_AI_SEC_API_KEY"):
        PaloAltoAIRS(profile_name="p")


def test_endpoint_defaults_to_the_panw_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """PANW_AI_SEC_API_ENDPOINT replaces the region's URL when no base_url is given."""
    monkeypatch.setenv("PANW_AI_SEC_API_ENDPOINT", "https://airs.internal.example")
    assert PaloAltoAIRS(KEY, profile_name="p").base_url == "https://airs.internal.example"


def test_base_url_wins_over_the_endpoint_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit base_url is used even when the variable is set."""
    monkeypatch.setenv("PANW_AI_SEC_API_ENDPOINT", "https://airs.internal.example")
    guard = PaloAltoAIRS(KEY, profile_name="p", base_url="http://127.0.0.1:9000")
    assert guard.base_url == "http://127.0.0.1:9000"


def test_endpoint_variable_must_be_https_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token does not go in clear text to a remote host, whoever configured the URL."""
    monkeypatch.setenv("PANW_AI_SEC_API_ENDPOINT", "http://airs.example.com")
    with pytest.raises(ValueError, match="must use https"):
        PaloAltoAIRS(KEY, profile_name="p")


def test_a_profile_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a profile the service cannot scan: say so at construction, naming the variables."""
    monkeypatch.delenv("PANW_AI_PROFILE_NAME", raising=False)
    monkeypatch.delenv("PANW_AI_PROFILE_ID", raising=False)
    with pytest.raises(
        GuardConfigurationError, match="set PANW_AI_PROFILE_NAME or PANW_AI_PROFILE_ID"
    ) as caught:
        PaloAltoAIRS(KEY)
    assert isinstance(caught.value, ValueError)
    assert caught.value.transient is False


def test_linked_profile_sends_no_profile() -> None:
    """A key with a linked profile needs no ai_profile in the request."""
    service = Service()
    make_guard(service, profile_name=None, linked_profile=True).check("hi")
    assert "ai_profile" not in service.bodies[0]


def test_overlong_profile_name_is_a_value_error() -> None:
    """Profile names are at most 100 characters."""
    with pytest.raises(ValueError, match="at most 100"):
        PaloAltoAIRS(KEY, profile_name="p" * 101)


def test_unknown_region_is_a_value_error_listing_the_valid_ones() -> None:
    """A region typo fails at construction with the list of regions."""
    with pytest.raises(ValueError, match="unknown palo-alto region 'de'") as info:
        PaloAltoAIRS(KEY, profile_name="p", region="de")
    for region in REGIONS:
        assert region in str(info.value)


@pytest.mark.parametrize(
    ("region", "host"),
    [
        pytest.param("us", "service.api.aisecurity.paloaltonetworks.com", id="us"),
        pytest.param("eu", "service-de.api.aisecurity.paloaltonetworks.com", id="eu"),
        pytest.param("in", "service-in.api.aisecurity.paloaltonetworks.com", id="in"),
        pytest.param("sg", "service-sg.api.aisecurity.paloaltonetworks.com", id="sg"),
    ],
)
def test_region_selects_the_base_url(region: str, host: str) -> None:
    """Each region's scans go over https to its own host."""
    service = Service()
    make_guard(service, region=region).check("hi")
    assert service.requests[0].url == httpx.URL(f"https://{host}/v1/scan/sync/request")


@pytest.mark.parametrize(
    "base_url",
    [
        pytest.param("http://airs.example.com", id="remote-http"),
        pytest.param("https://user:pw@airs.example.com", id="userinfo"),
    ],
)
def test_unsafe_base_url_is_a_value_error(base_url: str) -> None:
    """https only, except on loopback; no credentials in the URL."""
    with pytest.raises(ValueError, match="base_url"):
        PaloAltoAIRS(KEY, profile_name="p", base_url=base_url)


# -- requests --------------------------------------------------------------------------------


def test_prompt_scan_request() -> None:
    """A prompt goes as contents[0].prompt with the profile and metadata, x-pan-token in the headers."""
    service = Service()
    guard = make_guard(service, app_name="shop", app_user="svc", ai_model="gpt-4o")
    guard.check("bank account 8775664322 routing number 2344567")
    (request,) = service.requests
    assert request.method == "POST"
    assert request.url == httpx.URL(SCAN_URL)
    assert request.headers["x-pan-token"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "ai_profile": {"profile_name": "airs-sec-profile"},
        "metadata": {"app_name": "shop", "app_user": "svc", "ai_model": "gpt-4o"},
        "contents": [{"prompt": "bank account 8775664322 routing number 2344567"}],
    }


def test_profile_id_wins_over_the_name() -> None:
    """Given both, only the id is sent."""
    service = Service()
    make_guard(service, profile_id="2abba1a0-33ab-42f0-a25f-50eb2e466629").check("hi")
    assert service.bodies[0]["ai_profile"] == {"profile_id": "2abba1a0-33ab-42f0-a25f-50eb2e466629"}


def test_no_metadata_is_sent_when_none_is_known() -> None:
    """The metadata object is left out rather than sent empty."""
    service = Service()
    make_guard(service).check("hi")
    assert service.bodies == [
        {"ai_profile": {"profile_name": "airs-sec-profile"}, "contents": [{"prompt": "hi"}]}
    ]


def test_response_is_sent_with_its_prompt() -> None:
    """A response goes as contents[0].response, with the prompt that produced it next to it."""
    service = Service()
    make_guard(service).check(Content("Here you go", kind="response", prompt="Give me the card number"))
    assert service.bodies[0]["contents"] == [{"prompt": "Give me the card number", "response": "Here you go"}]


def test_response_without_a_known_prompt_is_sent_alone() -> None:
    """No prompt is invented."""
    service = Service()
    make_guard(service).check(Content("Here you go", kind="response"))
    assert service.bodies[0]["contents"] == [{"response": "Here you go"}]


def test_chat_completion_is_a_response() -> None:
    """A chat completion is scanned as a response, whatever kind says."""
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Sure thing"}}]}
    service = Service()
    make_guard(service).check(Content(completion=completion))
    assert service.bodies[0]["contents"] == [{"response": "Sure thing"}]


def test_chat_messages_are_scanned_as_one_prompt() -> None:
    """Every user-controllable string of the messages is in the prompt."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"function": {"name": "f", "arguments": '{"q": 1}'}}],
        },
    ]
    service = Service()
    make_guard(service).check(Content(messages=messages))
    assert service.bodies[0]["contents"] == [{"prompt": 'Be brief\nHello\n{"q": 1}'}]


def test_conversation_and_turn_ids_come_from_the_metadata() -> None:
    """session_id names the conversation (tr_id and session_id), transaction_id the turn."""
    service = Service()
    content = Content("hi", metadata={"session_id": "conv-42", "transaction_id": "turn-7"})
    make_guard(service).check(content)
    body = service.bodies[0]
    assert (body["tr_id"], body["session_id"], body["transaction_id"]) == ("conv-42", "conv-42", "turn-7")


def test_content_metadata_overrides_the_guard_defaults() -> None:
    """The user, model, app and IP of this content are more specific than the guard's settings."""
    service = Service()
    content = Content(
        "hi", metadata={"user": "alice", "model": "o3", "app_name": "support-bot", "user_ip": "203.0.113.9"}
    )
    make_guard(service, app_name="shop", app_user="svc", ai_model="gpt-4o").check(content)
    assert service.bodies[0]["metadata"] == {
        "app_name": "support-bot",
        "app_user": "alice",
        "ai_model": "o3",
        "user_ip": "203.0.113.9",
    }


@pytest.mark.parametrize("field", [pytest.param("session_id"), pytest.param("transaction_id")])
def test_overlong_id_is_an_extraction_error(field: str) -> None:
    """Ids over 100 characters are refused before sending."""
    service = Service()
    with pytest.raises(ExtractionError, match=field):
        make_guard(service).check(Content("hi", metadata={field: "x" * 101}))
    assert service.requests == []


def test_content_over_max_text_chars_is_refused_before_any_scan() -> None:
    """More characters than one check takes: ContentTooLarge naming the limit, no request."""
    service = Service()
    guard = make_guard(service)
    with pytest.raises(ContentTooLarge, match=f"more than the {guard.max_text_chars}") as caught:
        guard.check(Content("a" * (guard.max_text_chars + 1)))
    assert caught.value.limit == guard.max_text_chars
    assert service.requests == []


@pytest.mark.parametrize(
    ("kind", "field", "limit"),
    [
        pytest.param("prompt", "prompt", MAX_PROMPT_CHARS, id="prompt"),
        pytest.param("response", "response", MAX_RESPONSE_CHARS, id="response"),
    ],
)
def test_long_text_is_scanned_in_windows_within_the_field_limit(kind: str, field: str, limit: int) -> None:
    """A prompt over 10,000 characters (a response over 20,000) is scanned window by window."""
    service = Service()
    text = "word " * (limit // 2)  # 2.5 x the limit
    make_guard(service).check(Content(text, kind=kind))  # type: ignore[arg-type]
    items = [json.loads(request.content)["contents"][0] for request in service.requests]
    assert len(items) == 3
    assert all(len(item[field]) <= limit for item in items)
    assert "".join(item[field] for item in items).replace(" ", "").count("word") >= text.count("word")


def test_the_prompt_sent_with_a_response_is_its_last_10000_characters() -> None:
    """The prompt is context of a response scan: its tail goes with every window, within the limit."""
    service = Service()
    prompt = "p" * 15_000 + "TAIL"
    make_guard(service).check(Content("an answer", kind="response", prompt=prompt))
    item = json.loads(service.requests[0].content)["contents"][0]
    assert len(item["prompt"]) == MAX_PROMPT_CHARS
    assert item["prompt"].endswith("TAIL")


# -- responses -------------------------------------------------------------------------------


def test_documented_sample_parses() -> None:
    """The reference's DLP sample is a Block for "dlp", with the scan and report ids kept."""
    verdict = verdict_for(DLP_BLOCK)
    assert verdict.action is Action.BLOCK
    assert verdict.reasons == ["dlp"]
    assert verdict.id == "1611eb31-9cb2-41c3-be04-e9d2587f4d36"
    assert verdict.raw["report_id"] == "R1611eb31-9cb2-41c3-be04-e9d2587f4d36"
    assert verdict.guard == "palo-alto"
    assert verdict.masked_data is None


def test_benign_scan_is_an_allow_without_reasons() -> None:
    """No flag set, action allow: an Allow."""
    verdict = verdict_for(BENIGN)
    assert verdict.allowed
    assert verdict.reasons == []


@pytest.mark.parametrize(
    ("prompt_detected", "response_detected", "reasons"),
    [
        pytest.param({"injection": True}, {}, ["prompt_injection"], id="injection"),
        pytest.param({"url_cats": True, "dlp": True}, {}, ["url_cats", "dlp"], id="several"),
        pytest.param(
            {"toxic_content": True, "malicious_code": True, "agent": True, "topic_violation": True},
            {},
            ["toxic_content", "malicious_code", "agent", "topic_violation"],
            id="other-prompt-flags",
        ),
        pytest.param(
            {}, {"dlp": True, "db_security": True}, ["response_dlp", "response_db_security"], id="response"
        ),
        pytest.param({"dlp": True}, {"dlp": True}, ["dlp", "response_dlp"], id="both-sides"),
        pytest.param({"new_detector": True}, {}, ["new_detector"], id="unknown-flag-keeps-its-name"),
        pytest.param(
            {"dlp": False, "injection": "true", "agent": None}, {}, ["malicious"], id="only-true-counts"
        ),
    ],
)
def test_reasons_come_from_the_true_detection_flags(
    prompt_detected: dict[str, Any], response_detected: dict[str, Any], reasons: list[str]
) -> None:
    """Each true flag is a reason; response-side flags are prefixed with "response_"."""
    payload = {
        "action": "block",
        "category": "malicious",
        "scan_id": "s",
        "prompt_detected": prompt_detected,
        "response_detected": response_detected,
    }
    assert verdict_for(payload).reasons == reasons


def test_masked_data_is_exposed_on_the_verdict() -> None:
    """prompt_masked_data and response_masked_data become Verdict.masked_data."""
    masked = {
        "data": "bank account XXXXXXXXXX",
        "pattern_detections": [{"pattern": "bank", "locations": [[13, 23]]}],
    }
    verdict = verdict_for({**DLP_BLOCK, "prompt_masked_data": masked})
    assert verdict.masked_data == {"prompt": masked}


@pytest.mark.parametrize(
    ("value", "action"),
    [
        pytest.param("ALLOW", Action.ALLOW, id="upper"),
        pytest.param("Block", Action.BLOCK, id="title"),
        pytest.param(" allow ", Action.ALLOW, id="padded"),
    ],
)
def test_action_is_read_in_any_case(value: str, action: Action) -> None:
    """allow and block are recognised whatever their case."""
    assert verdict_for({**BENIGN, "action": value}).action is action


def test_unknown_fields_are_ignored() -> None:
    """The schema grows: new fields neither break parsing nor change the verdict."""
    verdict = verdict_for(
        {**BENIGN, "tool_detected": {"verdict": "benign"}, "created_at": "2025-01-01", "x": [1]}
    )
    assert verdict.allowed
    assert verdict.raw["created_at"] == "2025-01-01"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({**BENIGN, "category": "error"}, id="category-error"),
        pytest.param({**BENIGN, "category": "Timeout"}, id="category-timeout"),
        pytest.param({**BENIGN, "error": True}, id="error-flag"),
        pytest.param({**BENIGN, "timeout": True}, id="timeout-flag"),
        pytest.param({"category": "error", "scan_id": "s"}, id="error-without-action"),
        pytest.param({"category": "benign", "scan_id": "s"}, id="missing-action"),
        pytest.param({**BENIGN, "action": "alert"}, id="unknown-action"),
    ],
)
def test_incomplete_scan_is_never_an_allow(payload: dict[str, Any]) -> None:
    """A scan that errored or timed out, or has no known action, is a transient GuardResponseError."""
    with pytest.raises(GuardResponseError) as info:
        verdict_for(payload)
    assert info.value.transient


def test_block_stands_even_when_the_scan_reports_an_error() -> None:
    """A Block is never turned into an error: fail closed."""
    verdict = verdict_for({**DLP_BLOCK, "category": "error", "error": True})
    assert verdict.blocked


# -- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error", "transient", "attempts"),
    [
        pytest.param(
            httpx.Response(400, json={"error": {"message": "Invalid AI profile"}}),
            GuardResponseError,
            False,
            1,
            id="400",
        ),
        pytest.param(
            httpx.Response(401, json={"error": {"message": "Unauthorized"}}),
            GuardAuthError,
            False,
            1,
            id="401",
        ),
        pytest.param(httpx.Response(403), GuardAuthError, False, 1, id="403"),
        pytest.param(httpx.Response(415), GuardResponseError, False, 1, id="415"),
        pytest.param(httpx.Response(429, headers={"Retry-After": "0"}), GuardRateLimited, True, 3, id="429"),
        pytest.param(httpx.Response(500), GuardUnavailable, True, 3, id="500"),
        pytest.param(httpx.Response(502), GuardUnavailable, True, 3, id="502"),
        pytest.param(httpx.ConnectError("connection refused"), GuardUnavailable, True, 3, id="connect-error"),
        pytest.param(
            httpx.Response(200, content=b"not json"), GuardResponseError, True, 3, id="malformed-json"
        ),
        pytest.param(httpx.Response(200, content=b""), GuardResponseError, True, 3, id="empty-body"),
        pytest.param(httpx.Response(200, json="block"), GuardResponseError, True, 3, id="not-an-object"),
    ],
)
@pytest.mark.anyio
async def test_failures_map_to_guard_errors(
    check: Check, answer: Answer, error: type[GuardError], transient: bool, attempts: int
) -> None:
    """Each failure raises its GuardError class; transient ones only after the retries."""
    service = Service(answer)
    with pytest.raises(error) as info:
        await check(make_guard(service, retries=2), "hi")
    assert type(info.value) is error
    assert info.value.transient is transient
    assert info.value.guard == "palo-alto"
    assert len(service.requests) == attempts


@pytest.mark.anyio
async def test_400_message_comes_from_the_body(check: Check) -> None:
    """A 400 carries the service's error message."""
    answer = httpx.Response(400, json={"error": {"message": "AI profile not found"}})
    with pytest.raises(GuardResponseError, match="AI profile not found") as info:
        await check(make_guard(Service(answer)), "hi")
    assert info.value.status_code == 400


@pytest.mark.anyio
async def test_rate_limit_then_success_returns_the_verdict(check: Check) -> None:
    """Unlike the vendor SDK, a 429 is retried."""
    service = Service(httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200, json=DLP_BLOCK))
    verdict = await check(make_guard(service), "hi")
    assert verdict.blocked
    assert len(service.requests) == 2


@pytest.mark.anyio
async def test_rate_limit_retry_waits_as_long_as_retry_after(check: Check) -> None:
    """After a 429 the next attempt waits at least the Retry-After the service asked for."""
    service = Service(httpx.Response(429, headers={"Retry-After": "0.2"}))
    started = time.monotonic()
    with pytest.raises(GuardRateLimited):
        await check(make_guard(service, retries=1), "hi")
    assert time.monotonic() - started >= 0.2
    assert len(service.requests) == 2


@pytest.mark.anyio
async def test_redirect_is_not_followed(check: Check) -> None:
    """The token never goes to a redirect's Location."""
    service = Service(httpx.Response(301, headers={"Location": "https://elsewhere.example/"}))
    with pytest.raises(GuardResponseError, match="redirect"):
        await check(make_guard(service), "hi")
    assert len(service.requests) == 1


@pytest.mark.anyio
async def test_oversized_response_is_a_response_error(check: Check) -> None:
    """A body past max_response_bytes is a GuardResponseError."""
    service = Service(httpx.Response(200, json={**BENIGN, "padding": "x" * 4000}))
    with pytest.raises(GuardResponseError, match="larger than the cap"):
        await check(make_guard(service, max_response_bytes=1024, retries=0), "hi")


def test_check_never_outlasts_its_timeout() -> None:
    """A service that never answers costs `timeout`, retries included, then GuardTimeout."""

    def hang(request: httpx.Request) -> httpx.Response:
        # What a real transport does: wait out the read timeout it was given, then give up.
        time.sleep(request.extensions["timeout"]["read"])
        raise httpx.ReadTimeout("no answer", request=request)

    started = time.monotonic()
    with pytest.raises(GuardTimeout):
        make_guard(hang, timeout=0.3, retries=5).check("hi")
    assert 0.3 <= time.monotonic() - started < 0.9


@pytest.mark.anyio
async def test_acheck_never_outlasts_its_timeout() -> None:
    """Even a transport that ignores timeouts is cut off at the deadline."""

    async def hang(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)
        raise AssertionError("unreachable")

    guard = PaloAltoAIRS(KEY, profile_name="p", transport=httpx.MockTransport(hang), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(GuardTimeout):
        await guard.acheck("hi")
    assert time.monotonic() - started < 0.9


# -- secrets ---------------------------------------------------------------------------------


def _echo(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message}})


FAULTS: Sequence[Any] = [
    pytest.param(_echo(400, f"x-pan-token {KEY} has no profile"), id="400-echoing-the-key"),
    pytest.param(_echo(401, f"invalid token: {KEY}"), id="401-echoing-the-key"),
    pytest.param(_echo(403, "y" * 190 + KEY), id="403-echoing-a-truncated-key"),
    pytest.param(httpx.Response(429, headers={"Retry-After": "0"}, json={"error": KEY}), id="429"),
    pytest.param(_echo(503, KEY), id="503"),
    pytest.param(httpx.ConnectError("connection refused"), id="connect-error"),
    pytest.param(httpx.Response(200, content=b"{"), id="malformed"),
    pytest.param(httpx.Response(200, content=b""), id="empty"),
    pytest.param(httpx.Response(308, headers={"Location": "https://elsewhere.example/"}), id="redirect"),
    pytest.param(httpx.Response(200, json={**BENIGN, "category": "error"}), id="scan-error"),
    pytest.param(httpx.ReadTimeout("slow"), id="timeout"),
]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.anyio
async def test_key_never_appears_in_errors_reprs_or_logs(
    check: Check, fault: Answer, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever fails, and whatever the service echoes, the key is in no message, repr or log record."""
    caplog.set_level(logging.DEBUG)
    guard = make_guard(Service(fault), retries=1)
    with pytest.raises(GuardError) as info:
        await check(guard, "hi")
    seen = [repr(guard), str(guard), str(info.value), repr(info.value), caplog.text]
    seen += [str(cause) for cause in (info.value.__cause__, info.value.__context__) if cause is not None]
    seen += [record.getMessage() for record in caplog.records]
    for text in seen:
        assert KEY[:12] not in text


def test_repr_shows_the_configuration_not_the_key() -> None:
    """The repr is useful in logs and holds no secret."""
    guard = PaloAltoAIRS(KEY, profile_name="airs-sec-profile", region="eu")
    assert repr(guard) == (
        "PaloAltoAIRS(profile_name='airs-sec-profile', "
        "base_url='https://service-de.api.aisecurity.paloaltonetworks.com', timeout=10)"
    )
    assert KEY not in repr(vars(guard))
