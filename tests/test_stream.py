"""The shared stream scanner: options, adaptive windows, idle flush, concurrent checks, no leaks."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator, MutableMapping
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails import Blocked, LocalGuard, Route, guarded
from guardrails._encoded_sse import EncodedSSEScanner
from guardrails._shapes import AnthropicStreamText, StreamText
from guardrails._sse import SSEScanner
from guardrails._stream import FirstRefusal, ItemScanner, ItemWindow, ScanThread, StreamOptions, ascan
from guardrails._windows import TextWindows
from guardrails.asgi import GuardMiddleware as ASGIGuardMiddleware
from guardrails.integrations.openai import GuardedTransport
from guardrails.testing import StaticGuard
from guardrails.wsgi import GuardMiddleware as WSGIGuardMiddleware

CARD = "the card is 4111 1111 1111 1111 thanks"
PROMPT = b'{"prompt": "hi"}'
WAIT = 5.0  # seconds: a bound on waits that end at once when the code works


def event(text: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).encode() + b"\n\n"


# -- options and windows ----------------------------------------------------------------------------------


def test_stream_options_have_one_set_of_defaults() -> None:
    """Every shell's defaults: 1,000-character windows, a 48-character first, 100 of overlap, 50 ms."""
    assert StreamOptions.of() == StreamOptions(window=1000, first_window=48, overlap=100, idle_flush=0.05)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        pytest.param({"stream_window": 0}, "stream_window", id="window-zero"),
        pytest.param({"stream_first_window": 0}, "stream_first_window", id="first-zero"),
        pytest.param({"stream_overlap": -1}, "stream_overlap", id="overlap-negative"),
        pytest.param({"stream_idle_flush": -0.1}, "stream_idle_flush", id="idle-negative"),
        pytest.param({"stream_window": True}, "stream_window", id="window-bool"),
    ],
)
def test_bad_stream_options_are_refused_by_name(options: dict[str, Any], name: str) -> None:
    """An option out of range raises ValueError naming it, in every shell."""
    with pytest.raises(ValueError, match=name):
        StreamOptions.of(**options)
    with pytest.raises(ValueError, match=name):
        GuardedTransport(StaticGuard(), **options)
    with pytest.raises(ValueError, match=name):
        ASGIGuardMiddleware(lambda *a: None, guard=StaticGuard(), **options)


def test_windows_start_small_and_double_up_to_the_maximum() -> None:
    """first=4, size=20: windows of 4, 8, 16, 20, 20 new characters."""
    windows = TextWindows(20, 0, first=4)
    sizes = []
    for _ in range(5):
        while not windows.add("x"):
            pass
        sizes.append(len(windows.cut()))
    assert sizes == [4, 8, 16, 20, 20]


@pytest.mark.parametrize("middleware", [ASGIGuardMiddleware, WSGIGuardMiddleware], ids=["asgi", "wsgi"])
def test_sse_window_is_a_deprecated_alias_of_stream_window(middleware: Any) -> None:
    """sse_window=... still works, with a DeprecationWarning pointing at the caller."""
    with pytest.warns(DeprecationWarning, match="stream_window") as warned:
        guarded_app = middleware(lambda *a: None, guard=StaticGuard(), sse_window=77)
    assert guarded_app.stream.window == 77
    assert warned[0].filename == __file__


# -- the decorator: nothing yielded unchecked ---------------------------------------------------------------


def test_a_sync_generator_never_yields_a_card_number_before_blocked() -> None:
    """The issue's case: word by word, the consumer receives nothing of the blocked text."""

    @guarded(LocalGuard(), scan_response=True)
    def stream(prompt: str) -> Iterator[str]:
        for word in CARD.split(" "):
            yield word + " "

    received: list[str] = []

    def consume() -> None:
        for word in stream("hi"):
            received.append(word)

    with pytest.raises(Blocked):
        consume()
    assert "4111" not in "".join(received)


@pytest.mark.anyio
async def test_an_async_generator_never_yields_a_card_number_before_blocked() -> None:
    """The same for an async generator (idle flush on: each word is checked as it goes quiet)."""

    @guarded(LocalGuard(), scan_response=True)
    async def stream(prompt: str) -> AsyncIterator[str]:
        for word in CARD.split(" "):
            await asyncio.sleep(0.001)
            yield word + " "

    received: list[str] = []

    async def consume() -> None:
        async for word in stream("hi"):
            received.append(word)

    with pytest.raises(Blocked):
        await consume()
    assert "4111 1111 1111 1111" not in "".join(received)


