"""TLS to the guard: verified against the trust store, or a private CA given with ``verify=``."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import trustme

from guardrails import GuardUnavailable, PaloAltoAIRS
from guardrails._policy import CircuitBreaker
from guardrails.testing.emulator import create_app
from tests.servers import run_asgi

pytestmark = pytest.mark.anyio

KEY = "tls-test-key-0123456789"
MODES = ["sync", "async-aiohttp", "async-httpx"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def https_url(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    app = create_app(panw_keys=(KEY,))
    with run_asgi(app, ssl_certfile=str(cert_file), ssl_keyfile=str(key_file)) as url:
        yield url.replace("http://", "https://")


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def guard(url: str, mode: str, verify: ssl.SSLContext | str | bool = True) -> PaloAltoAIRS:
    return PaloAltoAIRS(
        KEY,
        base_url=url,
        profile_name="tls",
        retries=0,
        timeout=5.0,
        breaker=CircuitBreaker(failure_threshold=0),
        async_backend="httpx" if mode == "async-httpx" else "auto",
        verify=verify,
    )


async def check(airs: PaloAltoAIRS, mode: str) -> bool:
    try:
        if mode == "sync":
            return (await anyio.to_thread.run_sync(airs.check, "hello")).allowed
        return (await airs.acheck("hello")).allowed
    finally:
        await airs.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_a_private_ca_given_as_a_path_is_trusted(https_url: str, ca_file: Path, mode: str) -> None:
    """``verify="ca.pem"`` trusts the private CA, on every backend."""
    assert await check(guard(https_url, mode, verify=str(ca_file)), mode)


@pytest.mark.parametrize("mode", MODES)
async def test_a_private_ca_given_as_a_context_is_trusted(https_url: str, ca: trustme.CA, mode: str) -> None:
    """``verify=ssl_context`` trusts what the context trusts, on every backend."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    assert await check(guard(https_url, mode, verify=context), mode)


@pytest.mark.parametrize("mode", MODES)
async def test_an_unknown_certificate_is_refused_by_default(https_url: str, mode: str) -> None:
    """With the default trust store the emulator's certificate is refused: the check fails, transient."""
    with pytest.raises(GuardUnavailable):
        await check(guard(https_url, mode), mode)
