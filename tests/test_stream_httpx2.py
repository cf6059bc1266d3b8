"""The httpx2 transports' streams on the shared scanner: the real openai and anthropic SDKs against a
local stand-in (Starlette under uvicorn on 127.0.0.1) that streams, then goes quiet.

Idle flush: the stand-in sends the start of its answer, then waits until the client has it (a
bounded wait): only an idle flush gets it there. Adaptive windows: a long answer is checked in
windows that start small and double up to ``stream_window``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import anyio
import httpx2
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from guardrails.integrations.anthropic import GuardedTransport as AnthropicTransport
from guardrails.integrations.openai import GuardedHttpx2Transport
from guardrails.testing import StaticGuard
from tests.servers import run_asgi

WAIT = 5.0  # seconds: a bound on waits that end at once when the code works
FIRST = "Hello there"
REST = [f" piece{index:02d}" for index in range(30)]  # 8 characters each


class StandIn:
    """Streams ``FIRST``; with ``quiet``, waits for ``release`` (set by the client) before ``REST``."""

    def __init__(self) -> None:
        self.quiet = False
        self.release = threading.Event()
        self.waited: list[bool] = []
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
            ]
        )

    def reset(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.release.clear()
        self.waited.clear()

    async def pieces(self) -> AsyncIterator[str]:
        yield FIRST
        if self.quiet:
            self.waited.append(await anyio.to_thread.run_sync(self.release.wait, WAIT))
        for piece in REST:
            yield piece

    async def chat(self, request: Request) -> Response:
        await request.json()

        async def events() -> AsyncIterator[bytes]:
            async for piece in self.pieces():
                choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                chunk = {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "m",
                    "choices": [choice],
                }
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def messages(self, request: Request) -> Response:
        await request.json()

        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            message: dict[str, Any] = {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "stand-in",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
            yield event("message_start", {"type": "message_start", "message": message})
            block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            yield event("content_block_start", block)
            async for piece in self.pieces():
                delta = {"type": "text_delta", "text": piece}
                yield event(
                    "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
                )
            yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
            stop = {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 9},
            }
            yield event("message_delta", stop)
            yield event("message_stop", {"type": "message_stop"})

        return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[StandIn, str]]:
    model = StandIn()
    with run_asgi(model.app) as url:
        yield model, url


PROMPT = [{"role": "user", "content": "hi"}]


def openai_texts(url: str, transport: GuardedHttpx2Transport, model: StandIn) -> list[str]:
    """The texts the openai SDK hands over; the stand-in is released at the first one."""
    api: Any = openai.OpenAI(
        api_key="k", base_url=url + "/v1", http_client=httpx2.Client(transport=transport)
    )
    texts: list[str] = []
    with api:
        for chunk in api.chat.completions.create(model="m", messages=PROMPT, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)
                model.release.set()
    return texts


async def openai_texts_async(url: str, transport: GuardedHttpx2Transport, model: StandIn) -> list[str]:
    api: Any = openai.AsyncOpenAI(
        api_key="k", base_url=url + "/v1", http_client=httpx2.AsyncClient(transport=transport)
    )
    texts: list[str] = []
    async with api:
        stream = await api.chat.completions.create(model="m", messages=PROMPT, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)
                model.release.set()
    return texts


def anthropic_texts(url: str, transport: AnthropicTransport, model: StandIn) -> list[str]:
    api: Any = anthropic.Anthropic(api_key="k", base_url=url, http_client=httpx2.Client(transport=transport))
    texts: list[str] = []
    with api:
        for event in api.messages.create(model="m", max_tokens=64, messages=PROMPT, stream=True):
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                texts.append(event.delta.text)
                model.release.set()
    return texts


async def anthropic_texts_async(url: str, transport: AnthropicTransport, model: StandIn) -> list[str]:
    api: Any = anthropic.AsyncAnthropic(
        api_key="k", base_url=url, http_client=httpx2.AsyncClient(transport=transport)
    )
    texts: list[str] = []
    async with api:
        stream = await api.messages.create(model="m", max_tokens=64, messages=PROMPT, stream=True)
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                texts.append(event.delta.text)
                model.release.set()
    return texts


def responses(guard: StaticGuard) -> list[str]:
    return [content.as_text() for content in guard.seen if content.kind == "response"]


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_a_quiet_models_first_words_reach_the_sdk_while_it_waits(
    served: tuple[StandIn, str], sdk: str
) -> None:
    """Idle flush (sync clients): the first words are checked and handed on before the rest comes."""
    model, url = served
    model.reset(quiet=True)
    guard = StaticGuard()
    if sdk == "openai":
        texts = openai_texts(url, GuardedHttpx2Transport(guard, stream_idle_flush=0.02), model)
    else:
        texts = anthropic_texts(url, AnthropicTransport(guard, stream_idle_flush=0.02), model)
    assert model.waited == [True]  # the client had the first words while the model waited
    assert "".join(texts) == FIRST + "".join(REST)
    assert responses(guard)[0] == FIRST


@pytest.mark.anyio
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
async def test_a_quiet_models_first_words_reach_the_async_sdk_while_it_waits(
    served: tuple[StandIn, str], sdk: str
) -> None:
    """Idle flush (async clients)."""
    model, url = served
    model.reset(quiet=True)
    guard = StaticGuard()
    if sdk == "openai":
        texts = await openai_texts_async(url, GuardedHttpx2Transport(guard, stream_idle_flush=0.02), model)
    else:
        texts = await anthropic_texts_async(url, AnthropicTransport(guard, stream_idle_flush=0.02), model)
    assert model.waited == [True]
    assert "".join(texts) == FIRST + "".join(REST)
    assert responses(guard)[0] == FIRST


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_without_an_idle_flush_a_quiet_model_holds_its_first_words(
    served: tuple[StandIn, str], sdk: str
) -> None:
    """``stream_idle_flush=None``: held text waits for a window's worth (the model gives up waiting)."""
    model, url = served
    model.reset(quiet=True)
    model.release.set()  # the client could not release it before the rest: the model need not wait
    guard = StaticGuard()
    options: dict[str, Any] = {"stream_idle_flush": None, "stream_first_window": 1000, "stream_overlap": 0}
    if sdk == "openai":
        texts = openai_texts(url, GuardedHttpx2Transport(guard, **options), model)
    else:
        texts = anthropic_texts(url, AnthropicTransport(guard, **options), model)
    assert "".join(texts) == FIRST + "".join(REST)
    assert responses(guard) == [FIRST + "".join(REST)]  # one check of the whole answer


