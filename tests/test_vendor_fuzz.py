"""Whatever the vendor sends, the caller sees a Verdict or a GuardError, and never an Allow it did not get.

A raw asyncio server on 127.0.0.1 (started once for the module) replays a hypothesis-chosen HTTP
answer byte for byte: any status, lying ``Content-Length`` and ``Content-Encoding`` headers,
truncated, chunked, oversized and slow-dripped bodies, HTML, JSON of the wrong types, redirects.
Each answer is put to the three APIs (Trend v3 and beta, Palo Alto), through ``check`` (httpx)
and ``acheck`` on both async backends (aiohttp and httpx):

- nothing escapes but a `GuardError` (or `ContentTooLarge` for a 413: the guard said our input
  was too large, which is the client's doing);
- an Allow comes back only for an answer that is one: a 2xx whose body, delivered as declared,
  is a JSON object with an allow action (and, from Palo Alto, no error category).

``GUARDRAILS_TEST_BUDGET`` multiplies the examples (1 in CI; the fault-model report ran it at 20).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails._client import RemoteGuard
from guardrails._exceptions import ContentTooLarge, GuardError
from guardrails._exchange import DEFAULT_MAX_RESPONSE_BYTES
from guardrails._models import Verdict
from guardrails._policy import CircuitBreaker
from guardrails.guards.paloalto import PaloAltoAIRS
from guardrails.guards.trend import TrendAIGuard

BUDGET = int(os.environ.get("GUARDRAILS_TEST_BUDGET", "1"))
KEY = "fuzz-key-0123456789abcdef"
PROMPT = "What is the capital of France?"
API = Literal["trend-v3", "trend-beta", "panw"]
APIS: tuple[API, ...] = ("trend-v3", "trend-beta", "panw")
MODES = ("sync", "aiohttp", "httpx")
READY = 10.0


@dataclass(frozen=True)
class Plan:
    """The bytes to answer with, in chunks, each followed by a pause (the slow drip)."""

    chunks: tuple[bytes, ...]
    pause: float = 0.0


class RawServer:
    """Replays `plan` to every request, then closes the connection."""

    def __init__(self) -> None:
        self.plan = Plan((b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="raw-vendor", daemon=True)
        self.server: asyncio.base_events.Server | None = None

    def start(self) -> str:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self.loop
        )
        self.server = future.result(timeout=READY)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        async def close() -> None:
            assert self.server is not None
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=READY)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(READY)
        self.loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        plan = self.plan
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            await reader.readexactly(length)
            for chunk in plan.chunks:
                writer.write(chunk)
                await writer.drain()
                if plan.pause:
                    await asyncio.sleep(plan.pause)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    raw = RawServer()
    raw.start()
    yield raw
    raw.stop()


@pytest.fixture(scope="module")
def base_url(server: RawServer) -> str:
    assert server.server is not None
    return f"http://127.0.0.1:{server.server.sockets[0].getsockname()[1]}"


# -- what the vendor may answer ---------------------------------------------------------------------


def allow_payload(api: API) -> dict[str, Any]:
    if api == "panw":
        return {"action": "allow", "category": "benign", "scan_id": "s-1", "prompt_detected": {}}
    return {"id": "v-1", "action": "Allow", "reasons": []}


def block_payload(api: API) -> dict[str, Any]:
    if api == "panw":
        return {
            "action": "block",
            "category": "malicious",
            "scan_id": "s-2",
            "prompt_detected": {"injection": True},
        }
    return {"id": "v-2", "action": "Block", "reasons": ["Prompt Attack"]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def payloads(draw: st.DrawFn, api: API) -> tuple[str, bytes]:
    """A body and what it means: ``allow`` (a real Allow), ``block``, or ``bad`` (no usable action)."""
    kind = draw(
        st.sampled_from(
            [
                "allow",
                "allow-odd-extras",
                "block",
                "bad-action",
                "panw-error",
                "html",
                "empty",
                "garbage",
                "not-object",
            ]
        )
    )
    if kind == "allow":
        return "allow", json.dumps(allow_payload(api)).encode()
    if kind == "allow-odd-extras":
        payload = allow_payload(api) | {
            "reasons": draw(json_values),
            "id": draw(json_values),
            "extra": draw(json_values),
        }
        payload["action"] = draw(st.sampled_from(["allow", "ALLOW", " Allow "]))
        if api == "panw":
            payload["category"] = "benign"
            payload.pop("error", None)
            payload.pop("timeout", None)
        return "allow", json.dumps(payload).encode()
    if kind == "block":
        return "block", json.dumps(block_payload(api)).encode()
    if kind == "bad-action":
        payload = allow_payload(api)
        action = draw(st.sampled_from(["missing", "value"]))
        if action == "missing":
            del payload["action"]
        else:
            value = draw(
                json_values.filter(
                    lambda v: not (isinstance(v, str) and v.strip().lower() in ("allow", "block"))
                )
            )
            payload["action"] = value
        return "bad", json.dumps(payload).encode()
    if kind == "panw-error":
        payload = allow_payload(api) | draw(
            st.sampled_from(
                [{"category": "error"}, {"category": "timeout"}, {"error": True}, {"timeout": True}]
            )
        )
        return ("bad" if api == "panw" else "allow"), json.dumps(payload).encode()
    if kind == "html":
        return "bad", b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    if kind == "empty":
        return "bad", b""
    if kind == "garbage":
        return "bad", draw(st.binary(max_size=64).filter(lambda b: not b.strip().startswith(b"{")))
    return "bad", json.dumps(draw(st.lists(json_values, max_size=3) | st.text(max_size=10))).encode()


@dataclass(frozen=True)
class Answer:
    plan: Plan
    status: int
    meaning: str  # "allow", "block" or "bad"
    honest: bool  # the body arrives as its headers declare it
    size: int

    def allows(self) -> bool:
        """Whether a client may read this answer as an Allow."""
        return (
            200 <= self.status < 300
            and self.meaning == "allow"
            and self.honest
            and self.size <= DEFAULT_MAX_RESPONSE_BYTES
        )


def _inflate(data: bytes, encoding: str | None) -> bytes | None:
    """What a streaming decoder makes of `data`, as httpx's does (no trailer check)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS).decompress(
            data
        )
    except zlib.error:
        return None


