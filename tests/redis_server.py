"""A real ``redis-server`` on 127.0.0.1 for the tests of ``guardrails.redis``.

`redis_server` starts one in a child process on a free port (no persistence), polls it until it
answers PING under a bounded deadline, and stops it on exit. The suite's ``redis_url`` fixture
(conftest) uses ``GUARDRAILS_TEST_REDIS_URL`` when CI set it, else one of these.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from tests.servers import READY_TIMEOUT, free_port

__all__ = ["RedisServer", "redis_binary", "redis_server"]


def redis_binary() -> str | None:
    """The path of ``redis-server``, or None when it is not installed."""
    return shutil.which("redis-server")


@dataclass
class RedisServer:
    """A running redis-server; `stop` ends it (as an outage would), `start` brings it back on its port."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with status {self.process.returncode}")
                try:
                    if client.ping():
                        return
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer within {READY_TIMEOUT}s")
                time.sleep(0.01)  # a poll interval, not a wait for readiness
        finally:
            client.close()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(READY_TIMEOUT)


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of its own on a free port, stopped on exit."""
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
