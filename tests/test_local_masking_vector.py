"""LocalGuard's masking of many strings (numpy, plain messages) against one-by-one masking."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails._models import Content
from guardrails.guards import _local_cards, local
from guardrails.guards.local import LocalGuard

np = pytest.importorskip("numpy")

CARD = "4111 1111 1111 1111"


def _luhn_digit(digits: str) -> str:
    """The check digit that makes `digits` + it pass the Luhn test."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str(-total % 10)


@st.composite
def _cards(draw: st.DrawFn) -> str:
    """A card number (valid or one digit off), compact or in groups of 1-6, spaces or dashes."""
    first = draw(st.sampled_from("234562345601789"))
    length = draw(st.sampled_from([11, 12, 12, 14, 15, 15, 17, 18, 18, 19]))
    body = first + draw(st.text(alphabet="0123456789", min_size=length, max_size=length))
    digits = body + _luhn_digit(body)
    if draw(st.booleans()):
        digits = digits[:-1] + str((int(digits[-1]) + draw(st.integers(1, 9))) % 10)
    if draw(st.booleans()):
        return digits
    separator = draw(st.sampled_from([" ", "-"]))
    sizes = draw(st.lists(st.sampled_from([1, 2, 3, 4, 4, 4, 5, 6]), min_size=8, max_size=8))
    groups, position = [], 0
    for size in sizes * 2:
        if position >= len(digits):
            break
        groups.append(digits[position : position + size])
        position += size
    return separator.join(groups)


_SECRETS = st.sampled_from(
    [
        CARD,
        "4111-1111-1111-1111",
        "4111111111111111",
        "4111 1111 1111 1112",  # fails Luhn
        "5555 5555 5555 4444",
        "378282246310005",
        "123-45-6789",
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "AKIAIOSFODNN7EXAMPLE",
        "sk-proj-" + "Ab3" * 10,
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "xoxb-" + "a1B2" * 6,
    ]
)
_AROUND = st.sampled_from(
    [
        "",
        " ",
        "  ",
        "\n",
        "\x00",
        "-",
        "a",
        "Z",
        "_",
        "7",
        "1 ",
        "é",
        "\u200b",
        "\u2800",
        "ü",
        "\uff14",
        ". ",
        "x ",
    ]
)
_PIECE = st.one_of(_cards(), _SECRETS, _AROUND, st.text(alphabet="0123456789 -aZ\n", max_size=12))
_TEXT = st.lists(_PIECE, max_size=6).map("".join)
_ASCII_TEXT = st.lists(
    st.one_of(_cards(), _SECRETS, st.text(alphabet="0123456789 -aZ_.\n\t", max_size=12)), max_size=12
).map(lambda pieces: "".join(pieces).encode("ascii", "ignore").decode())


def _python_card_spans(text: str) -> list[tuple[int, int]]:
    pattern = re.compile(local._CARD.pattern)
    return [match.span() for match in pattern.finditer(text) if local._is_card(match)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ASCII_TEXT)
def test_numpy_card_spans_are_the_pattern_spans(text: str) -> None:
    """`_local_cards.card_spans` finds exactly what `_CARD` and `_is_card` accept, in order."""
    starts, ends = _local_cards.card_spans(np, text)
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == _python_card_spans(text)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(_cards(), _SECRETS, _AROUND, st.sampled_from(["\u0664", "\u00b2", "\U0001d7d2"])),
        max_size=10,
    )
)
def test_numpy_card_spans_on_code_points_are_the_pattern_spans(pieces: list[str]) -> None:
    """Non-ASCII text (read as code points): a non-ASCII letter or digit before a card is a
    letter or digit to `_CARD`'s lookbehind, after it it is not one of `_is_card`'s letters."""
    text = "".join(pieces)
    starts, ends = _local_cards.card_spans(np, text)
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == _python_card_spans(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "4",
        CARD,
        f"a{CARD}",
        f"{CARD}a",
        f"_{CARD}_",
        f"1 {CARD}",
        f"{CARD} 1",
        f"{CARD}-",
        f"{CARD}--1",
        "4111 11 1111 1111 111",
        "4111111111111111111111",  # too many digits
        "4111 1111 1111 1111 1111 1111 1111 1111",  # too long
        f"{CARD}\n{CARD}",
        f"\u00e9{CARD}",
        f"\u0664{CARD}",
        f"{CARD}\u00e9",
        "41111111111111119",  # 17 digits, passes Luhn?
        "2222 4000 7000 0005",
        "4222222222222",  # 13 digits
        "41 11111111 111111",  # one group of two digits
        "4111 1111 1111 1 111",
        "411 111-111 11111 11",
        "4222-222-222-222",
        "6" + "0" * 17 + "4",  # 19 digits
        "6" + "0" * 18 + "7",  # 20 digits
    ],
)
def test_numpy_card_spans_edges(text: str) -> None:
    """Letters, digits and separators around a card; lengths at the limits; line breaks."""
    for variant in (text, f"\u00e9{text}\u00e9", f"\u00e9 {text}"):
        starts, ends = _local_cards.card_spans(np, variant)
        assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == _python_card_spans(variant)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 20)), max_size=12))
