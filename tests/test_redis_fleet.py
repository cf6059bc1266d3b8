"""Four worker processes (uvicorn each) sharing one Redis, in front of the vendor emulator (its own
process): one vendor call for 100 identical prompts, one outage opening every breaker, one budget
for the fleet, and a Redis killed mid-run failing nothing."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import redis

from tests.redis_fleet import Fleet, fleet
from tests.redis_server import RedisServer, redis_binary, redis_server

RATE = 20.0
BURST = 5

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def fleet_redis() -> Iterator[RedisServer]:
    """A redis-server of the fleet's own: a test kills it."""
    if redis_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the fleet test: install redis-server")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def workers(fleet_redis: RedisServer) -> Iterator[Fleet]:
    """The emulator and four workers, for the whole module."""
    with fleet(
        fleet_redis.url, workers=4, prefix=f"fleet-{uuid.uuid4().hex[:8]}:", rate=RATE, burst=BURST
    ) as running:
        yield running


@pytest.fixture
def running(workers: Fleet) -> Fleet:
    """The fleet with the emulator's faults and counts reset."""
    workers.emulator_admin("/_emulator/reset")
    return workers


async def check(client: httpx.AsyncClient, worker: str, text: str, guard: str = "main") -> dict[str, Any]:
    response = await client.post(f"{worker}/check", json={"text": text, "guard": guard})
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


async def test_100_identical_prompts_over_4_workers_make_one_vendor_call(running: Fleet) -> None:
    """25 concurrent identical checks on each worker, the vendor answering in 300 ms: one call."""
    running.emulator_admin("/_emulator/faults", {"kind": "latency", "seconds": 0.3})
    text = f"What is the tallest mountain in Europe? {uuid.uuid4().hex}"
    results: list[dict[str, Any]] = []

    async def one(worker: str) -> None:
        results.append(await check(client, worker, text))

    async with httpx.AsyncClient(trust_env=False, timeout=30) as client, anyio.create_task_group() as group:
        for index in range(100):
            group.start_soon(one, running.workers[index % 4])
    assert [r.get("action") for r in results] == ["allow"] * 100
    assert running.emulator_calls() == 1
    assert sum(not r["cached"] for r in results) == 1


async def test_a_vendor_outage_opens_every_workers_breaker_within_one_check(
    running: Fleet, fleet_redis: RedisServer
) -> None:
    """The vendor answers 503: after the third failure (threshold 3), each worker's next check fails fast."""
    running.emulator_admin("/_emulator/faults", {"kind": "status", "status": 503})
    results = []
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        for index in range(8):
            results.append(
                await check(client, running.workers[index % 4], f"outage {index} {uuid.uuid4().hex}")
            )
    try:
        assert [r["error"] for r in results] == ["GuardUnavailable"] * 8
        assert [r["circuit_open"] for r in results] == [False] * 3 + [True] * 5
        assert running.emulator_calls() == 3
    finally:
        plain = redis.Redis.from_url(fleet_redis.url)
        for key in plain.scan_iter(match="fleet-*:breaker:*"):
            plain.delete(key)  # close the breaker for the next tests
        plain.close()


async def test_the_shared_budget_holds_the_fleet_under_its_rate(running: Fleet) -> None:
    """Four workers asked as fast as they answer for 2.5 s: the vendor sees at most rate x time + burst."""
    window = 2.5
    outcomes: list[str] = []

    async def hammer(worker: str) -> None:
        while time.monotonic() < until:
            result = await check(client, worker, f"budget {uuid.uuid4().hex}", guard="metered")
            outcomes.append(result.get("error") or result["action"])

    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        until = time.monotonic() + window
        async with anyio.create_task_group() as group:
            for worker in running.workers:
                for _ in range(3):
                    group.start_soon(hammer, worker)
    calls = running.emulator_calls()
    assert calls <= RATE * (window + 0.5) + BURST  # + the last requests still in flight at the end
    assert calls >= RATE * window * 0.6  # the budget is spent, not just refused
    assert outcomes.count("allow") == calls
    assert set(outcomes) == {"allow", "GuardRateLimited"}


async def test_killing_redis_mid_run_fails_nothing(running: Fleet, fleet_redis: RedisServer) -> None:
    """Checks keep flowing on every worker while Redis is killed and started again; none fails."""
    outcomes: list[str] = []

    async def stream(worker: str, lane: int) -> None:
        for index in range(40):
            text = f"kill test {lane} {index % 5}"  # repeats: hits, then misses while Redis is gone
            result = await check(client, worker, text)
            outcomes.append(result.get("error") or result["action"])
            if index == 10 and lane == 0:
                fleet_redis.stop()
            if index == 25 and lane == 0:
                fleet_redis.start()

    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        async with anyio.create_task_group() as group:
            for lane, worker in enumerate(running.workers * 2):
                group.start_soon(stream, worker, lane)
        assert outcomes == ["allow"] * 320
        # A worker whose lanes finished while Redis was down tries it again on its next check (after
        # its retry interval): keep checking, within a bounded deadline, until each has recovered.
        stats = [await _recovered(client, worker) for worker in running.workers]
    # At least the one outage; a loaded machine may time out a command once more around the restart.
    assert all(s["cache"]["outages"] >= 1 for s in stats)
    assert all(s["cache"]["recoveries"] == s["cache"]["outages"] and s["cache"]["available"] for s in stats)


async def _recovered(client: httpx.AsyncClient, worker: str, *, within: float = 15.0) -> dict[str, Any]:
    """The worker's stats once its cache is back on Redis (or the last ones seen at the deadline)."""
    deadline = time.monotonic() + within
    while True:
        result = await check(client, worker, "kill test recovery")
        assert result.get("action") == "allow", result
        stats: dict[str, Any] = (await client.get(f"{worker}/stats")).json()
        cache = stats["cache"]
        if (cache["recoveries"] == cache["outages"] and cache["available"]) or time.monotonic() > deadline:
            return stats
        await anyio.sleep(0.05)
