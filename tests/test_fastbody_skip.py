"""The fast body reading's walk with a skip set, and `Content._parsed`, against their plain twins.

`_fastbody.read_plain(..., skip)` leaves the strings of `skip` out of its list as it walks (the
middlewares pass the chat vocabulary) but still counts them for its duplicate-key proof: it must
list exactly the strings of the walk without `skip`, in the same order, and prove (or not) the
same documents. `Content._parsed` builds a Content without validation: it must equal the
validated one, field by field, with the same fields set.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from guardrails._body import _VOCABULARY
from guardrails._fastbody import read_plain, strings_of
from guardrails._models import Content

WORDS = ["role", "content", "user", "model", "messages", "x", "hello", "", "text", "type", "\u00e9t\u00e9"]
SKIPS = [frozenset(), _VOCABULARY, frozenset(["x", "hello"]), frozenset(WORDS)]

scalars = st.one_of(
    st.sampled_from(WORDS),
    st.integers(-(10**6), 10**6),
    st.sampled_from([None, True, False, 1.5, 10**30]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(WORDS), inner, max_size=4),
    ),
    max_leaves=20,
)


def _text(document: Any, duplicate: bool) -> bytes:
    text = json.dumps(document, ensure_ascii=False)
    if duplicate and text.startswith("{") and text != "{}":
        text = '{"role": "user", ' + text[1:]  # a duplicate key when the object has "role"
    return text.encode()


@settings(max_examples=300, deadline=None)
@given(
    document=documents,
    duplicate=st.booleans(),
    skip=st.sampled_from(SKIPS),
    depth=st.sampled_from([64, 2, 3]),
)
def test_the_walk_with_a_skip_set_lists_the_plain_walks_strings_but_those(
    document: Any, duplicate: bool, skip: frozenset[str], depth: int
) -> None:
    data = _text(document, duplicate)
    plain = read_plain(data, depth, 7)
    skipped = read_plain(data, depth, 7, skip)
    if plain is None:
        assert skipped is None
        return
    assert skipped is not None
    assert skipped[0] == plain[0]
    assert skipped[1] == [text for text in plain[1] if text not in skip]
    assert strings_of(plain[0], skip) == skipped[1]
    assert strings_of(plain[0]) == plain[1]


def test_a_chat_request_lists_only_what_is_not_vocabulary() -> None:
    data = b'{"model": "m1", "messages": [{"role": "user", "content": "hi"}, {"role": "bot", "x": "y"}]}'
    parsed = read_plain(data, 64, 100, _VOCABULARY)
    assert parsed is not None
    assert parsed[1] == ["m1", "hi", "bot", "x", "y"]
    # A duplicate key is still found though its strings are all skipped.
    assert read_plain(b'{"role": "user", "role": "user"}', 64, 100, _VOCABULARY) is None


@pytest.mark.parametrize("text", ["t", None])
@pytest.mark.parametrize("messages", [[{"role": "user", "content": "hi"}], None])
@pytest.mark.parametrize("metadata", [{"route": "/chat"}, {}])
def test_a_parsed_content_equals_its_validated_twin(
    text: str | None, messages: list[dict[str, Any]] | None, metadata: dict[str, str]
) -> None:
    if text is None and messages is None:
        return
    content = Content._parsed(text, messages, metadata)
    twin = Content(text, messages=messages, metadata=metadata)
    assert content == twin
    assert content.model_fields_set == twin.model_fields_set
    assert content.model_dump() == twin.model_dump()
    assert dict(content.__dict__) == dict(twin.__dict__)
    assert content.metadata is not metadata  # its own copy
    with pytest.raises(ValidationError):
        content.text = "other"
    assert content.model_copy(update={"kind": "response"}).kind == "response"


def test_a_parsed_content_with_non_str_metadata_is_validated() -> None:
    with pytest.raises(ValidationError):
        Content._parsed("t", None, {"route": 1})  # type: ignore[dict-item]
