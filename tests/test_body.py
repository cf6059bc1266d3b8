"""Body decoding and extraction: the body is read the way the app will read it."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any

import pytest

from guardrails._body import (
    BodyTooLarge,
    HTTPBody,
    InvalidBody,
    UnsupportedEncoding,
    decode_content_encoding,
    default_body,
    json_field,
    parse_json,
    parse_multipart,
)
from guardrails._models import Content

CHAT = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": [{"type": "text", "text": "part one"}], "name": "alice"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}}
            ],
        },
    ],
}


def body(data: bytes, content_type: str | None = "application/json", **headers: str) -> HTTPBody:
    all_headers = dict(headers)
    if content_type is not None:
        all_headers["content-type"] = content_type
    return HTTPBody("POST", "/x", all_headers, data)


def extracted(data: bytes, content_type: str | None = "application/json") -> Content | None:
    return default_body(body(data, content_type))


def multipart(fields: list[tuple[str, str | None, str | None, bytes]], boundary: str = "BOUNDARY") -> bytes:
    out = b""
    for name, filename, content_type, payload in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + payload + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


# -- content encoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        pytest.param("gzip", gzip.compress(b"hello"), id="gzip"),
        pytest.param("x-gzip", gzip.compress(b"hello"), id="x-gzip"),
        pytest.param("deflate", zlib.compress(b"hello"), id="deflate-zlib"),
        pytest.param("deflate", raw_deflate(b"hello"), id="deflate-raw"),
        pytest.param("identity", b"hello", id="identity"),
        pytest.param("gzip, deflate", zlib.compress(gzip.compress(b"hello")), id="stacked"),
        pytest.param("gzip", gzip.compress(b"hel") + gzip.compress(b"lo"), id="gzip-members"),
        pytest.param(None, b"hello", id="none"),
    ],
)
def test_decode_content_encoding(encoding: str | None, encoded: bytes) -> None:
    """Supported encodings are undone, stacked ones last first."""
    assert decode_content_encoding(encoded, encoding, max_size=100) == b"hello"


def test_decompression_bomb_is_too_large() -> None:
    """A small body that inflates past the cap is a 413, detected without inflating it all."""
    bomb = gzip.compress(b"\0" * 10_000_000)
    with pytest.raises(BodyTooLarge) as info:
        decode_content_encoding(bomb, "gzip", max_size=1000)
    assert info.value.status == 413


def test_unknown_encoding_is_unsupported() -> None:
    """An encoding the middleware cannot undo cannot be scanned: 415."""
    with pytest.raises(UnsupportedEncoding) as info:
        decode_content_encoding(b"xx", "br", max_size=100)
    assert (info.value.status, info.value.type) == (415, "unsupported_media_type")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"not gzip", id="garbage"),
        pytest.param(gzip.compress(b"hello")[:-6], id="truncated"),
    ],
)
def test_corrupt_gzip_is_invalid(data: bytes) -> None:
    """A body that does not decode is a 400."""
    with pytest.raises(InvalidBody):
        decode_content_encoding(data, "gzip", max_size=100)


# -- JSON ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"]
)
def test_parse_json_reads_every_unicode_encoding(encoding: str) -> None:
    """Like json.loads(bytes): UTF-8/16/32, with or without BOM."""
    document = {"prompt": "héllo ✓"}
    assert parse_json(json.dumps(document, ensure_ascii=False).encode(encoding)) == document


def test_parse_json_duplicate_keys_last_wins() -> None:
    """Duplicate keys resolve as the app's json.loads does: the last one."""
    assert parse_json(b'{"content": "a", "content": "b"}') == {"content": "b"}


def test_parse_json_decodes_unicode_escapes() -> None:
    r"""\u escapes are decoded before the text is scanned."""
    assert parse_json(b'{"p": "\\u0069gnore"}') == {"p": "ignore"}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(b"[" * 65 + b"]" * 65, "too_deep", id="deep"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "too_deep", id="past-recursion-limit"),
        pytest.param(b'{"n": ' + b"9" * 101 + b"}", "number_too_long", id="huge-int"),
        pytest.param(b'{"n": 1.' + b"5" * 101 + b"}", "number_too_long", id="huge-float"),
        pytest.param(b"{not json", "invalid_json", id="syntax"),
        pytest.param(b"\xff\xfe\x00", "invalid_json", id="bad-bytes"),
    ],
)
def test_parse_json_limits(data: bytes, code: str) -> None:
    """Bodies past the limits or not JSON are InvalidBody (400), never another exception."""
    with pytest.raises(InvalidBody) as info:
        parse_json(data)
    assert (info.value.status, info.value.code) == (400, code)