@pytest.mark.anyio
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_windows_start_small_and_double(
    served: tuple[StandIn, str], sdk: str, asynchronous: bool
) -> None:
    """first 8, at most 64, no overlap: windows of about 8, 16, 32, 64, 64... characters, in order."""
    model, url = served
    model.reset(quiet=False)
    guard = StaticGuard()
    options: dict[str, Any] = {
        "stream_first_window": 8,
        "stream_window": 64,
        "stream_overlap": 0,
        "stream_idle_flush": None,
    }
    transport: Any = (
        GuardedHttpx2Transport(guard, **options) if sdk == "openai" else AnthropicTransport(guard, **options)
    )
    if asynchronous:
        read = openai_texts_async if sdk == "openai" else anthropic_texts_async
        texts = await read(url, transport, model)
    else:
        read_sync = openai_texts if sdk == "openai" else anthropic_texts
        texts = await anyio.to_thread.run_sync(read_sync, url, transport, model)
    windows = responses(guard)
    assert "".join(texts) == "".join(windows) == FIRST + "".join(REST)
    sizes = [len(window) for window in windows]
    # Whole events of 8 characters (the first of 11): each window is its size, or one event more.
    assert sizes[:4] == [11, 16, 32, 64]
    assert all(size == 64 for size in sizes[4:-1])
    assert sizes[-1] <= 64
