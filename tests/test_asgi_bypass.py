"""Bypass attempts against GuardMiddleware under a real uvicorn on 127.0.0.1: each is Blocked or rejected."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from guardrails._models import Content
from guardrails._routing import Route
from guardrails.asgi import GuardMiddleware
from guardrails.testing._fakes import FakeGuard
from tests.bypass_cases import BODY_TRICKS, CHAT_PATH, INJECTION, PATH_TRICKS, chat, user
from tests.servers import run_asgi


def rule(content: Content) -> bool:
    return INJECTION in content.as_text().lower()


class App:
    """A chat endpoint that counts the requests that reached it."""

    def __init__(self) -> None:
        self.reached = 0

    async def chat(self, request: Request) -> Response:
        self.reached += 1
        await request.body()
        return JSONResponse({"choices": []})


@pytest.fixture(scope="module")
def app() -> App:
    return App()


@pytest.fixture(scope="module")
def base_url(app: App) -> Iterator[str]:
    starlette_app = Starlette(
        routes=[
            StarletteRoute(CHAT_PATH, app.chat, methods=["POST"]),
            StarletteRoute("/search", app.chat, methods=["GET"]),
        ]
    )
    guarded = GuardMiddleware(
        starlette_app,
        guard=FakeGuard(rule),
        routes=[Route(CHAT_PATH), Route("/search", methods=("GET",))],
    )
    with run_asgi(guarded) as url:
        yield url


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


def assert_stopped(response: httpx.Response, app: App, reached_before: int) -> None:
    assert response.status_code in (400, 403, 413, 415), response.status_code
    assert app.reached == reached_before


def test_clean_request_reaches_the_app(http: httpx.Client, app: App) -> None:
    """The control: without an injection the request gets through."""
    before = app.reached
    response = http.post(CHAT_PATH, json=chat(user("hello")))
    assert (response.status_code, app.reached) == (200, before + 1)


def test_body_split_into_many_chunks(http: httpx.Client, app: App) -> None:
    """A chunked body, a few bytes per chunk, is reassembled before it is scanned."""
    body = json.dumps(chat(user(INJECTION))).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 3):
            yield body[start : start + 3]

    before = app.reached
    response = http.post(CHAT_PATH, content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 403
    assert_stopped(response, app, before)


@pytest.mark.parametrize(("body", "headers"), BODY_TRICKS)
def test_body_tricks_are_stopped(http: httpx.Client, app: App, body: bytes, headers: dict[str, str]) -> None:
    """However the injection is encoded or placed, the app never receives it."""
    before = app.reached
    response = http.post(CHAT_PATH, content=body, headers=headers)
    assert_stopped(response, app, before)


@pytest.mark.parametrize("raw_path", PATH_TRICKS)
def test_path_tricks_are_stopped(http: httpx.Client, base_url: str, app: App, raw_path: bytes) -> None:
    """Every spelling of the guarded path is guarded."""
    url = httpx.URL(base_url).copy_with(raw_path=raw_path)
    before = app.reached
    response = http.post(url, json=chat(user(INJECTION)))
    assert response.status_code == 403
    assert_stopped(response, app, before)


def test_head_instead_of_get_is_stopped(http: httpx.Client, app: App) -> None:
    """HEAD reaches GET endpoints, so it is guarded like GET."""
    before = app.reached
    response = http.request("HEAD", "/search", content=json.dumps({"q": INJECTION}).encode())
    assert response.status_code == 403
    assert_stopped(response, app, before)
