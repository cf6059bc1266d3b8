"""No client-controlled value forges a log record: controls are escaped and lengths bounded.

Whatever reaches a ``guardrails`` log record from outside (the request path and method, a guard's
reasons and verdict id, an error's message) is written with its control characters escaped and
cut to a bounded length, in the formatted message and in every structured ``guardrails_*`` field.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails._events import MAX_LOG_VALUE, safe_text
from guardrails._exceptions import Blocked, GuardUnavailable
from guardrails._models import Action, Content, Verdict
from guardrails.asgi import GuardMiddleware as ASGIGuardMiddleware
from guardrails.decorator import guarded
from guardrails.testing import FakeGuard
from guardrails.wsgi import GuardMiddleware as WSGIGuardMiddleware

#: Every character a log viewer or terminal could take for a line end or an escape sequence.
CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)]
FORGERY = "\r\n2026-12-03 INFO root: forged\x1b[2J\u2028"


def fields_of(record: logging.LogRecord) -> list[str]:
    values = [record.getMessage()]
    for name, value in vars(record).items():
        if name.startswith("guardrails_"):
            values.extend(value if isinstance(value, list) else [str(value)])
    return values


def assert_unforgeable(records: list[logging.LogRecord]) -> None:
    ours = [r for r in records if r.name == "guardrails"]
    assert ours, "the test meant to log something"
    for record in ours:
        for value in fields_of(record):
            assert not any(c in value for c in CONTROLS), value
            assert len(value) < 3 * MAX_LOG_VALUE + 400


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_safe_text_never_returns_a_control_and_is_bounded(value: str) -> None:
    """Any string, made safe: no control character survives, and the length is bounded."""
    safe = safe_text(value)
    assert not any(c in safe for c in CONTROLS)
    assert len(safe) <= MAX_LOG_VALUE + 3


def test_safe_text_keeps_ordinary_text_as_it_is() -> None:
    """Plain values are unchanged (no escaping where none is needed)."""
    assert safe_text("POST /v1/chat/completions") == "POST /v1/chat/completions"


def forging_guard() -> FakeGuard:
    return FakeGuard(
        lambda c: Verdict(action=Action.BLOCK, reasons=[FORGERY, "x" * 5000], guard="fake", id=FORGERY)
    )


def test_a_guard_reason_cannot_forge_a_decorator_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """Reasons and verdict ids from a guard (a vendor's words) are escaped in the block line."""

    @guarded(forging_guard())
    def ask(prompt: str) -> str:
        return "ran"

    with caplog.at_level(logging.DEBUG, logger="guardrails"), pytest.raises(Blocked):
        ask("hello")
    assert_unforgeable(caplog.records)


PATHS = [
    pytest.param("/chat%0d%0aINFO%20forged", id="crlf"),
    pytest.param("/chat%1b%5b2J", id="terminal-escape"),
    pytest.param("/" + "a" * 5000, id="long"),
    pytest.param("/%e2%80%a8x", id="line-separator"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("path", PATHS)
async def test_a_request_path_cannot_forge_an_asgi_log_line(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The default route logs the request's own path: escaped and bounded."""

    async def app(scope: Any, receive: Any, send: Any) -> None:  # never reached: the guard fails
        raise AssertionError

    middleware = ASGIGuardMiddleware(
        app, guard=FakeGuard(lambda c: (_ for _ in ()).throw(GuardUnavailable("down")))
    )
    with caplog.at_level(logging.DEBUG, logger="guardrails"):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=middleware), base_url="http://a"
        ) as http:
            response = await http.post(path, json={"prompt": "hi"})
    assert response.status_code == 503
    assert_unforgeable(caplog.records)


@pytest.mark.parametrize("path", PATHS)
def test_a_request_path_cannot_forge_a_wsgi_log_line(path: str, caplog: pytest.LogCaptureFixture) -> None:
    """The same through the WSGI middleware, with a block instead of a failure."""

    def app(environ: Any, start_response: Any) -> list[bytes]:
        raise AssertionError

    middleware = WSGIGuardMiddleware(app, guard=forging_guard())
    with (
        caplog.at_level(logging.DEBUG, logger="guardrails"),
        httpx.Client(transport=httpx.WSGITransport(app=middleware), base_url="http://a") as http,
    ):
        response = http.post(path, json={"prompt": "hi"})
    assert response.status_code == 403
    assert_unforgeable(caplog.records)


def test_content_is_never_needed_to_build_the_line() -> None:
    """A sanity check of the fixture: the forging guard blocks any content."""
    assert forging_guard().check(Content("x")).blocked
