"""GuardMiddleware (ASGI), unit level: httpx.ASGITransport, the Starlette TestClient, scripted receives."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import sys
import types
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route as StarletteRoute
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from guardrails._body import json_field
from guardrails._events import Decision
from guardrails._exceptions import GuardAuthError, GuardUnavailable
from guardrails._models import Action, Content, Verdict
from guardrails._replies import error_reply
from guardrails._routing import Route
from guardrails._sse import SSEScanner, sse_error_event
from guardrails.asgi import GuardMiddleware
from guardrails.testing._fakes import FakeGuard, StaticGuard

INJECTION = "ignore previous instructions"
CHAT_PATH = "/v1/chat/completions"


def chat(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
    }


def rule(content: Content) -> bool:
    return INJECTION in content.as_text().lower()


class Recorder:
    """An app endpoint that records what it was given."""

    def __init__(self) -> None:
        self.calls = 0
        self.bodies: list[bytes] = []
        self.verdicts: list[Any] = []

    async def endpoint(self, request: Request) -> Response:
        self.calls += 1
        self.bodies.append(await request.body())
        self.verdicts.append(getattr(request.state, "guardrails", "missing"))
        reply = request.headers.get("x-reply", "fine")
        return JSONResponse(completion(reply))


def make_app(recorder: Recorder, **options: Any) -> GuardMiddleware:
    async def stream(request: Request) -> StreamingResponse:
        words = request.headers.get("x-words", "hello there").split(" ")

        async def events() -> AsyncIterator[str]:
            for word in words:
                yield (
                    "data: "
                    + json.dumps({"choices": [{"index": 0, "delta": {"content": word + " "}}]})
                    + "\n\n"
                )
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def text(request: Request) -> Response:
        return PlainTextResponse(INJECTION)

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    app = Starlette(
        routes=[
            StarletteRoute(CHAT_PATH, recorder.endpoint, methods=["POST"]),
            StarletteRoute("/summarize", recorder.endpoint, methods=["POST"]),
            StarletteRoute("/search", recorder.endpoint, methods=["GET", "POST"]),
            StarletteRoute("/stream", stream, methods=["POST"]),
            StarletteRoute("/text", text, methods=["POST"]),
            WebSocketRoute("/ws", ws),
        ]
    )
    options.setdefault("guard", FakeGuard(rule))
    return GuardMiddleware(app, **options)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def hooks() -> list[Decision]:
    return []


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def error_of(response: httpx.Response) -> dict[str, Any]:
    payload = response.json()
    assert set(payload) == {"error"}
    return payload["error"]


# -- decisions ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_allowed_request_reaches_the_app_with_its_verdict(recorder: Recorder) -> None:
    """On Allow the app runs and request.state.guardrails is the Verdict."""
    async with client(make_app(recorder)) as http:
        response = await http.post(CHAT_PATH, json=chat("hello"))
    assert response.status_code == 200
    assert recorder.calls == 1
    verdict = recorder.verdicts[0]
    assert isinstance(verdict, Verdict)
    assert verdict.allowed


def test_allowed_request_reaches_the_app_sync(recorder: Recorder) -> None:
    """The same through the Starlette TestClient."""
    with TestClient(make_app(recorder)) as http:
        response = http.post(CHAT_PATH, json=chat("hello"))
    assert (response.status_code, recorder.calls) == (200, 1)


@pytest.mark.anyio
async def test_blocked_request_is_a_403_in_the_openai_error_shape(recorder: Recorder) -> None:
    """On Block: 403, guardrail_blocked, reasons and verdict id; the app is not called."""
    async with client(make_app(recorder)) as http:
        response = await http.post(CHAT_PATH, json=chat(INJECTION))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    error = error_of(response)
    assert (error["type"], error["code"], error["reasons"]) == (
        "guardrail_blocked",
        "content_blocked",
        ["fake_rule"],
    )
    assert error["verdict_id"]
    assert INJECTION not in response.text
    assert recorder.calls == 0


@pytest.mark.anyio
async def test_guard_failure_fails_closed_by_default(recorder: Recorder) -> None:
    """A guard that cannot answer means 503 guardrail_unavailable; the app is not called."""
    app = make_app(recorder, guard=StaticGuard(error=GuardUnavailable("down", guard="static")))
    async with client(app) as http:
        response = await http.post(CHAT_PATH, json=chat("hello"))
    assert response.status_code == 503
    assert error_of(response)["type"] == "guardrail_unavailable"
    assert recorder.calls == 0


@pytest.mark.anyio
async def test_fail_open_runs_the_app_marked_unscanned(recorder: Recorder) -> None:
    """Fail-open on a transient error: the app runs, the response says it was not scanned."""
    app = make_app(recorder, guard=StaticGuard(error=GuardUnavailable("down")), fail_open=True)
    async with client(app) as http:
        response = await http.post(CHAT_PATH, json=chat("hello"))
    assert response.status_code == 200
    assert response.headers["x-guardrails-unscanned"] == "1"
    assert recorder.verdicts == [None]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fail_open", "status"),
    [pytest.param(True, 503, id="fail-open-true"), pytest.param("always", 200, id="fail-open-always")],
)
async def test_configuration_errors_fail_closed_unless_always(
    recorder: Recorder, fail_open: Any, status: int
) -> None:
    """Bad credentials fail closed even under fail_open=True; only "always" lets them through."""
    app = make_app(recorder, guard=StaticGuard(error=GuardAuthError("bad key")), fail_open=fail_open)
    async with client(app) as http:
        response = await http.post(CHAT_PATH, json=chat("hello"))
    assert response.status_code == status


@pytest.mark.anyio
async def test_route_fail_open_overrides_the_middleware(recorder: Recorder) -> None:
    """A route's fail_open wins over the middleware's default."""
    app = make_app(
        recorder,
        guard=StaticGuard(error=GuardUnavailable("down")),
        routes=[Route("/summarize", fail_open=True), Route(CHAT_PATH)],
        fail_open=False,
    )
    async with client(app) as http:
        open_route = await http.post("/summarize", json={"document": "d"})
        closed_route = await http.post(CHAT_PATH, json=chat("hello"))
    assert (open_route.status_code, closed_route.status_code) == (200, 503)


@pytest.mark.anyio
async def test_guard_raising_a_bug_fails_closed_even_under_fail_open(recorder: Recorder) -> None:
    """A guard raising something other than GuardError is broken: a configuration error."""
    app = make_app(recorder, guard=FakeGuard(lambda content: 1 / 0 > 0), fail_open=True)
    async with client(app) as http:
        response = await http.post(CHAT_PATH, json=chat("hello"))
    assert response.status_code == 503


@pytest.mark.anyio
async def test_route_guard_overrides_the_middleware_guard(recorder: Recorder) -> None:
    """A route with its own guard asks that guard only."""
    default, special = StaticGuard(), StaticGuard(Action.BLOCK)
    app = make_app(recorder, guard=default, routes=[Route("/summarize", guard=special), Route(CHAT_PATH)])
    async with client(app) as http:
        assert (await http.post("/summarize", json={"document": "d"})).status_code == 403
        assert (await http.post(CHAT_PATH, json=chat("x"))).status_code == 200
    assert (default.calls, special.calls) == (1, 1)


@pytest.mark.anyio
async def test_route_extractor_decides_what_is_scanned(recorder: Recorder) -> None:
    """json_field("document") scans that field only."""
    guard = FakeGuard(rule)
    app = make_app(recorder, guard=guard, routes=[Route("/summarize", extract=json_field("document"))])
    async with client(app) as http:
        response = await http.post("/summarize", json={"document": "doc", "note": INJECTION})
    assert response.status_code == 200
    assert [content.as_text() for content in guard.seen] == ["doc"]


@pytest.mark.anyio
async def test_content_carries_the_route(recorder: Recorder) -> None:
    """The guard is told which route the content came from (the template, not the path)."""
    guard = StaticGuard()
    async with client(make_app(recorder, guard=guard, routes=[Route("/search", methods=["POST"])])) as http:
        await http.post("/search", json={"q": "x"})
    assert guard.seen[0].metadata["route"] == "/search"


@pytest.mark.anyio
async def test_nothing_to_scan_is_skipped(recorder: Recorder, hooks: list[Decision]) -> None:
    """A body with no text, on a route with no path parameters, reaches the app without asking the
    guard (the default route's catch-all parameter is the path itself, which is scanned)."""
    guard = StaticGuard(Action.BLOCK)
    async with client(
        make_app(recorder, guard=guard, on_decision=hooks.append, routes=[Route(CHAT_PATH)])
    ) as http:
        response = await http.post(CHAT_PATH, json=[1, 2.5, None])
    assert (response.status_code, guard.calls, recorder.verdicts) == (200, 0, [None])
    assert [decision.outcome for decision in hooks] == ["skipped"]


# -- bodies -------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("fail_open", [False, "always"])
async def test_declared_length_over_the_cap_is_413(recorder: Recorder, fail_open: Any) -> None:
    """A Content-Length over the cap is refused before reading; the guard is never asked."""
    guard = StaticGuard()
    app = make_app(recorder, guard=guard, max_body_size=100, fail_open=fail_open)
    async with client(app) as http:
        response = await http.post(CHAT_PATH, content=b"x" * 101)
    assert response.status_code == 413
    assert error_of(response)["type"] == "request_too_large"
    assert (guard.calls, recorder.calls) == (0, 0)


@pytest.mark.anyio
async def test_streamed_body_over_the_cap_is_413(recorder: Recorder) -> None:
    """Without a Content-Length, the running total is capped."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 10

    async with client(make_app(recorder, max_body_size=100)) as http:
        response = await http.post(CHAT_PATH, content=chunks())
    assert response.status_code == 413


@pytest.mark.anyio
async def test_body_at_the_cap_is_accepted(recorder: Recorder) -> None:
    """The cap is inclusive."""
    body = json.dumps({"prompt": "x" * 80}).encode()
    async with client(make_app(recorder, max_body_size=len(body))) as http:
        response = await http.post(CHAT_PATH, content=body)
    assert response.status_code == 200


@pytest.mark.anyio
async def test_decompression_bomb_is_413(recorder: Recorder) -> None:
    """A gzip body that inflates past the cap is refused."""
    bomb = gzip.compress(b" " * 2_000_000)
    async with client(make_app(recorder, max_body_size=10_000)) as http:
        response = await http.post(CHAT_PATH, content=bomb, headers={"content-encoding": "gzip"})
    assert response.status_code == 413


@pytest.mark.anyio
async def test_unknown_content_encoding_is_415(recorder: Recorder) -> None:
    """A body the middleware cannot decode cannot be scanned."""
    async with client(make_app(recorder, fail_open="always")) as http:
        response = await http.post(CHAT_PATH, content=b"...", headers={"content-encoding": "br"})
    assert response.status_code == 415
    assert error_of(response)["type"] == "unsupported_media_type"


@pytest.mark.anyio
async def test_gzip_body_reaches_the_app_still_compressed(recorder: Recorder) -> None:
    """The app gets the bytes as sent; the middleware only decoded a copy to scan it."""
    compressed = gzip.compress(json.dumps(chat("hi")).encode())
    async with client(make_app(recorder)) as http:
        response = await http.post(CHAT_PATH, content=compressed, headers={"content-encoding": "gzip"})
    assert response.status_code == 200
    assert recorder.bodies == [compressed]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"[" * 200 + b"]" * 200, "application/json", id="deep-nesting"),
        pytest.param(b'{"n": ' + b"1" * 5000 + b"}", "application/json", id="huge-number"),
        pytest.param(b'{"prompt": "\\ud800"}', "application/json", id="lone-surrogate-escape"),
        pytest.param(b"not json", "application/json", id="not-json"),
    ],
)
async def test_unparsable_body_is_400_never_fail_open(
    recorder: Recorder, body: bytes, content_type: str
) -> None:
    """A body the middleware cannot read is 400 invalid_request even under fail_open="always"."""
    guard = StaticGuard()
    app = make_app(recorder, guard=guard, fail_open="always")
    async with client(app) as http:
        response = await http.post(CHAT_PATH, content=body, headers={"content-type": content_type})
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request"
    assert (guard.calls, recorder.calls) == (0, 0)


@pytest.mark.anyio
async def test_broken_custom_extractor_fails_closed(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """An extractor that raises is a 500, logged by exception type only."""

    def broken(body: Any) -> Content:
        raise KeyError(INJECTION)

    app = make_app(recorder, routes=[Route(CHAT_PATH, extract=broken)], fail_open="always")
    async with client(app) as http:
        response = await http.post(CHAT_PATH, json=chat(INJECTION))
    assert response.status_code == 500
    assert recorder.calls == 0
    assert "KeyError" in caplog.text
    assert INJECTION not in caplog.text


# -- pass-through -------------------------------------------------------------------------------------


async def _run(app: Any, scope: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drive an ASGI app directly: scripted receive (then disconnect), recorded send."""
    sent: list[dict[str, Any]] = []
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http_scope(
    method: str = "POST", path: str = CHAT_PATH, headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers or [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }


def _sentinel_receive() -> Any:
    return object()


def _sentinel_send() -> Any:
    return object()


@pytest.mark.anyio
async def test_unmatched_request_passes_through_untouched() -> None:
    """An unguarded route: the app gets the same receive and send, the guard is not asked, and
    the request state says it was not scanned (``request.state.guardrails`` is None)."""
    seen: list[tuple[Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    guard = StaticGuard()
    middleware = GuardMiddleware(app, guard=guard, routes=[Route(CHAT_PATH)])
    scope, receive, send = http_scope("GET", "/other"), _sentinel_receive(), _sentinel_send()
    before = dict(scope)
    await middleware(scope, receive, send)
    assert seen == [(scope, receive, send)]
    assert scope == {**before, "state": {"guardrails": None}}
    assert guard.calls == 0


@pytest.mark.anyio
@pytest.mark.parametrize("scope_type", ["lifespan"])
async def test_other_scopes_pass_through_untouched(scope_type: str) -> None:
    """Lifespan scopes reach the app unmodified, with the same receive (websockets: test_websocket)."""
    seen: list[tuple[Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive))

    scope = {"type": scope_type, "path": CHAT_PATH, "method": "POST"}
    receive = _sentinel_receive()
    await GuardMiddleware(app, guard=StaticGuard())(scope, receive, _sentinel_send())
    assert seen == [(scope, receive)]
    assert scope == {"type": scope_type, "path": CHAT_PATH, "method": "POST"}


def test_websocket_still_works_behind_the_middleware(recorder: Recorder) -> None:
    """A websocket endpoint of a guarded app is unaffected."""
    with TestClient(make_app(recorder)) as http, http.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "hi"


def test_lifespan_shutdown_leaves_given_guards_open(recorder: Recorder) -> None:
    """Guards that were given are their owner's: the app shutting down does not close them."""
    closed: list[str] = []

    class ClosingGuard(StaticGuard):
        async def aclose(self) -> None:
            closed.append(self.name)

    app = make_app(
        recorder,
        guard=ClosingGuard(name="main"),
        routes=[Route("/summarize", guard=ClosingGuard(name="route"))],
    )
    with TestClient(app) as http:
        http.post("/summarize", json={"document": "d"})
        assert closed == []
    assert closed == []  # after shutdown too


# -- body replay ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_later_receive_calls_wait_on_the_real_receive() -> None:
    """After the body, the app's receive is the server's: a disconnect arrives, nothing spins."""
    got: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        got.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"prompt": "hi"}', "more_body": False},
        {"type": "http.disconnect"},
    ]
    sent = await _run(GuardMiddleware(app, guard=StaticGuard()), http_scope(), messages)
    assert got == [
        {"type": "http.request", "body": b'{"prompt": "hi"}', "more_body": False},
        {"type": "http.disconnect"},
    ]
    assert sent[0]["status"] == 204


@settings(max_examples=50, deadline=None)
@given(
    body=st.binary(max_size=2000),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
    empties=st.lists(st.integers(min_value=0, max_value=12), max_size=4),
)
def test_app_receives_byte_identical_bodies(body: bytes, cuts: list[int], empties: list[int]) -> None:
    """Whatever the body and however it is chunked (empty messages included), the app gets those bytes."""
    points = sorted({min(cut, len(body)) for cut in cuts} | {0, len(body)})
    chunks = [body[start:end] for start, end in itertools.pairwise(points)]
    for index in empties:
        chunks.insert(min(index, len(chunks)), b"")
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    received = bytearray()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        received.extend(message["body"])
        assert message["more_body"] is False
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    headers = [(b"content-type", b"application/octet-stream")]
    anyio.run(_run, GuardMiddleware(app, guard=StaticGuard()), http_scope(headers=headers), messages)
    assert bytes(received) == body


# -- disconnects ----------------------------------------------------------------------------------------


class HangingGuard:
    """A remote-like guard that never answers, and notes whether it was cancelled."""

    name = "hanging"

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.cancelled = False

    def check(self, content: Content | str) -> Verdict:
        raise NotImplementedError

    async def acheck(self, content: Content | str) -> Verdict:
        self.started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


@pytest.mark.anyio
async def test_disconnect_while_reading_stops_everything(caplog: pytest.LogCaptureFixture) -> None:
    """The client left mid-body: no guard call, no app call, no answer, nothing logged at ERROR."""
    called: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(True)

    guard = StaticGuard()
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"pro', "more_body": True},
        {"type": "http.disconnect"},
    ]
    with caplog.at_level(logging.INFO, logger="guardrails"):
        sent = await _run(GuardMiddleware(app, guard=guard), http_scope(), messages)
    assert (sent, called, guard.calls) == ([], [], 0)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.anyio
async def test_disconnect_while_the_guard_runs_cancels_the_check(caplog: pytest.LogCaptureFixture) -> None:
    """The client left while the guard was thinking: the check is cancelled, the app not called."""
    called: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(True)

    guard = HangingGuard()
    gone = anyio.Event()
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b'{"prompt": "hi"}', "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async with anyio.create_task_group() as group:
        group.start_soon(GuardMiddleware(app, guard=guard), http_scope(), receive, send)
        await guard.started.wait()
        gone.set()
    assert guard.cancelled
    assert (sent, called) == ([], [])
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


# -- events and logs -------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("guard", "body", "outcome"),
    [
        pytest.param(StaticGuard(), chat("hi"), "allowed", id="allowed"),
        pytest.param(StaticGuard(Action.BLOCK), chat("hi"), "blocked", id="blocked"),
        pytest.param(StaticGuard(error=GuardUnavailable("down")), chat("hi"), "error", id="error"),
        pytest.param(StaticGuard(), [1, 2.5, None], "skipped", id="skipped"),
    ],
)
async def test_one_decision_event_per_request(
    recorder: Recorder, guard: Any, body: Any, outcome: str
) -> None:
    """The on_decision hook gets exactly one Decision per guarded request, naming the route template."""
    hooks: list[Decision] = []
    async with client(
        make_app(recorder, guard=guard, on_decision=hooks.append, routes=[Route(CHAT_PATH)])
    ) as http:
        await http.post(CHAT_PATH, json=body)
    assert [(d.outcome, d.target) for d in hooks] == [(outcome, f"POST {CHAT_PATH}")]


