"""GuardMiddleware end to end: real uvicorn on 127.0.0.1, real HTTP clients."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as StarletteRoute

from guardrails._exceptions import GuardUnavailable
from guardrails._models import Content, Verdict
from guardrails._routing import Route
from guardrails.asgi import GuardMiddleware
from guardrails.guards.trend import TrendAIGuard
from guardrails.testing._fakes import FakeGuard, StaticGuard
from tests.servers import run_asgi

INJECTION = "ignore previous instructions"
CHAT_PATH = "/v1/chat/completions"


def chat(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


class App:
    def __init__(self) -> None:
        self.reached = 0
        self.receive_calls = 0

    async def chat(self, request: Request) -> Response:
        self.reached += 1
        body = await request.json()
        verdict = request.state.guardrails
        return JSONResponse(
            {
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": body["messages"][-1]["content"]}}
                ],
                "verdict": verdict.action.value if verdict is not None else None,
            }
        )

    async def stream(self, request: Request) -> Response:
        self.reached += 1
        words = (await request.json())["words"]

        async def events() -> AsyncIterator[str]:
            for word in words:
                yield (
                    "data: "
                    + json.dumps({"choices": [{"index": 0, "delta": {"content": word + " "}}]})
                    + "\n\n"
                )
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


class Drain:
    """A raw ASGI endpoint that keeps calling receive until the client goes: it must wait, not spin."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        while True:
            self.app.receive_calls += 1
            message = await receive()
            if message["type"] == "http.disconnect" or self.app.receive_calls > 1000:
                return


def starlette_app(app: App) -> Starlette:
    return Starlette(
        routes=[
            StarletteRoute(CHAT_PATH, app.chat, methods=["POST"]),
            StarletteRoute("/stream", app.stream, methods=["POST"]),
            StarletteRoute("/drain", Drain(app), methods=["POST"]),
        ]
    )


def rule(content: Content) -> bool:
    return INJECTION in content.as_text().lower()


@pytest.fixture
def app() -> App:
    return App()


def serve(app: App, **options: Any) -> Any:
    options.setdefault("guard", FakeGuard(rule))
    return run_asgi(GuardMiddleware(starlette_app(app), **options))


def test_allowed_request_gets_the_app_answer_and_the_verdict(app: App) -> None:
    """Allow: the app answers and saw the verdict in request.state."""
    with serve(app) as url:
        response = httpx.post(url + CHAT_PATH, json=chat("hello"))
    assert response.status_code == 200
    assert response.json()["verdict"] == "allow"


def test_blocked_request_is_a_403(app: App) -> None:
    """Block: a 403 in the OpenAI error shape, the app never reached."""
    with serve(app) as url:
        response = httpx.post(url + CHAT_PATH, json=chat(INJECTION))
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "guardrail_blocked"
    assert app.reached == 0


def test_oversized_body_is_413_over_the_network(app: App) -> None:
    """A body over the cap is refused, the guard never asked."""
    guard = StaticGuard()
    with serve(app, guard=guard, max_body_size=1000) as url:
        response = httpx.post(url + CHAT_PATH, json=chat("x" * 2000))
    assert (response.status_code, guard.calls, app.reached) == (413, 0, 0)


def test_fail_open_marks_the_response_unscanned(app: App) -> None:
    """A failing guard under fail_open: the app answers, marked unscanned, with no verdict."""
    with serve(app, guard=StaticGuard(error=GuardUnavailable("down")), fail_open=True) as url:
        response = httpx.post(url + CHAT_PATH, json=chat("hello"))
    assert response.status_code == 200
    assert response.headers["x-guardrails-unscanned"] == "1"
    assert response.json()["verdict"] is None


def test_event_stream_is_cut_at_the_blocked_window(app: App) -> None:
    """A streamed answer is checked window by window; on Block the client gets an error event."""
    words = ["fine"] * 30 + INJECTION.split() + ["tail"] * 30
    with (
        serve(app, routes=[Route("/stream", scan_response=True)], stream_window=40) as url,
        httpx.stream("POST", url + "/stream", json={"words": words}) as response,
    ):
        text = "".join(response.iter_text())
    assert response.status_code == 200
    assert "fine" in text
    assert "tail" not in text
    assert text.endswith("\n\n")
    assert "event: error" in text


def test_app_that_keeps_receiving_waits_instead_of_spinning(app: App) -> None:
    """After the replayed body, the app's receive waits on the server's: no busy loop."""
    with (
        serve(app, guard=StaticGuard(), routes=[Route("/drain")]) as url,
        httpx.Client() as client,
        client.stream("POST", url + "/drain", json={"prompt": "hi"}) as response,
    ):
        assert next(response.iter_raw()) == b"started"
    # The client hung up and the server stopped: the app saw the body, then the disconnect.
    assert 2 <= app.receive_calls <= 3


class SlowGuard:
    """A remote-like guard that answers only when told; notes cancellations."""

    name = "slow"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()

    def check(self, content: Content | str) -> Verdict:
        raise NotImplementedError

    async def acheck(self, content: Content | str) -> Verdict:
        self.started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise
        raise GuardUnavailable("too slow")

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def test_client_disconnect_cancels_the_guard_check(app: App, caplog: pytest.LogCaptureFixture) -> None:
    """The client gives up while the guard runs: the check is cancelled, the app never called."""
    guard = SlowGuard()
    with serve(app, guard=guard) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + CHAT_PATH, json=chat("hello"), timeout=httpx.Timeout(10, read=0.3))
        assert guard.started.is_set()
        assert guard.cancelled.wait(10)
    assert app.reached == 0
    assert "ERROR" not in [record.levelname for record in caplog.records]


@pytest.mark.parametrize(
    ("text", "status"),
    [
        pytest.param("what is the capital of France?", 200, id="allow"),
        pytest.param(INJECTION, 403, id="block"),
    ],
)
def test_remote_guard_over_loopback(app: App, emulator_url: str, text: str, status: int) -> None:
    """With a vendor guard (Trend, against the emulator) the shared client checks each request."""
    guard = TrendAIGuard("test-v1-key", base_url=emulator_url, timeout=5)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        await guard.aclose()  # the app gave the guard, so the app closes it, on its own loop

    inner = starlette_app(app)
    inner.router.lifespan_context = lifespan
    with run_asgi(GuardMiddleware(inner, guard=guard)) as url:
        response = httpx.post(url + CHAT_PATH, json=chat(text))
    assert response.status_code == status
