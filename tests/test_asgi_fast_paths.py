"""The ASGI middleware's fast paths behave exactly like the general ones.

A guard that answers without waiting is not raced with a disconnect (no watcher reads
``receive``); one that waits on I/O is, and its own cancel scopes (deadlines) still work.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from guardrails._models import Action, Content, Verdict
from guardrails._routing import Route
from guardrails.asgi import GuardMiddleware
from tests.helpers import guarded_status


class AwaitingGuard:
    """A `Guard` (not an InProcessGuard) that waits `pauses` times, inside a deadline, then answers."""

    name = "awaiting"

    def __init__(self, action: Action = Action.ALLOW, pauses: int = 0) -> None:
        self.verdict = Verdict(action=action, guard="awaiting")
        self.pauses = pauses

    def check(self, content: Content | str) -> Verdict:
        return self.verdict

    async def acheck(self, content: Content | str) -> Verdict:
        with anyio.fail_after(5):
            for _ in range(self.pauses):
                await anyio.lowlevel.checkpoint()
        return self.verdict

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def run(guard: AwaitingGuard) -> tuple[list[Any], int, bool]:
    """One guarded request; (messages sent, receive calls, whether the app ran)."""
    calls = 0
    ran = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal ran
        ran = True
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b'{"prompt": "hi"}', "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/chat", "root_path": "", "headers": []}
    with anyio.fail_after(5):
        await GuardMiddleware(app, guard=guard, routes=[Route("/chat")])(scope, receive, send)
    return sent, calls, ran


@pytest.mark.anyio
@pytest.mark.parametrize("pauses", [0, 1, 3])
async def test_an_allowed_check_runs_the_app_whether_or_not_the_guard_waits(pauses: int) -> None:
    """Allowed: the app runs and answers, with the guard answering at once or after waiting."""
    sent, _, ran = await run(AwaitingGuard(pauses=pauses))
    assert ran
    assert sent[0]["status"] == 200


@pytest.mark.anyio
@pytest.mark.parametrize("pauses", [0, 2])
async def test_a_blocked_check_answers_403_whether_or_not_the_guard_waits(pauses: int) -> None:
    """Blocked: 403 and the app never runs, on both paths."""
    sent, _, ran = await run(AwaitingGuard(Action.BLOCK, pauses=pauses))
    assert not ran
    assert sent[0]["status"] == 403


@pytest.mark.anyio
async def test_a_guard_answering_at_once_is_not_raced_with_receive() -> None:
    """No watcher reads receive when the check never waits: only the body and the app's read."""
    _, calls, ran = await run(AwaitingGuard(pauses=0))
    assert ran
    assert calls == 1  # the app's own receive() got the replayed body


async def status_of(body: bytes, query: bytes = b"") -> int:
    """The status a guarded JSON request with `body` gets (an allowing guard)."""
    return await guarded_status(AwaitingGuard(), body, query=query)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "query", "status"),
    [
        pytest.param(b'{"messages": [{"role": "user", "content": "hi"}]}', b"", 200, id="ascii"),
        pytest.param(b'{"messages": [{"role": "user", "content": "\\ud800"}]}', b"", 400, id="escape"),
        pytest.param(
            b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}', b"", 400, id="raw-bytes"
        ),
        pytest.param(b'{"prompt": "\\udfff hi"}', b"", 400, id="escape-in-other-field"),
        pytest.param(b'{"prompt": "hi"}', b"q=%ED%A0%80", 200, id="query-escape-read-with-replacement"),
    ],
)
async def test_a_lone_surrogate_is_refused_whether_or_not_the_body_is_ascii(
    body: bytes, query: bytes, status: int
) -> None:
    """The surrogate scan is skipped only where no reading can hold one: refusals are unchanged."""
    assert await status_of(body, query) == status


async def request(middleware: GuardMiddleware, path: str, method: str = "POST", root_path: str = "") -> int:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"prompt": "hi"}', "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "root_path": root_path, "headers": []}
    await middleware(scope, receive, send)
    return int(sent[0]["status"])


