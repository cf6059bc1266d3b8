"""``guardrails eval`` on the command line: outputs, progress, exit codes, bad usage."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from guardrails.cli import main
from tests.eval_cases import expected, generate

ROOT = Path(__file__).resolve().parent.parent
CASES = generate(120, seed=11)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(case.row) + "\n" for case in CASES))
    return path


def test_json_prints_only_the_summary(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json: stdout is the JSON summary and nothing else; no progress on stderr."""
    assert main(["eval", str(data), "--guard", "local", "--json"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    want = expected(CASES)
    local = summary["guards"]["local"]
    assert (local["tp"], local["fp"], local["tn"], local["fn"]) == (want.tp, want.fp, want.tn, want.fn)
    assert err == ""


def test_plain_progress_lines_when_not_a_terminal(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a TTY: a plain progress line per tenth of the rows, the Markdown report on stdout."""
    assert main(["eval", str(data), "--guard", "a=local", "--guard", "b=local"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("## Guard evaluation")
    assert "| a / b | 1.000 |" in out
    lines = err.splitlines()
    assert lines[-1].startswith(f"guardrails: eval: {len(CASES)}/{len(CASES)} rows,")
    assert lines[-1].endswith("0 errors")
    assert "\r" not in err
    assert 5 <= len(lines) <= 12


def test_a_progress_bar_on_a_terminal(data: Path) -> None:
    """On a TTY, stderr gets a bar redrawn in place with rows, rate, ETA and errors."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "guardrails", "eval", str(data), "--guard", "local"],
            env=os.environ | {"PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=60,
            check=False,
        )
        os.close(terminal)
        terminal = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    assert process.returncode == 0
    text = drawn.decode()
    assert f"\r[{'#' * 30}] {len(CASES)}/{len(CASES)} rows," in text
    assert "rows/s, ETA 0:00, 0 errors" in text


def test_out_writes_the_reports_and_the_results(data: Path, tmp_path: Path) -> None:
    """--out DIR keeps results.jsonl and writes report.md, summary.json and report.html."""
    out = tmp_path / "out"
    assert main(["eval", str(data), "--guard", "local", "--out", str(out), "--json"]) == 0
    assert {p.name for p in out.iterdir()} == {"results.jsonl", "report.md", "summary.json", "report.html"}
    assert len((out / "results.jsonl").read_text().splitlines()) == len(CASES)
    assert main(["eval", str(data), "--guard", "local", "--out", str(out), "--json"]) == 0
    assert json.loads((out / "summary.json").read_text())["resumed"] == len(CASES)


def test_a_bad_label_exits_2_naming_the_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A label that is not one of the documented spellings is bad data: exit 2, the row named."""
    path = tmp_path / "rows.csv"
    path.write_text("prompt,label\nhello,benign\nsecret words,maybe\n")
    assert main(["eval", str(path), "--guard", "local"]) == 2
    err = capsys.readouterr().err
    assert "row 2: label 'label'" in err
    assert "secret words" not in err


@pytest.mark.parametrize(
    ("guard", "message"),
    [
        pytest.param("nonsense", "unknown guard", id="unknown-spec"),
        pytest.param("=local", "give NAME=SPEC", id="no-name"),
    ],
)
def test_a_bad_guard_exits_2(
    data: Path, capsys: pytest.CaptureFixture[str], guard: str, message: str
) -> None:
    """A guard spec that names nothing is bad usage."""
    assert main(["eval", str(data), "--guard", guard]) == 2
    assert message in capsys.readouterr().err


def test_a_guard_name_given_twice_exits_2(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two guards under one name would mix their results."""
    assert main(["eval", str(data), "--guard", "local", "--guard", "local"]) == 2
    assert "given twice" in capsys.readouterr().err


def test_a_vendor_guard_with_no_key_exits_2_saying_what_to_set(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vendor guard the environment does not configure: the message names the variable."""
    monkeypatch.delenv("PANW_AI_SEC_API_KEY", raising=False)
    assert main(["eval", str(data), "--guard", "panw"]) == 2
    assert "PANW_AI_SEC_API_KEY" in capsys.readouterr().err
