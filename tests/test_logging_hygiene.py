"""What the library logs when things go wrong, and what it never logs.

Every fault is forced through every shell (the decorator, sync and async; the ASGI and WSGI
middlewares; the OpenAI transport, sync and async) with every logger at DEBUG. The ``guardrails``
logger writes one INFO line per block, one WARNING per transient guard failure (failing open or
closed), one ERROR per configuration error; each line carries the structured ``guardrails_*``
fields of `log_extra`. No log record (message, arguments, extra fields, traceback), exception or
error body contains the prompt text or the API key.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from guardrails._exceptions import (
    GuardAuthError,
    GuardError,
    GuardrailsError,
    GuardRateLimited,
    GuardResponseError,
    GuardTimeout,
    GuardUnavailable,
)
from guardrails._guard import Guard
from guardrails._models import Action, Content, Verdict
from guardrails._policy import FailOpen
from guardrails._routing import Route
from guardrails.asgi import GuardMiddleware as ASGIGuardMiddleware
from guardrails.decorator import guarded
from guardrails.guards.paloalto import PaloAltoAIRS
from guardrails.guards.trend import TrendAIGuard
from guardrails.integrations.openai import GuardedTransport
from guardrails.testing._fakes import FakeGuard, StaticGuard
from guardrails.wsgi import GuardMiddleware as WSGIGuardMiddleware

PROMPT_MARKER = "PROMPTMARKER-7f3a91"
KEY_MARKER = "KEYMARKER-c0ffee42"
MARKERS = (PROMPT_MARKER, KEY_MARKER)
PROMPT = f"Hello {PROMPT_MARKER}, please summarise my notes"
#: The structured fields every guardrails log line about a decision carries.
REQUIRED_FIELDS = frozenset(
    {"guardrails_outcome", "guardrails_guard", "guardrails_target", "guardrails_kind"}
)

INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR


# -- the faults ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One way a check can go, and what must be logged about it.

    Attributes:
        guard: makes the guard (a fresh one per test).
        fail_open: the policy of the shell.
        levels: the levels of the guardrails records at INFO and above, in order.
        outcome: the ``guardrails_outcome`` of those records.
        body: for the middlewares, a raw request body instead of ``{"prompt": PROMPT}``.
        headers: for the middlewares, request headers.
        extract: for the middlewares, a custom body extractor.
    """

    guard: Callable[[], Guard]
    fail_open: FailOpen = False
    levels: tuple[int, ...] = ()
    outcome: str = ""
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extract: Callable[[Any], Any] | None = None


def failing(error: GuardError) -> Callable[[], Guard]:
    return lambda: StaticGuard(error=error, name="static")


def blocking() -> Guard:
    return StaticGuard(Action.BLOCK, reasons=["prompt_attack"], name="static")


def vendor(
    status: int, payload: Callable[[httpx.Request], Any], *, palo_alto: bool = False
) -> Callable[[], Guard]:
    """A vendor guard whose service answers `status` with the JSON `payload(request)`."""

    def make() -> Guard:
        transport = httpx.MockTransport(lambda request: httpx.Response(status, json=payload(request)))
        if palo_alto:
            return PaloAltoAIRS(
                KEY_MARKER, profile_name="p", base_url="https://airs.test", transport=transport, retries=0
            )
        return TrendAIGuard(KEY_MARKER, base_url="https://guard.test", transport=transport, retries=0)

    return make


def echo_key(request: httpx.Request) -> Any:
    return {"error": {"message": f"invalid API key {KEY_MARKER}"}}


def quote_request(request: httpx.Request) -> Any:
    # A service whose validation error quotes the input back.
    return {"error": {"message": f"cannot scan {json.loads(request.content)}"}}


def trend_block(request: httpx.Request) -> Any:
    return {"id": "t-1", "action": "Block", "reasons": ["Prompt Attack"]}


TRANSIENT: list[tuple[str, GuardError]] = [
    ("timeout", GuardTimeout("static guard check exceeded its 1s deadline", guard="static")),
    ("unavailable", GuardUnavailable("static guard failed (502)", guard="static", status_code=502)),
    ("rate-limited", GuardRateLimited("static guard is rate limiting (429)", guard="static")),
    ("malformed", GuardResponseError("static guard answered no action", guard="static", transient=True)),
]
CONFIGURATION: list[tuple[str, GuardError]] = [
    ("auth", GuardAuthError("static guard refused the credentials (401)", guard="static", status_code=401)),
    (
        "rejected",
        GuardResponseError("static guard rejected the request (400)", guard="static", transient=False),
    ),
]


