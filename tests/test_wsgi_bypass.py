"""Bypass attempts against the WSGI GuardMiddleware under a real werkzeug server on 127.0.0.1.

Each attempt runs against a Flask app and a plain WSGI callable; each must be Blocked or rejected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from flask import Flask, request

from guardrails._models import Content
from guardrails._routing import Route
from guardrails.testing._fakes import FakeGuard
from guardrails.wsgi import GuardMiddleware
from tests.bypass_cases import BODY_TRICKS, CHAT_PATH, INJECTION, PATH_TRICKS, chat, user
from tests.servers import run_wsgi


def rule(content: Content) -> bool:
    return INJECTION in content.as_text().lower()


class Counter:
    """How many requests reached the app behind the middleware."""

    def __init__(self) -> None:
        self.reached = 0


def flask_app(counter: Counter) -> Any:
    app = Flask(__name__)

    @app.route(CHAT_PATH, methods=["POST"])
    @app.route("/search", methods=["GET"])
    def chat() -> Any:
        counter.reached += 1
        request.get_data()
        return {"choices": []}

    return app.wsgi_app


def plain_app(counter: Counter) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        counter.reached += 1
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"choices": []}']

    return app


@dataclass
class Target:
    url: str
    counter: Counter


@pytest.fixture(
    scope="module", params=[pytest.param(flask_app, id="flask"), pytest.param(plain_app, id="plain")]
)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    counter = Counter()
    guarded = GuardMiddleware(
        request.param(counter),
        guard=FakeGuard(rule),
        routes=[Route(CHAT_PATH), Route("/search", methods=("GET",))],
    )
    # No wsgiref validator here: werkzeug's server puts an int REMOTE_PORT in the environ, which it
    # rejects (tests/test_wsgi.py validates both sides of the middleware).
    with run_wsgi(guarded) as url:
        yield Target(url, counter)


@pytest.fixture
def http(target: Target) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.url, timeout=10) as client:
        yield client


def assert_stopped(response: httpx.Response, target: Target, reached_before: int) -> None:
    assert response.status_code in (400, 403, 413, 415), response.status_code
    assert target.counter.reached == reached_before


def test_clean_request_reaches_the_app(http: httpx.Client, target: Target) -> None:
    """The control: without an injection the request gets through."""
    before = target.counter.reached
    response = http.post(CHAT_PATH, json=chat(user("hello")))
    assert (response.status_code, target.counter.reached) == (200, before + 1)


def test_body_split_into_many_chunks(http: httpx.Client, target: Target) -> None:
    """A chunked body, a few bytes per chunk, is read to its end before it is scanned."""
    body = json.dumps(chat(user(INJECTION))).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 3):
            yield body[start : start + 3]

    before = target.counter.reached
    response = http.post(CHAT_PATH, content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 403
    assert_stopped(response, target, before)


def test_clean_chunked_body_reaches_the_app(http: httpx.Client, target: Target) -> None:
    """The control for chunked bodies: the app gets them (as a body of known length)."""
    before = target.counter.reached
    response = http.post(CHAT_PATH, content=iter([b'{"prompt":', b' "hi"}']))
    assert (response.status_code, target.counter.reached) == (200, before + 1)


@pytest.mark.parametrize(("body", "headers"), BODY_TRICKS)
def test_body_tricks_are_stopped(
    http: httpx.Client, target: Target, body: bytes, headers: dict[str, str]
) -> None:
    """However the injection is encoded or placed, the app never receives it."""
    before = target.counter.reached
    response = http.post(CHAT_PATH, content=body, headers=headers)
    assert_stopped(response, target, before)


@pytest.mark.parametrize("raw_path", PATH_TRICKS)
def test_path_tricks_are_stopped(http: httpx.Client, target: Target, raw_path: bytes) -> None:
    """Every spelling of the guarded path is guarded."""
    url = httpx.URL(target.url).copy_with(raw_path=raw_path)
    before = target.counter.reached
    response = http.post(url, json=chat(user(INJECTION)))
    assert response.status_code == 403
    assert_stopped(response, target, before)


def test_head_instead_of_get_is_stopped(http: httpx.Client, target: Target) -> None:
    """HEAD reaches GET endpoints, so it is guarded like GET."""
    before = target.counter.reached
    response = http.request("HEAD", "/search", content=json.dumps({"q": INJECTION}).encode())
    assert response.status_code == 403
    assert_stopped(response, target, before)
