"""LocalGuard's recheck of a masked text: card numbers read by numpy give what `_CARD` gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails._models import Content
from guardrails.guards import local
from guardrails.guards.local import LocalGuard

np = pytest.importorskip("numpy")

_PIECES = st.sampled_from(
    [
        "4111 1111 1111 1111",  # valid card
        "4111 1111 1111 1112",  # Luhn fails
        "4111 1111 11",  # too short
        "XXXXXXXXXXXXXXXXXXX",  # masked
        "5500-0000-0000-0004",
        "a4111111111111111",  # after a letter
        "\u00e94111111111111111",  # after a non-ASCII letter
        "\u4e2d 4111111111111111",
        "123",
        " ",
        "\n",
        "pay with ",
        " now. ",
        "caf\u00e9",
    ]
)


@settings(max_examples=80, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=40), filler=st.sampled_from(["", "words here. " * 400]))
def test_recheck_by_numpy_equals_the_rule(pieces: list[str], filler: str) -> None:
    text = filler + "".join(pieces)
    views = local._data_views(text) if text.isascii() else local._Views.of(text)
    for rule in local._BUILTIN_RULES:
        if not rule.on_folded:
            assert local._matches_again(rule, views, np) == rule.matches(views), rule.finding
            assert local._matches_again(rule, views, None) == rule.matches(views), rule.finding


def test_masked_messages_with_stray_digits_are_masked() -> None:
    """1 MB-like content whose masked text keeps 13+ digits outside cards is still masked."""
    messages = [{"role": "user", "content": "pay with 4111 1111 1111 1111 now."} for _ in range(300)]
    messages.append({"role": "user", "content": "order 4111 1111 11 and 123"})
    verdict = LocalGuard().check(Content(messages=messages))
    assert verdict.masked is not None
    contents = [message["content"] for message in verdict.masked.messages or ()]
    assert contents[0] == "pay with XXXXXXXXXXXXXXXXXXX now."
    assert contents[-1] == "order 4111 1111 11 and 123"
