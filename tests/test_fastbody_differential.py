"""The fast JSON body reading is the superset reading, whenever it is taken.

`default_body` reads a body declared JSON through `_fastbody.read_plain` (``json.loads`` at C
speed) when it can prove that reading loses nothing; otherwise, and always in `_full_body`, through
the superset reading (every duplicate key kept, long numbers kept as text). These tests generate
JSON bodies (chat requests, random documents, duplicate keys, escapes, unicode, long numbers, deep
nesting, BOMs and UTF-16/32, odd whitespace) and check that `default_body` hands the guard exactly
what `_full_body` does (the same text, messages, metadata, fields set; or the same refusal), and
that the fast path is taken for the common chat shape. ``--hypothesis-show-statistics`` prints how
often the fast path was taken in the generated set (the ``fast path`` events).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from guardrails import _fastbody
from guardrails._body import (
    BodyError,
    HTTPBody,
    _fast_body_texts,
    _full_body,
    _NotProven,
    _Texts,
    default_body,
)
from guardrails._models import Content
from guardrails._shapes import MessageScope

SCALE = int(os.environ.get("GUARDRAILS_DIFF_EXAMPLES", "1"))
FAST = settings(
    max_examples=200 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- generated JSON, written by hand so duplicate keys, whitespace and number forms vary --------


class Obj(list[tuple[str, Any]]):
    """A JSON object as pairs, so a generated document can repeat a key."""


class Raw(str):
    """A literal JSON token written as is (a number form json.dumps never writes, e.g. ``-0``)."""


WORDS = ["messages", "role", "content", "user", "system", "model", "input", "text", "name", "type"]
#: Strings with what the fast path must count right: quotes, backslashes, escapes, non-ASCII.
TRICKY = ['"', "\\", '\\"', '\\\\"', 'a"b', "a\\b", "\n", "\u00e9", "\u20ac", "\U0001f600", "\ud800", " "]
strings = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(TRICKY),
    st.text(max_size=12),
    st.text(alphabet=st.sampled_from('ab"\\/ \u00e9\ud800\n'), max_size=8),
)
numbers = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([Raw("-0"), Raw("1e5"), Raw("-0.0"), Raw("1E+2"), Raw("0.5e-3"), True, None]),
    # Around the number length limits of the generated requests (1, 2, 3, 20, 100 characters).
    st.sampled_from([10**99, 10**100, -(10**99), -(10**100), 10**100 - 1, 10**19, -(10**19), -9, 99, 100]),
    st.integers(min_value=10**100, max_value=10**130).map(lambda n: n * (-1) ** (n % 2)),
)
scalars = st.one_of(strings, numbers, st.booleans(), st.none())
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(st.tuples(strings, children), max_size=5).map(Obj),
        st.lists(st.tuples(strings, children), max_size=5).map(Obj),
        # Duplicate keys on purpose: the same key twice with different values.
        st.tuples(strings, children, children).map(lambda t: Obj([(t[0], t[1]), (t[0], t[2])])),
    ),
    max_leaves=15,
)
# JSON's own whitespace; around the document, rarely, characters json.loads does not take as such.
spaces = st.sampled_from(["", "", "", "", "", " ", "\n", "\t", "\r\n  "])
odd_spaces = st.one_of(*[st.sampled_from(["", " "])] * 12, st.sampled_from(["\u00a0", "\x0b", "\x00"]))


def _string(text: str, ascii_only: bool) -> str:
    return json.dumps(text, ensure_ascii=ascii_only)


def write(value: Any, draw: Any) -> str:
    """`value` as JSON text; whitespace and escaping drawn per token."""
    space = draw(spaces)
    if isinstance(value, Obj):
        pairs = [
            f"{draw(spaces)}{_string(key, draw(st.booleans()))}{draw(spaces)}:{write(item, draw)}"
            for key, item in value
        ]
        return space + "{" + ",".join(pairs) + draw(spaces) + "}"
    if isinstance(value, list):
        return space + "[" + ",".join(write(item, draw) for item in value) + draw(spaces) + "]"
    if isinstance(value, Raw):
        return space + str(value)
    if isinstance(value, str):
        return space + _string(value, draw(st.booleans()))
    if isinstance(value, float):
        return space + json.dumps(value)  # NaN, Infinity: json.loads takes them
    return space + json.dumps(value)


ENCODINGS = [
    "utf-8",
    "utf-8",
    "utf-8",
    "utf-8",
    "utf-8",
    "utf-8-sig",
    "utf-16",
    "utf-16-le",
    "utf-32-be",
    "bom-twice",
]


def encode(text: str, encoding: str) -> bytes:
    if encoding == "bom-twice":
        return b"\xef\xbb\xbf\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
    return text.encode(encoding, "surrogatepass")


CONTENT_TYPES = [
    "application/json",
    "application/json",
    "application/json",
    "application/json; charset=utf-8",
    "application/vnd.api+json",
    "text/plain",
    None,
]
SCOPES = [None, None, MessageScope(), MessageScope(), MessageScope(["user"]), MessageScope(last_turn=True)]


@st.composite
def json_bodies(draw: Any) -> HTTPBody:
    """Any body a client could send a JSON route: random documents, encodings, headers, limits."""
    text = draw(odd_spaces) + write(draw(documents), draw) + draw(odd_spaces)
    if draw(st.integers(0, 30)) == 0:
        text = text[: draw(st.integers(0, len(text)))]  # truncated: not JSON
    return _request(
        encode(text, draw(st.sampled_from(ENCODINGS))),
        content_type=draw(st.sampled_from(CONTENT_TYPES)),
        query=draw(st.sampled_from([b"", b"", b"q=hello", b"q=%C3%A9t%E9+x&r"])),
        path_params=draw(st.sampled_from([{}, {}, {"id": "42"}, {"id": "\u00e9t\u00e9"}])),
        max_depth=draw(st.sampled_from([64] * 8 + [1, 2, 3, 5])),
        max_number_length=draw(st.sampled_from([100] * 8 + [1, 2, 3, 20])),
    )


def _request(
    data: bytes,
    *,
    content_type: str | None = "application/json",
    query: bytes = b"",
    path_params: dict[str, str] | None = None,
    max_depth: int = 64,
    max_number_length: int = 100,
) -> HTTPBody:
    headers = {"content-type": content_type} if content_type is not None else {}
    return HTTPBody(
        "POST",
        "/v1/chat/completions",
        headers,
        data,
        query_string=query,
        path_params=path_params,
        max_depth=max_depth,
        max_number_length=max_number_length,
        metadata={"route": "/v1/chat/completions"},
    )


def _copy(body: HTTPBody) -> HTTPBody:
    """The same request, nothing parsed yet (HTTPBody caches its readings)."""
    return HTTPBody(
        body.method,
        body.path,
        body.headers,
        body.body,
        query_string=body.query_string,
        path_params=body.path_params,
        max_depth=body.max_depth,
        max_number_length=body.max_number_length,
        metadata=body.metadata,
    )


# -- comparing what the guard is handed --------------------------------------------------------------


def canonical(value: Any) -> Any:
    """`value` with types made explicit (True is not 1) and NaN equal to itself."""
    if isinstance(value, dict):
        return ("dict", [(canonical(key), canonical(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [canonical(item) for item in value])
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    return (type(value).__name__, value)


def handed(read: Any, body: HTTPBody, scope: MessageScope | None) -> Any:
    """What the guard is handed: every field of the Content, or the refusal."""
    try:
        content = read(_copy(body), scope)
    except BodyError as exc:
        return ("refused", type(exc).__name__, exc.code)
    if content is None:
        return None
    assert isinstance(content, Content)
    return (canonical(dict(content.__dict__)), sorted(content.model_fields_set))


def takes_fast_path(body: HTTPBody, scope: MessageScope | None) -> bool:
    if not body.body:
        return False
    return not isinstance(_fast_body_texts(_copy(body), _Texts(), scope), _NotProven)


def assert_same_reading(body: HTTPBody, scope: MessageScope | None) -> bool:
    """Whether the fast path is taken; the same Content from `default_body` and `_full_body`."""
    fast = takes_fast_path(body, scope)
    assert handed(default_body, body, scope) == handed(_full_body, body, scope), body.body
    return fast


@FAST
@given(body=json_bodies(), scope=st.sampled_from(SCOPES))
def test_the_fast_reading_of_any_json_body_is_the_superset_reading(
    body: HTTPBody, scope: MessageScope | None
) -> None:
    """Random documents, any encoding, Content-Type and limits: the same Content or the same refusal."""
    event(f"fast path {'taken' if assert_same_reading(body, scope) else 'not taken'}")


# Documents without a duplicate key or a long number, every key of the vocabulary or not.
unique_documents = st.recursive(
    st.one_of(strings, st.integers(-(10**30), 10**30), st.floats(), st.booleans(), st.none()),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(strings, children, max_size=5).map(lambda d: Obj(d.items())),
    ),
    max_leaves=20,
)


@st.composite
def unique_bodies(draw: Any) -> HTTPBody:
    text = write(draw(unique_documents), draw) + draw(spaces)
    return _request(encode(text, draw(st.sampled_from(ENCODINGS[:-1]))))


@FAST
@given(body=unique_bodies(), scope=st.sampled_from([None, MessageScope()]))
def test_the_fast_path_reads_any_document_without_a_duplicate_key_as_the_superset_reading(
    body: HTTPBody, scope: MessageScope | None
) -> None:
    """Any nesting, any strings (escaped or not, in any UTF): the fast path is taken, and is equal."""
    assert assert_same_reading(body, scope), body.body


# -- chat requests: the fast path must be taken ----------------------------------------------------

parts = st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": strings}), min_size=1, max_size=3)
messages = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["system", "user", "assistant", "developer"]), "content": strings}
        ),
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant"]), "content": st.one_of(strings, parts)},
            optional={"name": strings, "refusal": strings},
        ),
        st.fixed_dictionaries(
            {
                "role": st.just("assistant"),
                "content": st.none(),
                "tool_calls": st.lists(
                    st.fixed_dictionaries(
                        {
                            "id": strings,
                            "type": st.just("function"),
                            "function": st.fixed_dictionaries({"name": strings, "arguments": strings}),
                        }
                    ),
                    max_size=2,
                ),
            }
        ),
    ),
    min_size=1,
    max_size=6,
)
chat_documents = st.fixed_dictionaries(
    {"model": strings, "messages": messages},
    optional={
        "temperature": st.floats(0, 2),
        "max_tokens": st.integers(1, 10**6),
        "stream": st.booleans(),
        "user": strings,
        "system": strings,
        "metadata": st.dictionaries(st.text(max_size=5), strings, max_size=3),
    },
)


@st.composite
def chat_bodies(draw: Any) -> HTTPBody:
    """An OpenAI chat request as SDKs and hand-written clients send it (any escaping, any spacing)."""
    document = draw(chat_documents)
    if draw(st.booleans()):
        data = json.dumps(document, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    else:
        text = write(_as_pairs(document), draw) + draw(spaces)
        data = encode(text, draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16"])))
    return _request(data, content_type=draw(st.sampled_from(CONTENT_TYPES[:4])))


def _as_pairs(value: Any) -> Any:
    if isinstance(value, dict):
        return Obj((key, _as_pairs(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_as_pairs(item) for item in value]
    return value


@FAST
@given(body=chat_bodies(), scope=st.sampled_from(SCOPES))
def test_the_fast_path_reads_every_chat_request_as_the_superset_reading(
    body: HTTPBody, scope: MessageScope | None
) -> None:
    """A chat request declared JSON without a duplicate key: the fast path is taken, and is equal
    (narrowing scopes included)."""
    fast = assert_same_reading(body, scope)
    event(f"fast path {'taken' if fast else 'not taken'}")
    assert fast, body.body


# -- the cases the proof rests on, one by one ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fast"),
    [
        pytest.param(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}', True, id="chat"),
        pytest.param(b'{"a": "x\\"y", "b": "\\\\"}', True, id="escaped-quote-and-backslash"),
        pytest.param(b'{"a": "\\\\\\"", "b": "c"}', True, id="escaped-backslash-then-quote"),
        pytest.param(b'{"a": "1", "a": "2"}', False, id="duplicate-key"),
        pytest.param(b'{"a": {"b": 1, "b": 2}}', False, id="nested-duplicate-with-numbers"),
        pytest.param(b'{"a": "x\\"", "a": "y"}', False, id="duplicate-key-with-escaped-quote"),
        pytest.param(b'{"n": ' + b"9" * 100 + b"}", True, id="number-at-the-limit"),
        pytest.param(b'{"n": ' + b"9" * 101 + b"}", False, id="number-past-the-limit"),
        pytest.param(b'{"n": -' + b"9" * 99 + b"}", True, id="negative-number-at-the-limit"),
        pytest.param(b'{"n": -' + b"9" * 100 + b"}", False, id="negative-number-past-the-limit"),
        pytest.param(b'{"n": 1' + b"0" * 200 + b".5}", True, id="long-float"),
        pytest.param(b"[" * 64 + b"]" * 64, True, id="depth-at-the-limit"),
        pytest.param(b"[" * 65 + b"]" * 65, False, id="too-deep"),
        # An object in a list is walked inline (a chat request's messages): the same rules there.
        pytest.param(b"[" * 63 + b'{"a": "b"}' + b"]" * 63, True, id="object-in-a-list-at-the-limit"),
        pytest.param(b"[" * 64 + b'{"a": "b"}' + b"]" * 64, False, id="object-in-a-list-too-deep"),
        pytest.param(
            b"[" * 62 + b'{"a": ["b"]}' + b"]" * 62, True, id="list-in-a-listed-object-at-the-limit"
        ),
        pytest.param(b"[" * 63 + b'{"a": ["b"]}' + b"]" * 63, False, id="list-in-a-listed-object-too-deep"),
        pytest.param(b'[{"n": ' + b"9" * 101 + b"}]", False, id="long-number-in-a-listed-object"),
        pytest.param(b'[{"a": "1", "a": "2"}]', False, id="duplicate-key-in-a-listed-object"),
        pytest.param(b"\xef\xbb\xbf" + b'{"a": "b"}', True, id="utf-8-bom"),
        pytest.param('{"a": "\u00e9"}'.encode("utf-16"), True, id="utf-16"),
        pytest.param(b'\xef\xbb\xbf\xef\xbb\xbf{"a": "b"}', False, id="two-boms"),
        pytest.param(b'{"a": "\\ud800"}', True, id="lone-surrogate-escape"),
        pytest.param(b'{"a": "\xed\xa0\x80"}', True, id="lone-surrogate-bytes"),
        pytest.param(b'{"a": "b"', False, id="not-json"),
        pytest.param(b'{"a": NaN, "b": -Infinity}', True, id="constants"),
    ],
)
def test_the_fast_path_is_taken_exactly_when_it_can_prove_equality(data: bytes, fast: bool) -> None:
    """Each rule of `_fastbody`'s proof, alone; the reading equal to the superset one either way."""
    body = _request(data)
    assert assert_same_reading(body, None) is fast


