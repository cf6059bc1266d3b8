"""The per-request shortcuts of the guarded route build exactly what the general constructors build.

`GuardedRoutes.start` (an `Inspection` without keyword arguments), `_body.request_of` (an `HTTPBody`
without ``__init__``) and `asgi._read_headers` (only the headers the default reading reads) are on
every guarded request; each is compared here with the general path it stands for, and a route
with its own extractor still sees every header.
"""

from __future__ import annotations

from typing import Any

import pytest

from guardrails._body import HTTPBody, default_body, request_of
from guardrails._http import Inspection
from guardrails._models import Action, Content, Verdict
from guardrails._routing import Route
from guardrails.asgi import GuardMiddleware, _headers, _read_headers


class Recorder:
    """A `Guard` remembering what it was asked."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[Content] = []

    def check(self, content: Content | str) -> Verdict:
        raise AssertionError("the ASGI middleware asks acheck")

    async def acheck(self, content: Content | str) -> Verdict:
        assert isinstance(content, Content)
        self.seen.append(content)
        return Verdict(action=Action.ALLOW, guard="recorder")

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


_READ = ("content-type", "content-encoding", "content-length")


@pytest.mark.parametrize(
    "raw",
    [
        [],
        [(b"content-type", b"application/json"), (b"content-length", b"12")],
        [(b"Host", b"x"), (b"Content-Type", b"text/plain; charset=utf-8"), (b"CONTENT-ENCODING", b"gzip")],
        # Repeated: joined as RFC 9110 reads them, whatever the case of each name.
        [(b"content-type", b"application/json"), (b"Content-Type", b"text/plain"), (b"accept", b"*/*")],
        [(b"content-length", b"1"), (b"content-length", b"2"), (b"x-other", b"\xe9")],
        [(b"content-type ", b"application/json"), (b"content-typ", b"x")],  # not the names
    ],
)
def test_read_headers_are_the_general_headers_of_the_names_the_default_reading_reads(
    raw: list[tuple[bytes, bytes]],
) -> None:
    expected = {name: value for name, value in _headers(raw).items() if name in _READ}
    assert _read_headers(raw) == expected
    assert _read_headers(iter(raw)) == expected  # any iterable, as the scope allows


def _slots(value: object, cls: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in cls.__slots__}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-type": "application/json"},
        {"content-type": 'multipart/form-data; boundary="a b"; charset=latin-1'},
        {"content-type": "text/plain; charset=utf-8", "content-encoding": "identity"},
    ],
)
def test_request_of_is_what_httpbody_init_makes(headers: dict[str, str]) -> None:
    metadata = {"route": "/chat"}
    made = request_of("POST", "/chat", headers, b'{"a": "b"}', b"q=1", {"id": "7"}, metadata)
    general = HTTPBody(
        "POST",
        "/chat",
        headers,
        b'{"a": "b"}',
        query_string=b"q=1",
        path_params={"id": "7"},
        metadata=metadata,
    )
    assert _slots(made, HTTPBody) == _slots(general, HTTPBody)
    # Its parameters are its own: changing them changes no later request's.
    made.params["boundary"] = "changed"
    again = request_of("POST", "/chat", headers, b"", b"", {}, metadata)
    assert again.params == general.params
    assert default_body(made) == default_body(general)


def test_start_makes_the_inspection_the_constructor_makes() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    middleware = GuardMiddleware(app, guard=Recorder(), routes=[Route("/chat/{id}", mask=True)])
    matched = middleware.match("POST", "/chat/7")
    assert matched is not None
    headers = {"content-type": "application/json"}
    started, guard, error = middleware.start(matched, "POST", "/chat/7", headers, b"q=1")
    general = Inspection(
        matched.route,
        method="POST",
        path="/chat/7",
        headers=headers,
        guard_name=matched.guard_name,
        max_body_size=middleware.max_body_size,
        query_string=b"q=1",
        path_params=dict(matched.path_params),
        judge=matched.judge,
        route_name=matched.route_name,
    )
    assert guard is matched.guard
    assert error is None
    assert _slots(started, Inspection) == _slots(general, Inspection)
    # An extractor may change its path parameters: the remembered match keeps its own.
    assert started.path_params is not matched.path_params
    inspected, _, _ = middleware.inspect(
        matched, method="POST", path="/chat/7", headers=headers, query_string="q=1"
    )
    assert _slots(inspected, Inspection) == _slots(general, Inspection)  # a str query, as bytes


async def _post(middleware: GuardMiddleware, raw: list[tuple[bytes, bytes]], body: bytes) -> int:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/chat", "root_path": "", "headers": raw}
    await middleware(scope, receive, send)
    return int(sent[0]["status"])


@pytest.mark.anyio
async def test_an_extractor_sees_every_header_and_the_default_reading_its_own() -> None:
    seen: list[dict[str, str]] = []

    def extract(request: HTTPBody) -> str:
        seen.append(dict(request.headers))
        return request.text()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    raw = [(b"X-Tenant", b"acme"), (b"Content-Type", b"text/plain"), (b"content-type", b"charset=latin-1")]
    guard = Recorder()
    custom = GuardMiddleware(app, guard=guard, routes=[Route("/chat", extract=extract)])
    assert await _post(custom, raw, "caf\xe9".encode("latin-1")) == 200
    assert seen == [{"x-tenant": "acme", "content-type": "text/plain, charset=latin-1"}]
    # The default reading reads the Content-Type, both values (a charset in either counts).
    default = GuardMiddleware(app, guard=guard, routes=[Route("/chat")])
    assert await _post(default, raw, "caf\xe9".encode("latin-1")) == 200
    assert "café" in (guard.seen[-1].text or "")
    # A body declared JSON, whatever the name's case, that is not JSON is refused.
    assert await _post(default, [(b"CONTENT-TYPE", b"application/json")], b"not json") == 400