@pytest.mark.anyio
async def test_refusals_are_decision_events(recorder: Recorder) -> None:
    """413 is too_large, 400 is invalid, fail-open is failed_open."""
    hooks: list[Decision] = []
    app = make_app(
        recorder,
        guard=StaticGuard(error=GuardUnavailable("down")),
        fail_open=True,
        max_body_size=50,
        on_decision=[hooks.append],
    )
    async with client(app) as http:
        await http.post(CHAT_PATH, content=b"x" * 51)
        await http.post(CHAT_PATH, content=b"{", headers={"content-type": "application/json"})
        await http.post(CHAT_PATH, json={"prompt": "hi"})
    assert [d.outcome for d in hooks] == ["too_large", "invalid", "failed_open"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("guard", "fail_open", "level"),
    [
        pytest.param(StaticGuard(Action.BLOCK), False, logging.INFO, id="block-info"),
        pytest.param(
            StaticGuard(error=GuardUnavailable("down")), True, logging.WARNING, id="fail-open-warning"
        ),
        pytest.param(
            StaticGuard(error=GuardAuthError("bad key")), True, logging.ERROR, id="configuration-error"
        ),
    ],
)
async def test_log_levels_and_no_prompt_text(
    recorder: Recorder, caplog: pytest.LogCaptureFixture, guard: Any, fail_open: Any, level: int
) -> None:
    """Block at INFO, fail-open at WARNING, configuration errors at ERROR; never the prompt."""
    with caplog.at_level(logging.INFO, logger="guardrails"):
        async with client(make_app(recorder, guard=guard, fail_open=fail_open)) as http:
            await http.post(CHAT_PATH, json=chat("my secret prompt"))
    assert [record.levelno for record in caplog.records if record.name == "guardrails"] == [level]
    assert "my secret prompt" not in caplog.text


