"""The I/O-free exchange every remote guard uses, and the two shells that drive it.

An exchange is a generator, written once: it yields a `GuardRequest` to send (and receives the
`GuardResponse`, or has the transport's exception thrown into it) or a `Sleep` to wait out a
backoff, and returns the `Verdict`. Retries, backoff, the overall deadline, the circuit breaker
and the mapping of HTTP outcomes to `GuardError` subclasses all live in `exchange`. `run_sync`
and `run_async` only send, read (with a size cap) and sleep.

The request and the response are plain values, not httpx objects: the aiohttp backend
(`AiohttpTransport.drive`, a driver of its own with the send inline) sends a `GuardRequest` and
answers a `GuardResponse` with no httpx object on the way (building an `httpx.Request` and an
`httpx.Response` around every check cost more CPU than the rest of the exchange); an httpx
transport (the sync pool, ``async_backend="httpx"``, a transport the user gave,
`httpx.MockTransport` in tests) converts at its edge (`_send_sync`, `_send_async`).
Transport failures reach the exchange as httpx's exception types whatever the backend (the
aiohttp backend maps aiohttp's onto them): they are the one vocabulary the exchange maps to
`GuardError`s.

Who caused a failure decides what it becomes: the guard's failures (timeouts, connection errors,
5xx, 429, a malformed answer) are `GuardError`s and count on the circuit breaker; a 413 from the
guard means our input was too large for it, a `ContentTooLarge` (client-caused, never counted,
never retried).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import httpx

from ._eval_meter import count_call
from ._exceptions import (
    ContentTooLarge,
    GuardAuthError,
    GuardError,
    GuardRateLimited,
    GuardResponseError,
    GuardTimeout,
    GuardUnavailable,
)
from ._models import Verdict
from ._policy import CircuitBreaker, Deadline, Retry, parse_retry_after

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "RESPONSE_GROWTH",
    "Flow",
    "GuardRequest",
    "GuardResponse",
    "HeaderLookup",
    "RequestHeaders",
    "ResponseTooLarge",
    "Sleep",
    "error_for_response",
    "exchange",
    "read_capped",
    "response_cap",
    "run_async",
    "run_sync",
]

#: The floor of the cap on a guard's response body.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024
#: The cap grows with the request: the largest legitimate answer is a masked echo of the text we
#: sent (Palo Alto's ``*_masked_data``), which JSON escaping may make up to about three times
#: larger than our UTF-8 (``ensure_ascii`` turns one 4-byte character into a 12-byte pair of
#: ``\\uXXXX``), next to the detection report.
RESPONSE_GROWTH = 4

# Headers every HTTP client computes itself from the request it sends: never carried.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class RequestHeaders(dict[str, str]):
    """A request's headers; the repr names them and shows no value (one is the credential).

    A guard builds its headers once and shares them across its requests: never mutate them.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"RequestHeaders({sorted(self)!r})"


