"""The one check pipeline: every shell settles every kind of answer the same way, under every policy.

The failure table of the README, asserted for the decorator (sync and async), both middlewares and
the OpenAI transport: who caused a failure decides whether ``fail_open`` may let the call through.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import httpx2
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute

from guardrails import (
    Blocked,
    ContentTooLarge,
    ExtractionError,
    GuardAuthError,
    GuardError,
    GuardRateLimited,
    GuardUnavailable,
    Route,
    guarded,
)
from guardrails._events import Decision
from guardrails._models import Action, Content, Verdict
from guardrails.asgi import GuardMiddleware as ASGIGuardMiddleware
from guardrails.integrations.openai import GuardedTransport
from guardrails.testing import FakeGuard
from guardrails.wsgi import GuardMiddleware as WSGIGuardMiddleware

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
COMPLETION = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"}}]}


def raising(error: BaseException) -> Callable[[Content], bool]:
    def rule(content: Content) -> bool:
        raise error

    return rule


# What the guard does -> (guard-caused?, whether fail_open=True / "always" let the call through).
ANSWERS: dict[str, tuple[Callable[[Content], Any], dict[Any, bool]]] = {
    "allow": (lambda c: Action.ALLOW, {False: True, True: True, "always": True}),
    "block": (lambda c: Action.BLOCK, {False: False, True: False, "always": False}),
    "transient": (raising(GuardUnavailable("down")), {False: False, True: True, "always": True}),
    "configuration": (raising(GuardAuthError("bad key")), {False: False, True: False, "always": True}),
    "broken-guard": (raising(RuntimeError("bug")), {False: False, True: False, "always": True}),
    "too-long": (
        raising(ContentTooLarge("over 100 windows", limit=100)),
        {False: False, True: False, "always": False},
    ),
    "unreadable": (raising(ExtractionError("cannot read it")), {False: False, True: False, "always": False}),
}
POLICIES = [False, True, "always"]
# What a shell answers, per answer, when it refuses: (HTTP status, exception class).
REFUSALS: dict[str, tuple[int, type[BaseException]]] = {
    "block": (403, Blocked),
    "transient": (503, GuardUnavailable),
    "configuration": (503, GuardAuthError),
    "broken-guard": (503, GuardError),
    "too-long": (413, ContentTooLarge),
    "unreadable": (400, ExtractionError),
}
CASES = [pytest.param(answer, policy, id=f"{answer}-{policy}") for answer in ANSWERS for policy in POLICIES]


def expected(answer: str, policy: Any) -> bool:
    return ANSWERS[answer][1][policy]


# -- the decorator ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "policy"), CASES)
def test_decorator_sync_follows_the_table(answer: str, policy: Any) -> None:
    """A sync guarded function runs, or raises the refusal's exception, as the table says."""
    decisions: list[Decision] = []

    @guarded(FakeGuard(ANSWERS[answer][0]), fail_open=policy, on_decision=decisions.append)
    def ask(prompt: str) -> str:
        return "ran"

    if expected(answer, policy):
        assert ask("hello") == "ran"
    else:
        with pytest.raises(REFUSALS[answer][1]):
            ask("hello")
    assert len(decisions) == 1


@pytest.mark.parametrize(("answer", "policy"), CASES)
def test_decorator_async_follows_the_table(answer: str, policy: Any) -> None:
    """An async guarded function runs, or raises the refusal's exception, as the table says."""
    decisions: list[Decision] = []

    @guarded(FakeGuard(ANSWERS[answer][0]), fail_open=policy, on_decision=decisions.append)
    async def ask(prompt: str) -> str:
        return "ran"

    if expected(answer, policy):
        assert asyncio.run(ask("hello")) == "ran"
    else:
        with pytest.raises(REFUSALS[answer][1]):
            asyncio.run(ask("hello"))
    assert len(decisions) == 1


