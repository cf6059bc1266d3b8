"""Event streams under a Content-Encoding: decoded for checking, passed on byte for byte.

The scanner alone (every encoding, flush pattern and chunking, by hypothesis), then end to end:
Starlette's GZipMiddleware under the ASGI middleware (uvicorn) and Django's GZipMiddleware under
the WSGI one (werkzeug), with real HTTP clients reading the raw compressed bytes.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import random
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route as StarletteRoute
from werkzeug.test import Client

from guardrails._body import BodyTooLarge, InvalidBody, UnsupportedEncoding
from guardrails._encoded_sse import EncodedSSEScanner, event_stream_scanner
from guardrails._events import Decision
from guardrails._models import Content
from guardrails._replies import error_reply
from guardrails._routing import Route
from guardrails._sse import SSEScanner, sse_error_event
from guardrails.asgi import GuardMiddleware as ASGIGuardMiddleware
from guardrails.testing._fakes import FakeGuard
from guardrails.wsgi import GuardMiddleware as WSGIGuardMiddleware
from tests.servers import run_asgi, run_wsgi

WORD = "XYZZY"
TIMEOUT = 10.0


def event(delta: str) -> bytes:
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": delta}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def deltas(decoded: bytes) -> str:
    """The text a client assembles from the complete events of a (possibly cut) stream."""
    text = []
    for block in decoded.split(b"\n\n")[:-1]:
        if block.startswith(b"event: error"):
            continue
        payload = block.removeprefix(b"data: ")
        if payload != b"[DONE]":
            text.append(json.loads(payload)["choices"][0]["delta"]["content"])
    return "".join(text)


def blocks_word(content: Content) -> bool:
    return WORD in content.as_text()


# -- compressing and decoding, independently of the code under test ----------------------------------


def compress(pieces: list[bytes], coding: str, flush: str) -> list[bytes]:
    """The raw chunks a server sends for these pieces: gzip/deflate/raw deflate, flushed or not."""
    if flush == "members":
        return [gzip.compress(piece, mtime=0) for piece in pieces]
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}[coding]
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    chunks = []
    for piece in pieces:
        chunk = compressor.compress(piece)
        if flush == "sync":
            chunk += compressor.flush(zlib.Z_SYNC_FLUSH)
        chunks.append(chunk)
    chunks.append(compressor.flush())
    return chunks


def decode_prefix(data: bytes, coding: str) -> bytes:
    """All that a client can decode from these bytes (a cut stream included), as zlib does."""
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}[coding]
    out = b""
    while data:
        decompressor = zlib.decompressobj(wbits)
        out += decompressor.decompress(data)
        data = decompressor.unused_data if decompressor.eof else b""
    return out


def decode_strictly(data: bytes, coding: str) -> bytes:
    """Decode a whole stream, failing on a truncated one or trailing garbage."""
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "deflate":
        return zlib.decompress(data)
    decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
    out = decompressor.decompress(data)
    assert decompressor.eof
    assert not decompressor.unused_data
    return out


REPLY = error_reply(403, "guardrail_blocked", "The response was blocked.", code="content_blocked")


def rechunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[start:end] for start, end in itertools.pairwise(points)]


def run(scanner: EncodedSSEScanner, chunks: Iterable[bytes]) -> tuple[bytes, bytes | None]:
    """Drive a scanner as the shells do; the bytes released, and the ending if the word was blocked."""
    released = bytearray()
    for chunk in chunks:
        for window in scanner.feed(chunk):
            if WORD in window.text:
                return bytes(released), scanner.error_event(REPLY, window)
            released += window.data
    last = scanner.finish()
    if last is not None:
        if WORD in last.text:
            return bytes(released), scanner.error_event(REPLY, last)
        released += last.data
    return bytes(released), None


# -- the scanner ---------------------------------------------------------------------------------------

CODINGS = [
    ("gzip", "sync"),
    ("gzip", "none"),
    ("gzip", "members"),
    ("deflate", "sync"),
    ("raw-deflate", "sync"),
]


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(["alpha", "beta", "gamma", "delta", "é", "東京", " "]), min_size=1, max_size=60
    ),
    where=st.integers(min_value=0),
    split=st.integers(min_value=0, max_value=len(WORD)),
    coding=st.sampled_from(CODINGS),
    window=st.integers(min_value=5, max_value=80),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    halves=st.booleans(),
)
def test_no_decodable_byte_of_a_blocked_event_is_released(
    words: list[str],
    where: int,
    split: int,
    coding: tuple[str, str],
    window: int,
    cuts: list[int],
    halves: bool,
) -> None:
    """Whatever the encoding, flushing and chunking, the client can decode nothing past the event
    that completes the blocked word (split across two events, maybe each cut in two pieces)."""
    at = where % (len(words) + 1)
    parts = [WORD[:split], WORD[split:]]
    events = [event(word) for word in words[:at]] + [event(part) for part in parts if part]
    completing = len(b"".join(events)) - len(events[-1])  # offset of the event ending the word
    events += [event(word) for word in words[at:]] + [b"data: [DONE]\n\n"]
    pieces = [half for e in events for half in ((e[:7], e[7:]) if halves else (e,))]
    encoding, flush = coding
    raw = b"".join(compress(pieces, encoding, flush))
    scanner = EncodedSSEScanner(
        "gzip" if encoding == "gzip" else "deflate", window_chars=window, max_decoded_size=10**7
    )
    released, ending = run(scanner, rechunk(raw, cuts))
    assert ending is not None
    decoded = decode_prefix(released, encoding)
    assert b"".join(events).startswith(decoded)
    assert len(decoded) <= completing
    assert WORD not in deltas(decoded)
    if ending:
        # An ending continues the stream validly: the whole stream decodes, strictly.
        assert decode_strictly(released + ending, encoding) == decoded + sse_error_event(REPLY)


@pytest.mark.parametrize(("encoding", "flush"), CODINGS)
def test_an_allowed_stream_is_released_byte_for_byte(encoding: str, flush: str) -> None:
    """Every raw byte goes out, in order, unchanged (the gzip trailer included)."""
    events = [event(f"word {i} ") for i in range(200)]
    chunks = compress(events, encoding, flush)
    header = "gzip" if encoding == "gzip" else "deflate"
    released, ending = run(EncodedSSEScanner(header, window_chars=50, max_decoded_size=10**7), chunks)
    assert ending is None
    assert released == b"".join(chunks)


@pytest.mark.parametrize(
    ("encoding", "flush", "ended"),
    [
        ("gzip", "sync", True),
        ("gzip", "members", True),
        ("deflate", "sync", True),
        ("raw-deflate", "sync", True),
        ("gzip", "none", False),
    ],
)
def test_a_blocked_stream_ends_with_the_error_event_where_the_encoding_allows(
    encoding: str, flush: str, ended: bool
) -> None:
    """After a sync flush or a whole gzip member the error event follows, validly encoded;
    inside a compressed block (no flush) the stream just stops."""
    events = [event(f"word {i} ") for i in range(100)] + [event(WORD)]
    scanner = EncodedSSEScanner(
        "gzip" if encoding == "gzip" else "deflate", window_chars=50, max_decoded_size=10**7
    )
    released, ending = run(scanner, compress(events, encoding, flush))
    assert ending is not None
    if ended:
        decoded = decode_strictly(released + ending, encoding)
        assert decoded.endswith(b"\n\n" + sse_error_event(REPLY))
        assert WORD not in deltas(decoded)
    else:
        assert ending == b""


def test_the_gzip_header_goes_out_without_waiting_for_a_window() -> None:
    """Bytes that decode to nothing are released at once: the stream starts streaming."""
    scanner = EncodedSSEScanner("gzip", window_chars=1000, max_decoded_size=10**6)
    header = gzip.compress(b"", mtime=0)[:10]
    assert [(window.text, window.data) for window in scanner.feed(header)] == [("", header)]


def test_a_decompression_bomb_is_refused_past_the_cap() -> None:
    """A small stream decoding to far more than the cap raises, never holding more than the cap."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = compressor.compress(b"data: ") + b"".join(compressor.compress(b"a" * 1_000_000) for _ in range(50))
    bomb += compressor.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 100_000
    scanner = EncodedSSEScanner("gzip", window_chars=1000, max_decoded_size=1_000_000)
    with pytest.raises(BodyTooLarge):
        scanner.feed(bomb)


