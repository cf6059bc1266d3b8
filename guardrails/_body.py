"""Request bodies, read as every framework could read them. No I/O, no framework types.

The principle: the middleware scans a superset of every reading Starlette (python-multipart),
werkzeug (Flask) and Django can make of a request; when in doubt it scans more; when it cannot
read the text it refuses (a `BodyError`), never skips. ``tests/test_differential.py`` proves it
against the frameworks' own parsers.

API (shared by the ASGI and WSGI middlewares):

- `BodyError` (an `ExtractionError`) and its subclasses carry the HTTP answer for a body that
  cannot be scanned: `BodyTooLarge` (413, ``request_too_large``), `UnsupportedEncoding` (415,
  ``unsupported_media_type``), `InvalidBody` (400, ``invalid_request``). Each has ``status``,
  ``type`` and ``code``; messages never quote the body.
- ``decode_content_encoding(body, content_encoding, max_size=...) -> bytes``: undo ``gzip``,
  ``x-gzip``, ``deflate`` and ``identity`` (stacked encodings, any number of gzip members) with
  the output capped, so a decompression bomb is a `BodyTooLarge`; any other encoding is an
  `UnsupportedEncoding`.
- ``parse_json(data) -> Any``: exactly ``json.loads(bytes)`` (UTF-8/16/32 detected, BOM accepted,
  duplicate keys: last wins) plus limits: nesting depth, number length; `InvalidBody` otherwise.
- ``parse_form(data)`` / ``parse_multipart(data, boundary, charset=None)``: one reading of a form's
  fields (files included), for custom extractors.
- `HTTPBody`: one request as an extractor sees it (method, path, headers, decoded body, raw query
  string, path parameters) with lazy, cached ``json()``, ``form()``, ``text()`` and ``query``.
- Extractors (``BodyExtractor = Callable[[HTTPBody], Content | str | None]``): `default_body`
  (every reading: JSON strings and keys, chat messages as messages, the body as text in every
  charset, form and multipart fields decoded every way a parser does, query, path parameters) and
  ``json_field(*path)``.
- ``json_strings(value)``: every string value in a JSON document, iteratively (no recursion).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import json
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, unquote_to_bytes

from . import _fastbody
from ._exceptions import ExtractionError
from ._models import Content, message_texts

if TYPE_CHECKING:
    from ._shapes import MessageScope

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_NUMBER_LENGTH",
    "BodyError",
    "BodyExtractor",
    "BodyTooLarge",
    "HTTPBody",
    "InvalidBody",
    "UnsupportedEncoding",
    "decode_content_encoding",
    "default_body",
    "is_json_media_type",
    "json_field",
    "json_strings",
    "parse_form",
    "parse_json",
    "parse_multipart",
    "request_of",
]

#: Deepest nesting of arrays and objects accepted in a JSON body.
DEFAULT_MAX_DEPTH = 64
#: Longest number literal accepted in a JSON body (int() of a huge literal is quadratic before 3.11).
DEFAULT_MAX_NUMBER_LENGTH = 100
#: Most fields parsed from a form body.
MAX_FORM_FIELDS = 1000


class BodyError(ExtractionError):
    """A request body that cannot be scanned; carries the HTTP answer the middleware gives.

    Attributes:
        status: HTTP status of the answer.
        type: the ``error.type`` of the OpenAI-shaped error body.
        code: the ``error.code``.
    """

    status: int = 400
    type: str = "invalid_request"
    code: str = "invalid_body"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class BodyTooLarge(BodyError):
    """The body, or what it decompresses to, is larger than the cap (413)."""

    status = 413
    type = "request_too_large"
    code = "body_too_large"


class UnsupportedEncoding(BodyError):
    """The body has a Content-Encoding the middleware cannot decode, so cannot scan (415)."""

    status = 415
    type = "unsupported_media_type"
    code = "unsupported_content_encoding"


class InvalidBody(BodyError):
    """The body cannot be parsed the way the route needs (400)."""


# -- content encoding ------------------------------------------------------------------------------


def _inflate(data: bytes, wbits: int, max_size: int) -> bytes:
    out = bytearray()
    pending = data
    # A loop, not recursion, over gzip members: thousands of tiny members back to back are valid
    # (gzip.decompress accepts them) and must not hit the recursion limit.
    while True:
        decompressor = zlib.decompressobj(wbits)
        try:
            while pending:
                # max_length bounds each step, so a bomb never expands past the cap in memory.
                out += decompressor.decompress(pending, max_size + 1 - len(out))
                if len(out) > max_size:
                    raise BodyTooLarge("the decompressed request body is larger than the limit")
                pending = decompressor.unconsumed_tail
            out += decompressor.flush()
        except zlib.error as exc:
            raise InvalidBody(
                "the request body is not valid for its Content-Encoding", code="bad_encoding"
            ) from exc
        if len(out) > max_size:
            raise BodyTooLarge("the decompressed request body is larger than the limit")
        if not decompressor.eof:
            raise InvalidBody("the compressed request body is truncated", code="bad_encoding")
        pending = decompressor.unused_data
        if not pending:
            return bytes(out)
        if wbits != zlib.MAX_WBITS | 16:
            raise InvalidBody("trailing data after the compressed request body", code="bad_encoding")
        # gzip allows several members back to back (what gzip.decompress accepts).


def _deflate(data: bytes, max_size: int) -> bytes:
    # "deflate" is meant to be zlib-wrapped, but some clients send raw deflate: accept both.
    try:
        return _inflate(data, zlib.MAX_WBITS, max_size)
    except InvalidBody:
        return _inflate(data, -zlib.MAX_WBITS, max_size)


def decode_content_encoding(body: bytes, content_encoding: str | None, *, max_size: int) -> bytes:
    """Undo the Content-Encoding of a request body, capped.

    Args:
        body: the body as received.
        content_encoding: the Content-Encoding header (e.g. ``"gzip"``, ``"deflate, gzip"``), or None.
        max_size: the largest decoded body accepted, in bytes.

    Returns:
        The decoded body.

    Raises:
        BodyTooLarge: the decoded body is larger than ``max_size``.
        UnsupportedEncoding: an encoding other than gzip, x-gzip, deflate and identity.
        InvalidBody: the body is not valid for its encoding.
    """
    if not content_encoding:
        return body
    codings = [coding.strip().lower() for coding in content_encoding.split(",")]
    # Codings are listed in the order they were applied: undo them last first.
    for coding in reversed(codings):
        if coding in ("", "identity"):
            continue
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, zlib.MAX_WBITS | 16, max_size)
        elif coding == "deflate":
            body = _deflate(body, max_size)
        else:
            raise UnsupportedEncoding("the request body's Content-Encoding is not supported")
    return body


# -- JSON --------------------------------------------------------------------------------------------


def _number_parser(kind: Callable[[str], Any], max_length: int) -> Callable[[str], Any]:
    def parse(literal: str) -> Any:
        if len(literal) > max_length:
            raise InvalidBody("a number in the JSON body is too long", code="number_too_long")
        return kind(literal)

    return parse


@functools.lru_cache(maxsize=8)
def _decoder(max_number_length: int) -> json.JSONDecoder:
    # One decoder per limit, built once: json.loads with hooks would build one per call.
    return json.JSONDecoder(
        parse_int=_number_parser(int, max_number_length),
        parse_float=_number_parser(float, max_number_length),
    )


def _check_depth(document: Any, max_depth: int) -> None:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            raise InvalidBody("the JSON body is nested too deeply", code="too_deep")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def parse_json(
    data: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_number_length: int = DEFAULT_MAX_NUMBER_LENGTH,
) -> Any:
    """Parse a JSON body exactly as ``json.loads(data)`` would, within limits.

    Args:
        data: the (content-decoded) body.
        max_depth: deepest nesting of arrays and objects accepted.
        max_number_length: longest number literal accepted.

    Raises:
        InvalidBody: not JSON, too deep, a number too long.
    """
    return _load(data, _decoder(max_number_length), max_depth, _check_depth)


def _load(
    data: bytes,
    decoder: json.JSONDecoder,
    max_depth: int,
    check_depth: Callable[[Any, int], None],
) -> Any:
    """Decode `data` as ``json.loads(bytes)`` does, with `decoder`, then bound its depth."""
    try:
        # What json.loads(bytes) does: detect UTF-8/16/32 (BOM or not), decode with surrogatepass.
        text = data.decode(json.detect_encoding(data), "surrogatepass")
        if text.startswith("\ufeff"):
            raise ValueError("a BOM json.loads would refuse")
        document = decoder.decode(text)
    except RecursionError as exc:
        raise InvalidBody("the JSON body is nested too deeply", code="too_deep") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        # The decoder's message quotes no body text, but keep ours fixed anyway.
        raise InvalidBody("the request body is not valid JSON", code="invalid_json") from exc
    # Brackets bound the depth from above (some may be in strings): most bodies need no walk.
    if data.count(b"[") + data.count(b"{") > max_depth:
        check_depth(document, max_depth)
    return document


def json_strings(value: Any) -> Iterator[str]:
    """Every string value in a JSON document, in document order (object keys are not included)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as written: every key and value in order, duplicate keys kept."""

    __slots__ = ()


class _BigNumber:
    """An integer literal too long to convert cheaply; only its text is kept."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _lenient_int(max_length: int) -> Callable[[str], Any]:
    def parse(literal: str) -> Any:
        if len(literal) <= max_length:
            return int(literal)
        limit = sys.get_int_max_str_digits()
        if limit and len(literal.lstrip("-")) > limit:
            # Past what int() converts: the app's json.loads fails on this body too.
            raise InvalidBody("a number in the JSON body is too long", code="number_too_long")
        return _BigNumber(literal)

    return parse


