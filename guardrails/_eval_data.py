"""The rows ``guardrails eval`` reads: files (JSONL, CSV) streamed, labels, row identity.

A row is a mapping with the text to check under the text field (default ``prompt``), or OpenAI
chat ``messages``; an optional label under the label field (default ``label``); an optional
``id``. A row is named by its ``id`` when it has one, else by the digest of its text: reports and
the results file never need the text itself.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._models import Content

__all__ = ["EvalDataError", "Item", "count_rows", "items", "parse_label", "read_rows"]

_POSITIVE = frozenset({"true", "1", "block", "attack", "malicious", "unsafe"})
_NEGATIVE = frozenset({"false", "0", "allow", "benign", "safe"})


class EvalDataError(ValueError):
    """A row (or the data file) cannot be evaluated; the message names the row and what to fix.

    It never quotes the row's text.
    """


@dataclass(frozen=True, slots=True)
class Item:
    """One row, read: what to check and how to name it."""

    number: int
    key: str
    digest: str
    content: Content
    label: bool | None
    text: str | None


def parse_label(value: object, *, number: int, field: str) -> bool | None:
    """True for "should block" (true, 1, block, attack, malicious, unsafe), False for false, 0,
    allow, benign, safe; None when absent or empty. Anything else is an `EvalDataError`: a typo
    must not turn an attack into a benign row."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        folded = value.strip().lower()
        if not folded:
            return None
        if folded in _POSITIVE:
            return True
        if folded in _NEGATIVE:
            return False
    raise EvalDataError(
        f"row {number}: label {field!r} must be true/1/block/attack/malicious/unsafe (should block) "
        f"or false/0/allow/benign/safe (should allow), not {_describe(value)}"
    )


def _describe(value: object) -> str:
    # A label is short and not prompt text, but bound what an error message may carry.
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__} of {len(text)} characters"


def items(
    rows: Iterator[Mapping[str, Any]], *, text_field: str, label_field: str, keep_text: bool
) -> Iterator[Item]:
    """Read each row into an `Item`, lazily.

    Raises:
        EvalDataError: a row has neither text nor messages, or a bad label.
    """
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise EvalDataError(
                f"row {number}: a row must be a mapping (a JSON object), not {type(row).__name__}"
            )
        text = row.get(text_field)
        messages = row.get("messages")
        if isinstance(text, str):
            content = Content(text)
            digest_source = text
        elif messages is not None:
            if isinstance(messages, str):  # a CSV cell holding JSON
                try:
                    messages = json.loads(messages)
                except ValueError:
                    raise EvalDataError(f"row {number}: 'messages' is not JSON") from None
            if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
                raise EvalDataError(f"row {number}: 'messages' must be a list of chat messages")
            content = Content(messages=messages)
            digest_source = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            text = content.as_text()
        else:
            raise EvalDataError(
                f"row {number}: no text to check: put it under {text_field!r} (or choose the field "
                "with text_field= / --text-field), or give chat 'messages'"
            )
        digest = hashlib.blake2b(digest_source.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
        row_id = row.get("id")
        key = str(row_id) if row_id is not None and row_id != "" else digest
        label = parse_label(row.get(label_field), number=number, field=label_field)
        yield Item(number, key, digest, content, label, text if keep_text else None)


def read_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream the rows of a ``.jsonl`` / ``.ndjson`` file (one JSON object a line) or a ``.csv``
    file (a header line, then rows); other suffixes are read as JSONL. One row in memory at a time.

    Raises:
        EvalDataError: a line is not a JSON object, or the file is not UTF-8.
        OSError: the file cannot be read.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        yield from _csv_rows(path)
        return
    with path.open(encoding="utf-8") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    raise EvalDataError(f"{path.name} line {number}: not JSON") from None
                if not isinstance(row, dict):
                    raise EvalDataError(f"{path.name} line {number}: not a JSON object")
                yield row
        except UnicodeDecodeError:
            raise EvalDataError(f"{path.name} is not UTF-8 text") from None


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as handle:
        try:
            yield from csv.DictReader(handle)
        except UnicodeDecodeError:
            raise EvalDataError(f"{path.name} is not UTF-8 text") from None
        except csv.Error as exc:
            raise EvalDataError(f"{path.name}: not valid CSV ({exc})") from None


def count_rows(path: str | Path) -> int:
    """The number of rows in a data file (one streaming pass, for the progress bar's total)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return sum(1 for _ in read_rows(path))
    with path.open("rb") as handle:  # JSONL: the non-blank lines, without parsing them
        return sum(1 for line in handle if line.strip())
