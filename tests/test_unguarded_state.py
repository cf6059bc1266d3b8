"""The verdict slot exists on every request: None where the middleware did not scan (issue 20)."""

from __future__ import annotations

import flask
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute

from guardrails import LocalGuard, Route
from guardrails.asgi import GuardMiddleware as ASGIGuardMiddleware
from guardrails.wsgi import VERDICT_KEY
from guardrails.wsgi import GuardMiddleware as WSGIGuardMiddleware
from tests.servers import run_asgi, run_wsgi


async def _verdict(request: Request) -> JSONResponse:
    # The attribute is read as an app would: no getattr default.
    verdict = request.state.guardrails
    return JSONResponse({"verdict": None if verdict is None else verdict.action.value})


def test_request_state_guardrails_is_none_on_an_unguarded_starlette_route() -> None:
    """Under uvicorn: an unguarded route reads None, a guarded one the verdict."""
    app = Starlette(
        routes=[
            StarletteRoute("/chat", _verdict, methods=["POST"]),
            StarletteRoute("/health", _verdict, methods=["GET", "POST"]),
        ]
    )
    guarded = ASGIGuardMiddleware(app, guard=LocalGuard(), routes=[Route("/chat")])
    with run_asgi(guarded) as url:
        assert httpx.get(f"{url}/health").json() == {"verdict": None}
        assert httpx.post(f"{url}/health", json={"x": "hi"}).json() == {"verdict": None}
        assert httpx.post(f"{url}/chat", json={"prompt": "hello"}).json() == {"verdict": "allow"}


def test_environ_verdict_is_none_on_an_unguarded_flask_route() -> None:
    """Under werkzeug's server: environ["guardrails.verdict"] exists and is None when not scanned."""
    app = flask.Flask(__name__)

    @app.route("/chat", methods=["POST"])
    @app.route("/health")
    def verdict() -> dict[str, str | None]:
        found = flask.request.environ[VERDICT_KEY]
        return {"verdict": None if found is None else found.action.value}

    wsgi_app = WSGIGuardMiddleware(app.wsgi_app, guard=LocalGuard(), routes=[Route("/chat")])
    with run_wsgi(wsgi_app) as url:
        assert httpx.get(f"{url}/health").json() == {"verdict": None}
        assert httpx.post(f"{url}/chat", json={"prompt": "hello"}).json() == {"verdict": "allow"}