@functools.lru_cache(maxsize=8)
def _pairs_decoder(max_number_length: int) -> json.JSONDecoder:
    return json.JSONDecoder(parse_int=_lenient_int(max_number_length), object_pairs_hook=_Pairs)


def _check_pairs_depth(document: Any, max_depth: int) -> None:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, _Pairs):
            children: Any = [child for _, child in value]
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            raise InvalidBody("the JSON body is nested too deeply", code="too_deep")
        stack.extend((child, depth + 1) for child in children if isinstance(child, list))


def _parse_pairs(data: bytes, *, max_depth: int, max_number_length: int) -> Any:
    """``json.loads(data)`` with every duplicate key kept and long numbers left unconverted.

    What the default extractor walks: the app's own ``json.loads`` keeps the last of duplicate
    keys, another parser the first, so every value is scanned; a 101-digit number is valid JSON
    (Python converts up to 4,300 digits), so it is not a reason to refuse the body.
    """
    return _load(data, _pairs_decoder(max_number_length), max_depth, _check_pairs_depth)


def _pairs_texts(document: Any) -> Iterator[str]:
    """Every string of a `_parse_pairs` document, object keys included, in document order."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, _Pairs):
            for key, value in reversed(item):
                stack.append(value)
                stack.append(key)
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _plain(value: Any) -> Any:
    """A `_parse_pairs` value as ``json.loads`` returns it (last duplicate key wins)."""
    if isinstance(value, _Pairs):
        return {key: _plain(item) for key, item in value}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, _BigNumber):
        return value.literal
    return value


# -- readings: every text a framework (or the app) can make of some bytes ----------------------------

# Lone surrogates (some codecs produce them) cannot be sent to a guard as text.
_SURROGATES = re.compile("[\ud800-\udfff]")
# Codecs every body is already read in (the ASCII-compatible readings need no per-part work).
_BASE_CODECS = frozenset({"utf-8", "iso8859-1", "ascii"})
_MAX_CHARSET_LENGTH = 40


def _clean(text: str) -> str:
    return _SURROGATES.sub("\ufffd", text)


@functools.lru_cache(maxsize=64)
def _codec(name: str) -> str | None:
    """The Python codec of a charset name, if it is a text encoding Python knows."""
    name = name.strip().strip("\"'").strip()
    if not name or len(name) > _MAX_CHARSET_LENGTH:
        return None
    try:
        b"".decode(name)  # LookupError for unknown names and for bytes-to-bytes codecs (base64)
        return codecs.lookup(name).name
    except (LookupError, ValueError, TypeError):
        return None


def _codecs(charsets: Iterable[str]) -> list[str]:
    """The known codecs among charset names, each once, minus the ones every body is read in."""
    found: dict[str, None] = {}
    for charset in charsets:
        codec = _codec(charset)
        if codec is not None and codec not in _BASE_CODECS:
            found.setdefault(codec)
    return list(found)


def _decode(data: bytes, codec: str) -> str | None:
    try:
        return _clean(data.decode(codec, "replace"))
    except (UnicodeError, ValueError, LookupError, TypeError):
        return None


def _readings(data: bytes, codec_names: Sequence[str] = ()) -> Iterator[str]:
    """``data`` read as UTF-8, as Latin-1 (when not ASCII) and in each of ``codec_names``.

    UTF-8 is what werkzeug and Django apply, Latin-1 what Starlette falls back to; any other
    charset is one the client declared (Starlette and Django honour a request-level charset).
    Bytes that are not UTF-8 are read twice more: undecodable runs replaced (what frameworks hand
    apps) and dropped (an app's ``decode(errors="ignore")``, which joins the text around them).
    """
    # UTF-8 and Latin-1 decoders never produce lone surrogates: no cleaning needed (it would
    # cost more than the decoding).
    if data.isascii():
        yield data.decode("ascii")
    else:
        try:
            yield data.decode("utf-8")
        except UnicodeDecodeError:
            yield data.decode("utf-8", "replace")
            yield data.decode("utf-8", "ignore")
        yield data.decode("latin-1")
    for codec in codec_names:
        text = _decode(data, codec)
        if text is not None:
            yield text


_HIGH_ESCAPE = re.compile(rb"%[89a-fA-F][0-9a-fA-F]")


def _urlencoded_readings(data: bytes, codec_names: Sequence[str] = ()) -> Iterator[str]:
    """Every reading of a url-encoded form or query string, ``+`` and ``%XX`` decoded.

    Frameworks disagree on raw (unescaped) non-ASCII bytes: werkzeug and Django read them as
    UTF-8, Starlette as Latin-1, Django a query string in the request charset; escapes are UTF-8
    or the request charset. Each combination is a reading. The whole string is decoded at once:
    every key and value is in it, whatever separators (``&``, ``;``) a parser splits on.
    """
    plus = data.replace(b"+", b" ")
    escapes = ["utf-8", *codec_names] if _HIGH_ESCAPE.search(plus) else ["utf-8"]
    raws = [plus.decode("ascii")] if plus.isascii() else list(_readings(plus, codec_names))
    for raw in raws:
        for codec in escapes:
            try:
                text = unquote(raw, encoding=codec, errors="replace")
                yield text if codec == "utf-8" else _clean(text)
            except (UnicodeError, ValueError, LookupError, TypeError):
                continue


# -- forms -----------------------------------------------------------------------------------------


def parse_form(data: bytes) -> list[tuple[str, str]]:
    """The fields of an ``application/x-www-form-urlencoded`` body (values UTF-8, blanks kept)."""
    try:
        return parse_qsl(
            data.decode("utf-8", "replace"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError as exc:
        raise InvalidBody("the form body has too many fields", code="too_many_fields") from exc


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``type/subtype; a=1; b="x y"`` into the lowercased value and its parameters."""
    main, params = _cached_header_params(value)
    return main, dict(params)


@functools.lru_cache(maxsize=64)
def _cached_header_params(value: str) -> tuple[str, dict[str, str]]:
    # A service sees a handful of Content-Types: parsing one costs ~0.7 us a request, a copy 0.1.
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for item in rest.split(";"):
        name, sep, raw = item.partition("=")
        if sep:
            raw = raw.strip()
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            params[name.strip().lower()] = raw
    return main.strip().lower(), params


# A header parameter, quoted or not; lenient about spaces (parsers differ on them).
# A name starts where no name character precedes it, and is bounded: otherwise a long run of name
# characters with no "=" would be searched from every position (quadratic).
_PARAM = re.compile(
    rb"""(?<![!#$%&'*+.^_`|~0-9A-Za-z-])([!#$%&'*+.^_`|~0-9A-Za-z-]{1,128})\s*=\s*("(?:[^"\\]|\\.)*"?|[^;\r\n]*)"""
)
_TEXT_PARAM = re.compile(_PARAM.pattern.decode("latin-1"))
# Part headers that mean a part needs decoding beyond its raw bytes.
_PART_TRANSFORMS = re.compile(rb"base64|quoted-printable|charset|\*\s*=|=\?|%", re.IGNORECASE)
_BLANK_LINE = re.compile(rb"\r\n\r\n|\n\n|\r\r|\n\r\n")
_BLANK_LINE_FORMS = [re.compile(form) for form in (rb"\r\n\r\n", rb"\n\n", rb"\r\r", rb"\n\r\n")]
_REST_OF_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r)?")
#: Longest part header block looked for (werkzeug, Django and python-multipart cap theirs lower).
MAX_PART_HEADER_SIZE = 64 * 1024
#: Most parts looked at in one multipart body (every way of splitting it counted).
MAX_MULTIPART_SECTIONS = 4 * MAX_FORM_FIELDS


