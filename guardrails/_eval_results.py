"""The results file of ``guardrails eval``: one JSON line per finished (row, guard), appended.

A line is written (and flushed to the operating system, not fsync'ed) as soon as its check
finishes, so a run stopped by Ctrl-C, a crash or a vendor outage loses at most the line being
written. A run given the same file reads it first and checks only the pairs it does not hold, so
nothing is paid for twice. Fields::

    {"row": "<id, or the digest>", "digest": "<blake2b-96 of the text>", "guard": "<name>",
     "label": true | false | null, "action": "block" | "allow" | null, "categories": [...],
     "reasons": [...], "latency": <seconds>, "vendor_calls": <int>,
     "error": null | "<exception name>", "transient": <bool, with an error>,
     "text": "<only when the run shows text>"}

A pair whose last line is a *transient* error (timeout, outage, rate limit) is checked again by
the next run; a verdict, or a permanent error (bad credentials, content too large), is final. A
row whose text changed under the same id has a new digest, and is checked again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ._eval_data import EvalDataError

__all__ = ["Outcome", "ResultsFile"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished check: a verdict, or the error that ended it."""

    action: str | None
    categories: tuple[str, ...]
    reasons: tuple[str, ...]
    latency: float
    vendor_calls: int
    error: str | None = None
    transient: bool = False

    @property
    def blocked(self) -> bool | None:
        """True / False for a verdict, None for an error."""
        return None if self.action is None else self.action == "block"

    @property
    def final(self) -> bool:
        """Whether a later run should keep it (everything but a transient error)."""
        return self.error is None or not self.transient


def record(
    *, row: str, digest: str, guard: str, label: bool | None, outcome: Outcome, text: str | None
) -> str:
    """One line of the results file."""
    data: dict[str, Any] = {
        "row": row,
        "digest": digest,
        "guard": guard,
        "label": label,
        "action": outcome.action,
        "categories": list(outcome.categories),
        "reasons": list(outcome.reasons),
        "latency": round(outcome.latency, 6),
        "vendor_calls": outcome.vendor_calls,
        "error": outcome.error,
    }
    if outcome.error is not None:
        data["transient"] = outcome.transient
    if text is not None:
        data["text"] = text
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


class ResultsFile:
    """The results of earlier runs (final outcomes by (row, digest, guard)), and the appender.

    Reading keeps one small entry per recorded pair: a resumed run holds what it resumes, a fresh
    run holds nothing.

    Args:
        path: the JSONL file; created if missing.
        guards: the guard names of this run (lines of other guards are kept in the file, not read).
    """

    def __init__(self, path: str | Path, guards: set[str]) -> None:
        self.path = Path(path)
        self.done: dict[tuple[str, str, str], Outcome] = {}
        if self.path.exists():
            self._load(guards)
        self._handle: IO[str] | None = None

    def _load(self, guards: set[str]) -> None:
        with self.path.open("rb+") as handle:
            good_end = 0
            # Binary: a line cut in the middle of a UTF-8 sequence is seen as cut, not undecodable.
            for number, raw in enumerate(handle, start=1):
                if not raw.endswith(b"\n"):
                    break  # a line cut short by a crash: dropped below, its pair checked again
                good_end += len(raw)
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw)
                    key = (str(data["row"]), str(data["digest"]), str(data["guard"]))
                    outcome = Outcome(
                        action=data["action"],
                        categories=tuple(data.get("categories") or ()),
                        reasons=tuple(data.get("reasons") or ()),
                        latency=float(data.get("latency") or 0.0),
                        vendor_calls=int(data.get("vendor_calls") or 0),
                        error=data.get("error"),
                        transient=bool(data.get("transient", False)),
                    )
                except (ValueError, KeyError, TypeError):
                    raise EvalDataError(
                        f"results file {self.path.name} line {number} is not a result: remove the line "
                        "(its pair is checked again) or give another results file"
                    ) from None
                if key[2] not in guards:
                    continue
                if outcome.final:
                    self.done[key] = outcome
                else:
                    self.done.pop(key, None)  # a transient failure after a verdict: keep nothing
            handle.seek(0, os.SEEK_END)
            if handle.tell() != good_end:
                handle.truncate(good_end)

    def append(self, line: str) -> None:
        """Append one line and hand it to the operating system (no fsync: a crash of the machine
        may lose the last lines, whose pairs the next run checks again)."""
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(line)
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