def test_numpy_masking_masks_the_union_of_the_spans(spans: list[tuple[int, int]]) -> None:
    """Overlapping, nested, adjacent, empty spans in any order: their union becomes X."""
    text = "abcdefghi\u00e9" * 8
    pairs = [(start, min(start + length, len(text))) for start, length in spans]
    expected = list(text)
    for start, end in pairs:
        expected[start:end] = "X" * (end - start)
    starts = np.array([start for start, _ in pairs], dtype=np.int64)
    ends = np.array([end for _, end in pairs], dtype=np.int64)
    assert _local_cards.masked(np, text, starts, ends) == "".join(expected)
    assert (
        _local_cards.masked(np, text.encode("ascii", "replace").decode(), starts, ends)
        == "".join(expected).encode("ascii", "replace").decode()
    )


def _one_by_one(content: Content) -> list[str] | None:
    """The old way: every string checked alone, and its own masked text kept (None: not maskable)."""
    guard = LocalGuard()
    out: list[str] = []
    for text in content.iter_texts():
        verdict = guard.check(text)
        if not any(reason.startswith("sensitive_information") for reason in verdict.reasons):
            out.append(text)
        elif verdict.masked is None or verdict.masked.text is None:
            return None
        else:
            out.append(verdict.masked.text)
    return out


def _masked_texts(content: Content, *, vector: bool) -> list[str] | None:
    """The masked strings of `content` read joined (as many strings are), numpy on or off."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local, "_FEW_PARTS", 0)
        patch.setattr(local, "_VECTOR_MASK_FROM", 0)
        patch.setattr(local, "_VECTOR_MASKING", vector)
        verdict = LocalGuard().check(content)
    if verdict.masked is None:
        return None
    return list(verdict.masked.iter_texts())


def _shapes(texts: list[str], shape: int) -> Content:
    """The texts as plain messages (0), messages with a name (1), parts and tool calls (2)."""
    if shape == 0:
        return Content(messages=[{"role": "user", "content": text} for text in texts])
    if shape == 1:
        return Content(messages=[{"role": "user", "content": text, "name": "n"} for text in texts])
    half = len(texts) // 2
    return Content(
        text=texts[0] if texts else "",
        messages=[
            {"role": "user", "content": [{"type": "text", "text": text} for text in texts[:half]]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "f", "arguments": text}} for text in texts[half:]],
            },
        ],
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TEXT, min_size=1, max_size=12), st.integers(0, 2))
def test_masking_joined_masks_what_one_by_one_masks(texts: list[str], shape: int) -> None:
    """Cards with and without separators, Luhn-invalid look-alikes, IBANs, SSNs, keys, findings
    at part boundaries, non-ASCII and NUL around them: the strings masked joined (with numpy and
    without) are the strings each masked alone, and the checked content is left as it was."""
    content = _shapes(texts, shape)
    before = copy.deepcopy(content.messages)
    expected = _one_by_one(content)
    if expected is not None and expected == list(content.iter_texts()):  # nothing sensitive
        assert _masked_texts(content, vector=True) is None
        return
    for vector in (True, False):
        assert _masked_texts(content, vector=vector) == expected
    assert content.messages == before


def test_a_card_in_each_of_many_messages_is_masked_on_both_paths() -> None:
    """The benchmark's shape, smaller: each plain message is a new dict, masked or kept."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": f"pay with {CARD} now. "}
        if index % 3
        else {"role": "user", "content": "hi"}
        for index in range(300)
    ]
    content = Content(messages=messages)
    for vector in (True, False):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(local, "_VECTOR_MASKING", vector)
            masked = LocalGuard().check(content).masked
        assert masked is not None
        assert masked.messages is not None
        for old, new in zip(content.messages or [], masked.messages, strict=True):
            assert new is not old
            assert new["role"] == "user"
            assert new["content"] == old["content"].replace(CARD, "X" * len(CARD))
