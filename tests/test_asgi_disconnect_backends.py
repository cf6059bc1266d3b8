"""A guard's check and the client's disconnect, on asyncio and on trio.

The middleware tells the two apart without asking asyncio (`guardrails.asgi._on_asyncio`, no
system call): trio names itself in every task's context, a plain asyncio task names nothing. On
asyncio a check is stepped once by hand and raced only if it waits; on trio it runs in a task group
beside the watcher. Either way a check that waits is cancelled when the client leaves, and its own
deadlines still work.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from guardrails._models import Action, Content, Verdict
from guardrails._routing import Route
from guardrails.asgi import GuardMiddleware, _on_asyncio

BACKENDS = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
SCOPE = {"type": "http", "method": "POST", "path": "/chat", "root_path": "", "headers": []}
BODY = {"type": "http.request", "body": b'{"prompt": "hi"}', "more_body": False}


class WaitingGuard:
    """A `Guard` (not an InProcessGuard) that waits `pauses` checkpoints inside a deadline, or
    forever (``pauses=None``), and notes whether it was cancelled."""

    name = "waiting"

    def __init__(self, action: Action = Action.ALLOW, pauses: int | None = 0) -> None:
        self.verdict = Verdict(action=action, guard="waiting")
        self.pauses = pauses
        self.started = anyio.Event()
        self.cancelled = False

    def check(self, content: Content | str) -> Verdict:
        return self.verdict

    async def acheck(self, content: Content | str) -> Verdict:
        self.started.set()
        try:
            with anyio.fail_after(5):
                if self.pauses is None:
                    await anyio.sleep_forever()
                for _ in range(self.pauses or 0):
                    await anyio.lowlevel.checkpoint()
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        return self.verdict

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class Exchange:
    """The app, receive and send of one request: the body once, then a disconnect when `gone`."""

    def __init__(self) -> None:
        self.gone = anyio.Event()
        self.sent: list[Any] = []
        self.ran = False
        self._body_sent = False

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        self.ran = True
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return dict(BODY)
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Any) -> None:
        self.sent.append(message)


@pytest.mark.anyio
@BACKENDS
async def test_the_backend_is_told_apart_without_asking_asyncio(anyio_backend: str) -> None:
    """Stepping by hand is for asyncio only; trio's tasks say they are trio's."""
    assert _on_asyncio() is (anyio_backend == "asyncio")


@pytest.mark.anyio
@BACKENDS
async def test_a_client_leaving_cancels_a_waiting_check(anyio_backend: str) -> None:
    """The client left while the guard waited: the check is cancelled, no app, no answer."""
    guard, exchange = WaitingGuard(pauses=None), Exchange()
    middleware = GuardMiddleware(exchange.app, guard=guard, routes=[Route("/chat")])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(middleware, dict(SCOPE), exchange.receive, exchange.send)
            await guard.started.wait()
            exchange.gone.set()
    assert guard.cancelled
    assert (exchange.sent, exchange.ran) == ([], False)


@pytest.mark.anyio
@BACKENDS
@pytest.mark.parametrize(("action", "status"), [(Action.ALLOW, 200), (Action.BLOCK, 403)])
@pytest.mark.parametrize("pauses", [0, 2])
async def test_a_check_answers_the_same_at_once_or_after_waiting(
    anyio_backend: str, action: Action, status: int, pauses: int
) -> None:
    """Allow runs the app, Block answers 403, whether the guard waited (inside its own deadline)
    or not; the client stays, and is not cancelled by the watcher."""
    guard, exchange = WaitingGuard(action, pauses=pauses), Exchange()
    middleware = GuardMiddleware(exchange.app, guard=guard, routes=[Route("/chat")])
    with anyio.fail_after(5):
        await middleware(dict(SCOPE), exchange.receive, exchange.send)
    assert exchange.sent[0]["status"] == status
    assert exchange.ran is (action is Action.ALLOW)
    assert not guard.cancelled


class _Pause:
    """An awaitable that yields one value to whatever loop drives it (none here)."""

    def __await__(self) -> Generator[str, None, None]:
        yield "paused"


class PausingGuard(WaitingGuard):
    async def acheck(self, content: Content | str) -> Verdict:
        await _Pause()
        return self.verdict


def test_a_check_that_waits_on_a_loop_no_library_names_goes_on_unraced() -> None:
    """No asyncio loop and no library named: the check is stepped, resumed, and answered, with no
    watcher (a watcher needs asyncio)."""
    exchange = Exchange()
    middleware = GuardMiddleware(exchange.app, guard=PausingGuard(), routes=[Route("/chat")])
    request = middleware(dict(SCOPE), exchange.receive, exchange.send)
    assert request.send(None) == "paused"  # the guard's wait went up to the driver
    with pytest.raises(StopIteration):
        request.send(None)
    assert exchange.sent[0]["status"] == 200
    assert exchange.ran