@pytest.mark.anyio
async def test_an_async_generator_releases_held_text_when_it_goes_quiet() -> None:
    """A short chunk reaches the consumer before the generator goes on: the idle flush released it."""
    released = asyncio.Event()

    @guarded(StaticGuard(), scan_response=True)
    async def stream(prompt: str) -> AsyncIterator[str]:
        yield "hello"
        await asyncio.wait_for(released.wait(), WAIT)  # times out unless "hello" got out first
        yield "world"

    received = []
    async for chunk in stream("hi"):
        received.append(chunk)
        released.set()
    assert received == ["hello", "world"]


# -- the middlewares and the transport: idle flush ----------------------------------------------------------


@pytest.mark.anyio
async def test_the_asgi_middleware_releases_a_quiet_streams_held_events() -> None:
    """ASGI: the first event goes out while the app waits (for that very event to go out)."""
    went_out = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": event("hi"), "more_body": True})
        await asyncio.wait_for(went_out.wait(), WAIT)
        await send({"type": "http.response.body", "body": event("there"), "more_body": False})

    middleware = ASGIGuardMiddleware(app, guard=StaticGuard(), routes=[Route("/s", scan_response=True)])
    sent = bytearray()
    requests = [{"type": "http.request", "body": PROMPT, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await asyncio.sleep(WAIT)
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.extend(message.get("body", b""))
        if b'"hi"' in sent:
            went_out.set()

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/s",
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }
    await middleware(scope, receive, send)
    assert bytes(sent) == event("hi") + event("there")


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def wsgi_environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/s",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(PROMPT)),
        "wsgi.input": io.BytesIO(PROMPT),
    }


class Paused:
    """A WSGI app streaming one event, then waiting for ``resume`` before the next; records close()."""

    def __init__(self) -> None:
        self.resume = threading.Event()
        self.closed = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return self.body()

    def body(self) -> Iterator[bytes]:
        try:
            yield event("hi")
            self.resume.wait(WAIT)
            yield event("there")
        finally:
            self.closed.set()


def test_the_wsgi_middleware_releases_a_quiet_streams_held_events() -> None:
    """WSGI: the first event goes out while the app is paused (a helper thread reads it)."""
    app = Paused()
    middleware = WSGIGuardMiddleware(app, guard=StaticGuard(), routes=[Route("/s", scan_response=True)])
    body = middleware(wsgi_environ(), start_response)
    try:
        chunks = iter(body)
        assert next(chunks) == event("hi")
        assert not app.resume.is_set()  # it came out while the app was still paused
        app.resume.set()
        assert b"".join(chunks) == event("there")
    finally:
        body.close()  # type: ignore[attr-defined]
    assert app.closed.is_set()


def test_closing_a_wsgi_stream_mid_way_closes_the_app_and_ends_the_helper_thread() -> None:
    """close() while the app is paused: the app's iterable is closed and no thread is left behind."""
    app = Paused()
    middleware = WSGIGuardMiddleware(app, guard=StaticGuard(), routes=[Route("/s", scan_response=True)])
    before = {thread.ident for thread in threading.enumerate()}
    body = middleware(wsgi_environ(), start_response)
    assert next(iter(body)) == event("hi")
    helpers = [t for t in threading.enumerate() if t.ident not in before and t.name == "guardrails-stream"]
    assert len(helpers) == 1
    app.resume.set()
    body.close()  # type: ignore[attr-defined]
    helpers[0].join(WAIT)
    assert not helpers[0].is_alive()
    assert app.closed.is_set()