async def answering_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.anyio
async def test_remembered_unguarded_paths_never_unguard_a_guarded_one() -> None:
    """An unguarded path passes every time; a guarded one is checked every time (403 on Block)."""
    middleware = GuardMiddleware(answering_app, guard=AwaitingGuard(Action.BLOCK), routes=[Route("/chat")])
    for _ in range(3):
        assert await request(middleware, "/open") == 200
        assert await request(middleware, "/chat") == 403
        assert await request(middleware, "/chat/") == 403
        assert await request(middleware, "/CHAT") == 403
        assert await request(middleware, "/chat", method="post") == 403
        assert await request(middleware, "/open", method="GET") == 200
    assert middleware.known["/open"] == {"POST": None, "GET": None}
    assert set(middleware.known["/chat"]) == {"POST", "post"}
    assert all(matched is not None for matched in middleware.known["/chat"].values())


@pytest.mark.anyio
async def test_a_remembered_path_is_read_below_the_root_path() -> None:
    """The memory is of the path the app routes (below ``root_path``), whatever the mount point."""
    middleware = GuardMiddleware(answering_app, guard=AwaitingGuard(Action.BLOCK), routes=[Route("/chat")])
    for root in ("", "/api", "/other"):
        assert await request(middleware, f"{root}/chat", root_path=root) == 403
        assert await request(middleware, f"{root}/open", root_path=root) == 200
    assert await request(middleware, "/api/chat", root_path="") == 200  # no mount: another path
    assert set(middleware.known) == {"/chat", "/open", "/api/chat"}


@pytest.mark.anyio
async def test_the_memory_of_paths_is_bounded() -> None:
    """Endless distinct paths never grow the memory past its bound, nor long ones into it; they
    still pass, unguarded, and the guarded path is still checked."""
    from guardrails._http import _KNOWN_PATH_LENGTH, _KNOWN_PATHS

    middleware = GuardMiddleware(answering_app, guard=AwaitingGuard(Action.BLOCK), routes=[Route("/chat")])
    for index in range(_KNOWN_PATHS + 10):
        assert await request(middleware, f"/open/{index}") == 200
        assert len(middleware.known) <= _KNOWN_PATHS
    assert await request(middleware, "/chat") == 403
    long = "/open/" + "x" * _KNOWN_PATH_LENGTH
    assert await request(middleware, long) == 200
    assert long not in middleware.known


@pytest.mark.anyio
async def test_without_routes_every_body_is_guarded_and_nothing_is_remembered() -> None:
    """The default routes depend on the headers (a declared body): no memory is kept."""
    middleware = GuardMiddleware(answering_app, guard=AwaitingGuard(Action.BLOCK))
    assert await request(middleware, "/anything") == 403
    assert await request(middleware, "/anything", method="GET") == 200
    assert middleware.known == {}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("length", "status"),
    [(b"\xb2", 400), (b"\xb9\xb2", 400), (b"1e3", 400), (b" 16 ", 200), (b"16", 200), (b"99999999999", 413)],
)
async def test_a_content_length_is_read_as_ascii_digits_only(length: bytes, status: int) -> None:
    """Latin-1 superscripts pass ``str.isdigit`` but not ``int``: a 400, never a 500."""
    middleware = GuardMiddleware(answering_app, guard=AwaitingGuard(), routes=[Route("/chat")])
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"prompt": "hi"}', "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", length)]
    scope = {"type": "http", "method": "POST", "path": "/chat", "root_path": "", "headers": headers}
    await middleware(scope, receive, send)
    assert sent[0]["status"] == status


@pytest.mark.anyio
async def test_a_body_in_several_messages_is_joined_and_capped() -> None:
    """The one-message fast path aside, a body in parts is read whole, and refused past the cap."""
    received: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append((await receive())["body"])
        await answering_app(scope, receive, send)

    for cap, status in ((1000, 200), (10, 413)):
        middleware = GuardMiddleware(app, guard=AwaitingGuard(), routes=[Route("/chat")], max_body_size=cap)
        parts = [b'{"prom', b'pt": ', b'"hi"}']
        sent: list[Any] = []

        async def receive(parts: list[bytes] = parts) -> dict[str, Any]:
            body = parts.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(parts)}

        async def send(message: Any, sent: list[Any] = sent) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/chat", "root_path": "", "headers": []}
        await middleware(scope, receive, send)
        assert sent[0]["status"] == status
    assert received == [b'{"prompt": "hi"}']