def guard_error_faults() -> dict[str, Fault]:
    """Each GuardError class under each policy."""
    faults: dict[str, Fault] = {}
    for name, error in TRANSIENT:
        faults[f"{name}-closed"] = Fault(failing(error), False, (WARNING,), "error")
        faults[f"{name}-open"] = Fault(failing(error), True, (WARNING,), "failed_open")
        faults[f"{name}-always"] = Fault(failing(error), "always", (WARNING,), "failed_open")
    for name, error in CONFIGURATION:
        faults[f"{name}-closed"] = Fault(failing(error), False, (ERROR,), "error")
        # A configuration error fails closed under fail_open=True, and is an ERROR whatever happens.
        faults[f"{name}-open"] = Fault(failing(error), True, (ERROR,), "error")
        faults[f"{name}-always"] = Fault(failing(error), "always", (ERROR,), "failed_open")
    return faults


COMMON: dict[str, Fault] = {
    "block": Fault(blocking, levels=(INFO,), outcome="blocked"),
    "allow": Fault(StaticGuard, levels=()),
    **guard_error_faults(),
    "vendor-block": Fault(vendor(200, trend_block), levels=(INFO,), outcome="blocked"),
    "vendor-401-echoing-the-key": Fault(vendor(401, echo_key), levels=(ERROR,), outcome="error"),
    "vendor-401-echoing-the-key-open": Fault(vendor(401, echo_key), True, (ERROR,), "error"),
    "vendor-403-echoing-the-key": Fault(
        vendor(403, echo_key, palo_alto=True), levels=(ERROR,), outcome="error"
    ),
    "vendor-500-echoing-the-key-open": Fault(vendor(500, echo_key), True, (WARNING,), "failed_open"),
    "vendor-400-quoting-the-prompt": Fault(vendor(400, quote_request), levels=(ERROR,), outcome="error"),
}


def raise_with_the_body(body: Any) -> Any:
    raise ValueError(f"cannot use {body.text()}")


HTTP_ONLY: dict[str, Fault] = {
    "413": Fault(StaticGuard, levels=(INFO,), outcome="too_large", body=PROMPT.encode() * 20),
    "400-invalid-json": Fault(
        StaticGuard,
        levels=(INFO,),
        outcome="invalid",
        body=f'{{"prompt": "{PROMPT}"'.encode(),
        headers={"content-type": "application/json"},
    ),
    "415-unknown-encoding": Fault(
        StaticGuard,
        levels=(INFO,),
        outcome="invalid",
        body=PROMPT.encode(),
        headers={"content-encoding": "x-unknown"},
    ),
    "extractor-raising-with-the-body": Fault(
        StaticGuard, levels=(ERROR,), outcome="error", extract=raise_with_the_body
    ),
    "guard-raising-with-the-prompt": Fault(
        lambda: FakeGuard(lambda content: _raise(RuntimeError(content.as_text()))),
        levels=(ERROR,),
        outcome="error",
    ),
}


def _raise(error: Exception) -> Any:
    raise error


# -- the shells: each runs the fault and returns what the caller sees (exception or body) ---------------


def call_decorator(fault: Fault) -> str:
    @guarded(fault.guard(), fail_open=fault.fail_open)
    def ask(prompt: str) -> str:
        return "answer"

    try:
        ask(PROMPT)
    except GuardrailsError as exc:
        return f"{exc!s} {exc!r}"
    return ""


def call_decorator_async(fault: Fault) -> str:
    @guarded(fault.guard(), fail_open=fault.fail_open)
    async def ask(prompt: str) -> str:
        return "answer"

    try:
        asyncio.run(ask(PROMPT))
    except GuardrailsError as exc:
        return f"{exc!s} {exc!r}"
    return ""


def _request(fault: Fault) -> dict[str, Any]:
    if fault.body is None:
        return {"json": {"prompt": PROMPT}, "headers": fault.headers}
    return {"content": fault.body, "headers": fault.headers}


def _route(fault: Fault) -> Route:
    return Route("/chat", extract=fault.extract) if fault.extract is not None else Route("/chat")


def call_asgi(fault: Fault) -> str:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = ASGIGuardMiddleware(
        app, guard=fault.guard(), routes=[_route(fault)], fail_open=fault.fail_open, max_body_size=1000
    )

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.post("/chat", **_request(fault))

    return asyncio.run(post()).text