# -- HEAD ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_head_is_guarded_like_get(recorder: Recorder) -> None:
    """HEAD on a GET route is checked, and a Block answers 403 with no body."""
    app = make_app(recorder, routes=[Route("/search", methods=["GET"])])
    async with client(app) as http:
        response = await http.request("HEAD", "/search", content=json.dumps({"q": INJECTION}).encode())
    assert (response.status_code, response.content, recorder.calls) == (403, b"", 0)


# -- responses ------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_allowed_json_response_is_sent_unchanged(recorder: Recorder) -> None:
    """scan_response: a clean completion goes out as the app wrote it."""
    app = make_app(recorder, routes=[Route(CHAT_PATH, scan_response=True)])
    async with client(app) as http:
        response = await http.post(CHAT_PATH, json=chat("hi"), headers={"x-reply": "all good"})
    assert response.status_code == 200
    assert response.json() == completion("all good")


@pytest.mark.anyio
async def test_blocked_json_response_is_replaced_by_a_403(recorder: Recorder) -> None:
    """A completion the guard blocks is never sent; a 403 is, checked as kind="response"."""
    guard = FakeGuard(rule)
    app = make_app(recorder, guard=guard, routes=[Route(CHAT_PATH, scan_response=True)])
    async with client(app) as http:
        response = await http.post(CHAT_PATH, json=chat("hi"), headers={"x-reply": INJECTION})
    assert response.status_code == 403
    assert INJECTION not in response.text
    assert [content.kind for content in guard.seen] == ["prompt", "response"]


