"""The aiohttp async backend: chosen as documented, and byte-for-byte the same exchange as httpx's."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from guardrails import GuardResponseError, GuardUnavailable, TrendAIGuard
from guardrails._aiohttp import AiohttpTransport
from guardrails._policy import CircuitBreaker
from tests.servers import free_port, run_asgi

pytestmark = pytest.mark.anyio

KEY = "aiohttp-test-key-0123456789"
BACKENDS = ["aiohttp", "httpx"]
seen: list[dict[str, Any]] = []


async def echo(request: Request) -> Response:
    body = await request.body()
    seen.append({"headers": dict(request.headers), "body": body, "query": request.url.query})
    return JSONResponse({"id": "e-1", "action": "Allow", "reasons": []})


async def bomb(request: Request) -> Response:
    # 8 MiB of zeros, a few KiB on the wire: only a cap on the decoded size stops it.
    payload = gzip.compress(b"{" + b" " * (8 * 1024 * 1024) + b"}")
    return Response(payload, media_type="application/json", headers={"content-encoding": "gzip"})


async def gzipped(request: Request) -> Response:
    payload = gzip.compress(json.dumps({"id": "g-1", "action": "Block", "reasons": ["r"]}).encode())
    return Response(payload, media_type="application/json", headers={"content-encoding": "gzip"})


app = Starlette(
    routes=[
        Route("/echo/v3.0/aiSecurity/applyGuardrails", echo, methods=["POST"]),
        Route("/bomb/v3.0/aiSecurity/applyGuardrails", bomb, methods=["POST"]),
        Route("/gzip/v3.0/aiSecurity/applyGuardrails", gzipped, methods=["POST"]),
    ]
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with run_asgi(app) as url:
        yield url


def guard(base_url: str, backend: str, **options: Any) -> TrendAIGuard:
    return TrendAIGuard(
        KEY,
        base_url=base_url,
        app_name="aiohttp-tests",
        async_backend=backend,  # type: ignore[arg-type]
        breaker=CircuitBreaker(failure_threshold=0),
        backoff=0.01,
        **options,
    )


async def test_auto_uses_aiohttp_on_asyncio_when_installed(base_url: str) -> None:
    """``async_backend="auto"`` (the default) sends with aiohttp when it is installed."""
    async with TrendAIGuard(KEY, base_url=base_url) as trend:
        assert isinstance((await trend._async_pool()).transport, AiohttpTransport)


async def test_httpx_backend_uses_httpx(base_url: str) -> None:
    """``async_backend="httpx"`` keeps httpx's own transport."""
    async with guard(base_url, "httpx") as trend:
        assert not isinstance((await trend._async_pool()).transport, AiohttpTransport)


async def test_http2_keeps_httpx(base_url: str) -> None:
    """aiohttp has no HTTP/2: asking for it keeps httpx (h2 comes with the dev extra)."""
    async with guard(base_url, "auto", http2=True) as trend:
        assert not isinstance((await trend._async_pool()).transport, AiohttpTransport)


def test_an_unknown_backend_is_refused() -> None:
    """A typo in async_backend is a ValueError at construction."""
    with pytest.raises(ValueError, match="async_backend"):
        TrendAIGuard(KEY, base_url="http://127.0.0.1:1", async_backend="curl")  # type: ignore[arg-type]


async def test_both_backends_send_the_same_request(base_url: str) -> None:
    """Method, path, query, headers that matter and body bytes are the same on both backends."""
    seen.clear()
    for backend in BACKENDS:
        async with guard(f"{base_url}/echo", backend) as trend:
            verdict = await trend.acheck("What is the capital of France?")
        assert verdict.allowed
    aio, plain = seen
    assert aio["body"] == plain["body"]
    assert aio["query"] == plain["query"]
    for header in ("authorization", "tmv1-application-name", "tmv1-request-type", "prefer", "content-type"):
        assert aio["headers"][header] == plain["headers"][header]
    assert int(aio["headers"]["content-length"]) == len(aio["body"])


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_gzipped_answer_is_decoded(base_url: str, backend: str) -> None:
    """A gzip-encoded verdict is read like a plain one."""
    async with guard(f"{base_url}/gzip", backend) as trend:
        verdict = await trend.acheck("hello")
    assert verdict.blocked
    assert verdict.reasons == ["r"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_decompression_bomb_hits_the_size_cap(base_url: str, backend: str) -> None:
    """The cap applies to the decoded body: a small gzip of 8 MiB is a GuardResponseError."""
    async with guard(f"{base_url}/bomb", backend, max_response_bytes=64 * 1024, retries=0) as trend:
        with pytest.raises(GuardResponseError, match="larger than the cap"):
            await trend.acheck("hello")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_refused_connection_is_guard_unavailable(backend: str) -> None:
    """Nothing listening: GuardUnavailable, transient, on both backends."""
    async with guard(f"http://127.0.0.1:{free_port()}", backend, retries=1, timeout=2.0) as trend:
        with pytest.raises(GuardUnavailable) as caught:
            await trend.acheck("hello")
    assert caught.value.transient


async def test_the_transport_maps_a_refused_connection_to_connect_error() -> None:
    """At the transport level, aiohttp's connector error is httpx.ConnectError."""
    transport = AiohttpTransport()
    request = httpx.Request("POST", f"http://127.0.0.1:{free_port()}/x", content=b"{}")
    try:
        with pytest.raises(httpx.ConnectError):
            await transport.handle_async_request(request)
    finally:
        await transport.aclose()
