"""`LocalGuard`'s masking of a long text: every card number found and masked by numpy.

A content of many strings is masked in one text (the strings joined by line breaks). With a
card number in each of 30,000 messages, finding them was a `re` match and a Python call (the
Luhn check) per card, and masking them a Python step per span: ~10 us per card. Here the text is
an array of bytes, and each step is one numpy operation over the whole text: the runs of digits
that `_CARD` matches, the tests `_is_card` makes on each (issuer digit, what stands before and
after, length, groups of at least three digits, 13 to 19 digits, Luhn), and the masking of every
accepted span. Same spans as `_CARD` with `_is_card` (a differential test compares them).

numpy is optional (it comes with the ``re2`` extra): `numpy_module` returns None without it, and
`LocalGuard` keeps its pure-Python path.
"""

from __future__ import annotations

from typing import Any

_LONGEST_CARD = 19 + 18  # as in `local`: digits, and a separator between each two
_NUMPY: list[Any] = []


def numpy_module() -> Any | None:
    """The numpy module, imported on first use; None when it is not installed."""
    if not _NUMPY:
        try:
            import numpy
        except ImportError:  # pragma: no cover - exercised when numpy is not installed
            _NUMPY.append(None)
        else:
            _NUMPY.append(numpy)
    return _NUMPY[0]


def card_spans(np: Any, string: str) -> tuple[Any, Any]:
    r"""The start and end offsets (two int arrays, in order) of every card number in `string`.

    `string` is read as an array of its bytes when it is ASCII, else of its code points (UTF-32).
    What `_CARD` and `_is_card` accept, read as whole-text steps:

    - a *chain* is a maximal run of digits and single spaces or dashes, each between two digits.
      `_CARD` can start a match only where a chain starts (inside one, the character before is a
      digit, or a separator after a digit: both are lookbehinds of `_CARD`), and a match that
      starts there takes the whole chain (greedy, and nothing after it in the pattern);
    - the chain must start with an issuer digit 2-6 and not follow a letter (a digit cannot stand
      just before a chain; a non-ASCII character there is tested by `str.isalnum`, as `_CARD`'s
      ``[^\W_]`` does), be at most `_LONGEST_CARD` long and not be followed by an ASCII letter;
    - its groups (its runs of digits) hold 13 to 19 digits, each at least three long when there
      is more than one;
    - the Luhn sum of its digits is a multiple of ten (every second digit from the right
      doubled), summed over the digits of the chains left, laid end to end.

    No step is a cumulative sum over the whole text (~2.5 ms per MB each): counts come from the
    runs of digits, found by where the digit mask changes.
    """
    text = _codes(np, string)
    size = len(text)
    digit = (text >= 48) & (text <= 57)
    chain = digit.copy()
    if size > 2:
        chain[1:-1] |= ((text[1:-1] == 32) | (text[1:-1] == 45)) & digit[:-2] & digit[2:]
    starts, ends = _runs(np, chain)
    before = text[np.maximum(starts - 1, 0)] | np.uint8(32)  # lower case, if a letter
    after = text[np.minimum(ends, size - 1)] | np.uint8(32)
    first = text[starts]
    keep = (
        (first >= 50)
        & (first <= 54)
        & (ends - starts <= _LONGEST_CARD)
        & ((starts == 0) | (before < 97) | (before > 122))
        & ((ends == size) | (after < 97) | (after > 122))
    )
    starts, ends = starts[keep], ends[keep]
    wide = np.flatnonzero(text[np.maximum(starts - 1, 0)] > 127)
    if len(wide):
        alnum = np.array([string[start - 1].isalnum() for start in starts[wide].tolist()], dtype=bool)
        keep = np.ones(len(starts), dtype=bool)
        keep[wide] = ~alnum
        starts, ends = starts[keep], ends[keep]
    if not len(starts):
        return starts, ends
    group_starts, group_ends = _runs(np, digit)
    first_group = np.searchsorted(group_starts, starts)
    last_group = np.searchsorted(group_starts, ends)  # one past the chain's last group
    lengths = group_ends - group_starts
    digits_before = np.concatenate(([0], np.cumsum(lengths)))  # before each group
    shorts_before = np.concatenate(([0], np.cumsum(lengths < 3)))
    count = digits_before[last_group] - digits_before[first_group]
    shorts = shorts_before[last_group] - shorts_before[first_group]
    keep = (count >= 13) & (count <= 19) & ((last_group - first_group == 1) | (shorts == 0))
    starts, ends, count, first_digit = starts[keep], ends[keep], count[keep], digits_before[first_group[keep]]
    if not len(starts):
        return starts, ends
    # The digits of the chains left, end to end: chain i holds count[i] of them from offsets[i].
    offsets = np.concatenate(([0], np.cumsum(count)[:-1]))
    total = int(offsets[-1] + count[-1])
    values = (text[digit] - 48).astype(np.uint8)[np.arange(total) + np.repeat(first_digit - offsets, count)]
    # Doubled: an odd number of digits after it in its chain (the last one's offset, minus its own).
    alternate = np.zeros(total, dtype=np.uint8)
    alternate[1::2] = 1
    doubled = np.repeat(((offsets + count - 1) & 1).astype(np.uint8), count) ^ alternate
    # A doubled digit counts as 2v - 9 past 4: v + (v - 9 * (v > 4)), which wraps in uint8 and
    # comes back in range.
    values += doubled * (values - np.uint8(9) * (values > 4).astype(np.uint8))
    sums = np.add.reduceat(values, offsets, dtype=np.int32)
    keep = sums % 10 == 0
    return starts[keep], ends[keep]


def masked(np: Any, string: str, starts: Any, ends: Any) -> str:
    """`string` with every character in a span [start, end) replaced by ``X`` (spans in any order,
    may overlap)."""
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    # Each span from where the ones before it end (their running furthest end) on.
    reach = np.maximum.accumulate(ends)
    starts = np.maximum(starts, np.concatenate(([0], reach[:-1])))
    keep = starts < ends
    starts, ends = starts[keep], ends[keep]
    lengths = ends - starts
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    text = _codes(np, string).copy()
    text[np.arange(int(lengths.sum())) + np.repeat(starts - offsets, lengths)] = 88
    if text.dtype == np.uint8:
        return str(text.tobytes().decode("ascii"))
    return str(text.tobytes().decode("utf-32-le", "surrogatepass"))


def _codes(np: Any, string: str) -> Any:
    """`string` as an array: of bytes when it is ASCII, else of code points (UTF-32)."""
    if string.isascii():
        return np.frombuffer(string.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(string.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _runs(np: Any, mask: Any) -> tuple[Any, Any]:
    """The start and end offsets of every run of True in `mask`."""
    padded = np.zeros(len(mask) + 2, dtype=bool)
    padded[1:-1] = mask
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges[0::2], edges[1::2]