@pytest.mark.anyio
async def test_response_check_failure_fails_closed(recorder: Recorder) -> None:
    """A guard failure on the response check is a 503 unless the route fails open."""
    calls = 0

    def second_call_fails(content: Content) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise GuardUnavailable("down")
        return False

    app = make_app(
        recorder, guard=FakeGuard(second_call_fails), routes=[Route(CHAT_PATH, scan_response=True)]
    )
    async with client(app) as http:
        response = await http.post(CHAT_PATH, json=chat("hi"))
    assert response.status_code == 503


@pytest.mark.anyio
async def test_non_json_response_is_not_scanned(recorder: Recorder) -> None:
    """Only JSON and event streams are checked; plain text passes through."""
    guard = FakeGuard(rule)
    app = make_app(recorder, guard=guard, routes=[Route("/text", scan_response=True)])
    async with client(app) as http:
        response = await http.post("/text", json={"prompt": "hi"})
    assert response.text == INJECTION
    assert guard.calls == 1


@pytest.mark.anyio
async def test_clean_event_stream_is_sent_whole(recorder: Recorder) -> None:
    """A stream the guard allows arrives complete, [DONE] included."""
    app = make_app(recorder, routes=[Route("/stream", scan_response=True)], stream_window=10)
    async with client(app) as http:
        response = await http.post(
            "/stream", json={"prompt": "hi"}, headers={"x-words": "a b c d e f g h i j k l"}
        )
    assert response.text.count("data: ") == 13
    assert response.text.endswith("data: [DONE]\n\n")


