"""Helpers shared by the benchmark scripts: servers in another process, statistics, memory, tables.

- `serve_emulator` runs the vendor emulator under uvicorn in a child process on 127.0.0.1 (over
  https with a throw-away CA from trustme when asked), so the client measured does not share an
  event loop, a GIL or a core with the server; readiness is polled with a bounded deadline.
- `serve_process` does the same for any server command with a health URL.
- `median`, `percentile`, `ratio`: the statistics the tables print.
- `rss_bytes`, `peak_rss_bytes`, `reset_peak_rss`: resident memory of this process (Linux /proc).
- `print_table`: one aligned table per section.
- `callgrind_instructions`: instructions a fresh child process of a script executes, counted by
  callgrind (the `ir_*.py` scripts: figures that do not move with the machine's load).

Run ``python benchmarks/_load.py serve-emulator --port N [--tls-dir DIR]`` to serve the emulator by
hand (this is what `serve_emulator` starts).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT = 20.0
TREND_KEY = "test-v1-key"
PANW_KEY = "test-panw-key"
_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- servers in another process ------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    """A throw-away CA and a certificate for 127.0.0.1 / localhost that it signed (PEM files)."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        """An SSL context trusting only the throw-away CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_tls_files(directory: Path) -> TLSFiles:
    """Write a fresh trustme CA and a server certificate for 127.0.0.1 into `directory`."""
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_file))
    server.cert_chain_pems[0].write_to_path(str(files.cert_file))
    for pem in server.cert_chain_pems[1:]:
        pem.write_to_path(str(files.cert_file), append=True)
    server.private_key_pem.write_to_path(str(files.key_file))
    return files


@dataclass(frozen=True)
class Server:
    """A server running in a child process."""

    url: str
    process: subprocess.Popen[bytes] | None = None
    tls: TLSFiles | None = None

    def admin(self, method: str, path: str, json: object = None) -> httpx.Response:
        """Call one of the emulator's ``/_emulator/`` endpoints."""
        verify: ssl.SSLContext | bool = self.tls.client_context() if self.tls else True
        with httpx.Client(base_url=self.url, verify=verify, trust_env=False, timeout=10) as client:
            response = client.request(method, path, json=json)
        response.raise_for_status()
        return response

    def set_latency(self, seconds: float) -> None:
        """Delay every vendor answer by `seconds` (0 to remove the delay); forgets counts too."""
        self.admin("POST", "/_emulator/reset")
        if seconds > 0:
            self.admin("POST", "/_emulator/faults", {"kind": "latency", "seconds": seconds})