def test_a_stream_that_does_not_decode_is_invalid() -> None:
    scanner = EncodedSSEScanner("gzip", window_chars=1000, max_decoded_size=10**6)
    with pytest.raises(InvalidBody):
        scanner.feed(b"this is not gzip at all")


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
def test_encodings_that_cannot_be_decoded_are_unsupported(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding):
        event_stream_scanner(encoding, window_chars=100, max_decoded_size=100)


@pytest.mark.parametrize("encoding", [None, "", "identity", "Identity, identity"])
def test_identity_streams_use_the_plain_scanner(encoding: str | None) -> None:
    assert type(event_stream_scanner(encoding, window_chars=100, max_decoded_size=100)) is SSEScanner


def test_stacked_encodings_are_undone_last_first() -> None:
    events = [event(f"w{i} ") for i in range(50)] + [event(WORD)]
    inner = gzip.compress(b"".join(events), mtime=0)
    raw = zlib.compress(inner)
    released, ending = run(EncodedSSEScanner("gzip, deflate", window_chars=30, max_decoded_size=10**6), [raw])
    assert (released, ending) == (b"", b"")  # stacked: no valid ending, the stream stops


# -- end to end: ASGI, Starlette's GZipMiddleware ---------------------------------------------------------


def stream_words(query: Any) -> list[str]:
    """The words a test's stream says, from the query (so the request itself holds no blocked word).

    ``count`` words of random letters (text that compresses badly, so a compressor that does not
    flush still sends data mid-stream), with `WORD` cut at ``split`` inserted at ``at``.
    """
    rng = random.Random(int(query.get("seed", 0)))
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = [
        "".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) + " "
        for _ in range(int(query.get("count", 100)))
    ]
    if "at" in query:
        split = int(query.get("split", 0))
        at = int(query["at"])
        words[at:at] = [part for part in (WORD[:split], WORD[split:]) if part]
    return words


