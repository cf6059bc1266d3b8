"""Real servers on 127.0.0.1 for end-to-end tests: uvicorn for ASGI apps, werkzeug for WSGI apps.

Readiness is polled with a bounded deadline, never slept for.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from werkzeug.serving import make_server

READY_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {READY_TIMEOUT}s")
        time.sleep(0.005)  # a poll interval, not a wait for readiness


@contextmanager
def run_asgi(app: Any, **config: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread; yields its base URL."""
    port = free_port()
    options: dict[str, Any] = {"log_level": "warning", "lifespan": "auto", "access_log": False}
    options.update(config)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        _wait_for(lambda: server.started or not thread.is_alive(), "uvicorn")
        if not server.started:
            raise RuntimeError("uvicorn exited before it started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(READY_TIMEOUT)


@contextmanager
def run_wsgi(app: Any, *, threaded: bool = True) -> Iterator[str]:
    """Serve a WSGI app with werkzeug's threaded server in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=threaded)
    port = server.socket.getsockname()[1]
    # serve_forever polls for shutdown every 0.5 s by default: every test would wait for it.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"wsgi-{port}", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(READY_TIMEOUT)