class GuardRequest:
    """One request of a check, as plain values: what the exchange yields for a shell to send.

    A guard builds these once per check (its URL and headers are computed once per guard and
    shared by every request: treat `headers` as read-only). The exchange sets `timeout` before
    each attempt. The repr names the headers, never their values (one is the credential), nor the
    body (the prompt).

    Attributes:
        method: the HTTP method.
        url: the absolute URL, query included.
        headers: the headers to send, names as the vendor documents them (not Host or
            Content-Length: each backend computes those).
        content: the body.
        scanned: characters of the body sent for scanning (the scanned fields only, not the JSON
            around them nor context sent for free), for the spend counters; None: the body's length.
        timeout: seconds left for this attempt (set by the exchange).
    """

    __slots__ = ("content", "headers", "method", "scanned", "timeout", "url")

    def __init__(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes,
        *,
        scanned: int | None = None,
        timeout: float | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.content = content
        self.scanned = scanned
        self.timeout = timeout

    @classmethod
    def from_httpx(cls, request: httpx.Request, *, scanned: int | None = None) -> GuardRequest:
        """A built `httpx.Request` (read, as ``content=`` / ``json=`` make it) as a `GuardRequest`."""
        headers = RequestHeaders((k, v) for k, v in request.headers.items() if k.lower() not in _OWN_HEADERS)
        return cls(request.method, str(request.url), headers, request.content, scanned=scanned)

    def __repr__(self) -> str:
        return (
            f"GuardRequest({self.method!r}, {self.url!r}, headers={sorted(self.headers)!r}, "
            f"content=<{len(self.content)} bytes>)"
        )


class HeaderLookup(Protocol):
    """What the exchange and the guards read of a response's headers: a case-insensitive `get`."""

    def get(self, key: str, /) -> str | None: ...


class GuardResponse:
    """A guard's answer, read whole under the size cap, as plain values.

    Attributes:
        status_code: the HTTP status.
        headers: the response headers (`get` is case-insensitive).
        content: the body, decoded from any content encoding.
        request: the `GuardRequest` it answers.
    """

    __slots__ = ("content", "headers", "request", "status_code")

    def __init__(
        self, status_code: int, headers: HeaderLookup, content: bytes, request: GuardRequest
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.request = request

    def json(self) -> Any:
        """The body parsed as JSON (raises `ValueError` when it is not JSON)."""
        return json.loads(self.content)

    @property
    def text(self) -> str:
        """The body as text (UTF-8; undecodable bytes replaced)."""
        return self.content.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"GuardResponse(status_code={self.status_code}, content=<{len(self.content)} bytes>)"


def response_cap(request: GuardRequest, floor: int = DEFAULT_MAX_RESPONSE_BYTES) -> int:
    """The most bytes of answer to read for `request`: ``max(floor, 4 x the request body)``."""
    return max(floor, RESPONSE_GROWTH * len(request.content))


@dataclass(frozen=True)
class Sleep:
    """An exchange step: wait this many seconds, then resume the exchange with None."""

    seconds: float


Step = GuardRequest | Sleep
Flow = Generator[Step, "GuardResponse | None", Verdict]


class ResponseTooLarge(Exception):
    """Raised by a shell into the exchange when the guard's response body passes the cap."""


def _credentials(response: GuardResponse) -> list[str]:
    """The credential values the request carried (``Bearer`` tokens, API-key headers)."""
    secrets: list[str] = []
    for name, value in response.request.headers.items():
        if any(word in name.lower() for word in ("auth", "token", "key", "secret")):
            secrets.append(value)
            _, _, token = value.partition(" ")
            if token:
                secrets.append(token.strip())
    return [secret for secret in secrets if len(secret) >= 4]


def _error_message(response: GuardResponse) -> str:
    """The service's own error message, if its body has one; short, for logs and exceptions.

    Dropped if it echoes the request's credentials (some services quote a rejected key back).
    """
    try:
        payload = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return ""
    message: Any = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("code")
        elif isinstance(error, str):
            message = error
        message = message or payload.get("message") or payload.get("detail")
    if not isinstance(message, str):
        return ""
    if any(secret in message for secret in _credentials(response)) or _quotes_request(message, response):
        return ""
    return message[:200]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# Shortest run of characters shared with the request that counts as quoting it.
_QUOTE_RUN = 12


def _quotes_request(message: str, response: GuardResponse) -> bool:
    """Whether a service's error message quotes the request's text (and so, maybe, the prompt)."""
    body = response.request.content
    try:
        text = "\n".join(_strings(json.loads(body)))
    except (ValueError, UnicodeDecodeError, RecursionError):
        text = body.decode("utf-8", "replace")
    if len(message) < _QUOTE_RUN:
        return len(message) >= 4 and message in text
    return any(message[i : i + _QUOTE_RUN] in text for i in range(len(message) - _QUOTE_RUN + 1))


def error_for_response(response: GuardResponse, guard: str) -> GuardError | None:
    """The `GuardError` a non-success response stands for, or None for a 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    detail = _error_message(response)
    suffix = f": {detail}" if detail else ""
    if 300 <= status < 400:
        # A redirect means a wrong base URL (http vs https, a moved host): following it could
        # send the credentials somewhere else, so it is a configuration error, never followed.
        return GuardResponseError(
            f"{guard} guard answered a redirect ({status}), which is not followed: check base_url",
            guard=guard,
            transient=False,
            status_code=status,
        )
    if status in (401, 403):
        return GuardAuthError(
            f"{guard} guard refused the credentials ({status}){suffix}", guard=guard, status_code=status
        )
    if status == 429:
        return GuardRateLimited(
            f"{guard} guard is rate limiting (429){suffix}",
            guard=guard,
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if status in (408, 425) or status >= 500:
        return GuardUnavailable(f"{guard} guard failed ({status}){suffix}", guard=guard, status_code=status)
    return GuardResponseError(
        f"{guard} guard rejected the request ({status}){suffix}",
        guard=guard,
        transient=False,
        status_code=status,
    )


def exchange(
    request: GuardRequest,
    parse: Callable[[GuardResponse], Verdict],
    *,
    guard: str,
    retry: Retry,
    deadline: Deadline,
    breaker: CircuitBreaker,
) -> Flow:
    """Send `request` until `parse` gives a Verdict, retries and deadline permitting.

    Yields `GuardRequest` steps (send it, send back the `GuardResponse` or throw the transport
    error, an `httpx.HTTPError`, in) and `Sleep` steps; returns the `Verdict` or raises a
    `GuardError` (a `ContentTooLarge` when the guard answers 413). Every attempt's breaker permit is ended: recorded when the attempt learnt
    something about the guard's health, released when it was cancelled or closed.
    """
    attempt = 0
    while True:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise GuardTimeout(
                f"{guard} guard check exceeded its {deadline.timeout:g}s deadline", guard=guard
            )
        permit = breaker.before_call(guard)
        ended = False
        try:
            request.timeout = remaining
            attempt += 1
            error: GuardError
            count_call()  # for `guardrails eval`'s vendor call counts (see _eval_meter)
            try:
                response = yield request
            except httpx.TimeoutException as exc:
                error = GuardTimeout(f"{guard} guard timed out ({type(exc).__name__})", guard=guard)
            except httpx.TransportError as exc:
                error = GuardUnavailable(f"{guard} guard unreachable ({type(exc).__name__})", guard=guard)
            except httpx.DecodingError:
                error = GuardResponseError(
                    f"{guard} guard sent a body that could not be decoded", guard=guard
                )
            except httpx.HTTPError as exc:
                error = GuardUnavailable(f"{guard} guard exchange failed ({type(exc).__name__})", guard=guard)
            except ResponseTooLarge:
                error = GuardResponseError(f"{guard} guard response is larger than the cap", guard=guard)
            else:
                assert response is not None
                if response.status_code == 413:
                    # The guard is up and said our input is too large for it: the client's doing.
                    breaker.record_failure(_ANSWERED, permit)
                    ended = True
                    raise ContentTooLarge(f"{guard} guard refused the content as too large (413)", limit=None)
                status = response.status_code
                failure = None if 200 <= status < 300 else error_for_response(response, guard)
                if failure is None:
                    try:
                        verdict = parse(response)
                    except GuardError as exc:
                        failure = exc
                    except Exception as exc:
                        # Bad JSON, a missing key...: the service misbehaved, which may pass. Not
                        # chained: the parser's message may quote the response, and so the prompt.
                        failure = GuardResponseError(
                            f"{guard} guard sent a response that could not be parsed ({type(exc).__name__})",
                            guard=guard,
                        )
                    else:
                        breaker.record_success(permit)
                        ended = True
                        return verdict
                error = failure
            breaker.record_failure(error, permit)
            ended = True
        finally:
            if not ended:
                # Cancelled or closed mid-request: nothing was learnt about the guard's health, and
                # a half-open breaker must not keep its one probe slot taken forever.
                breaker.release(permit)
        delay = retry.delay(attempt, error, deadline)
        if delay is None:
            if error.transient and deadline.expired and not isinstance(error, GuardTimeout):
                raise GuardTimeout(
                    f"{guard} guard check exceeded its {deadline.timeout:g}s deadline (last error: {error})",
                    guard=guard,
                ) from error
            raise error
        yield Sleep(delay)


# What a 413 tells the breaker: the guard answered.
_ANSWERED = GuardResponseError("answered", transient=False)


# -- the httpx edge: an httpx transport (sync, or async with async_backend="httpx", or given) -------

# A guard sends to one or two URLs: each is parsed into an `httpx.URL` once.
_httpx_url = functools.lru_cache(maxsize=64)(httpx.URL)
_TIMEOUTS = ("connect", "read", "write", "pool")


def _to_httpx(request: GuardRequest) -> httpx.Request:
    timeout = request.timeout
    return httpx.Request(
        request.method,
        _httpx_url(request.url),
        headers=list(request.headers.items()),
        content=request.content,
        extensions={} if timeout is None else {"timeout": dict.fromkeys(_TIMEOUTS, timeout)},
    )


def _answer(response: httpx.Response, body: bytes, request: GuardRequest) -> GuardResponse:
    return GuardResponse(response.status_code, response.headers, body, request)


def _plain_and_small(response: httpx.Response, max_bytes: int) -> bool:
    """An unencoded body whose declared length is under the cap: read whole, no decoding needed."""
    headers = response.headers
    length = headers.get("content-length")
    encoding = headers.get("content-encoding")
    return (
        length is not None
        and length.isdigit()
        and int(length) <= max_bytes
        and (encoding is None or encoding.strip().lower() == "identity")
    )


def _send_sync(
    transport: httpx.BaseTransport, request: GuardRequest, max_bytes: int, deadline: Deadline
) -> GuardResponse:
    # Straight to the transport: a client would add cookies, auth and redirect handling, all of
    # which a guard must not have, at a cost larger than the rest of the exchange.
    sent = _to_httpx(request)
    response = transport.handle_request(sent)
    response.request = sent
    if _plain_and_small(response, max_bytes):
        try:
            return _answer(response, response.read(), request)
        finally:
            response.close()
    try:
        body = bytearray()
        for chunk in response.iter_bytes():  # decoded (gzip, deflate...) as it is read
            body += chunk
            if len(body) > max_bytes:
                raise ResponseTooLarge
            if deadline.expired:
                raise httpx.ReadTimeout("overall deadline passed while reading the body", request=sent)
    finally:
        response.close()
    return _answer(response, bytes(body), request)


async def read_capped(
    response: httpx.Response, request: GuardRequest, max_bytes: int, deadline: Deadline
) -> GuardResponse:
    """Read an async `httpx.Response` whole, decoded, under the cap and the deadline; close it."""
    if _plain_and_small(response, max_bytes):
        try:
            return _answer(response, await response.aread(), request)
        finally:
            await response.aclose()
    try:
        body = bytearray()
        async for chunk in response.aiter_bytes():  # decoded (gzip, deflate...) as it is read
            body += chunk
            if len(body) > max_bytes:
                raise ResponseTooLarge
            if deadline.expired:
                raise httpx.ReadTimeout("overall deadline passed while reading the body")
    finally:
        await response.aclose()
    return _answer(response, bytes(body), request)


async def _send_async(
    transport: httpx.AsyncBaseTransport, request: GuardRequest, max_bytes: int, deadline: Deadline
) -> GuardResponse:
    sent = _to_httpx(request)
    response = await transport.handle_async_request(sent)
    response.request = sent
    return await read_capped(response, request, max_bytes, deadline)


def run_sync(
    transport: httpx.BaseTransport,
    flow: Flow,
    *,
    deadline: Deadline,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> Verdict:
    """Drive an exchange with a blocking transport.

    Args:
        transport: sends the requests.
        flow: the exchange.
        deadline: the check's deadline (also bounds reading a slow body).
        max_bytes: the floor of each response's size cap (see `response_cap`).
    """
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                step = flow.send(None)
                continue
            try:
                response = _send_sync(transport, step, response_cap(step, max_bytes), deadline)
            except (httpx.HTTPError, ResponseTooLarge) as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(response)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()


async def run_async(
    transport: httpx.AsyncBaseTransport,
    flow: Flow,
    *,
    deadline: Deadline,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> Verdict:
    """Drive an exchange with an async transport; cancellation propagates as usual.

    A transport with a ``drive(flow, deadline, max_bytes)`` coroutine (`AiohttpTransport`) drives
    the exchange itself, sending its plain `GuardRequest`s; any other is an httpx transport,
    converted at its edge.
    """
    drive: Callable[[Flow, Deadline, int], Awaitable[Verdict]] | None = getattr(transport, "drive", None)
    if drive is not None:
        return await drive(flow, deadline, max_bytes)
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                await anyio.sleep(step.seconds)
                step = flow.send(None)
                continue
            try:
                response = await _send_async(transport, step, response_cap(step, max_bytes), deadline)
            except (httpx.HTTPError, ResponseTooLarge) as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(response)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()