def test_a_duplicate_key_is_scanned_whole_by_the_full_reading() -> None:
    """The fast path gives way to the full reading, which scans both values of a duplicate key."""
    content = default_body(_request(b'{"prompt": "first value", "prompt": "second value"}'))
    assert content is not None
    assert content.text is not None
    assert "first value" in content.text
    assert "second value" in content.text


def test_minus_zero_is_a_long_literal_under_a_one_character_limit() -> None:
    """``-0`` is two characters: with ``max_number_length=1`` the fast path leaves it to the full one."""
    body = _request(b'{"messages": [{"role": "user", "content": "x", "n": -0}]}', max_number_length=1)
    assert not takes_fast_path(body, None)
    assert handed(default_body, body, None) == handed(_full_body, body, None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "{}",
        " {} ",
        "\t[1]\n\r",
        "[1] x",
        "1",
        ' "a"  ',
        "nul",
        "[1,]",
        "\u00a0{}",
        "{}\u00a0",
        "{} {}",
    ],
)
def test_the_scanner_called_directly_reads_what_the_decoder_reads(text: str) -> None:
    """`_fastbody._document` (the C scanner without `JSONDecoder.decode`) accepts and refuses the same texts."""
    try:
        expected: Any = ("document", json.JSONDecoder().decode(text))
    except ValueError:
        expected = ("refused",)
    try:
        got: Any = ("document", _fastbody._document(text))
    except ValueError:
        got = ("refused",)
    assert got == expected