def sse_pieces(words: list[str]) -> list[bytes]:
    """Events each sent in two pieces: a compressed chunk ends inside every event."""
    pieces = []
    for word in words:
        data = event(word)
        pieces += [data[: len(data) // 2], data[len(data) // 2 :]]
    return [*pieces, b"data: [DONE]\n\n"]


class Recorder:
    """ASGI middleware between the guard and the app: what the app sent, byte for byte."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sent = bytearray()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.body":
                self.sent += message.get("body", b"")
            await send(message)

        await self.app(scope, receive, recording_send)


def starlette_app() -> Any:
    async def stream(request: Request) -> Response:
        words = stream_words(request.query_params)

        async def events() -> AsyncIterator[bytes]:
            for piece in sse_pieces(words):
                yield piece

        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[StarletteRoute("/stream", stream, methods=["POST"])])
    # Starlette leaves event streams alone by default; told otherwise it gzips them, flushing
    # after every chunk the app sends.
    return GZipMiddleware(app, minimum_size=0, exclude_content_types=())


@contextmanager
def asgi_server(**options: Any) -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder(starlette_app())
    options.setdefault("guard", FakeGuard(blocks_word))
    options.setdefault("routes", [Route("/stream", scan_response=True)])
    with run_asgi(ASGIGuardMiddleware(recorder, stream_window=60, **options)) as url:
        yield url, recorder


def fetch_raw(url: str, **query: int) -> tuple[httpx.Response, bytes]:
    """POST to the stream; the response and its raw (still compressed) body."""
    with httpx.Client(timeout=TIMEOUT) as client:
        request = client.build_request(
            "POST", url, params=query, json={"stream": True}, headers={"accept-encoding": "gzip"}
        )
        response = client.send(request, stream=True)
        try:
            raw = b"".join(response.iter_raw())
        finally:
            response.close()
    return response, raw


def test_asgi_an_allowed_gzip_stream_arrives_byte_identical() -> None:
    with asgi_server() as (url, recorder):
        response, raw = fetch_raw(url + "/stream", seed=1, count=300)
    assert response.headers["content-encoding"] == "gzip"
    assert raw == bytes(recorder.sent)
    assert deltas(gzip.decompress(raw)) == "".join(stream_words({"seed": 1, "count": 300}))


@pytest.mark.parametrize("split", [0, 2, 4], ids=["whole", "XY|ZZY", "XYZZ|Y"])
def test_asgi_a_blocked_word_split_across_gzip_chunks_never_reaches_the_client(split: int) -> None:
    with asgi_server() as (url, recorder):
        response, raw = fetch_raw(url + "/stream", seed=2, count=300, at=200, split=split)
    decoded = decode_prefix(raw, "gzip")
    assert (response.status_code, response.headers["content-encoding"]) == (200, "gzip")
    assert WORD not in deltas(decoded)
    assert len(deltas(decoded)) > 500  # the stream did stream before the block
    # Starlette flushes every chunk: the error event follows, and the gzip stream is whole.
    whole = gzip.decompress(raw)
    last_event = whole.split(b"\n\n")[-2]
    assert last_event.startswith(b"event: error\ndata: ")
    assert json.loads(last_event.split(b"data: ", 1)[1])["error"]["type"] == "guardrail_blocked"
    assert WORD not in deltas(whole)
    # Before the error event: the app's own events, unchanged.
    assert gzip.decompress(bytes(recorder.sent)).startswith(whole[: whole.rindex(b"event: error")])


def test_asgi_an_event_stream_in_an_encoding_we_cannot_decode_is_refused() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/event-stream"), (b"content-encoding", b"br")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"\x0b\x02\x80data", "more_body": False})

    routes = [Route("/stream", scan_response=True, fail_open="always")]
    with run_asgi(ASGIGuardMiddleware(app, guard=FakeGuard(blocks_word), routes=routes)) as url:
        response = httpx.post(url + "/stream", json={}, timeout=TIMEOUT)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "response_unreadable"


def test_asgi_a_gzip_bomb_in_an_event_stream_is_cut_at_the_cap() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        headers = [(b"content-type", b"text/event-stream"), (b"content-encoding", b"gzip")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(20):
            body = compressor.compress(b"data: " + b"a" * 1_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": compressor.flush(), "more_body": False})

    guarded = ASGIGuardMiddleware(
        app,
        guard=FakeGuard(blocks_word),
        routes=[Route("/stream", scan_response=True)],
        max_response_size=2_000_000,
    )
    with run_asgi(guarded) as url:
        response, raw = fetch_raw(url + "/stream")
    assert response.status_code == 200  # the start went out before the stream grew
    assert len(decode_prefix(raw, "gzip")) <= 2_000_000


# -- end to end: WSGI, Django's GZipMiddleware -------------------------------------------------------------


def django_stream(request: Any) -> Any:
    from django.http import StreamingHttpResponse

    words = stream_words(request.GET)
    return StreamingHttpResponse(sse_pieces(words), content_type="text/event-stream")


def use_this_urlconf(get_response: Any) -> Any:
    """Django middleware: route to this module's `urlpatterns`, not the example's."""

    def middleware(request: Any) -> Any:
        request.urlconf = __name__
        return get_response(request)

    return middleware


def django_app() -> Any:
    """Django (the example's settings) with GZipMiddleware, serving `django_stream`."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")
    import django
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    django.setup()
    # The handler reads MIDDLEWARE once, when it is made.
    with override_settings(
        MIDDLEWARE=[f"{__name__}.use_this_urlconf", "django.middleware.gzip.GZipMiddleware"]
    ):
        return WSGIHandler()


def _urlpatterns() -> list[Any]:
    from django.urls import path

    return [path("stream", django_stream)]


def __getattr__(name: str) -> Any:
    # Django reads request.urlconf's urlpatterns lazily: built on first use, after setup.
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


class WSGIRecorder:
    """WSGI middleware between the guard and Django: what Django sent, byte for byte."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sent = bytearray()

    def __call__(self, environ: Any, start_response: Any) -> Iterator[bytes]:
        iterable = self.app(environ, start_response)
        try:
            for chunk in iterable:
                self.sent += chunk
                yield chunk
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()


@contextmanager
def wsgi_server() -> Iterator[tuple[str, WSGIRecorder]]:
    recorder = WSGIRecorder(django_app())
    app = WSGIGuardMiddleware(
        recorder,
        guard=FakeGuard(blocks_word),
        routes=[Route("/stream", scan_response=True)],
        stream_window=200,
    )
    with run_wsgi(app) as url:
        yield url, recorder


def test_wsgi_django_gzip_stream_allowed_arrives_byte_identical() -> None:
    with wsgi_server() as (url, recorder):
        response, raw = fetch_raw(url + "/stream", seed=3, count=6000)
    assert response.headers["content-encoding"] == "gzip"
    assert raw == bytes(recorder.sent)
    assert deltas(gzip.decompress(raw)) == "".join(stream_words({"seed": 3, "count": 6000}))


@pytest.mark.parametrize("split", [0, 2], ids=["whole", "XY|ZZY"])
def test_wsgi_django_gzip_stream_a_blocked_word_never_reaches_the_client(split: int) -> None:
    with wsgi_server() as (url, recorder):
        response, raw = fetch_raw(url + "/stream", seed=4, count=6000, at=5000, split=split)
    decoded = decode_prefix(raw, "gzip")
    assert (response.status_code, response.headers["content-encoding"]) == (200, "gzip")
    assert WORD not in deltas(decoded)
    assert len(deltas(decoded)) > 1000  # compressed data did stream before the block
    assert bytes(recorder.sent).startswith(raw)


def test_wsgi_a_stream_that_stops_decoding_ends_where_it_stopped() -> None:
    """Valid gzip, then garbage: what decoded and was checked goes out, nothing after it."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    good = compressor.compress(event("hello ") * 3) + compressor.flush(zlib.Z_SYNC_FLUSH)

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream"), ("Content-Encoding", "gzip")])
        return [good, b"\xff" * 64, event(WORD)]

    decisions: list[Decision] = []
    guarded = WSGIGuardMiddleware(
        app,
        guard=FakeGuard(blocks_word),
        routes=[Route("/stream", scan_response=True)],
        stream_window=5,
        on_decision=decisions.append,
    )
    response = Client(guarded).post("/stream", json={})
    assert response.status_code == 200
    assert response.get_data() == good
    assert decisions[-1].outcome == "invalid"
    assert decisions[-1].kind == "response"