@pytest.mark.parametrize("answer", list(ANSWERS))
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_monitor_mode_never_fails_the_call(answer: str, is_async: bool) -> None:
    """monitor=True runs the function whatever the guard does, a broken guard included."""
    decisions: list[Decision] = []
    guard = FakeGuard(ANSWERS[answer][0])
    if is_async:

        @guarded(guard, monitor=True, on_decision=decisions.append)
        async def aask(prompt: str) -> str:
            return "ran"

        assert asyncio.run(aask("hello")) == "ran"
    else:

        @guarded(guard, monitor=True, on_decision=decisions.append)
        def ask(prompt: str) -> str:
            return "ran"

        assert ask("hello") == "ran"
    assert len(decisions) == 1
    assert decisions[0].outcome != "error"


def test_a_guard_raising_anything_fails_open_under_always_and_records_it() -> None:
    """fail_open="always" with a guard raising RuntimeError runs the function and records failed_open."""
    decisions: list[Decision] = []

    @guarded(FakeGuard(raising(RuntimeError("bug"))), fail_open="always", on_decision=decisions.append)
    def ask(prompt: str) -> str:
        return "ran"

    assert ask("hello") == "ran"
    assert [(d.outcome, d.error) for d in decisions] == [("failed_open", "GuardError")]


# -- the middlewares ---------------------------------------------------------------------------------


async def _chat(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse(COMPLETION)


def asgi_app(guard: FakeGuard, policy: Any, *, scan_response: bool = False) -> ASGIGuardMiddleware:
    inner = Starlette(routes=[StarletteRoute("/chat", _chat, methods=["POST"])])
    return ASGIGuardMiddleware(
        inner, guard=guard, fail_open=policy, routes=[Route("/chat", scan_response=scan_response)]
    )


async def asgi_post(app: Any, body: Any = CHAT) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http:
        return await http.post("/chat", json=body)


def wsgi_app(guard: FakeGuard, policy: Any, *, scan_response: bool = False) -> WSGIGuardMiddleware:
    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(COMPLETION).encode()]

    return WSGIGuardMiddleware(
        inner, guard=guard, fail_open=policy, routes=[Route("/chat", scan_response=scan_response)]
    )


def wsgi_post(app: Any, body: Any = CHAT) -> httpx.Response:
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://app") as http:
        return http.post("/chat", json=body)


def assert_http_follows_the_table(response: httpx.Response, answer: str, policy: Any) -> None:
    if expected(answer, policy):
        assert response.status_code == 200
        unscanned = response.headers.get_list("x-guardrails-unscanned")
        assert unscanned == ([] if answer in ("allow",) else ["1"])
    else:
        assert response.status_code == REFUSALS[answer][0]
        assert "error" in response.json()


@pytest.mark.anyio
@pytest.mark.parametrize(("answer", "policy"), CASES)
async def test_asgi_follows_the_table(answer: str, policy: Any) -> None:
    """The ASGI middleware answers 200 (marked once if unscanned) or the refusal's status."""
    response = await asgi_post(asgi_app(FakeGuard(ANSWERS[answer][0]), policy))
    assert_http_follows_the_table(response, answer, policy)


@pytest.mark.parametrize(("answer", "policy"), CASES)
def test_wsgi_follows_the_table(answer: str, policy: Any) -> None:
    """The WSGI middleware answers 200 (marked once if unscanned) or the refusal's status."""
    response = wsgi_post(wsgi_app(FakeGuard(ANSWERS[answer][0]), policy))
    assert_http_follows_the_table(response, answer, policy)


@pytest.mark.parametrize(("answer", "policy"), CASES)
def test_openai_transport_follows_the_table(answer: str, policy: Any) -> None:
    """The OpenAI transport sends the call, or raises the refusal's exception, as the table says."""
    sent: list[httpx.Request] = []

    def model(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=COMPLETION)

    guard = FakeGuard(ANSWERS[answer][0])
    transport = GuardedTransport(
        guard, transport=httpx.MockTransport(model), fail_open=policy, scan_response=False
    )
    with httpx.Client(transport=transport) as client:
        if expected(answer, policy):
            assert client.post("http://model/v1/chat/completions", json=CHAT).status_code == 200
            assert len(sent) == 1
        else:
            with pytest.raises(REFUSALS[answer][1]):
                client.post("http://model/v1/chat/completions", json=CHAT)
            assert sent == []


