"""`LocalGuard`'s per-character Unicode clean-up of long texts, one numpy operation per step.

Removing invisible characters and folding every character (look-alike letters to Latin, other
non-word characters to a space) are per-character maps. In pure Python they cost a dict look-up
(`str.translate`) or a regex match (`re.sub`) per character or per run: 0.1-0.3 s per MB of a
text made of many different non-ASCII or invisible characters (Chinese text, a tag character
between every two letters). Here a text becomes an array of code points (its UTF-32 encoding),
and each map is one look-up in a table of every code point: ~10 ms per MB whatever the text.

numpy is optional (it comes with the ``re2`` extra): `tables` returns None without it, and
`LocalGuard` then keeps its pure-Python paths. numpy is imported, and the tables (three bytes per
code point, ~3.3 MB) built, at the first long non-ASCII text, not at import (~0.15 s, once).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_CODE_POINTS = 0x110000
# Letters and digits (what `str.isalnum` says yes to), in a string of every code point: `re`'s
# `\w` is `str.isalnum` plus the underscore, so runs of `[^\W_]` are the alphanumeric ranges.
_ALNUM_RUN = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class Tables:
    """numpy and the per-code-point tables (see `tables`)."""

    np: Any  # the numpy module
    invisible: Any  # bool per code point: removed from every view
    fold: tuple[Any, Any]  # uint8 per code point: the folded ASCII character; [1] keeps NUL


_TABLES: list[Tables | None] = []


def tables(invisible: Iterable[tuple[int, int]], lookalikes: Mapping[int, int]) -> Tables | None:
    """The tables, built on first use; None when numpy is not installed.

    Args:
        invisible: the ranges (first, last) of the characters every view removes.
        lookalikes: code point -> the ASCII letter (or apostrophe) it folds to.
    """
    if not _TABLES:
        _TABLES.append(_build(invisible, lookalikes))
    return _TABLES[0]


def _build(invisible: Iterable[tuple[int, int]], lookalikes: Mapping[int, int]) -> Tables | None:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - exercised when numpy is not installed
        return None
    codes = np.arange(_CODE_POINTS, dtype=np.uint32)
    every = codes.tobytes().decode("utf-32-le", "surrogatepass")
    alnum = np.zeros(_CODE_POINTS, dtype=bool)
    for run in _ALNUM_RUN.finditer(every):
        alnum[run.start() : run.end()] = True
    removed = np.zeros(_CODE_POINTS, dtype=bool)
    for first, last in invisible:
        removed[first : last + 1] = True
    # What `_fold_for_set` makes of each character: an ASCII letter or digit stays, a non-ASCII
    # one becomes "Z" (the google-re2 patterns read any of them as a word character, and a
    # casefolded text has no capitals), a look-alike becomes its Latin letter, the apostrophe
    # stays, everything else becomes a space.
    fold = np.full(_CODE_POINTS, ord(" "), dtype=np.uint8)
    fold[:128][alnum[:128]] = codes[:128][alnum[:128]]
    fold[128:][alnum[128:]] = ord("Z")
    fold[ord("'")] = ord("'")
    for code, latin in lookalikes.items():
        fold[code] = latin
    keeping_nul = fold.copy()
    keeping_nul[0] = 0
    return Tables(np, removed, (fold, keeping_nul))


def code_points(np: Any, text: str) -> Any:
    """`text` as an array of code points (lone surrogates included)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def without_invisible(found: Tables, text: str) -> str:
    """`text` without the characters the `invisible` table marks."""
    codes = code_points(found.np, text)
    gone = found.invisible[codes]
    if not gone.any():
        return text
    kept: bytes = codes[~gone].tobytes()
    return kept.decode("utf-32-le", "surrogatepass")


def fold(found: Tables, casefolded: str, *, keep_nul: bool) -> str:
    """Every character of `casefolded` through the fold table: an ASCII text of the same length."""
    folded: bytes = found.fold[keep_nul][code_points(found.np, casefolded)].tobytes()
    return folded.decode("ascii")


def collapsed_spaces(np: Any, folded: bytes) -> bytes:
    """`folded` with each run of spaces made one space, and none at either end.

    What `local._collapsed_bytes` does in a few `bytes.replace` passes, each reading the whole
    text (~4-7 ms per MB when short runs are everywhere, as where messages are joined by line
    breaks after a full stop): here one mask of the bytes to keep, a space that follows a space
    dropped, and one selection (~1.5 ms per MB).
    """
    codes = np.frombuffer(folded, dtype=np.uint8)
    word = codes != 0x20
    keep = word.copy()
    keep[1:] |= word[:-1]  # a space stays when what comes before it is not one
    kept: bytes = codes[keep].tobytes()
    return kept.strip(b" ")
