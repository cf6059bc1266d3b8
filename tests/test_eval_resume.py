"""An interrupted eval resumes where it stopped and pays for no (row, guard) twice.

Two interruptions: a real SIGINT to the ``guardrails eval`` process half-way, and a vendor outage
half-way (the emulator answers 503 until it is reset). In both, a second run over the same results
gives the same report as an uninterrupted run, and the emulator answered each row exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guardrails import LocalGuard, PaloAltoAIRS
from guardrails.eval import EvalReport, evaluate
from guardrails.testing.emulator import PANW_PATH, Emulator, create_app
from tests.eval_cases import generate
from tests.helpers import PANW_KEY
from tests.servers import run_asgi

ROOT = Path(__file__).resolve().parent.parent
ROWS = 300


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class AnsweredPrompts:
    """ASGI wrapper around the emulator: which prompts the Palo Alto endpoint answered with 200.

    Test-side bookkeeping only (the emulator itself keeps no prompt text): digests, not text.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.answered: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.on_answer: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != PANW_PATH:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        status = 0

        async def recording_receive() -> Any:
            message = await receive()
            body.extend(message.get("body", b""))
            return message

        async def recording_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, recording_receive, recording_send)
        if status == 200:
            prompt = json.loads(body)["contents"][0]["prompt"]
            with self.lock:
                self.answered[_digest(prompt)] += 1
                total = sum(self.answered.values())
            if self.on_answer is not None:
                self.on_answer(total)


@pytest.fixture
def served() -> Iterator[tuple[AnsweredPrompts, Emulator, str]]:
    app = create_app(panw_keys=(PANW_KEY,))
    recorder = AnsweredPrompts(app)
    with run_asgi(recorder) as url:
        yield recorder, app.state.emulator, url


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    rows = [case.row for case in generate(ROWS, seed=5)]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path, rows


def _counts(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary without its timings (what must not depend on the interruption)."""
    return {
        name: {k: v for k, v in metrics.items() if not k.startswith("latency")}
        for name, metrics in summary["guards"].items()
    } | {"rows": summary["rows"], "agreement": summary["agreement"]}


def _cli(data: Path, out: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "PANW_AI_SEC_API_KEY": PANW_KEY,
        "PANW_AI_SEC_API_ENDPOINT": url,
        "PANW_AI_PROFILE_NAME": "eval",
    }
    command = [sys.executable, "-m", "guardrails", "eval", str(data), "--guard", "panw", "--guard", "local"]
    return subprocess.Popen(
        [*command, "--out", str(out), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_sigint_half_way_then_a_rerun_gives_the_uninterrupted_results(
    served: tuple[AnsweredPrompts, Emulator, str], data: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Ctrl-C stops the CLI half-way; running it again finishes, with each row answered once."""
    recorder, emulator, url = served
    path, rows = data
    baseline = evaluate(rows, _guards(url)).to_json()  # uninterrupted
    recorder.answered.clear()

    emulator.latency = 0.02  # slow enough to be stopped half-way
    out = tmp_path / "resumed"
    first = _cli(path, out, url, "--concurrency", "4")
    deadline = time.monotonic() + 60
    while _lines(out / "results.jsonl") < 100:
        assert first.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.01)  # a poll interval
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    assert "run the same command again to continue" in stderr
    recorded = _lines(out / "results.jsonl")
    assert 100 <= recorded < 2 * ROWS

    emulator.latency = 0.0
    second = _cli(path, out, url, "--json")
    stdout, stderr = second.communicate(timeout=60)
    assert second.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["resumed"] == recorded
    assert _counts(summary) == _counts(baseline)
    # The emulator answered every row once over the two runs: nothing was paid for twice.
    assert recorder.answered == Counter({_digest(row["prompt"]): 1 for row in rows})
    pairs = Counter(
        (r["row"], r["guard"]) for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())
    )
    assert set(pairs.values()) == {1}
    assert len(pairs) == 2 * ROWS


def _guards(url: str) -> dict[str, Any]:
    return {"panw": PaloAltoAIRS(PANW_KEY, profile_name="eval", base_url=url), "local": LocalGuard()}


def test_a_vendor_outage_half_way_then_a_rerun_gives_the_uninterrupted_results(
    served: tuple[AnsweredPrompts, Emulator, str], data: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Checks failing in an outage are errors, not guesses; the rerun checks only those."""
    recorder, emulator, url = served
    _, rows = data
    baseline = evaluate(rows, _guards(url))
    recorder.answered.clear()

    def outage(answered: int) -> None:
        if answered == ROWS // 2:
            emulator.inject("status", status=503, api="panw")  # until reset

    recorder.on_answer = outage
    results = tmp_path / "results.jsonl"
    broken = evaluate(rows, _guards(url), results=results)
    assert broken.guards["panw"].errors > 0
    assert broken.guards["panw"].checked + broken.guards["panw"].errors == ROWS
    assert broken.guards["local"].errors == 0

    recorder.on_answer = None
    emulator.reset()
    resumed = evaluate(rows, _guards(url), results=results)
    assert resumed.resumed == ROWS + broken.guards["panw"].checked
    assert _summary(resumed) == _summary(baseline)
    assert recorder.answered == Counter({_digest(row["prompt"]): 1 for row in rows})


def _summary(report: EvalReport) -> dict[str, Any]:
    return _counts(report.to_json())