def test_a_wsgi_apps_error_reaches_the_server_thread() -> None:
    """An exception in the app's iterable (read on the helper thread) is raised to the server."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        yield event("hi")
        raise RuntimeError("app failed")

    middleware = WSGIGuardMiddleware(app, guard=StaticGuard(), routes=[Route("/s", scan_response=True)])
    body = middleware(wsgi_environ(), start_response)
    try:
        with pytest.raises(RuntimeError, match="app failed"):
            b"".join(body)
    finally:
        body.close()  # type: ignore[attr-defined]


class PausedUpstream(httpx.SyncByteStream):
    def __init__(self) -> None:
        self.resume = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        yield event("hi")
        self.resume.wait(WAIT)
        yield event("there")


def test_the_openai_transport_hands_on_a_quiet_streams_held_events() -> None:
    """Sync OpenAI stream: the first event reaches the client while the model is quiet."""
    upstream = PausedUpstream()
    model = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=upstream)
    )
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with (
        httpx.Client(transport=GuardedTransport(StaticGuard(), transport=model)) as client,
        client.stream("POST", "http://model/v1/chat/completions", json=chat) as response,
    ):
        chunks = response.iter_bytes()
        assert next(chunks) == event("hi")
        assert not upstream.resume.is_set()
        upstream.resume.set()
        assert b"".join(chunks) == event("there")


# -- the drivers --------------------------------------------------------------------------------------------


def text_of(item: str) -> str:
    return item


async def items(*texts: str) -> AsyncIterator[str]:
    for text in texts:
        yield text


@pytest.mark.anyio
async def test_concurrent_checks_release_windows_in_order() -> None:
    """A slow first check and a fast second: the second window waits for the first."""
    finished: list[str] = []

    async def check(window: ItemWindow[str]) -> bool:
        await asyncio.sleep(0.2 if window.text == "aaaa" else 0.0)
        finished.append(window.text)
        return True

    scanner = ItemScanner(StreamOptions(window=4, first_window=4, overlap=0, idle_flush=None), text_of)
    released = [w.text async for w in ascan(items("aaaa", "bbbb"), scanner, check, idle_flush=None)]
    assert finished == ["bbbb", "aaaa"]  # the checks overlapped
    assert released == ["aaaa", "bbbb"]


@pytest.mark.anyio
async def test_a_slow_refusal_holds_back_every_later_window() -> None:
    """The first window is refused after the second was allowed: neither is released."""
    refusal: FirstRefusal[str] = FirstRefusal()

    async def check(window: ItemWindow[str]) -> bool:
        ticket = refusal.ticket()
        await asyncio.sleep(0.05 if window.text == "bad!" else 0.0)
        if window.text == "bad!" or window.text == "bad2":
            refusal.record(ticket, window.text)
            return False
        return True

    scanner = ItemScanner(StreamOptions(window=4, first_window=4, overlap=0, idle_flush=None), text_of)
    released = [w async for w in ascan(items("bad!", "fine", "bad2"), scanner, check, idle_flush=None)]
    assert released == []
    assert refusal.value == "bad!"


def test_scan_thread_closes_its_source_and_raises_its_error() -> None:
    """The helper thread closes the source after an error, and the error is raised to the caller."""
    closed = threading.Event()

    def source() -> Iterator[bytes]:
        try:
            yield event("hi")
            raise ValueError("broken source")
        finally:
            closed.set()

    scan = ScanThread(source(), SSEScanner(window_chars=1000), lambda w: True, idle_flush=None)
    try:
        with pytest.raises(ValueError, match="broken source"):
            list(scan)
    finally:
        scan.close()
    assert closed.is_set()
    assert not scan.thread.is_alive()


def test_scan_thread_close_returns_while_the_source_is_stuck() -> None:
    """close() waits a bounded time for a source stuck in next(), then returns; the thread ends later."""
    release = threading.Event()

    def source() -> Iterator[bytes]:
        yield event("hi")
        release.wait(WAIT)
        yield event("late")

    scan = ScanThread(source(), SSEScanner(window_chars=1000), lambda w: True, idle_flush=0.01)
    windows = iter(scan)
    assert next(windows).data == event("hi")
    started = time.monotonic()
    scan.close(wait=0.05)
    assert time.monotonic() - started < 1.0
    release.set()
    scan.thread.join(WAIT)
    assert not scan.thread.is_alive()


# -- Anthropic Messages events ------------------------------------------------------------------------------


def anthropic(kind: str, **fields: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        pytest.param(
            anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hello"}),
            "Hello",
            id="text",
        ),
        pytest.param(
            anthropic(
                "content_block_delta", index=1, delta={"type": "input_json_delta", "partial_json": '{"q": "x'}
            ),
            '{"q": "x',
            id="tool-input",
        ),
        pytest.param(
            anthropic("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "hmm"}),
            "hmm",
            id="thinking",
        ),
        pytest.param(
            anthropic("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "EqQB"}),
            "",
            id="signature",
        ),
        pytest.param(
            anthropic("content_block_start", index=0, content_block={"type": "text", "text": ""}),
            "",
            id="start",
        ),
        pytest.param(
            anthropic(
                "content_block_start",
                index=0,
                content_block={"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
            ),
            "",
            id="tool-use-start",
        ),
        pytest.param(anthropic("ping"), "", id="ping"),
        pytest.param(
            anthropic("message_delta", delta={"stop_reason": "end_turn"}, usage={}), "", id="message-delta"
        ),
        pytest.param(anthropic("something_new", note="read me"), "read me", id="unknown-type"),
    ],
)
def test_anthropic_stream_events_are_read_for_their_generated_text(raw: bytes, text: str) -> None:
    """content_block_delta text (not signatures) is read; events with no text give ""."""
    assert AnthropicStreamText()(raw) == text


def test_an_idle_flush_of_a_gzip_stream_releases_the_raw_bytes_of_its_checked_events() -> None:
    """EncodedSSEScanner.flush: the held events' text, and exactly the compressed bytes they came in."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    raw = compressor.compress(event("hi")) + compressor.flush(zlib.Z_SYNC_FLUSH)
    scanner = EncodedSSEScanner("gzip", window_chars=1000, first_window=48, max_decoded_size=10**6)
    assert scanner.feed(raw) == []
    held_before = scanner.holding
    window = scanner.flush()
    assert window is not None
    assert (held_before, window.text, window.data, scanner.holding) == (True, "hi", raw, False)
    assert scanner.flush() is None