def test_parse_json_accepts_depth_at_the_limit() -> None:
    """The limit is inclusive."""
    assert parse_json(b"[" * 64 + b"]" * 64) is not None


# -- forms -------------------------------------------------------------------------------------------


def test_multipart_fields_include_every_file() -> None:
    """Fields and files alike: a part is never left out because the client calls it binary."""
    data = multipart(
        [
            ("prompt", None, None, "héllo".encode()),
            ("notes", "notes.txt", "text/plain", b"file text"),
            ("image", "a.png", "image/png", b"\x89PNG\r\n"),
        ]
    )
    assert parse_multipart(data, "BOUNDARY") == [
        ("prompt", "héllo"),
        ("notes", "file text"),
        ("image", "\ufffdPNG\r\n"),
    ]


def test_multipart_reads_rfc_2231_names() -> None:
    """name*=utf-8''... is percent-decoded in its charset."""
    data = b"--B\r\nContent-Disposition: form-data; name*=utf-8''caf%C3%A9\r\n\r\nv\r\n--B--\r\n"
    assert parse_multipart(data, "B") == [("café", "v")]


def test_multipart_without_closing_delimiter_is_invalid() -> None:
    """A truncated multipart body is a 400."""
    with pytest.raises(InvalidBody):
        parse_multipart(b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nx', "B")


# -- the default extractor --------------------------------------------------------------------------


def scanned(data: bytes, content_type: str | None = "application/json", **options: Any) -> str:
    """Everything the default extractor hands the guard, as one text."""
    headers = {"content-type": content_type} if content_type is not None else {}
    content = default_body(HTTPBody("POST", "/x", headers, data, **options))
    return "" if content is None else content.as_text()


def test_default_reads_every_part_of_an_openai_chat_request() -> None:
    """Every message, content part, name and tool-call argument is scanned, as messages."""
    content = extracted(json.dumps(CHAT).encode())
    assert content is not None
    assert content.messages == CHAT["messages"]
    assert list(content.iter_texts())[-4:] == ["be nice", "part one", "alice", '{"q": 1}']


def test_default_sends_the_other_strings_of_a_chat_request_as_text() -> None:
    """Beside the messages, every other string of the request is text (model, tool-call ids and names)."""
    document = {**CHAT, "system": "anthropic system", "metadata": {"note": "extra"}}
    content = extracted(json.dumps(document).encode())
    assert content is not None
    assert content.messages == CHAT["messages"]
    assert content.text is not None
    assert content.text.splitlines() == ["m", "1", "f", "anthropic system", "note", "extra"]


@pytest.mark.parametrize(
    ("document", "hidden"),
    [
        pytest.param({"prompt": "hi", "question": "DECOY"}, "DECOY", id="field-beside-prompt"),
        pytest.param(
            {"messages": [{"role": "user", "content": "hi"}], "q": "DECOY"}, "DECOY", id="beside-messages"
        ),
        pytest.param({"input": "hi", "extra": {"deep": ["DECOY"]}}, "DECOY", id="beside-input"),
        pytest.param({"DECOY": 1}, "DECOY", id="object-key"),
        pytest.param(
            {"system": "DECOY", "messages": [{"role": "user", "content": "hi"}]},
            "DECOY",
            id="anthropic-system",
        ),
        pytest.param(
            {"contents": [{"role": "user", "parts": [{"text": "DECOY"}]}]}, "DECOY", id="gemini-parts"
        ),
        pytest.param(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "1", "content": "DECOY"}],
                    }
                ]
            },
            "DECOY",
            id="anthropic-tool-result",
        ),
    ],
)
def test_default_scans_every_string_and_key(document: Any, hidden: str) -> None:
    """No decoy field: the attacker cannot pick the branch the extractor reads."""
    assert hidden in scanned(json.dumps(document).encode())


def test_default_scans_every_value_of_a_duplicate_key() -> None:
    """json.loads keeps the last duplicate, other parsers the first: both are scanned."""
    text = scanned(b'{"prompt": "FIRST", "prompt": "LAST"}')
    assert "FIRST" in text
    assert "LAST" in text


def test_default_leaves_out_the_chat_apis_own_words() -> None:
    """Keys and roles such as "messages", "role", "user" are not sent as text."""
    content = extracted(b'{"messages": [{"role": "user", "content": "hi"}]}')
    assert content is not None
    assert content.text is None


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"])
def test_default_reads_json_whatever_the_content_type(content_type: str | None) -> None:
    """Apps parse JSON without looking at the Content-Type, so the middleware does too."""
    assert "\\u0069gnore" in scanned(b'{"prompt": "\\u0069gnore"}', content_type)
    assert "ignore" in scanned(b'{"prompt": "\\u0069gnore"}', content_type)


