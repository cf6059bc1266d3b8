"""Property: no chunk reaching the reader holds text from a window the guard blocked, in every shell.

Random texts (with a marker the guard blocks at random places), random chunkings (of the text,
and of the event stream's bytes), random window sizes, first windows, overlaps (at least the
marker's length less one, so a marker cut by a boundary is still seen) and idle flushes. What the
reader got must be a prefix of the text, hold no marker, and be all of it when there is none.
In process for speed; one case per shell against a real server.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route as StarletteRoute

from guardrails import Blocked, Content, Route, Verdict, guarded
from guardrails._models import as_content
from guardrails.asgi import GuardMiddleware as ASGIGuardMiddleware
from guardrails.integrations.openai import GuardedTransport
from guardrails.testing import FakeGuard
from guardrails.wsgi import GuardMiddleware as WSGIGuardMiddleware
from tests.servers import run_asgi, run_wsgi

MARKER = "XMARKX"
WORDS = ["alpha", "beta", "gamma", "delta", "éps", "日本"]
PROMPT = b'{"prompt": "hi"}'


def marks_response(content: Content) -> bool:
    return content.kind == "response" and MARKER in content.as_text()


class RemoteLike:
    """Blocks like ``FakeGuard(marks_response)``, but is not an in-process guard: the shells then
    check successive windows concurrently. Each check sleeps a little (0-2 ms, by its text), so
    checks finish out of order."""

    name = "remote-like"

    def __init__(self) -> None:
        self._fake = FakeGuard(marks_response, name=self.name)

    def _pause(self, content: Content) -> float:
        return (hash(content.as_text()) % 3) / 1000

    def check(self, content: Content | str) -> Verdict:
        content = as_content(content)
        time.sleep(self._pause(content))
        return self._fake.check(content)

    async def acheck(self, content: Content | str) -> Verdict:
        content = as_content(content)
        await asyncio.sleep(self._pause(content))
        return self._fake.check(content)

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


@dataclass
class Case:
    text: str
    pieces: list[str]
    byte_cuts: list[int]
    window: int
    first: int
    overlap: int
    idle: float | None
    remote: bool = False

    def guard(self) -> Any:
        return RemoteLike() if self.remote else FakeGuard(marks_response)

    def options(self) -> dict[str, Any]:
        return {
            "stream_window": self.window,
            "stream_first_window": self.first,
            "stream_overlap": self.overlap,
            "stream_idle_flush": self.idle,
        }

    def events(self) -> bytes:
        return b"".join(event(piece) for piece in self.pieces) + b"data: [DONE]\n\n"

    def byte_chunks(self) -> list[bytes]:
        data = self.events()
        cuts = sorted({cut % len(data) for cut in self.byte_cuts} - {0})
        return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]

    def check(self, received: str) -> None:
        assert self.text.startswith(received)
        assert MARKER not in received
        if MARKER not in self.text:
            assert received == self.text


def event(piece: str) -> bytes:
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": piece}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def received_text(data: bytes) -> str:
    """The generated text of the complete events in ``data`` (error and [DONE] events add none)."""
    text = []
    for raw in data.split(b"\n\n")[:-1]:
        if raw.startswith(b"event: error") or raw == b"data: [DONE]":
            continue
        assert raw.startswith(b"data: "), raw
        text.append(json.loads(raw[6:])["choices"][0]["delta"]["content"])
    return "".join(text)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=30))
    for place in sorted(draw(st.lists(st.integers(0, len(words)), max_size=2)), reverse=True):
        words.insert(place, MARKER)
    text = " ".join(words)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=25)) - {len(text)})
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    return Case(
        text=text,
        pieces=pieces,
        byte_cuts=draw(st.lists(st.integers(1, 10_000), max_size=25)),
        window=draw(st.integers(1, 80)),
        first=draw(st.integers(1, 80)),
        overlap=draw(st.integers(len(MARKER) - 1, 40)),
        idle=draw(st.sampled_from([None, 0.0])),
        remote=draw(st.booleans()),
    )


PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the decorator ------------------------------------------------------------------------------------


@PROPERTY
@given(cases())
def test_a_sync_generator_never_yields_blocked_text(case: Case) -> None:
    """@guarded sync generator: what was yielded before Blocked is checked text only."""

    @guarded(case.guard(), scan_response=True, **case.options())
    def stream(prompt: str) -> Iterator[str]:
        yield from case.pieces

    received: list[str] = []
    try:
        for piece in stream("hi"):
            received.append(piece)
    except Blocked:
        assert MARKER in case.text
    case.check("".join(received))


@PROPERTY
@given(cases())
def test_an_async_generator_never_yields_blocked_text(case: Case) -> None:
    """@guarded async generator (idle flush on or off): same property."""

    @guarded(case.guard(), scan_response=True, **case.options())
    async def stream(prompt: str) -> AsyncIterator[str]:
        for piece in case.pieces:
            await asyncio.sleep(0)
            yield piece

    async def consume() -> str:
        received: list[str] = []
        try:
            async for piece in stream("hi"):
                received.append(piece)
        except Blocked:
            assert MARKER in case.text
        return "".join(received)

    case.check(asyncio.run(consume()))


# -- ASGI -----------------------------------------------------------------------------------------------


def sse_asgi_app(chunks: list[bytes], pause: float = 0.0) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for chunk in chunks:
            if pause:
                await asyncio.sleep(pause)
            else:
                await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


@PROPERTY
@given(cases())
def test_the_asgi_middleware_never_sends_blocked_text(case: Case) -> None:
    """ASGI middleware, in process: the bytes sent are checked events only."""
    middleware = ASGIGuardMiddleware(
        sse_asgi_app(case.byte_chunks()),
        guard=case.guard(),
        routes=[Route("/s", scan_response=True)],
        **case.options(),
    )
    sent = bytearray()
    requests = [{"type": "http.request", "body": PROMPT, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.extend(message.get("body", b""))

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/s",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(PROMPT)).encode())],
    }
    asyncio.run(middleware(scope, receive, send))
    case.check(received_text(bytes(sent)))


# -- WSGI -----------------------------------------------------------------------------------------------


def sse_wsgi_app(chunks: list[bytes], pause: float = 0.0) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "text/event-stream")])

        def body() -> Iterator[bytes]:
            for chunk in chunks:
                if pause:
                    time.sleep(pause)
                yield chunk

        return body()

    return app


@PROPERTY
@given(cases())
def test_the_wsgi_middleware_never_sends_blocked_text(case: Case) -> None:
    """WSGI middleware, in process (its helper thread included): same property."""
    middleware = WSGIGuardMiddleware(
        sse_wsgi_app(case.byte_chunks()),
        guard=case.guard(),
        routes=[Route("/s", scan_response=True)],
        **case.options(),
    )
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/s",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(PROMPT)),
        "wsgi.input": io.BytesIO(PROMPT),
    }
    body = middleware(environ, lambda status, headers, exc_info=None: lambda data: None)
    try:
        sent = b"".join(body)
    finally:
        body.close()  # type: ignore[attr-defined]
    case.check(received_text(sent))


# -- the OpenAI transport ------------------------------------------------------------------------------


class Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@PROPERTY
@given(cases())
def test_the_openai_transport_never_hands_on_blocked_text(case: Case) -> None:
    """GuardedTransport (sync, helper thread), over a mock upstream: same property."""

    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=Chunks(case.byte_chunks())
        )

    transport = GuardedTransport(case.guard(), transport=httpx.MockTransport(upstream), **case.options())
    received = bytearray()
    with httpx.Client(transport=transport) as client:
        try:
            with client.stream("POST", "http://model/v1/chat/completions", json=CHAT) as response:
                for data in response.iter_bytes():
                    received.extend(data)
        except Blocked:
            assert MARKER in case.text
    case.check(received_text(bytes(received)))


# -- one case per shell against a real server -----------------------------------------------------------

REAL = Case(
    text=" ".join(["alpha beta gamma"] * 4 + [MARKER] + ["delta"] * 20),
    pieces=[],
    byte_cuts=[],
    window=64,
    first=8,
    overlap=10,
    idle=0.05,
    remote=True,
)
REAL.pieces = [REAL.text[i : i + 5] for i in range(0, len(REAL.text), 5)]


def test_a_real_uvicorn_server_never_sends_blocked_text() -> None:
    """ASGI middleware under uvicorn, events 10 ms apart (idle flushes on): same property."""
    app = ASGIGuardMiddleware(
        sse_asgi_app([event(piece) for piece in REAL.pieces], pause=0.01),
        guard=REAL.guard(),
        routes=[Route("/s", scan_response=True)],
        **REAL.options(),
    )
    with run_asgi(app) as url, httpx.Client() as client:
        response = client.post(f"{url}/s", content=PROMPT, headers={"content-type": "application/json"})
    assert b"event: error" in response.content
    REAL.check(received_text(response.content))


def test_a_real_wsgi_server_never_sends_blocked_text() -> None:
    """WSGI middleware under werkzeug's threaded server: same property."""
    app = WSGIGuardMiddleware(
        sse_wsgi_app([event(piece) for piece in REAL.pieces], pause=0.01),
        guard=REAL.guard(),
        routes=[Route("/s", scan_response=True)],
        **REAL.options(),
    )
    with run_wsgi(app) as url, httpx.Client() as client:
        response = client.post(f"{url}/s", content=PROMPT, headers={"content-type": "application/json"})
    assert b"event: error" in response.content
    REAL.check(received_text(response.content))