def test_concurrent_sync_checks_release_windows_in_order() -> None:
    """ScanThread(concurrency=2): after the first check (inline), a slow check and a fast one
    overlap; windows are released in stream order."""
    finished: list[str] = []

    def check(window: ItemWindow[str]) -> bool:
        time.sleep(0.2 if window.text == "bbbb" else 0.0)
        finished.append(window.text)
        return True

    scanner = ItemScanner(StreamOptions(window=4, first_window=4, overlap=0, idle_flush=None), text_of)
    scan = ScanThread(iter(["aaaa", "bbbb", "cccc"]), scanner, check, idle_flush=None, concurrency=2)
    try:
        released = [window.text for window in scan]
    finally:
        scan.close()
    assert finished == ["aaaa", "cccc", "bbbb"]  # the last two checks overlapped
    assert released == ["aaaa", "bbbb", "cccc"]


# -- the readers' fast path ---------------------------------------------------------------------------


_DELTAS = st.fixed_dictionaries(
    {},
    optional={
        "content": st.one_of(st.none(), st.text(max_size=20)),
        "role": st.sampled_from(["assistant", "tool"]),
        "refusal": st.one_of(st.none(), st.text(max_size=10)),
        "name": st.text(max_size=5),
        "tool_calls": st.just([{"index": 0, "function": {"arguments": '{"a": 1}'}}]),
    },
)


@settings(max_examples=200, deadline=None)
@given(
    delta=_DELTAS,
    choices=st.integers(min_value=0, max_value=2),
    framing=st.sampled_from(["lf", "crlf", "event", "space-less", "two-lines"]),
)
def test_the_fast_reading_of_a_chunk_is_the_slow_reading(
    delta: dict[str, Any], choices: int, framing: str
) -> None:
    """Any chunk, any framing: the text read is the same as when read by the general path (CRLF)."""
    document = {
        "object": "chat.completion.chunk",
        "choices": [{"index": i, "delta": delta} for i in range(choices)],
    }
    data = json.dumps(document, ensure_ascii=False)
    slow = ("data: " + data + "\r\n\r\n").encode()  # a CR: never the fast path
    raw = {
        "lf": "data: " + data + "\n\n",
        "crlf": "data: " + data + "\r\n\r\n",
        "event": "event: chunk\ndata: " + data + "\n\n",
        "space-less": "data:" + data + "\n\n",
        "two-lines": "data: " + data + "\ndata: \n\n",
    }[framing].encode()
    assert StreamText()(raw) == StreamText()(slow)
    anthropic_doc = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", **delta}}
    anthropic_data = json.dumps(anthropic_doc, ensure_ascii=False)
    fast = ("event: content_block_delta\ndata: " + anthropic_data + "\n\n").encode()
    assert AnthropicStreamText()(fast) == AnthropicStreamText()(
        ("data: " + anthropic_data + "\r\n\r\n").encode()
    )


def test_a_chunk_split_anywhere_is_read_as_a_whole() -> None:
    """The scanner joins a chunk cut mid-event (and mid-character) before reading it."""
    raw = event("héllo wörld ") * 3 + b"data: [DONE]\n\n"
    for cut in range(1, len(raw)):
        scanner = SSEScanner(window_chars=1000, overlap=0)
        windows = [*scanner.feed(raw[:cut]), *scanner.feed(raw[cut:])]
        last = scanner.finish()
        assert windows == []
        assert last is not None
        assert last.text == "héllo wörld " * 3
        assert last.data == raw
