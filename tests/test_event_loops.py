"""An async guard used from successive event loops leaves nothing unclosed behind (issue 11)."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from guardrails._client import AsyncBackend
from guardrails.guards.paloalto import PaloAltoAIRS
from guardrails.guards.trend import TrendAIGuard
from guardrails.testing.emulator import create_app
from tests.servers import run_asgi

TREND_KEY = "loops-trend-key-0123456789"
PANW_KEY = "loops-panw-key-0123456789"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app: Starlette = create_app(trend_keys=(TREND_KEY,), panw_keys=(PANW_KEY,))
    with run_asgi(app) as url:
        yield url


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
@pytest.mark.parametrize("vendor", ["trend", "panw"])
def test_a_guard_used_from_three_event_loops_leaves_no_unclosed_session(
    base_url: str, backend: AsyncBackend, vendor: str, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncio.run(ask(...)) three times: every verdict, no 'Unclosed client session' / connector."""
    if vendor == "trend":
        guard: TrendAIGuard | PaloAltoAIRS = TrendAIGuard(TREND_KEY, base_url=base_url, async_backend=backend)
    else:
        guard = PaloAltoAIRS(PANW_KEY, base_url=base_url, profile_name="p", async_backend=backend)

    async def ask(guard: TrendAIGuard | PaloAltoAIRS) -> bool:
        return (await guard.acheck("What is the capital of France?")).allowed

    caplog.set_level(logging.DEBUG, logger="asyncio")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answers = [asyncio.run(ask(guard)) for _ in range(3)]
        del guard
        gc.collect()
    assert answers == [True, True, True]
    unclosed = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [text for text in unclosed if "nclosed" in text], unclosed
