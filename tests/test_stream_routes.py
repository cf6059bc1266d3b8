"""Per-route stream options (`Route(stream_window=..., stream_idle_flush=...)`) under real servers."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from guardrails import Route
from guardrails._stream import StreamOptions
from guardrails.asgi import GuardMiddleware as ASGIGuardMiddleware
from guardrails.testing import StaticGuard
from guardrails.wsgi import GuardMiddleware as WSGIGuardMiddleware
from tests.servers import run_asgi, run_wsgi

WAIT = 5.0  # seconds: a bound on waits that end at once when the code works
WORDS = [f"word{index:02d} " for index in range(20)]  # 7 characters each, 140 in all


def event(text: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).encode() + b"\n\n"


class Streams:
    """The app's side of the test: ``/quiet`` sends one event, then waits for ``release``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.waited: list[bool] = []
        self.wait = WAIT

    def events(self, path: str) -> Iterator[bytes]:
        if path == "/quiet":
            yield event("hello")
            # Set by the client once the first event reached it: only an idle flush sends it.
            self.waited.append(self.release.wait(self.wait))
            yield event(" world")
        else:
            for word in WORDS:
                yield event(word)
        yield b"data: [DONE]\n\n"


def asgi_app(streams: Streams) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        events = streams.events(scope["path"])
        # The app's waits run on a worker thread: the event loop (and its idle flush) runs on.
        while (chunk := await asyncio.to_thread(next, events, None)) is not None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def wsgi_app(streams: Streams) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return streams.events(environ["PATH_INFO"])

    return app


Serve = Callable[..., AbstractContextManager[str]]


def serve_asgi(streams: Streams, **options: Any) -> AbstractContextManager[str]:
    return run_asgi(ASGIGuardMiddleware(asgi_app(streams), **options))


def serve_wsgi(streams: Streams, **options: Any) -> AbstractContextManager[str]:
    return run_wsgi(WSGIGuardMiddleware(wsgi_app(streams), **options))


SHELLS = [pytest.param(serve_asgi, id="asgi"), pytest.param(serve_wsgi, id="wsgi")]


def test_a_routes_stream_options_override_the_middlewares_one_by_one() -> None:
    """None inherits; a value replaces the middleware's; False turns the idle flush off."""
    default = StreamOptions(window=500, first_window=40, overlap=30, idle_flush=0.2)
    assert Route("/a").stream_options(default) is default
    assert Route("/a", stream_window=64, stream_idle_flush=False).stream_options(default) == StreamOptions(
        window=64, first_window=40, overlap=30, idle_flush=None
    )
    assert Route("/a", stream_first_window=8, stream_overlap=0, stream_idle_flush=0.01).stream_options(
        default
    ) == StreamOptions(window=500, first_window=8, overlap=0, idle_flush=0.01)
    assert "stream_window=64" in repr(Route("/a", stream_window=64))
    assert Route("/a", stream_window=64) != Route("/a", stream_window=65)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"stream_window": 0}, "stream_window"),
        ({"stream_first_window": -1}, "stream_first_window"),
        ({"stream_overlap": -1}, "stream_overlap"),
        ({"stream_idle_flush": -1.0}, "stream_idle_flush"),
    ],
)
def test_a_routes_bad_stream_option_is_refused_at_once_by_name(options: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Route("/a", **options)


@pytest.mark.parametrize("serve", SHELLS)
def test_each_route_cuts_its_stream_by_its_own_windows(serve: Serve) -> None:
    """Same stream, same middleware: the route with small windows is checked in many windows."""
    guard = StaticGuard()
    routes = [
        Route("/small", scan_response=True, stream_window=16, stream_first_window=8, stream_overlap=0),
        Route("/inherit", scan_response=True),
    ]
    streams = Streams()
    with (
        serve(streams, guard=guard, routes=routes, stream_idle_flush=None, stream_first_window=1000) as url,
        httpx.Client() as http,
    ):
        small = http.post(url + "/small", json={"prompt": "hi"})
        small_checks = [c.as_text() for c in guard.seen if c.kind == "response"]
        guard.reset()
        whole = http.post(url + "/inherit", json={"prompt": "hi"})
        whole_checks = [c.as_text() for c in guard.seen if c.kind == "response"]
    assert small.status_code == whole.status_code == 200
    assert small.content == whole.content  # every byte reaches the client either way
    # 140 characters in windows of 8, 16, 16... (whole events of 7): seven checks of 2-3 words.
    assert len(small_checks) == 7
    assert all(len(text) <= 16 + 7 for text in small_checks)
    assert "".join(small_checks) == "".join(WORDS)
    # The middleware's 1,000-character window: the whole answer in one check.
    assert whole_checks == ["".join(WORDS)]


@pytest.mark.parametrize("serve", SHELLS)
def test_a_routes_idle_flush_releases_a_quiet_stream_the_middleware_would_hold(serve: Serve) -> None:
    """The middleware never flushes; the route does: the first event arrives while the app waits."""
    guard = StaticGuard()
    routes = [Route("/quiet", scan_response=True, stream_idle_flush=0.02)]
    streams = Streams()
    with (
        serve(streams, guard=guard, routes=routes, stream_idle_flush=None) as url,
        httpx.stream("POST", url + "/quiet", json={"prompt": "hi"}, timeout=WAIT * 2) as response,
    ):
        chunks = response.iter_bytes()
        first = next(chunks)
        streams.release.set()
        rest = b"".join(chunks)
    assert b"hello" in first
    assert b"world" not in first
    assert streams.waited == [True]  # the app was still waiting when the client had the first event
    assert b"world" in rest


@pytest.mark.parametrize("serve", SHELLS)
def test_a_route_can_turn_the_idle_flush_off(serve: Serve) -> None:
    """``stream_idle_flush=False`` on a route: held text waits for more (the app gives up waiting)."""
    guard = StaticGuard()
    streams = Streams()
    streams.wait = 0.3  # quiet for 0.3 s: the middleware's flush (at once) would cut a window
    routes = [Route("/quiet", scan_response=True, stream_idle_flush=False)]
    with serve(streams, guard=guard, routes=routes, stream_idle_flush=0.0, stream_overlap=0) as url:
        response = httpx.post(url + "/quiet", json={"prompt": "hi"}, timeout=WAIT * 2)
    assert response.status_code == 200
    assert streams.waited == [False]
    assert [c.as_text() for c in guard.seen if c.kind == "response"] == ["hello world"]


@pytest.mark.parametrize("serve", SHELLS)
def test_a_route_inherits_the_middlewares_idle_flush(serve: Serve) -> None:
    """The same quiet stream on a route that says nothing: the middleware's flush cuts it in two."""
    guard = StaticGuard()
    streams = Streams()
    streams.wait = 0.3
    routes = [Route("/quiet", scan_response=True)]
    with serve(streams, guard=guard, routes=routes, stream_idle_flush=0.0, stream_overlap=0) as url:
        response = httpx.post(url + "/quiet", json={"prompt": "hi"}, timeout=WAIT * 2)
    assert response.status_code == 200
    assert [c.as_text() for c in guard.seen if c.kind == "response"] == ["hello", " world"]