def call_wsgi(fault: Fault) -> str:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"ok"]

    middleware = WSGIGuardMiddleware(
        app, guard=fault.guard(), routes=[_route(fault)], fail_open=fault.fail_open, max_body_size=1000
    )
    with httpx.Client(transport=httpx.WSGITransport(middleware), base_url="http://app") as client:
        return client.post("/chat", **_request(fault)).text


def model(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "c-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Sure."}}],
        },
    )


CHAT = {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}


def call_openai(fault: Fault, body: bytes | None = None, *, scan_response: bool = False) -> str:
    transport = GuardedTransport(
        fault.guard(),
        transport=httpx.MockTransport(model),
        fail_open=fault.fail_open,
        scan_response=scan_response,
    )
    with httpx.Client(transport=transport, base_url="http://llm") as client:
        try:
            if body is None:
                client.post("/v1/chat/completions", json=CHAT)
            else:
                client.post("/v1/chat/completions", content=body)
        except GuardrailsError as exc:
            return f"{exc!s} {exc!r}"
    return ""


def call_openai_async(fault: Fault) -> str:
    async def post() -> str:
        transport = GuardedTransport(
            fault.guard(),
            transport=httpx.MockTransport(model),
            fail_open=fault.fail_open,
            scan_response=False,
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://llm") as client:
            try:
                await client.post("/v1/chat/completions", json=CHAT)
            except GuardrailsError as exc:
                return f"{exc!s} {exc!r}"
        return ""

    return asyncio.run(post())


SHELLS: dict[str, Callable[[Fault], str]] = {
    "decorator": call_decorator,
    "decorator-async": call_decorator_async,
    "asgi": call_asgi,
    "wsgi": call_wsgi,
    "openai": call_openai,
    "openai-async": call_openai_async,
}
HTTP_SHELLS = ("asgi", "wsgi")


def cases() -> list[Any]:
    params = [
        pytest.param(SHELLS[shell], fault, id=f"{shell}-{name}")
        for shell in SHELLS
        for name, fault in COMMON.items()
    ]
    params += [
        pytest.param(SHELLS[shell], fault, id=f"{shell}-{name}")
        for shell in HTTP_SHELLS
        for name, fault in HTTP_ONLY.items()
    ]
    return params


# -- capturing ------------------------------------------------------------------------------------------


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, every record captured."""
    caplog.set_level(logging.DEBUG)
    saved: dict[logging.Logger, int] = {}
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            saved[logger] = logger.level
            logger.setLevel(logging.DEBUG)
    yield caplog
    for logger, level in saved.items():
        logger.setLevel(level)


def is_ours(record: logging.LogRecord) -> bool:
    return record.name == "guardrails" or record.name.startswith("guardrails.")


def levels(caplog: pytest.LogCaptureFixture) -> tuple[int, ...]:
    return tuple(r.levelno for r in caplog.records if is_ours(r) and r.levelno >= INFO)


def everything_in(record: logging.LogRecord) -> str:
    """The record as any handler or formatter could render it: message, args, extras, traceback."""
    parts = [record.getMessage(), repr(vars(record))]
    parts += [str(value) for value in vars(record).values()]
    if isinstance(record.args, tuple):
        parts += [str(arg) for arg in record.args]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


def leaks(text: str) -> list[str]:
    return [marker for marker in MARKERS if marker in text]


# -- the specifications -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("shell", "fault"), cases())
def test_one_record_at_the_right_level_per_fault(
    logs: pytest.LogCaptureFixture, shell: Callable[[Fault], str], fault: Fault
) -> None:
    """INFO per block, WARNING per transient failure, ERROR per configuration error: once each."""
    shell(fault)
    assert levels(logs) == fault.levels


@pytest.mark.parametrize(("shell", "fault"), cases())
def test_no_record_contains_the_prompt_or_the_key(
    logs: pytest.LogCaptureFixture, shell: Callable[[Fault], str], fault: Fault
) -> None:
    """Not in any logger's records at DEBUG, message, arguments, extra fields or traceback."""
    shell(fault)
    found = {(r.name, r.levelname, marker) for r in logs.records for marker in leaks(everything_in(r))}
    assert found == set()


@pytest.mark.parametrize(("shell", "fault"), cases())
def test_what_the_caller_sees_has_neither_the_prompt_nor_the_key(
    logs: pytest.LogCaptureFixture, shell: Callable[[Fault], str], fault: Fault
) -> None:
    """The exception raised (message and repr) or the error body returned."""
    assert leaks(shell(fault)) == []


STRUCTURED = ("block", "timeout-open", "timeout-closed", "auth-closed", "vendor-401-echoing-the-key")


@pytest.mark.parametrize(
    ("shell", "fault"),
    [
        pytest.param(SHELLS[shell], COMMON[name], id=f"{shell}-{name}")
        for shell in SHELLS
        for name in STRUCTURED
    ]
    + [pytest.param(SHELLS[shell], HTTP_ONLY["413"], id=f"{shell}-413") for shell in HTTP_SHELLS],
)
def test_each_record_carries_the_structured_fields(
    logs: pytest.LogCaptureFixture, shell: Callable[[Fault], str], fault: Fault
) -> None:
    """guardrails_outcome, _guard, _target and _kind are set on every line, the outcome right."""
    shell(fault)
    ours = [r for r in logs.records if is_ours(r) and r.levelno >= INFO]
    assert ours
    for record in ours:
        assert REQUIRED_FIELDS - set(vars(record)) == set(), record.getMessage()
        assert getattr(record, "guardrails_outcome", None) == fault.outcome


# -- faults of one shell -----------------------------------------------------------------------------------


def test_a_failing_decorator_extractor_logs_nothing_and_raises_without_the_argument(
    logs: pytest.LogCaptureFixture,
) -> None:
    """The ExtractionError names the extractor and its error class, never the argument's text."""

    def extract(bound: Any) -> Content:
        raise ValueError(f"cannot use {bound.arguments['prompt']}")

    @guarded(StaticGuard(), extract=extract)
    def ask(prompt: str) -> str:
        return "answer"

    with pytest.raises(GuardrailsError) as caught:
        ask(PROMPT)
    assert leaks(f"{caught.value!s} {caught.value!r}") == []
    assert levels(logs) == (INFO,)
    assert not [r for r in logs.records if leaks(everything_in(r))]


def test_a_failing_extractor_in_monitor_mode_logs_one_error_without_the_argument(
    logs: pytest.LogCaptureFixture,
) -> None:
    """Monitor mode goes on, with one ERROR carrying the structured fields and no prompt."""

    def extract(bound: Any) -> Content:
        raise ValueError(f"cannot use {bound.arguments['prompt']}")

    @guarded(StaticGuard(), extract=extract, monitor=True)
    def ask(prompt: str) -> str:
        return "answer"

    assert ask(PROMPT) == "answer"
    assert levels(logs) == (ERROR,)
    (record,) = [r for r in logs.records if is_ours(r)]
    assert REQUIRED_FIELDS - set(vars(record)) == set()
    assert not [r for r in logs.records if leaks(everything_in(r))]


def test_a_monitored_block_logs_one_info(logs: pytest.LogCaptureFixture) -> None:
    """Shadow mode: the would-be block is one INFO line, outcome monitored."""

    @guarded(blocking(), monitor=True)
    def ask(prompt: str) -> str:
        return "answer"

    assert ask(PROMPT) == "answer"
    assert levels(logs) == (INFO,)
    (record,) = [r for r in logs.records if is_ours(r)]
    assert getattr(record, "guardrails_outcome", None) == "monitored"


def test_an_unreadable_openai_request_logs_one_error_without_the_body(logs: pytest.LogCaptureFixture) -> None:
    """A request body that is not JSON is refused, logged once, and not quoted."""
    seen = call_openai(Fault(StaticGuard), body=f'{{"messages": "{PROMPT}'.encode())
    assert seen
    assert leaks(seen) == []
    assert levels(logs) == (ERROR,)
    assert not [r for r in logs.records if leaks(everything_in(r))]


def test_a_blocked_openai_answer_logs_one_info_without_the_answer(logs: pytest.LogCaptureFixture) -> None:
    """A response block is one INFO line, kind response, without the model's text."""
    guard = FakeGuard(lambda content: content.kind == "response")
    seen = call_openai(Fault(lambda: guard), scan_response=True)
    assert "blocked" in seen
    assert levels(logs) == (INFO,)
    (record,) = [r for r in logs.records if is_ours(r) and r.levelno >= INFO]
    assert getattr(record, "guardrails_kind", None) == "response"
    assert not [r for r in logs.records if "Sure." in everything_in(r)]


def test_the_markers_would_be_seen(logs: pytest.LogCaptureFixture) -> None:
    """The leak check is live: a record quoting the prompt is caught."""
    logging.getLogger("guardrails").debug("oops %s", PROMPT, extra={"guardrails_x": KEY_MARKER})
    (record,) = logs.records
    assert leaks(everything_in(record)) == [PROMPT_MARKER, KEY_MARKER]
    assert Verdict(action=Action.ALLOW).allowed