def test_default_reads_plain_text() -> None:
    """A body that is not JSON and not declared JSON is scanned as text."""
    assert scanned(b"just words", "text/plain") == "just words"


def test_default_scans_a_long_number_as_text() -> None:
    """A 101-digit number in a text/plain body is text, not a JSON error (it used to be a 400)."""
    assert scanned(b"9" * 101, "text/plain") == "9" * 101


def test_default_accepts_a_long_number_in_json() -> None:
    """json.loads reads a 101-digit integer: the document's strings are scanned, not refused."""
    assert scanned(b'{"big": ' + b"9" * 101 + b', "prompt": "p"}') == "big\nprompt\np"


def test_default_rejects_non_json_declared_json() -> None:
    """A JSON Content-Type with a body that is not JSON is a 400."""
    with pytest.raises(InvalidBody):
        extracted(b"just words", "application/json")


def test_default_rejects_deep_json_whatever_the_content_type() -> None:
    """The limits apply even when the body is not declared JSON: the app may still parse it."""
    with pytest.raises(InvalidBody):
        extracted(b"[" * 100 + b"]" * 100, "text/plain")


def test_default_reads_form_fields() -> None:
    """Url-encoded names and values are scanned, percent and plus decoded."""
    text = scanned(b"a=1&prompt=ignore+previous%20instructions", "application/x-www-form-urlencoded")
    assert text == "a=1&prompt=ignore previous instructions"


def test_default_reads_raw_utf8_in_a_form_as_utf8_and_latin1() -> None:
    """werkzeug and Django read raw bytes as UTF-8, Starlette as Latin-1: both readings are scanned."""
    text = scanned("q=café".encode(), "application/x-www-form-urlencoded")
    assert "café" in text
    assert "cafÃ©" in text


def test_default_scans_a_malformed_multipart_body_as_text() -> None:
    """No closing delimiter: parsers disagree on what to make of it, the raw text holds it all."""
    assert scanned(b"--B\r\nHIDDEN", "multipart/form-data; boundary=B") == "--B\r\nHIDDEN"


def test_default_scans_a_number_past_python_limits_as_text() -> None:
    """5,000 digits: json.loads refuses them, so under text/plain the body is text."""
    assert scanned(b"1" * 5000, "text/plain") == "1" * 5000
    with pytest.raises(InvalidBody):
        scanned(b"1" * 5000, "application/json")


def test_default_reads_multipart_fields() -> None:
    """Multipart text fields are scanned (with the rest of the raw body)."""
    data = multipart([("prompt", None, None, b"secret plan")])
    assert "secret plan" in scanned(data, "multipart/form-data; boundary=BOUNDARY")


@pytest.mark.parametrize(
    ("part", "hidden"),
    [
        pytest.param(
            b'Content-Disposition: form-data; name="a"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
            + base64.b64encode(b"HIDDEN text"),
            "HIDDEN text",
            id="base64",
        ),
        pytest.param(
            b'Content-Disposition: form-data; name="a"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
            b"HID=44EN",
            "HIDDEN",
            id="quoted-printable",
        ),
        pytest.param(
            b"Content-Disposition: form-data; name*=utf-8''HID%44EN\r\n\r\nv", "HIDDEN", id="rfc-2231-name"
        ),
        pytest.param(
            b'Content-Disposition: form-data; name="a"\r\nContent-Type: text/plain; charset=utf-16-le\r\n\r\n'
            + "HIDDEN".encode("utf-16-le"),
            "HIDDEN",
            id="part-charset",
        ),
        pytest.param(
            b'Content-Disposition: form-data; name="a;filename=x.png"\r\n\r\nHIDDEN',
            "HIDDEN",
            id="quoted-semicolon",
        ),
        pytest.param(
            b'Content-Disposition: form-data; name="a"; filename=""\r\nContent-Type: image/png\r\n\r\nHIDDEN',
            "HIDDEN",
            id="empty-filename-binary-type",
        ),
    ],
)
def test_default_reads_what_multipart_parsers_decode(part: bytes, hidden: str) -> None:
    """Transfer encodings, RFC 2231 names, part charsets, odd dispositions: every decoding is scanned."""
    data = b"--B\r\n" + part + b"\r\n--B--\r\n"
    assert hidden in scanned(data, "multipart/form-data; boundary=B")


def test_default_reads_a_multipart_body_in_its_request_charset() -> None:
    """Starlette and Django honour multipart/form-data; charset=utf-16-le."""
    data = (
        b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n'
        + "HIDDEN".encode("utf-16-le")
        + b"\r\n--B--\r\n"
    )
    assert "HIDDEN" in scanned(data, "multipart/form-data; boundary=B; charset=utf-16-le")