STATUSES = [
    200,
    200,
    200,
    201,
    204,
    301,
    302,
    307,
    308,
    400,
    401,
    403,
    404,
    413,
    415,
    429,
    500,
    502,
    503,
    504,
]


@st.composite
def answers(draw: st.DrawFn, api: API) -> Answer:
    status = draw(st.sampled_from(STATUSES) | st.integers(200, 599))
    meaning, body = draw(payloads(api))
    honest = True
    if draw(st.integers(0, 9)) == 0:  # oversized: past the response cap
        body = (
            body[:-1] + b" " * (DEFAULT_MAX_RESPONSE_BYTES + 10) + body[-1:]
            if body.endswith(b"}")
            else body * 2000
        )
    encoding = draw(st.sampled_from([None, None, "gzip", "deflate", "identity", "br", "x-unknown"]))
    wire = body
    if encoding in ("gzip", "deflate"):
        if draw(st.booleans()):
            wire = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
        else:
            honest = not body  # it says compressed, and is not
    framing = draw(
        st.sampled_from(
            ["length", "length", "close", "short", "long", "junk-length", "chunked", "bad-chunks"]
        )
    )
    headers = [f"HTTP/1.1 {status} Whatever".encode()]
    content_type = draw(
        st.sampled_from(["application/json", "application/json; charset=utf-8", "text/html", None])
    )
    if content_type:
        headers.append(f"Content-Type: {content_type}".encode())
    if encoding:
        headers.append(f"Content-Encoding: {encoding}".encode())
    if draw(st.booleans()):
        headers.append(
            b"Retry-After: "
            + draw(
                st.sampled_from([b"0", b"0.01", b"1000", b"soon", b"-5", b"Wed, 21 Oct 2015 07:28:00 GMT"])
            )
        )
    if 300 <= status < 400:
        headers.append(b"Location: http://127.0.0.1:9/elsewhere")
    if framing == "length":
        headers.append(f"Content-Length: {len(wire)}".encode())
    elif framing == "close":
        headers.append(b"Connection: close")
    elif framing == "short":
        declared = max(0, len(wire) - draw(st.integers(1, 8)))
        headers.append(f"Content-Length: {declared}".encode())
        # Cut inside a compressed stream's trailer, the whole body still decodes: that is honest.
        honest = honest and (not wire or (wire != body and _inflate(wire[:declared], encoding) == body))
    elif framing == "long":
        headers.append(f"Content-Length: {len(wire) + draw(st.integers(1, 100))}".encode())
        honest = False
    elif framing == "junk-length":
        headers.append(b"Content-Length: " + draw(st.sampled_from([b"abc", b"-1", b"1e3", b"", b"12, 13"])))
        honest = False
    elif framing in ("chunked", "bad-chunks"):
        headers.append(b"Transfer-Encoding: chunked")
        if framing == "chunked":
            wire = (f"{len(wire):x}\r\n".encode() + wire + b"\r\n" if wire else b"") + b"0\r\n\r\n"
        else:
            wire = f"{len(wire) + 5:x}\r\n".encode() + wire
            honest = False
    raw = b"\r\n".join(headers) + b"\r\n\r\n" + wire
    drip = draw(st.sampled_from(["once", "once", "once", "drip"]))
    if drip == "drip":
        pieces = draw(st.integers(2, 4))
        step = max(1, len(raw) // pieces)
        plan = Plan(tuple(raw[i : i + step] for i in range(0, len(raw), step)), pause=0.01)
    else:
        plan = Plan((raw,))
    return Answer(plan, status, meaning, honest, len(body))


# -- the check --------------------------------------------------------------------------------------


def make_guard(api: API, base_url: str, backend: str) -> RemoteGuard:
    options: dict[str, Any] = {
        "base_url": base_url,
        "timeout": 1.0,
        "retries": 1,
        "backoff": 0.001,
        "breaker": CircuitBreaker(failure_threshold=0),
        "async_backend": "aiohttp" if backend == "aiohttp" else "httpx",
    }
    if api == "panw":
        return PaloAltoAIRS(KEY, profile_name="fuzz", **options)
    return TrendAIGuard(KEY, api="v3" if api == "trend-v3" else "beta", **options)


def outcome(api: API, base_url: str, mode: str, text: str = PROMPT) -> Verdict | BaseException:
    guard = make_guard(api, base_url, mode)
    try:
        if mode == "sync":
            return guard.check(text)

        async def ask() -> Verdict:
            try:
                return await guard.acheck(text)
            finally:
                await guard.aclose()

        return asyncio.run(ask())
    except Exception as exc:
        return exc
    finally:
        guard.close()


@pytest.mark.parametrize("api", APIS)
@settings(
    max_examples=40 * BUDGET,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_vendor_answer_is_a_verdict_or_a_guard_error(
    server: RawServer, base_url: str, api: API, data: st.DataObject
) -> None:
    """No exception but a GuardError escapes, and no malformed answer reads as an Allow."""
    answer = data.draw(answers(api))
    server.plan = answer.plan
    for mode in MODES:
        result = outcome(api, base_url, mode)
        if isinstance(result, Verdict):
            assert not result.allowed or answer.allows(), (mode, answer)
            assert result.blocked or result.allowed
        elif isinstance(result, ContentTooLarge):
            assert answer.status == 413, (mode, answer)
        else:
            assert isinstance(result, GuardError), (mode, repr(result), answer)
            assert KEY not in str(result)


def test_the_response_cap_fits_a_masked_echo_of_the_largest_window(server: RawServer, base_url: str) -> None:
    """The largest legitimate answer, a masked echo of a full window escaped as ASCII, is read.

    A 10,000-character window of 4-byte characters is 40 KB on the way out and 120 KB back once
    ``ensure_ascii`` escapes it: over a fixed 64 KiB cap, within four times what was sent.
    """
    text = "\U0001f600" * 10_000
    masked = {"data": text, "pattern_detections": [{"pattern": "x", "locations": [[0, 10]]}]}
    body = json.dumps(
        {
            "action": "block",
            "category": "malicious",
            "scan_id": "s",
            "prompt_detected": {"dlp": True},
            "prompt_masked_data": masked,
        }
    ).encode()
    assert len(body) > DEFAULT_MAX_RESPONSE_BYTES
    server.plan = Plan(
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body,
        )
    )
    for mode in MODES:
        result = outcome("panw", base_url, mode, text)
        assert isinstance(result, Verdict), (mode, repr(result))
        assert result.blocked
        assert result.masked_data is not None
