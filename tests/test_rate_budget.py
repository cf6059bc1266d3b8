"""The in-process rate budget, and a remote guard that spends it before every vendor call."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from guardrails import GuardRateLimited, RateLimit, TrendAIGuard
from guardrails._budget import RateBudget, as_budget


def test_a_bucket_grants_its_burst_then_says_how_long_to_wait() -> None:
    budget = RateLimit(2, burst=3)
    assert [budget.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = budget.take()
    assert 0 < wait <= 0.5


def test_the_option_takes_a_budget_a_rate_or_none() -> None:
    budget = RateLimit(1)
    assert as_budget(budget) is budget
    assert isinstance(as_budget(5), RateBudget)
    assert as_budget(None) is None
    with pytest.raises(TypeError, match="rate_limit"):
        as_budget("fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        RateLimit(0)


def _allowing(calls: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"id": "x", "action": "Allow", "reasons": []})

    return httpx.MockTransport(handler)


def test_a_spent_budget_raises_rate_limited_without_calling_the_vendor() -> None:
    calls: list[httpx.Request] = []
    guard = TrendAIGuard("k", transport=_allowing(calls), rate_limit=RateLimit(0.5, burst=2))
    assert guard.check("one").allowed
    assert guard.check("two").allowed
    with pytest.raises(GuardRateLimited) as caught:
        guard.check("three")
    assert len(calls) == 2
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0


def test_the_async_path_spends_the_same_budget() -> None:
    calls: list[httpx.Request] = []

    async def main() -> None:
        async with TrendAIGuard(
            "k", transport=httpx.MockTransport(_allowing(calls).handler), rate_limit=1
        ) as guard:
            assert (await guard.acheck("one")).allowed
            with pytest.raises(GuardRateLimited):
                await guard.acheck("two")

    asyncio.run(main())
    assert len(calls) == 1