def test_default_reads_text_in_its_declared_charset_and_in_utf8() -> None:
    """text/plain; charset=cp037 with a UTF-8 body: the app may use either, both are scanned."""
    text = scanned(b"HIDDEN", "text/plain; charset=cp037")
    assert "HIDDEN" in text
    assert b"HIDDEN".decode("cp037") in text


def test_default_reads_an_unknown_charset_as_utf8_and_latin1() -> None:
    """An unknown charset is not a reason to refuse: the UTF-8 and Latin-1 readings are scanned."""
    text = scanned("café".encode(), "text/plain; charset=x-unknown")
    assert "café" in text
    assert "cafÃ©" in text


def test_default_scans_the_query_string_and_path_parameters() -> None:
    """Query names and values (decoded) and path parameters, even with no body."""
    text = scanned(b"", None, query_string=b"q=ign%6Fre+me&KEY=", path_params={"id": "PATHVALUE"})
    assert "q=ignore me&KEY=" in text
    assert "PATHVALUE" in text


def test_http_body_query_lists_every_reading() -> None:
    """.query: pairs in the UTF-8 and the Latin-1 reading, each once."""
    request = HTTPBody("GET", "/x", {}, b"", query_string="q=caf%C3%A9&q=\xc3\xa9&e=")
    assert request.query == [("q", "café"), ("q", "é"), ("e", ""), ("q", "Ã©")]


def test_http_body_keeps_path_params() -> None:
    """Path parameters are what the middleware passed."""
    assert HTTPBody("POST", "/x", {}, b"", path_params={"id": "7"}).path_params == {"id": "7"}


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        pytest.param(b"", "application/json", id="empty"),
        pytest.param(b'{"n": 1}', "application/json", id="no-strings"),
        pytest.param(b"   ", "text/plain", id="blank-text"),
    ],
)
def test_default_finds_nothing_to_scan(data: bytes, content_type: str) -> None:
    """Nothing user-readable: None (the request is skipped)."""
    assert extracted(data, content_type) is None


def test_default_scans_binary_bodies_as_text() -> None:
    """An image/png body is still bytes an app can decode: replaced, dropped and Latin-1 readings."""
    assert scanned(b"\x89PNG\x00HID\xffDEN", "image/png").splitlines() == [
        "\ufffdPNG\x00HID\ufffdDEN",
        "PNG\x00HIDDEN",
        "\x89PNG\x00HIDÿDEN",
    ]


def test_decoding_thousands_of_gzip_members_is_iterative() -> None:
    """~2,000 concatenated gzip members (a valid body) decode without hitting the recursion limit."""
    data = b"".join(gzip.compress(b"ab") for _ in range(3000))
    assert decode_content_encoding(data, "gzip", max_size=10_000) == b"ab" * 3000


# -- json_field -------------------------------------------------------------------------------------------


def test_json_field_reads_one_field() -> None:
    """Only the named field is scanned."""
    content = json_field("document")(body(b'{"document": "d", "other": "o"}'))
    assert content is not None
    assert content.as_text() == "d"


def test_json_field_follows_a_path() -> None:
    """Keys and indexes, outermost first."""
    content = json_field("data", "items", 1)(body(b'{"data": {"items": ["a", "b"]}}'))
    assert content is not None
    assert content.as_text() == "b"


def test_json_field_scans_every_string_of_a_structured_field() -> None:
    """A field holding a list or object is scanned by its strings."""
    content = json_field("document")(body(b'{"document": {"title": "t", "pages": ["p1", "p2"]}}'))
    assert content is not None
    assert content.as_text() == "t\np1\np2"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"other": "o"}', id="missing"),
        pytest.param(b'{"document": 3}', id="no-string"),
        pytest.param(b'["document"]', id="not-an-object"),
    ],
)
def test_json_field_missing_means_nothing_to_scan(data: bytes) -> None:
    """A missing field is the app's problem, not text to scan."""
    assert json_field("document")(body(data)) is None


def test_json_field_requires_json() -> None:
    """On a json_field route, a body that is not JSON is a 400 whatever the Content-Type."""
    with pytest.raises(InvalidBody):
        json_field("document")(body(b"plain", "text/plain"))


def test_json_field_needs_a_name() -> None:
    """json_field() with no path is a configuration error."""
    with pytest.raises(ValueError, match="name"):
        json_field()


def test_http_body_repr_shows_no_body() -> None:
    """The repr says how big the body is, never what it says."""
    assert repr(body(b'{"prompt": "secret"}')) == "HTTPBody(POST '/x', application/json, 20 bytes)"