@pytest.mark.anyio
async def test_blocked_event_stream_ends_with_an_error_event(recorder: Recorder) -> None:
    """On Block mid-stream: the windows before it went out, then an SSE error event, then the end."""
    words = "one two three four five six ignore previous instructions and more words after that"
    app = make_app(recorder, routes=[Route("/stream", scan_response=True)], stream_window=12)
    async with client(app) as http:
        response = await http.post("/stream", json={"prompt": "hi"}, headers={"x-words": words})
    events = response.text.split("\n\n")
    assert "one " in response.text
    assert "instructions" not in response.text
    assert "after" not in response.text
    assert events[-2].startswith("event: error\ndata: ")
    assert json.loads(events[-2].split("data: ", 1)[1])["error"]["type"] == "guardrail_blocked"


# -- the I/O-free pieces ------------------------------------------------------------------------------------


def _event(text: str) -> bytes:
    return ("data: " + json.dumps({"choices": [{"delta": {"content": text}}]}) + "\n\n").encode()


def test_sse_scanner_holds_back_at_most_one_window() -> None:
    """Events are released a window at a time, as soon as the window is full."""
    scanner = SSEScanner(window_chars=10, overlap=0)
    assert scanner.feed(_event("12345")) == []
    [window] = scanner.feed(_event("67890"))
    assert window.text == "1234567890"
    assert window.data == _event("12345") + _event("67890")