def _unquote_param(raw: bytes) -> bytes:
    raw = raw.strip()
    if raw.startswith(b'"'):
        raw = raw[1:-1] if len(raw) >= 2 and raw.endswith(b'"') else raw[1:]
        return re.sub(rb"\\(.)", rb"\1", raw)
    return raw


def _param_values(header: str, name: str) -> list[str]:
    """Every value a parser could read for parameter ``name`` of a header: first, last, raw, unquoted."""
    values: dict[str, None] = {}
    for match in _TEXT_PARAM.finditer(header):
        if match.group(1).lower() != name:
            continue
        raw = match.group(2).strip()
        values.setdefault(_unquote_param(raw.encode("latin-1")).decode("latin-1"))
        values.setdefault(raw)
        values.setdefault(raw.split()[0] if raw.split() else raw)
    return [value for value in values if value]


def _splitters(boundary: bytes) -> list[re.Pattern[bytes]]:
    """The ways parsers find delimiter lines: python-multipart wants CRLF, werkzeug any line break
    and a clean line, Django any occurrence. Each split is a reading of the parts."""
    delimiter = re.escape(b"--" + boundary)
    return [
        re.compile(rb"\r\n" + delimiter + rb"(?=[ \t]*(?:\r\n|--))"),
        re.compile(rb"(?:\r\n|\n|\r)" + delimiter + rb"(?=[ \t]*(?:\r\n|\n|\r|--|\Z))"),
        re.compile(rb"(?:\r\n|\n|\r)" + delimiter),
    ]


