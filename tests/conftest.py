"""Fixtures shared by the whole suite: one emulator of the vendor guards, reset per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from guardrails.testing.emulator import Emulator, create_app
from tests.helpers import PANW_KEY, TREND_KEY
from tests.redis_server import redis_binary, redis_server
from tests.servers import run_asgi


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def emulator_app() -> Starlette:
    """The vendor emulator (Trend v3 and beta, Palo Alto), one for the whole session."""
    return create_app(trend_keys=(TREND_KEY,), panw_keys=(PANW_KEY,))


@pytest.fixture(scope="session")
def emulator_url(emulator_app: Starlette) -> Iterator[str]:
    """The emulator served by uvicorn on 127.0.0.1, for the whole session."""
    with run_asgi(emulator_app) as url:
        yield url


@pytest.fixture
def emulator(emulator_app: Starlette, emulator_url: str) -> Iterator[Emulator]:
    """The emulator's state, reset (faults, log, latency) before and after each test."""
    emulator: Emulator = emulator_app.state.emulator
    emulator.reset()
    emulator.latency = 0.0
    yield emulator
    emulator.reset()
    emulator.latency = 0.0


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server: ``GUARDRAILS_TEST_REDIS_URL`` (``.ci/run`` starts one), else one of our own."""
    url = os.environ.get("GUARDRAILS_TEST_REDIS_URL")
    if url:
        yield url
        return
    if redis_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the Redis tests: install redis-server or set GUARDRAILS_TEST_REDIS_URL")
        pytest.skip(
            "redis-server is not installed (apt-get install redis-server) and GUARDRAILS_TEST_REDIS_URL is unset"
        )
    with redis_server() as server:
        yield server.url