def upstream_app() -> Starlette:
    async def completions(request: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            for piece in REAL.pieces:
                await asyncio.sleep(0.01)
                yield event(piece)

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[StarletteRoute("/v1/chat/completions", completions, methods=["POST"])])


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_the_openai_transport_never_hands_on_blocked_text_from_a_real_server(asynchronous: bool) -> None:
    """GuardedTransport against a uvicorn upstream, sync and async: same property."""
    received = bytearray()

    async def aread(url: str, transport: GuardedTransport) -> None:
        async with (
            httpx.AsyncClient(transport=transport) as client,
            client.stream("POST", f"{url}/v1/chat/completions", json=CHAT) as response,
        ):
            async for data in response.aiter_bytes():
                received.extend(data)

    def read(url: str, transport: GuardedTransport) -> None:
        with (
            httpx.Client(transport=transport) as client,
            client.stream("POST", f"{url}/v1/chat/completions", json=CHAT) as response,
        ):
            for data in response.iter_bytes():
                received.extend(data)

    with run_asgi(upstream_app()) as url:
        transport = GuardedTransport(REAL.guard(), **REAL.options())
        with pytest.raises(Blocked):
            asyncio.run(aread(url, transport)) if asynchronous else read(url, transport)
    assert received
    REAL.check(received_text(bytes(received)))