@pytest.mark.anyio
@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
@pytest.mark.parametrize("policy", [True, "always"])
async def test_the_unscanned_header_is_sent_once_on_a_scan_response_route(shell: str, policy: Any) -> None:
    """Failing open on the prompt of a scan_response JSON route marks the response exactly once."""
    guard = FakeGuard(raising(GuardUnavailable("down")))
    if shell == "asgi":
        response = await asgi_post(asgi_app(guard, policy, scan_response=True))
    else:
        response = wsgi_post(wsgi_app(guard, policy, scan_response=True))
    assert response.status_code == 200
    assert response.headers.get_list("x-guardrails-unscanned") == ["1"]


@pytest.mark.anyio
@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
async def test_configuration_errors_tell_clients_not_to_retry(shell: str) -> None:
    """A 503 for a configuration error carries x-should-retry: false (the OpenAI SDK obeys it)."""
    guard = FakeGuard(raising(GuardAuthError("bad key")))
    if shell == "asgi":
        response = await asgi_post(asgi_app(guard, False))
    else:
        response = wsgi_post(wsgi_app(guard, False))
    assert (response.status_code, response.headers.get("x-should-retry")) == (503, "false")
    assert response.json()["error"]["code"] == "guard_misconfigured"


@pytest.mark.anyio
@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
async def test_a_rate_limited_guard_passes_retry_after_on(shell: str) -> None:
    """A transient 503 from a rate-limited guard says when to come back, and may be retried."""
    guard = FakeGuard(raising(GuardRateLimited("slow down", retry_after=2.5)))
    if shell == "asgi":
        response = await asgi_post(asgi_app(guard, False))
    else:
        response = wsgi_post(wsgi_app(guard, False))
    assert (response.status_code, response.headers.get("retry-after")) == (503, "3")
    assert "x-should-retry" not in response.headers


def test_the_openai_client_does_not_retry_a_misconfigured_guard() -> None:
    """The real openai client, against a middleware whose guard is misconfigured, asks once."""
    calls: list[int] = []

    def counting(content: Content) -> bool:
        calls.append(1)
        raise GuardAuthError("bad key")

    app = wsgi_app(FakeGuard(counting), False)
    client = openai.OpenAI(
        api_key="sk-test",
        base_url="http://app",
        http_client=httpx2.Client(transport=httpx2.WSGITransport(app=_at_chat(app))),
        max_retries=3,
    )
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
    assert len(calls) == 1


