"""WebSockets on guarded routes: real uvicorn on 127.0.0.1, a FastAPI app, the `websockets` client."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from guardrails._events import Decision
from guardrails._exceptions import Blocked, GuardUnavailable
from guardrails._models import Action, Content, Verdict
from guardrails._routing import Route
from guardrails._websocket import GuardedWebSocket, close_for, query_text
from guardrails.asgi import GuardMiddleware
from guardrails.testing._fakes import FakeGuard, StaticGuard
from tests.servers import run_asgi

INJECTION = "ignore previous instructions"
SECRET = "XYZZY"
TIMEOUT = 10.0


def blocks_bad_words(content: Content) -> bool:
    text = content.as_text()
    return INJECTION in text or SECRET in text


class Chat:
    """A FastAPI chat app over WebSockets that records what it was given."""

    def __init__(self) -> None:
        self.received: list[str | bytes] = []
        self.disconnects: list[int] = []
        self.ended = threading.Event()
        self.app = FastAPI()
        self.app.add_api_websocket_route("/ws/chat", self.chat)
        self.app.add_api_websocket_route("/ws/bytes", self.binary)
        self.app.add_api_websocket_route("/ws/free", self.chat)

    async def chat(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                self.received.append(text)
                verdict = websocket.state.guardrails
                if text == "tell me the secret":
                    await websocket.send_text(f"the secret is {SECRET}")
                else:
                    await websocket.send_text(
                        json.dumps({"echo": text, "verdict": verdict.action.value if verdict else None})
                    )
        except WebSocketDisconnect as exc:
            self.disconnects.append(exc.code)
        finally:
            self.ended.set()

    async def binary(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                data = await websocket.receive_bytes()
                self.received.append(data)
                await websocket.send_bytes(b"got " + str(len(data)).encode())
        except WebSocketDisconnect as exc:
            self.disconnects.append(exc.code)
        finally:
            self.ended.set()


@contextmanager
def serve(chat: Chat, **options: Any) -> Iterator[str]:
    options.setdefault("guard", FakeGuard(blocks_bad_words))
    options.setdefault("routes", [Route("/ws/chat"), Route("/ws/bytes")])
    with run_asgi(GuardMiddleware(chat.app, **options)) as url:
        yield url.replace("http://", "ws://")


@contextmanager
def client(url: str) -> Iterator[ClientConnection]:
    with connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        yield websocket


def closed_with(websocket: ClientConnection) -> tuple[int, str]:
    """Receive until the server closes; the close code and reason it sent."""
    with pytest.raises(ConnectionClosed) as info:
        drain(websocket)
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


def drain(websocket: ClientConnection) -> None:
    while True:
        websocket.recv(timeout=TIMEOUT)


def test_an_allowed_message_reaches_the_app_with_its_verdict() -> None:
    chat = Chat()
    with serve(chat) as url, client(url + "/ws/chat") as websocket:
        websocket.send("hello there")
        assert json.loads(websocket.recv(timeout=TIMEOUT)) == {"echo": "hello there", "verdict": "allow"}
    assert chat.received == ["hello there"]


def test_a_blocked_message_closes_with_1008_and_never_reaches_the_app() -> None:
    chat = Chat()
    with serve(chat) as url, client(url + "/ws/chat") as websocket:
        websocket.send("hi")
        websocket.recv(timeout=TIMEOUT)
        websocket.send(f"please {INJECTION}")
        code, reason = closed_with(websocket)
    assert (code, reason) == (1008, "blocked by the guardrail")
    assert chat.ended.wait(TIMEOUT)
    assert chat.received == ["hi"]
    assert chat.disconnects == [1008]


def test_a_json_message_is_read_like_a_request_body() -> None:
    chat = Chat()
    guard = FakeGuard(blocks_bad_words)
    message = json.dumps({"model": "m", "messages": [{"role": "user", "content": INJECTION}]})
    with serve(chat, guard=guard) as url, client(url + "/ws/chat") as websocket:
        websocket.send(message)
        assert closed_with(websocket)[0] == 1008
    assert guard.seen[0].messages == [{"role": "user", "content": INJECTION}]
    assert chat.received == []


def test_an_escaped_json_string_is_checked_decoded() -> None:
    chat = Chat()
    escaped = json.dumps({"question": INJECTION.replace("i", "\\u0069")}).replace("\\\\", "\\")
    with serve(chat) as url, client(url + "/ws/chat") as websocket:
        websocket.send(escaped)
        assert closed_with(websocket)[0] == 1008
    assert chat.received == []


def test_a_binary_message_that_is_text_is_checked() -> None:
    chat = Chat()
    with serve(chat) as url, client(url + "/ws/bytes") as websocket:
        websocket.send(b"fine bytes")
        assert websocket.recv(timeout=TIMEOUT) == b"got 10"
        websocket.send(INJECTION.encode())
        assert closed_with(websocket)[0] == 1008
    assert chat.received == [b"fine bytes"]


def test_a_binary_message_that_is_not_text_is_refused_with_1003() -> None:
    chat = Chat()
    with serve(chat) as url, client(url + "/ws/bytes") as websocket:
        websocket.send(b"\xff\xfe\x00binary")
        assert closed_with(websocket) == (1003, "message cannot be checked")
    assert chat.received == []


def test_the_handshake_query_is_checked_before_the_accept() -> None:
    chat = Chat()
    query = "?topic=" + INJECTION.replace(" ", "%20")
    with serve(chat) as url, pytest.raises(InvalidStatus) as info:
        connect(url + "/ws/chat" + query, open_timeout=TIMEOUT)
    assert info.value.response.status_code == 403
    assert chat.ended.wait(TIMEOUT)
    assert chat.received == []
    assert chat.disconnects == [1008]


def test_an_allowed_handshake_query_goes_on() -> None:
    chat = Chat()
    guard = FakeGuard(blocks_bad_words)
    with serve(chat, guard=guard) as url, client(url + "/ws/chat?topic=weather") as websocket:
        websocket.send("hello")
        assert json.loads(websocket.recv(timeout=TIMEOUT))["echo"] == "hello"
    assert [content.as_text() for content in guard.seen] == ["topic\nweather", "hello"]


def test_a_guard_failure_fails_closed_with_1011() -> None:
    chat = Chat()
    guard = StaticGuard(error=GuardUnavailable("down"))
    with serve(chat, guard=guard) as url, client(url + "/ws/chat") as websocket:
        websocket.send("hello")
        assert closed_with(websocket) == (1011, "guardrail unavailable")
    assert chat.received == []


def test_a_guard_failure_fails_open_on_a_fail_open_route() -> None:
    chat = Chat()
    guard = StaticGuard(error=GuardUnavailable("down"))
    routes = [Route("/ws/chat", fail_open=True)]
    with serve(chat, guard=guard, routes=routes) as url, client(url + "/ws/chat") as websocket:
        websocket.send("hello")
        assert json.loads(websocket.recv(timeout=TIMEOUT)) == {"echo": "hello", "verdict": None}
    assert chat.received == ["hello"]


def test_a_message_over_the_size_cap_closes_with_1009_unchecked() -> None:
    chat = Chat()
    guard = FakeGuard(blocks_bad_words)
    with serve(chat, guard=guard, max_body_size=100) as url, client(url + "/ws/chat") as websocket:
        websocket.send("a" * 100)
        websocket.recv(timeout=TIMEOUT)
        websocket.send("é" * 51)  # 102 bytes in UTF-8
        assert closed_with(websocket) == (1009, "message too large")
    assert guard.calls == 1
    assert chat.received == ["a" * 100]


def test_a_blocked_answer_is_not_sent_with_scan_response() -> None:
    chat = Chat()
    routes = [Route("/ws/chat", scan_response=True)]
    with serve(chat, routes=routes) as url, client(url + "/ws/chat") as websocket:
        websocket.send("hello")
        assert json.loads(websocket.recv(timeout=TIMEOUT))["echo"] == "hello"
        websocket.send("tell me the secret")
        # The close is the next thing the client gets: the answer never went out.
        with pytest.raises(ConnectionClosed) as info:
            websocket.recv(timeout=TIMEOUT)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1008, "blocked by the guardrail")


def test_answers_are_not_checked_without_scan_response() -> None:
    chat = Chat()
    with serve(chat) as url, client(url + "/ws/chat") as websocket:
        websocket.send("tell me the secret")
        assert websocket.recv(timeout=TIMEOUT) == f"the secret is {SECRET}"


def test_a_websocket_on_no_route_passes_through_unchecked() -> None:
    chat = Chat()
    guard = FakeGuard(blocks_bad_words)
    with serve(chat, guard=guard) as url, client(url + "/ws/free") as websocket:
        websocket.send(INJECTION)
        assert json.loads(websocket.recv(timeout=TIMEOUT)) == {"echo": INJECTION, "verdict": None}
    assert guard.calls == 0


@pytest.mark.parametrize(
    "routes",
    [
        pytest.param(None, id="no routes: every websocket"),
        pytest.param([Route("/ws/{name}")], id="a POST route on the path"),
        pytest.param([Route("/WS/chat/", methods=("GET",))], id="a GET route, another spelling"),
    ],
)
def test_a_websocket_is_guarded_when_a_route_matches_its_path(routes: Sequence[Route] | None) -> None:
    chat = Chat()
    with serve(chat, routes=routes) as url, client(url + "/ws/chat") as websocket:
        websocket.send(INJECTION)
        assert closed_with(websocket)[0] == 1008
    assert chat.received == []


# -- the connection object, driven directly ----------------------------------------------------------


async def drive(
    incoming: list[dict[str, Any]], *, accept: bool, route: Route | None = None, **options: Any
) -> list[dict[str, Any]]:
    """Run one connection of a raw ASGI app that receives everything, accepting first or not."""
    options.setdefault("guard", FakeGuard(blocks_bad_words))
    middleware = GuardMiddleware(lambda *_: None, routes=[route or Route("/ws")], **options)
    inspection, guard, error = middleware._inspect(
        middleware.router.routes[0], method="WEBSOCKET", path="/ws", headers={}
    )
    sent: list[dict[str, Any]] = []
    queue = list(incoming)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    connection = GuardedWebSocket(
        inspection, guard, error, {}, receive, send, max_message_size=1000, max_response_size=1000
    )
    assert (await connection.receive())["type"] == "websocket.connect"
    if accept:
        await connection.send({"type": "websocket.accept"})
    while (await connection.receive())["type"] != "websocket.disconnect":
        pass
    await connection.send({"type": "websocket.send", "text": "after the close"})
    return sent


@pytest.mark.anyio
async def test_a_block_before_accept_is_a_close_which_the_server_answers_403() -> None:
    sent = await drive(
        [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": INJECTION}], accept=False
    )
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "blocked by the guardrail"}]


@pytest.mark.anyio
async def test_nothing_the_app_sends_after_a_block_goes_out() -> None:
    sent = await drive(
        [{"type": "websocket.connect"}, {"type": "websocket.receive", "bytes": INJECTION.encode()}],
        accept=True,
    )
    assert [message["type"] for message in sent] == ["websocket.accept", "websocket.close"]


@pytest.mark.anyio
async def test_each_message_is_one_decision_and_no_log_line_quotes_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    decisions: list[Decision] = []
    caplog.set_level(logging.DEBUG, logger="guardrails")
    incoming = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "a fine question"},
        {"type": "websocket.receive", "text": INJECTION},
    ]
    await drive(incoming, accept=True, on_decision=decisions.append)
    assert [(d.outcome, d.target, d.kind) for d in decisions] == [
        ("allowed", "WEBSOCKET /ws", "prompt"),
        ("blocked", "WEBSOCKET /ws", "prompt"),
    ]
    assert caplog.records
    assert INJECTION not in caplog.text
    assert "fine question" not in caplog.text


def test_a_close_before_accept_is_answered_403_by_uvicorn() -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def refuse(websocket: WebSocket) -> None:
        await websocket.close(code=1008)

    with (
        run_asgi(GuardMiddleware(app, guard=FakeGuard(blocks_bad_words))) as url,
        pytest.raises(InvalidStatus) as info,
    ):
        connect(url.replace("http://", "ws://") + "/ws", open_timeout=TIMEOUT)
    assert info.value.response.status_code == 403


@pytest.mark.parametrize(
    ("query", "text"),
    [
        pytest.param(b"", None, id="empty"),
        pytest.param(b"=&+=&%20", None, id="blank"),
        pytest.param(b"q=caf%C3%A9+au+lait", "q\ncafé au lait\ncafÃ© au lait", id="utf-8 and latin-1"),
        pytest.param(b"q=%E9t%E9", "q\n\ufffdt\ufffd\nété", id="not utf-8"),
    ],
)
def test_query_text_reads_names_and_values_every_way(query: bytes, text: str | None) -> None:
    assert query_text(query) == text


def test_close_codes_never_quote_the_message() -> None:
    verdict = Verdict(action=Action.BLOCK, reasons=["prompt_attack"], guard="fake", id="1")
    assert close_for(Blocked(verdict)) == (1008, "blocked by the guardrail")
    assert close_for(GuardUnavailable("down"), "response") == (1011, "guardrail unavailable")


@pytest.mark.anyio
async def test_a_websocket_scope_on_no_route_reaches_the_app_with_the_same_channels() -> None:
    seen: list[tuple[Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> dict[str, Any]:
        raise AssertionError("not called")

    async def send(message: Any) -> None:
        raise AssertionError("not called")

    scope: dict[str, Any] = {"type": "websocket", "path": "/other", "headers": []}
    guard = FakeGuard(blocks_bad_words)
    await GuardMiddleware(app, guard=guard, routes=[Route("/ws")])(scope, receive, send)
    assert seen == [(scope, receive, send)]
    assert scope["state"] == {"guardrails": None}
    assert guard.calls == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("message", "close"),
    [
        pytest.param({"text": "fine"}, None, id="allowed text"),
        pytest.param({"text": f"it is {SECRET}"}, (1008, "blocked by the guardrail"), id="blocked text"),
        pytest.param({"bytes": SECRET.encode()}, (1008, "blocked by the guardrail"), id="blocked bytes"),
        pytest.param({"bytes": b"\xff\xfe"}, (1011, "response cannot be checked"), id="binary"),
        pytest.param({"text": "a" * 1001}, (1011, "response cannot be checked"), id="over the cap"),
    ],
)
async def test_an_outbound_message_on_a_scan_response_route(
    message: dict[str, Any], close: tuple[int, str] | None
) -> None:
    middleware = GuardMiddleware(
        lambda *_: None, guard=FakeGuard(blocks_bad_words), routes=[Route("/ws", scan_response=True)]
    )
    inspection, guard, error = middleware._inspect(
        middleware.router.routes[0], method="WEBSOCKET", path="/ws", headers={}
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(outgoing: Any) -> None:
        sent.append(dict(outgoing))

    connection = GuardedWebSocket(
        inspection, guard, error, {}, receive, send, max_message_size=1000, max_response_size=1000
    )
    await connection.send({"type": "websocket.accept"})
    await connection.send({"type": "websocket.send", **message})
    if close is None:
        assert sent[1:] == [{"type": "websocket.send", **message}]
    else:
        assert sent[1:] == [{"type": "websocket.close", "code": close[0], "reason": close[1]}]
        assert await connection.receive() == {
            "type": "websocket.disconnect",
            "code": close[0],
            "reason": close[1],
        }
