"""A JSON body read at C speed when that provably loses nothing of the superset reading. No I/O.

`guardrails._body` reads a JSON body through a decoder that keeps every duplicate key and leaves
long integer literals unconverted (the superset document): every string any parser could hand the
app is scanned. That decoder calls a Python hook per object and per integer and its document is
walked in Python several times, which costs ~5x the parse itself for a 1 KB chat request.

``read_plain(data, max_depth=..., max_number_length=...)`` parses with the plain decoder
(``json.loads``, C throughout) and returns ``(document, strings)`` only when that document is the
superset document with its objects as ``dict`` (so ``_body._plain`` of the superset document equals
it, and its keys and values in order are the superset's pairs); otherwise None, and the caller reads
the body the full way (which also raises whatever error the body deserves). ``strings`` lists every
string of the document, object keys included, in document order (what ``_body._pairs_texts``
yields for the superset document); ``strings_of(document)`` lists them for a part of such a
document (the document a message scope narrowed).

Why the plain document can be the superset one (``tests/test_fastbody_differential.py`` checks it):

- Both decode the bytes the same way (``json.detect_encoding``, ``surrogatepass``, a BOM after the
  detected one refused) and run the same C scanner (strict, same float and constant handling);
  they differ only in the object hook and the integer hook.
- A plain ``dict`` drops content only for a duplicate key, and a dropped pair takes at least its
  key, a string token, with it. The string tokens of the text are counted from its ``"``
  characters: outside strings JSON has no ``"`` and no backslash; inside a string a ``"`` is a
  delimiter unless escaped, and escapes are ``\\`` followed by one character, read left to right.
  Deleting every escaped backslash pair (``str.replace`` pairs left to right, as the scanner does)
  leaves exactly the escaped quotes as ``\\"``. So ``(quotes - escaped quotes) / 2`` is the number
  of string tokens, and the document kept every token iff it holds that many strings (keys and
  values).
- The superset keeps an integer literal longer than ``max_number_length`` as its text; a JSON
  integer literal is canonical (``-?(0|[1-9][0-9]*)``), so its length is that of ``str(value)``,
  except ``-0`` (two characters, value 0): with ``max_number_length >= 2`` the plain value is the
  superset's exactly when ``-10**(max_number_length-1) < value < 10**max_number_length``.
- Depth: a document nested deeper than ``max_depth`` is refused by the full reading; the walk
  measures the depth and gives up past it.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from typing import Any

__all__ = ["read_plain", "strings_of"]

# The decoder json.loads uses for a str without arguments: strict, C scanner, no hooks. Its scanner
# is called directly (`_document`): `JSONDecoder.decode` adds two Python frames and two regex
# matches for the whitespace around the document.
_DECODER = json.JSONDecoder()
_SCAN: Any = _DECODER.scan_once  # type: ignore[attr-defined]
# json.decoder.WHITESPACE (verbose, but its spaces are in a class: kept).
_WHITESPACE = re.compile(r"[ \t\n\r]*")


#: Largest ``max_number_length`` read fast: Python's own default limit on the digits int() reads.
_LONGEST_LIMIT = 4300


class _Unproven(Exception):
    """The plain document may differ from the superset one: read the body the full way."""


@functools.lru_cache(maxsize=8)
def _int_bounds(max_number_length: int) -> tuple[int, int]:
    """Open bounds of the integers whose literal is at most `max_number_length` characters."""
    return -(10 ** (max_number_length - 1)), 10**max_number_length


def read_plain(
    data: bytes, max_depth: int, max_number_length: int, skip: frozenset[str] = frozenset()
) -> tuple[Any, list[str]] | None:
    """The body's JSON document and its strings (keys included, document order), or None.

    None when the plain parse cannot be proven to be the superset reading (duplicate keys, a
    long integer, too deep, not JSON at all...): the caller then reads the body the full way.
    The strings listed leave out those in `skip` (the walk still counts them for the proof): a
    caller that would drop them anyway saves a pass.
    """
    if not 2 <= max_number_length <= _LONGEST_LIMIT:
        # "-0" is a long literal of value 0 under a limit of 1: not worth a special case. Past
        # _LONGEST_LIMIT, 10**max_number_length is not worth computing.
        return None
    # What json.loads(bytes) and the full reading do: detect UTF-8/16/32, surrogatepass. Two
    # leading ASCII bytes other than NUL are neither a BOM nor UTF-16/32: detect_encoding says
    # UTF-8 (and costs more than the decoding).
    if len(data) >= 2 and 0 < data[0] < 0x80 and 0 < data[1] < 0x80:
        encoding = "utf-8"
    else:
        encoding = json.detect_encoding(data)
    try:
        text = data.decode(encoding, "surrogatepass")
        if text.startswith("\ufeff"):
            return None
        document = _document(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    quotes = text.count('"')
    if "\\" in text:
        quotes -= text.replace("\\\\", "").count('\\"')
    strings: list[str] = []
    low, high = _int_bounds(max_number_length)
    try:
        count = _walk(document, strings, 1, max_depth, low, high, skip)
    except (_Unproven, RecursionError):
        return None
    if count * 2 != quotes:
        return None  # a duplicate key dropped something
    return document, strings


def _document(text: str) -> Any:
    """``_DECODER.decode(text)``: the document, or ValueError (not JSON, or data after it)."""
    start = _WHITESPACE.match(text).end() if text[:1] in _SPACES else 0  # type: ignore[union-attr]
    try:
        document, end = _SCAN(text, start)
    except StopIteration:
        raise ValueError("no JSON document") from None
    if end != len(text) and _WHITESPACE.match(text, end).end() != len(text):  # type: ignore[union-attr]
        raise ValueError("data after the JSON document")
    return document


# What `JSONDecoder.decode` skips around a document (json.decoder.WHITESPACE); "" for an empty text.
_SPACES = frozenset(["", " ", "\t", "\n", "\r"])


def strings_of(document: Any, skip: frozenset[str] = frozenset()) -> list[str]:
    """Every string of a plain JSON document but those in `skip`, object keys included, in
    document order."""
    found: list[str] = []
    _walk(document, found, 1, sys.maxsize, -math.inf, math.inf, skip)
    return found


def _walk(
    value: Any, strings: list[str], depth: int, max_depth: int, low: float, high: float, skip: frozenset[str]
) -> int:
    """Append every string of `value` not in `skip` to `strings`, keys before values, in document
    order; return how many strings `value` holds (those skipped included).

    Raises `_Unproven` for a container deeper than `max_depth` or an integer outside (low, high).
    An object's keys are counted with its length and, when all of them are in `skip`
    (``keys() <= skip``, one C call: a chat request's keys all are), not looked at one by one.
    """
    if depth > max_depth:
        raise _Unproven
    kind = type(value)
    if kind is dict:
        if not value.keys() <= skip:
            return _members(value, strings, depth, max_depth, low, high, skip)
        count = len(value)
        for item in value.values():
            kind = type(item)
            if kind is str:
                count += 1
                if item not in skip:
                    strings.append(item)
            elif kind is dict or kind is list:
                count += _walk(item, strings, depth + 1, max_depth, low, high, skip)
            elif kind is int and not low < item < high:
                raise _Unproven
        return count
    if kind is list:
        count = 0
        for item in value:
            kind = type(item)
            if kind is str:
                count += 1
                if item not in skip:
                    strings.append(item)
            elif kind is dict:
                # A list of objects (a chat request's messages): each object walked here, one
                # frame less per object; what the call of _walk would do at depth + 1.
                if depth >= max_depth:
                    raise _Unproven
                if not item.keys() <= skip:
                    count += _members(item, strings, depth + 1, max_depth, low, high, skip)
                    continue
                count += len(item)
                for member in item.values():
                    kind = type(member)
                    if kind is str:
                        count += 1
                        if member not in skip:
                            strings.append(member)
                    elif kind is dict or kind is list:
                        count += _walk(member, strings, depth + 2, max_depth, low, high, skip)
                    elif kind is int and not low < member < high:
                        raise _Unproven
            elif kind is list:
                count += _walk(item, strings, depth + 1, max_depth, low, high, skip)
            elif kind is int and not low < item < high:
                raise _Unproven
        return count
    if kind is str:
        if value not in skip:
            strings.append(value)
        return 1
    if kind is int and not low < value < high:
        raise _Unproven
    return 0


def _members(
    value: dict[str, Any],
    strings: list[str],
    depth: int,
    max_depth: int,
    low: float,
    high: float,
    skip: frozenset[str],
) -> int:
    """`_walk` of an object at `depth` (already checked) with a key not in `skip`: pair by pair."""
    count = len(value)
    for key, item in value.items():
        if key not in skip:
            strings.append(key)
        kind = type(item)
        if kind is str:
            count += 1
            if item not in skip:
                strings.append(item)
        elif kind is dict or kind is list:
            count += _walk(item, strings, depth + 1, max_depth, low, high, skip)
        elif kind is int and not low < item < high:
            raise _Unproven
    return count
