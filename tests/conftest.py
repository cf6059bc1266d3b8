"""Fixtures shared by the whole suite: one emulator of the vendor guards, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from guardrails.testing.emulator import Emulator, create_app
from tests.helpers import PANW_KEY, TREND_KEY
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