def _multipart_sections(data: bytes, boundary: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every (header block, payload) a parser could read, under every way of splitting the body."""
    seen: set[tuple[bytes, bytes]] = set()
    count = 0
    framed = b"\r\n" + data
    for splitter in _splitters(boundary):
        sections = splitter.split(framed)
        for section in sections[1:]:
            if section.startswith(b"--"):
                break  # the closing delimiter: the rest is the epilogue
            line = _REST_OF_LINE.match(section)
            section = section[line.end() if line else 0 :]
            # Where the header block ends: parsers accept different blank lines. Header blocks are
            # short (parsers cap them far below this), so a blank line deep in a file is not one.
            ends = {
                m.start(): m.end()
                for m in (p.search(section, 0, MAX_PART_HEADER_SIZE) for p in _BLANK_LINE_FORMS)
                if m
            }
            candidates = [(section[:start], section[end:]) for start, end in ends.items()]
            for candidate in candidates or [(section, b"")]:
                if candidate in seen:
                    continue
                seen.add(candidate)
                count += 1
                if count > MAX_MULTIPART_SECTIONS:
                    raise InvalidBody("the multipart body has too many parts", code="too_many_fields")
                yield candidate


def _b64(payload: bytes) -> bytes | None:
    # Django decodes base64 parts (fields whole, files in 4-byte-aligned chunks), skipping
    # characters outside the alphabet as binascii does.
    stripped = re.sub(rb"[^A-Za-z0-9+/=]", b"", payload)
    for candidate in (stripped, stripped[: len(stripped) // 4 * 4]):
        try:
            return base64.b64decode(candidate)
        except (binascii.Error, ValueError):
            continue
    return None


def _part_texts(head: bytes, payload: bytes, request_codecs: Sequence[str]) -> Iterator[str]:
    """What a part decodes to beyond its raw bytes (which the raw body readings cover)."""
    lowered = head.lower()
    part_codecs = _codecs(
        [
            match.group(2).decode("latin-1")
            for match in _PARAM.finditer(head)
            if match.group(1).lower() == b"charset"
        ]
    )
    codec_names = list(dict.fromkeys([*request_codecs, *part_codecs]))
    # Raw payload: the ASCII-compatible readings are in the body's own; other charsets are not.
    for codec in codec_names:
        text = _decode(payload, codec)
        if text is not None:
            yield text
    decoded: list[bytes] = []
    if b"base64" in lowered:
        value = _b64(payload)
        if value is not None:
            decoded.append(value)
    if b"quoted-printable" in lowered:
        decoded.append(binascii.a2b_qp(payload))
    for value in decoded:
        yield from _readings(value, codec_names)
    # Names and filenames as a parser decodes them: the request charset (Starlette, Django) over the
    # whole header block, at every alignment of a multi-byte charset (no per-value cost, so a
    # header block of many parameters stays cheap); RFC 2231 (name*=utf-8''%69...),
    # percent-escapes and encoded words per value.
    for codec in codec_names:
        for offset in range(_code_unit(codec)):
            text = _decode(head[offset:], codec)
            if text is not None:
                yield text
    seen: set[bytes] = set()
    for match in _PARAM.finditer(head):
        key, raw = match.group(1), _unquote_param(match.group(2))
        if (b"%" not in raw and b"=?" not in raw) or raw in seen:
            continue
        seen.add(raw)
        value_codecs = list(codec_names)
        if key.endswith(b"*") and raw.count(b"'") >= 2:
            charset, _, rest = raw.partition(b"'")
            raw = rest.partition(b"'")[2]
            value_codecs.append(charset.decode("latin-1"))
        if b"%" in raw:
            yield from _readings(unquote_to_bytes(raw), _codecs(value_codecs))
        if b"=?" in raw:
            yield from _encoded_words(raw)


def _code_unit(codec: str) -> int:
    """Bytes per code unit of a codec: the alignments a value inside a larger block can have."""
    if "32" in codec:
        return 4
    return 2 if "16" in codec else 1


def _encoded_words(raw: bytes) -> Iterator[str]:
    # Imported here: only multipart bodies with RFC 2047 names need it, and it costs milliseconds.
    import email.errors
    import email.header

    try:
        parts = email.header.decode_header(raw.decode("latin-1"))
    except (ValueError, LookupError, UnicodeError, TypeError, AttributeError, email.errors.HeaderParseError):
        return
    for value, charset in parts:
        if isinstance(value, bytes):
            yield from _readings(value, _codecs([charset] if charset else []))
        else:
            yield value


def _multipart_readings(data: bytes, content_type: str, request_codecs: Sequence[str]) -> Iterator[str]:
    """Every text of a multipart body under any parser's reading.

    The raw body (UTF-8 and Latin-1) holds every byte any parser hands the app untransformed:
    names, filenames, values, files, whatever the split. On top of that, what parsers transform:
    a request-level or per-part charset, base64 and quoted-printable parts, RFC 2231 and
    percent-encoded parameters, read from every split of the body any parser could make.
    """
    yield from _readings(data)
    if not request_codecs and _PART_TRANSFORMS.search(data) is None:
        return
    for boundary in _param_values(content_type, "boundary"):
        if len(boundary) > MAX_BOUNDARY_LENGTH:
            continue
        for head, payload in _multipart_sections(data, boundary.encode("latin-1", "replace")):
            if request_codecs or _PART_TRANSFORMS.search(head) is not None:
                yield from _part_texts(head, payload, request_codecs)


#: Longest multipart boundary accepted (RFC 2046 says 70).
MAX_BOUNDARY_LENGTH = 200


def parse_multipart(data: bytes, boundary: str, *, charset: str | None = None) -> list[tuple[str, str]]:
    """The fields of a ``multipart/form-data`` body, files included, as ``(name, text)``.

    Parts are split on delimiter lines ending in CRLF or LF; names honour RFC 2231
    (``name*=utf-8''...``); values are read in the part's charset, else ``charset``, else UTF-8
    (undecodable bytes replaced). Binary files come out as text with replacement characters:
    nothing is left out because the client called it a file. This is one reading, the one a
    custom extractor usually wants; the default extractor scans every reading.

    Raises:
        InvalidBody: no boundary, no closing delimiter, too many parts.
    """
    if not boundary or len(boundary) > MAX_BOUNDARY_LENGTH:
        raise InvalidBody("the multipart body has no usable boundary", code="invalid_multipart")
    splitter = _splitters(boundary.encode("latin-1", "replace"))[1]
    sections = splitter.split(b"\r\n" + data)
    if len(sections) < 2 or not any(section.startswith(b"--") for section in sections[1:]):
        raise InvalidBody("the multipart body is malformed", code="invalid_multipart")
    fields: list[tuple[str, str]] = []
    for section in sections[1:]:
        if section.startswith(b"--"):
            break
        line = _REST_OF_LINE.match(section)
        section = section[line.end() if line else 0 :]
        blank = _BLANK_LINE.search(section)
        if blank is None:
            raise InvalidBody("a multipart part has no header block", code="invalid_multipart")
        head, payload = section[: blank.start()], section[blank.end() :]
        params: dict[bytes, bytes] = {}
        for match in _PARAM.finditer(head):
            params.setdefault(match.group(1).lower(), _unquote_param(match.group(2)))
        name = _param_text(params, b"name")
        part_charset = params.get(b"charset")
        codec = _codec(part_charset.decode("latin-1")) if part_charset else None
        codec = codec or (_codec(charset) if charset else None) or "utf-8"
        fields.append((name, payload.decode(codec, "replace")))
        if len(fields) > MAX_FORM_FIELDS:
            raise InvalidBody("the multipart body has too many fields", code="too_many_fields")
    return fields


def _param_text(params: Mapping[bytes, bytes], name: bytes) -> str:
    extended = params.get(name + b"*")
    if extended is not None and extended.count(b"'") >= 2:
        charset, _, rest = extended.partition(b"'")
        codec = _codec(charset.decode("latin-1")) or "utf-8"
        return unquote_to_bytes(rest.partition(b"'")[2]).decode(codec, "replace")
    return params.get(name, b"").decode("utf-8", "replace")


def _decode_text(data: bytes, charset: str | None) -> str:
    codec = _codec(charset) if charset else None
    return data.decode(codec or "utf-8", "replace")


def is_json_media_type(media_type: str) -> bool:
    """``application/json`` and every ``+json`` type (``application/vnd.api+json``)."""
    return media_type == "application/json" or media_type.endswith("+json")


# -- the request as extractors see it ------------------------------------------------------------

_UNSET: Any = object()


def query_bytes(query: bytes | str) -> bytes:
    if isinstance(query, bytes):
        return query
    # WSGI's QUERY_STRING is the raw bytes read as Latin-1 (PEP 3333); a str beyond Latin-1 came
    # from elsewhere and is taken as UTF-8.
    try:
        return query.encode("latin-1")
    except UnicodeEncodeError:
        return query.encode("utf-8", "surrogateescape")


class HTTPBody:
    """One request as an extractor sees it: body, query string and path parameters, parsed lazily.

    Args:
        method: the request method, upper case.
        path: the request path (as the app sees it).
        headers: the request headers, names lower case.
        body: the body, Content-Encoding already undone.
        query_string: the raw query string (``scope["query_string"]``, or WSGI's ``QUERY_STRING``).
        path_params: the parameters of the matched route template (``{"id": "42"}``).
        max_depth: JSON nesting limit of `json`.
        max_number_length: JSON number length limit of `json`.
        metadata: context for the guard (e.g. ``route``), for extractors to put on the `Content`.

    Attributes:
        media_type: the Content-Type without parameters, lower case ("" if absent).
        charset: the Content-Type's charset parameter, if any.
        query_string: the raw query string, bytes.
        path_params: the matched route's path parameters.
    """

    __slots__ = (
        "_form",
        "_json",
        "_pairs",
        "_query",
        "body",
        "charset",
        "headers",
        "max_depth",
        "max_number_length",
        "media_type",
        "metadata",
        "method",
        "params",
        "path",
        "path_params",
        "query_string",
    )

    def __init__(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        query_string: bytes | str = b"",
        path_params: Mapping[str, str] | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_number_length: int = DEFAULT_MAX_NUMBER_LENGTH,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.metadata: Mapping[str, str] = metadata if metadata is not None else {}
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.query_string = query_bytes(query_string)
        self.path_params: Mapping[str, str] = path_params if path_params is not None else {}
        self.max_depth = max_depth
        self.max_number_length = max_number_length
        self.media_type, self.params = _header_params(headers.get("content-type", ""))
        self.charset = self.params.get("charset")
        self._json: Any = _UNSET
        self._pairs: Any = _UNSET
        self._form: list[tuple[str, str]] | None = None
        self._query: list[tuple[str, str]] | None = None

    @property
    def is_form(self) -> bool:
        """True for url-encoded and multipart form bodies (read leniently, as some parser might)."""
        return self.is_urlencoded or self.is_multipart

    @property
    def is_urlencoded(self) -> bool:
        """True when some framework could read the body as a url-encoded form."""
        return "x-www-form-urlencoded" in self.headers.get("content-type", "").lower()

    @property
    def is_multipart(self) -> bool:
        """True when some framework could read the body as a multipart form."""
        return "multipart/" in self.headers.get("content-type", "").lower()

    @property
    def charsets(self) -> list[str]:
        """Every charset the Content-Type declares that Python knows, beyond UTF-8 and Latin-1."""
        return _codecs(_param_values(self.headers.get("content-type", ""), "charset"))

    @property
    def query(self) -> list[tuple[str, str]]:
        """The query string's ``(name, value)`` pairs, in every reading a framework makes of it.

        ``+`` and percent-escapes decoded; raw bytes read as UTF-8 and as Latin-1, escapes as
        UTF-8 and in the request charset; blanks kept; a pair is listed once even when several
        readings agree, so a name may repeat with differently decoded values.
        """
        if self._query is None:
            pairs: dict[tuple[str, str], None] = {}
            for reading in _urlencoded_readings(self.query_string, self.charsets):
                for item in reading.split("&"):
                    if item:
                        name, _, value = item.partition("=")
                        pairs.setdefault((name, value))
                        if len(pairs) > MAX_FORM_FIELDS * 4:
                            raise InvalidBody("the query string has too many fields", code="too_many_fields")
            self._query = list(pairs)
        return self._query

    def json(self) -> Any:
        """The body parsed as JSON (whatever the Content-Type says, as ``json.loads`` would).

        Raises:
            InvalidBody: not JSON, or over the limits.
        """
        if self._json is _UNSET:
            self._json = parse_json(
                self.body, max_depth=self.max_depth, max_number_length=self.max_number_length
            )
        return self._json

    def form(self) -> list[tuple[str, str]]:
        """The fields of a form body (url-encoded or multipart, files included); empty otherwise."""
        if self._form is None:
            if self.media_type == "application/x-www-form-urlencoded":
                self._form = parse_form(self.body)
            elif self.media_type == "multipart/form-data":
                self._form = parse_multipart(self.body, self.params.get("boundary", ""), charset=self.charset)
            else:
                self._form = []
        return self._form

    def text(self) -> str:
        """The body as text, in its declared charset (UTF-8 by default), undecodable bytes replaced."""
        return _decode_text(self.body, self.charset)

    def _document(self) -> Any:
        if self._pairs is _UNSET:
            self._pairs = _parse_pairs(
                self.body, max_depth=self.max_depth, max_number_length=self.max_number_length
            )
        return self._pairs

    def __repr__(self) -> str:
        return (
            f"HTTPBody({self.method} {self.path!r}, {self.media_type or 'no type'}, {len(self.body)} bytes)"
        )


_new_body = object.__new__


def request_of(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    query_string: bytes,
    path_params: Mapping[str, str],
    metadata: Mapping[str, str],
) -> HTTPBody:
    """``HTTPBody(method, path, headers, body, query_string=..., path_params=..., metadata=...)``
    with the default limits, for the middlewares' per-request reading: the same object, without the
    keyword arguments and defaults of ``__init__`` (`query_string` is already bytes)."""
    request: HTTPBody = _new_body(HTTPBody)
    request.metadata = metadata
    request.method = method
    request.path = path
    request.headers = headers
    request.body = body
    request.query_string = query_string
    request.path_params = path_params
    request.max_depth = DEFAULT_MAX_DEPTH
    request.max_number_length = DEFAULT_MAX_NUMBER_LENGTH
    content_type = headers.get("content-type")
    if content_type is None:
        request.media_type, request.params = "", {}
    else:
        media_type, params = _cached_header_params(content_type)
        request.media_type = media_type
        request.params = dict(params) if params else {}  # a copy: the cached one is shared
    request.charset = request.params.get("charset")
    request._json = _UNSET
    request._pairs = _UNSET
    request._form = None
    request._query = None
    return request


BodyExtractor = Callable[[HTTPBody], "Content | str | None"]


def _strings_text(values: Any) -> str | None:
    texts = [text for text in json_strings(values) if text]
    return "\n".join(texts) if texts else None


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and ("role" in item or "content" in item) for item in value)
    )


class _Texts(dict[str, None]):
    """Texts to scan, in order, each once (identical readings are common: they cost nothing).

    A ``dict`` (its keys, in order) rather than an object holding one: made without a Python
    ``__init__`` frame, and the fast path fills it with item assignments.
    """

    __slots__ = ()

    def add(self, text: str) -> None:
        if text and not text.isspace():
            self[text] = None

    def extend(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.add(text)

    def joined(self) -> str | None:
        return "\n".join(self) if self else None


# Strings that are exactly a word of the chat APIs' own vocabulary (keys, roles, part types) carry
# nothing to scan; leaving them out keeps a chat request's extra text short or empty.
_VOCABULARY = frozenset(
    [
        "messages",
        "role",
        "content",
        "name",
        "model",
        "type",
        "text",
        "tool_calls",
        "tool_call_id",
        "id",
        "function",
        "arguments",
        "function_call",
        "tools",
        "tool_choice",
        "parameters",
        "description",
        "properties",
        "required",
        "stream",
        "stream_options",
        "include_usage",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "stop",
        "seed",
        "user",
        "system",
        "assistant",
        "tool",
        "developer",
        "image_url",
        "url",
        "detail",
        "input_text",
        "output_text",
        "refusal",
        "input",
        "instructions",
        "metadata",
        "store",
        "response_format",
        "json_object",
        "json_schema",
        "auto",
        "none",
        "object",
        "string",
        "number",
        "integer",
        "boolean",
        "array",
        "logprobs",
        "top_logprobs",
        "presence_penalty",
        "frequency_penalty",
        "parallel_tool_calls",
        "reasoning_effort",
        "low",
        "medium",
        "high",
        "image_url",
        "input_image",
        "input_file",
        "tool_use",
        "tool_result",
        "tool_use_id",
        "parts",
        "contents",
        "image",
        "source",
        "media_type",
        "data",
    ]
)


def _messages(document: Any) -> tuple[list[dict[str, Any]] | None, int]:
    """The OpenAI chat messages of a document (``messages``, or Responses API ``input``), and the
    position of their key among the document's top-level pairs (-1 when there are none)."""
    if not isinstance(document, _Pairs):
        return None, -1
    top = dict(document)  # the app's json.loads keeps the last of duplicate keys
    for key in ("messages", "input"):
        if key in top:
            candidate = _plain(top[key])
            if _is_messages(candidate):
                position = max(i for i, (name, _) in enumerate(document) if name == key)
                return candidate, position
    return None, -1


def _narrowed(
    document: _Pairs, messages: list[dict[str, Any]], position: int, scope: MessageScope
) -> tuple[list[dict[str, Any]] | None, _Pairs]:
    """The messages `scope` keeps, and the document without the ones it leaves out.

    Only the chat messages the app reads (the last ``messages`` key) are narrowed, and Anthropic's
    top-level ``system`` beside them (the system role of that API); every other string of the
    document is still scanned.
    """
    kept = scope.select(messages)
    keep = set(kept)
    walked = _Pairs(document)
    key, raw = walked[position]
    walked[position] = (key, [item for index, item in enumerate(raw) if index in keep])
    if key == "messages":
        any_assistant = any(str(m.get("role", "")).lower() == "assistant" for m in messages)
        if not scope.keeps_role("system") or (scope.last_turn and any_assistant):
            systems = [i for i, (name, _) in enumerate(walked) if name == "system"]
            if systems:
                del walked[systems[-1]]
    return [messages[index] for index in kept] or None, walked


def _body_texts(
    body: HTTPBody, texts: _Texts, scope: MessageScope | None = None
) -> list[dict[str, Any]] | None:
    """Add every reading of the body to ``texts``; return its chat messages, if it has some."""
    declared_json = is_json_media_type(body.media_type)
    try:
        document: Any = body._document()
    except InvalidBody as exc:
        # A body not declared JSON that is not JSON the app can load is text (a 5,000-digit
        # number too); one nested too deeply is refused whatever its type.
        if declared_json or exc.code == "too_deep":
            raise
        document = _UNSET
    messages: list[dict[str, Any]] | None = None
    raw: list[str] = []
    if not declared_json:
        # Whatever the type says, an app can read the body as bytes or text: scan it as text too.
        if body.is_multipart:
            raw.extend(_multipart_readings(body.body, body.headers.get("content-type", ""), body.charsets))
        if body.is_urlencoded:
            raw.extend(_urlencoded_readings(body.body, body.charsets))
        if not body.is_form:
            raw.extend(_readings(body.body, body.charsets))
    if document is not _UNSET:
        messages, position = _messages(document)
        walked = document
        if messages is not None and scope is not None and scope.narrows:
            messages, walked = _narrowed(document, messages, position, scope)
        # A JSON text without escapes read as plain text already holds every string verbatim.
        verbatim = (
            bool(raw)
            and not body.is_form
            and b"\\" not in body.body
            and body.body.isascii()
            and json.detect_encoding(body.body) == "utf-8"
        )
        if not verbatim:
            covered = {text for message in messages or () for text in message_texts(message)}
            texts.extend(
                text for text in _pairs_texts(walked) if text not in covered and text not in _VOCABULARY
            )
    texts.extend(raw)
    return messages


class _NotProven:
    """`_fast_body_texts` could not prove its reading equal to the full one."""

    __slots__ = ()


_NOT_PROVEN = _NotProven()


def _plain_messages(document: Any) -> tuple[list[dict[str, Any]] | None, str, set[str]]:
    """`_messages` of a plain document (one `_fastbody.read_plain` proved has no duplicate key),
    their key, and their `_covered` strings (made in the same pass over the messages).

    A plain JSON document holds exact ``dict`` and ``list`` values only, so the type tests are
    `_is_messages`' ``isinstance`` tests.
    """
    if type(document) is not dict:
        return None, "", _NOTHING_COVERED
    for key in ("messages", "input"):
        candidate = document.get(key)
        if type(candidate) is list and candidate:
            covered: set[str] = set()
            for item in candidate:
                if type(item) is not dict or ("role" not in item and "content" not in item):
                    break
                # What _covered does for this message (message_texts never raises).
                content = item.get("content")
                if type(content) is str and (len(item) == 1 or (len(item) == 2 and "role" in item)):
                    covered.add(content)
                else:
                    covered.update(message_texts(item))
            else:
                return candidate, key, covered
    return None, "", _NOTHING_COVERED


# No messages: nothing covered (never added to).
_NOTHING_COVERED: set[str] = set()


def _plain_narrowed(
    document: dict[str, Any], messages: list[dict[str, Any]], key: str, scope: MessageScope
) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
    """`_narrowed` of a plain document: a key appears once, so its position is the key itself."""
    kept = scope.select(messages)
    keep = set(kept)
    walked = dict(document)
    walked[key] = [item for index, item in enumerate(messages) if index in keep]
    if key == "messages":
        any_assistant = any(str(m.get("role", "")).lower() == "assistant" for m in messages)
        if not scope.keeps_role("system") or (scope.last_turn and any_assistant):
            walked.pop("system", None)
    return [messages[index] for index in kept] or None, walked


def _covered(messages: list[dict[str, Any]]) -> set[str]:
    """Every `message_texts` string of `messages`."""
    covered: set[str] = set()
    for message in messages:
        content = message.get("content")
        # Its keys within {role, content}, content among them: one key, or two with role.
        if type(content) is str and (len(message) == 1 or (len(message) == 2 and "role" in message)):
            # The usual message: message_texts yields its content alone (no refusal, name, tool
            # call or function call), and costs a generator per message.
            covered.add(content)
        else:
            covered.update(message_texts(message))
    return covered


def _fast_body_texts(
    body: HTTPBody, texts: _Texts, scope: MessageScope | None
) -> list[dict[str, Any]] | _NotProven | None:
    """`_body_texts` of a JSON body read at C speed; `_NOT_PROVEN` when that cannot be shown equal.

    Taken for a body declared JSON that `_fastbody.read_plain` proves is its own superset document
    (no duplicate key, no long integer, not too deep): its strings and messages are then exactly
    those of the superset reading (`_plain` of it), without the Python hooks and walks of
    ``_parse_pairs``, `_plain` and `_pairs_texts` (a 1 KB chat request: ~10 us instead of ~30).
    """
    media_type = body.media_type
    if media_type != "application/json" and not is_json_media_type(media_type):
        return _NOT_PROVEN
    # The walk proving the plain document leaves the chat vocabulary out of its list as it goes.
    parsed = _fastbody.read_plain(body.body, body.max_depth, body.max_number_length, _VOCABULARY)
    if parsed is None:
        return _NOT_PROVEN
    document, strings = parsed
    messages, key, covered = _plain_messages(document)
    if messages is not None and scope is not None and scope.narrows:
        messages, walked = _plain_narrowed(document, messages, key, scope)
        strings = _fastbody.strings_of(walked, _VOCABULARY)
        covered = _covered(messages) if messages is not None else _NOTHING_COVERED
    # What _body_texts adds for a JSON body: every string that is neither a message text nor a
    # word of the chat vocabulary (those are not in `strings`).
    for text in strings:
        if text not in covered and text and not text.isspace():
            texts[text] = None  # _Texts.add, without its frame
    return messages


def default_body(body: HTTPBody, scope: MessageScope | None = None) -> Content | None:
    """The default extractor of the middlewares: every text of the request the app could read.

    A superset of what Starlette, werkzeug (Flask) and Django can make of the request:

    - The body parsed as JSON, whatever the Content-Type: every string and every object key
      (duplicate keys included); an OpenAI chat request's ``messages`` (or a Responses API
      ``input``) go to the guard as messages, every other string as text.
    - Unless the body is declared JSON, the body as text too: as UTF-8, as Latin-1 and in the
      declared charset; forms percent-decoded in each reading frameworks make; multipart bodies
      whole, plus what parsers decode from parts (charsets, base64, quoted-printable, RFC 2231
      names). No part is left out because the client calls it a file.
    - The query string (names and values, every reading) and the path parameters.

    `scope` (a `MessageScope`, see ``extractors.body``) narrows the chat messages scanned, and
    nothing else: a body not declared JSON is still scanned whole as text.

    Raises:
        InvalidBody: a JSON Content-Type with a body that is not JSON, or a JSON body nested too
            deeply whatever its Content-Type.
    """
    texts = _Texts()
    messages: list[dict[str, Any]] | None = None
    if body.body:
        fast = _fast_body_texts(body, texts, scope)
        messages = _body_texts(body, texts, scope) if fast is _NOT_PROVEN else fast  # type: ignore[assignment]
    if body.query_string or body.path_params:
        return _content(body, texts, messages)
    # _content of a request without a query string or path parameters (the usual one), inline.
    text = "\n".join(texts) if texts else None
    if text is None and messages is None:
        return None
    return Content._parsed(text, messages, body.metadata)  # it copies the metadata


def _full_body(body: HTTPBody, scope: MessageScope | None = None) -> Content | None:
    """`default_body` without its fast path: the superset reading, always (what tests compare to)."""
    texts = _Texts()
    messages = _body_texts(body, texts, scope) if body.body else None
    return _content(body, texts, messages)


def _content(body: HTTPBody, texts: _Texts, messages: list[dict[str, Any]] | None) -> Content | None:
    """Add the query string and path parameters to `texts`; the `Content` of the request."""
    if body.query_string:
        texts.extend(_urlencoded_readings(body.query_string, body.charsets))
    if body.path_params:
        texts.extend(body.path_params.values())
    text = texts.joined()
    if text is None and messages is None:
        return None
    # The messages were just parsed from the body (`_plain`): no one else holds them.
    return Content._parsed(text, messages, body.metadata)  # it copies the metadata


def json_field(*path: str | int) -> Callable[[HTTPBody], Content | None]:
    """An extractor scanning one field of a JSON body (every string in it, if it is not a string).

    Args:
        path: the key (or keys and list indexes, outermost first) of the field:
            ``json_field("document")``, ``json_field("data", "items", 0)``.

    The body must be JSON (a 400 otherwise); a missing field means nothing to scan.
    """
    if not path:
        raise ValueError("json_field needs the name of the field")

    def extract(body: HTTPBody) -> Content | None:
        value: Any = body.json()
        for key in path:
            if isinstance(value, Mapping) and isinstance(key, str):
                if key not in value:
                    return None
                value = value[key]
            elif isinstance(value, Sequence) and not isinstance(value, str) and isinstance(key, int):
                if not -len(value) <= key < len(value):
                    return None
                value = value[key]
            else:
                return None
        text = _strings_text(value)
        return Content(text, metadata=body.metadata) if text is not None else None

    extract.__qualname__ = f"json_field({', '.join(map(repr, path))})"
    return extract