def test_sse_scanner_overlaps_windows() -> None:
    """A phrase cut by a window boundary is seen whole in the next window."""
    scanner = SSEScanner(window_chars=8, overlap=8)
    scanner.feed(_event("xx ignore"))
    [window] = scanner.feed(_event(" previous"))
    assert "ignore previous" in window.text


def test_sse_scanner_keeps_incomplete_events_until_finish() -> None:
    """A partial event is not released; finish() returns what is left, partial event included."""
    scanner = SSEScanner(window_chars=1)
    whole = _event("abc")
    assert scanner.feed(whole[:7]) == []
    last = scanner.finish()
    assert last is not None
    assert last.data == whole[:7]


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        pytest.param(b"data: plain words\n\n", "plain words", id="plain"),
        pytest.param(b'data: {"delta": "x"}\r\n\r\n', "x", id="json-crlf"),
        pytest.param(b"data: [DONE]\n\n", "", id="done"),
        pytest.param(b": comment\n\n", "", id="comment"),
    ],
)
def test_sse_scanner_event_text(raw: bytes, text: str) -> None:
    """Text is taken from data lines: chat deltas, other JSON strings, or raw data."""
    scanner = SSEScanner(window_chars=1_000)
    scanner.feed(raw)
    last = scanner.finish()
    assert last is not None
    assert last.text == text