def _wait_ready(process: subprocess.Popen[bytes], health_url: str, verify: ssl.SSLContext | bool) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(verify=verify, trust_env=False, timeout=1.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with status {process.returncode} before it was ready")
            try:
                if client.get(health_url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server at {health_url} was not ready within {READY_TIMEOUT:g}s")
            time.sleep(0.02)  # a poll interval, not a wait for readiness


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass(frozen=True)
class ServerSpec:
    """How to start a server: its command, where it listens, and the path that answers 200 when ready."""

    argv: Sequence[str]
    url: str
    health_path: str
    tls: TLSFiles | None = None


@contextmanager
def serve_processes(specs: Sequence[ServerSpec]) -> Iterator[list[Server]]:
    """Start every server at once, wait until each is ready, yield them; stop them all on exit."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])),
    }
    servers: list[Server] = []
    try:
        for spec in specs:
            process = subprocess.Popen(list(spec.argv), env=env, stdin=subprocess.DEVNULL)
            servers.append(Server(spec.url, process, spec.tls))
        for spec, server in zip(specs, servers, strict=True):
            assert server.process is not None
            _wait_ready(
                server.process, spec.url + spec.health_path, spec.tls.client_context() if spec.tls else True
            )
        yield servers
    finally:
        for server in servers:
            if server.process is not None:
                _stop(server.process)


@contextmanager
def serve_process(
    argv: Sequence[str], *, url: str, health_path: str, tls: TLSFiles | None = None
) -> Iterator[Server]:
    """Start `argv` (a server listening at `url`), wait until `health_path` answers 200, yield it."""
    with serve_processes([ServerSpec(argv, url, health_path, tls)]) as (server,):
        yield server


@contextmanager
def serve_emulators(*, tls: Sequence[bool] = (False,)) -> Iterator[list[Server]]:
    """Serve one vendor emulator per item of `tls` (https where True), each in a child process."""
    with tempfile.TemporaryDirectory(prefix="guardrails-bench-") as tmp:
        specs: list[ServerSpec] = []
        for secure in tls:
            port = free_port()
            argv = [sys.executable, str(Path(__file__).resolve()), "serve-emulator", "--port", str(port)]
            files = None
            if secure:
                directory = Path(tmp) / str(port)
                directory.mkdir()
                files = make_tls_files(directory)
                argv += ["--tls-dir", str(directory)]
            url = f"{'https' if secure else 'http'}://127.0.0.1:{port}"
            specs.append(ServerSpec(argv, url, "/_emulator/health", files))
        with serve_processes(specs) as servers:
            yield servers


@contextmanager
def serve_emulator(*, tls: bool = False) -> Iterator[Server]:
    """Serve the vendor emulator with uvicorn in a child process on 127.0.0.1 (https if `tls`)."""
    with serve_emulators(tls=(tls,)) as (server,):
        yield server


def _serve_emulator_main(port: int, tls_dir: str | None) -> None:
    import uvicorn

    from guardrails.testing.emulator import create_app

    options: dict[str, object] = {}
    if tls_dir:
        options = {
            "ssl_certfile": str(Path(tls_dir) / "server.pem"),
            "ssl_keyfile": str(Path(tls_dir) / "server.key"),
        }
    # 4096: room for a thousand concurrent connections arriving at once.
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        **options,  # type: ignore[arg-type]
    )


# -- statistics ----------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: Sequence[float], p: float) -> float:
    """The `p`-th percentile (0-100), linearly interpolated; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when either is missing or the denominator is zero."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


# -- memory --------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_bytes() -> int:
    """Resident set size of this process now."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size of this process since it started or since `reset_peak_rss`."""
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0); False if the kernel refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


# -- output --------------------------------------------------------------------------------------


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], note: str = "") -> None:
    """Print an aligned table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    print(f"\n## {title}")
    if note:
        print(note)
    line = "  ".join(
        f"{cell:<{widths[i]}}" if i == 0 else f"{cell:>{widths[i]}}" for i, cell in enumerate(headers)
    )
    print(line)
    print("-" * len(line))
    for row in rows:
        print(
            "  ".join(
                f"{cell:<{widths[i]}}" if i == 0 else f"{cell:>{widths[i]}}" for i, cell in enumerate(row)
            )
        )
    sys.stdout.flush()


def fmt(value: float, spec: str = ".0f", suffix: str = "") -> str:
    """Format a figure; ``n/a`` for NaN."""
    return "n/a" if math.isnan(value) else f"{value:{spec}}{suffix}"


def main() -> None:
    parser = argparse.ArgumentParser(description="Servers for the benchmarks.")
    commands = parser.add_subparsers(dest="command", required=True)
    emulator = commands.add_parser("serve-emulator", help="serve the vendor emulator with uvicorn")
    emulator.add_argument("--port", type=int, required=True)
    emulator.add_argument("--tls-dir", help="a directory holding server.pem and server.key")
    args = parser.parse_args()
    _serve_emulator_main(args.port, args.tls_dir)


if __name__ == "__main__":
    main()


def callgrind_instructions(script: str, args: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """Instructions callgrind counts for ``python script --child *args`` in a fresh process.

    Raises RuntimeError with the end of the child's stderr when it fails.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, script,
             "--child", *args],
            check=False, capture_output=True, text=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
        if run.returncode != 0:
            raise RuntimeError(f"the child {' '.join(args)} failed:\n{run.stderr[-3000:]}")
        text = Path(out).read_text(encoding="utf-8", errors="replace")
    match = re.search(r"^summary:\s+(\d+)", text, re.MULTILINE) or re.search(
        r"^totals:\s+(\d+)", text, re.MULTILINE
    )
    if match is None:
        raise RuntimeError("no instruction total in the callgrind output")
    return int(match.group(1))