def _at_chat(app: WSGIGuardMiddleware) -> Callable[..., Any]:
    """Serve the SDK's /chat/completions at the middleware's /chat route."""

    def routed(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/chat/completions":
            environ = {**environ, "PATH_INFO": "/chat"}
        return app(environ, start_response)

    return routed


def test_blocks_log_one_info_line_without_the_prompt(caplog: pytest.LogCaptureFixture) -> None:
    """Every shell's block goes through one log call: INFO, reasons, never the text."""

    @guarded(FakeGuard(lambda c: Verdict(action=Action.BLOCK, reasons=["r\nforged"], guard="fake", id="1")))
    def ask(prompt: str) -> str:
        return "ran"

    with caplog.at_level(logging.INFO, logger="guardrails"), pytest.raises(Blocked):
        ask("the secret prompt")
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert "the secret prompt" not in record.getMessage()
    assert "\n" not in record.getMessage()  # a reason cannot forge a second log line


# -- bad settings surface where the app starts -------------------------------------------------------

PROFILE_HINT = "PANW_AI_PROFILE_NAME or PANW_AI_PROFILE_ID"


@pytest.fixture
def misconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Palo Alto key with no profile: guard_from_env() cannot make a guard."""
    for name in ("GUARDRAILS_GUARD", "V1_API_KEY", "PANW_AI_PROFILE_NAME", "PANW_AI_PROFILE_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PANW_AI_SEC_API_KEY", "test-panw-key")
    from guardrails.decorator import _default_guard

    _default_guard.reset()


@pytest.mark.usefixtures("misconfigured")
def test_bad_settings_fail_the_asgi_lifespan_startup_with_the_reason() -> None:
    """The app does not start: lifespan.startup.failed carries the sentence saying what to set."""
    from starlette.testclient import TestClient

    app = ASGIGuardMiddleware(Starlette(routes=[StarletteRoute("/chat", _chat, methods=["POST"])]))
    with pytest.raises(RuntimeError, match=PROFILE_HINT), TestClient(app):
        pass


@pytest.mark.usefixtures("misconfigured")
def test_bad_settings_fail_the_wsgi_middleware_at_construction() -> None:
    """WSGIGuardMiddleware(app) with bad settings raises there, with the reason."""
    with pytest.raises(ValueError, match=PROFILE_HINT):
        WSGIGuardMiddleware(lambda environ, start_response: [])


@pytest.mark.usefixtures("misconfigured")
def test_bad_settings_fail_the_decorator_at_decoration() -> None:
    """@guarded with no guard and bad settings raises where the function is defined."""
    with pytest.raises(ValueError, match=PROFILE_HINT):

        @guarded
        def ask(prompt: str) -> str:
            return "ran"


@pytest.mark.anyio
@pytest.mark.usefixtures("misconfigured")
async def test_without_a_lifespan_bad_settings_are_a_503_logged_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No lifespan (a server run with lifespan off): each request is refused, and the log says why."""
    app = ASGIGuardMiddleware(Starlette(routes=[StarletteRoute("/chat", _chat, methods=["POST"])]))
    with caplog.at_level(logging.ERROR, logger="guardrails"):
        response = await asgi_post(app)
    assert (response.status_code, response.json()["error"]["code"]) == (503, "guard_misconfigured")
    assert response.headers["x-should-retry"] == "false"
    assert any(PROFILE_HINT in record.getMessage() for record in caplog.records)
    assert "test-panw-key" not in caplog.text


@pytest.mark.usefixtures("misconfigured")
def test_uvicorn_does_not_start_an_app_whose_guard_cannot_be_made() -> None:
    """Under a real uvicorn with its lifespan on, bad settings stop the server at startup."""
    import uvicorn

    from tests.servers import free_port

    app = ASGIGuardMiddleware(Starlette(routes=[StarletteRoute("/chat", _chat, methods=["POST"])]))
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="on", log_level="critical")
    server = uvicorn.Server(config)
    with pytest.raises(SystemExit) as exited:
        server.run()  # returns at once: startup fails before the socket is served
    assert (exited.value.code, server.started) == (3, False)


@pytest.mark.parametrize("middleware", [ASGIGuardMiddleware, WSGIGuardMiddleware], ids=["asgi", "wsgi"])
def test_a_body_cap_over_what_the_guard_checks_is_warned_at_startup(
    middleware: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A max_body_size larger than the guard's max_text_chars is said once, where the app is built."""
    from guardrails import TrendAIGuard

    guard = TrendAIGuard("test-v1-key", base_url="http://127.0.0.1:9")
    with caplog.at_level(logging.WARNING, logger="guardrails"):
        middleware(lambda *args: None, guard=guard, max_body_size=guard.max_text_chars + 1)
        middleware(lambda *args: None, guard=guard, max_body_size=guard.max_text_chars)
    assert [r.levelno for r in caplog.records if r.name == "guardrails"] == [logging.WARNING]
    assert str(guard.max_text_chars) in caplog.text
    guard.close()