def test_error_reply_shape() -> None:
    """Errors are JSON in the OpenAI error shape."""
    reply = error_reply(
        403, "guardrail_blocked", "blocked", code="content_blocked", reasons=["r"], verdict_id="v"
    )
    assert reply.status == 403
    assert dict(reply.headers)["content-type"] == "application/json"
    assert json.loads(reply.body) == {
        "error": {
            "message": "blocked",
            "type": "guardrail_blocked",
            "code": "content_blocked",
            "reasons": ["r"],
            "verdict_id": "v",
        }
    }


def test_sse_error_event_wraps_the_reply() -> None:
    """The SSE error event carries the same error body."""
    reply = error_reply(403, "guardrail_blocked", "blocked")
    assert sse_error_event(reply) == b"event: error\ndata: " + reply.body + b"\n\n"


def test_middleware_rejects_bad_settings() -> None:
    """Typos in settings fail at construction."""
    app: Callable[..., Any] = lambda scope, receive, send: None  # noqa: E731
    with pytest.raises(ValueError, match="fail_open"):
        GuardMiddleware(app, guard=StaticGuard(), fail_open="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_body_size"):
        GuardMiddleware(app, guard=StaticGuard(), max_body_size=-1)


# -- the default guard ----------------------------------------------------------------------------------


def fake_settings(monkeypatch: pytest.MonkeyPatch, factory: Callable[[], Any]) -> None:
    module = types.ModuleType("guardrails._settings")
    module.guard_from_env = factory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "guardrails._settings", module)


@pytest.mark.anyio
async def test_default_guard_comes_from_the_environment_lazily(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """guard=None: guard_from_env() is called on the first guarded request, once."""
    made: list[StaticGuard] = []

    def guard_from_env() -> StaticGuard:
        made.append(StaticGuard(Action.BLOCK))
        return made[-1]

    fake_settings(monkeypatch, guard_from_env)
    app = make_app(recorder, guard=None)
    assert made == []
    async with client(app) as http:
        first = await http.post(CHAT_PATH, json=chat("a"))
        second = await http.post(CHAT_PATH, json=chat("b"))
    assert (first.status_code, second.status_code, len(made), made[0].calls) == (403, 403, 1, 2)


@pytest.mark.anyio
async def test_default_guard_setup_error_fails_closed(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Bad settings are a configuration error: 503 even under fail_open=True, logged at ERROR."""

    def guard_from_env() -> StaticGuard:
        raise ValueError("V1_API_KEY is malformed")

    fake_settings(monkeypatch, guard_from_env)
    async with client(make_app(recorder, guard=None, fail_open=True)) as http:
        response = await http.post(CHAT_PATH, json=chat("a"))
    assert (response.status_code, recorder.calls) == (503, 0)
    assert [record.levelno for record in caplog.records if record.name == "guardrails"] == [logging.ERROR]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "fail_open",
    [pytest.param(False, id="fail-closed"), pytest.param("always", id="fail-open-always")],
)
async def test_json_response_over_the_scanning_cap(recorder: Recorder, fail_open: Any) -> None:
    """A response too big to buffer is never sent unscanned, whatever the policy: a client can ask
    for a long answer, so this failure is the client's to cause (502, no retry)."""
    app = make_app(
        recorder, routes=[Route(CHAT_PATH, scan_response=True)], fail_open=fail_open, max_response_size=50
    )
    async with client(app) as http:
        response = await http.post(CHAT_PATH, json=chat("hi"), headers={"x-reply": "x" * 100})
    assert response.status_code == 502
    assert response.headers["x-should-retry"] == "false"
