"""Request bodies, read the way the app will read them. No I/O, no framework types.

API (shared by the ASGI and WSGI middlewares):

- `BodyError` (an `ExtractionError`) and its subclasses carry the HTTP answer for a body that
  cannot be scanned: `BodyTooLarge` (413, ``request_too_large``), `UnsupportedEncoding` (415,
  ``unsupported_media_type``), `InvalidBody` (400, ``invalid_request``). Each has ``status``,
  ``type`` and ``code``; messages never quote the body.
- ``decode_content_encoding(body, content_encoding, max_size=...) -> bytes``: undo ``gzip``,
  ``x-gzip``, ``deflate`` and ``identity`` (stacked encodings too) with the output capped, so a
  decompression bomb is a `BodyTooLarge`; any other encoding is an `UnsupportedEncoding`.
- ``parse_json(data) -> Any``: exactly ``json.loads(bytes)`` (UTF-8/16/32 detected, BOM accepted,
  duplicate keys: last wins) plus limits: nesting depth, number length; `InvalidBody` otherwise.
- ``parse_form(data)`` / ``parse_multipart(data, boundary)``: the text fields of a form.
- `HTTPBody`: one request as an extractor sees it (method, path, headers, decoded body) with lazy,
  cached ``json()``, ``form()`` and ``text()``.
- Extractors (``BodyExtractor = Callable[[HTTPBody], Content | str | None]``): `default_body`
  (OpenAI chat requests, ``prompt``, ``input``, ``guard``, else every string of the document; form
  and multipart text fields; plain text) and ``json_field(*path)``.
- ``json_strings(value)``: every string value in a JSON document, iteratively (no recursion).
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from ._exceptions import ExtractionError
from ._models import Content

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
]

#: Deepest nesting of arrays and objects accepted in a JSON body.
DEFAULT_MAX_DEPTH = 64
#: Longest number literal accepted in a JSON body (int() of a huge literal is quadratic before 3.11).
DEFAULT_MAX_NUMBER_LENGTH = 100
#: Most fields parsed from a form body.
MAX_FORM_FIELDS = 1000

# Bodies of these types that are not JSON are binary uploads, not text an app passes to a model.
_BINARY_MEDIA_TYPES = ("image/", "audio/", "video/", "font/")


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
    decompressor = zlib.decompressobj(wbits)
    out = bytearray()
    pending = data
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
    if decompressor.unused_data and wbits != zlib.MAX_WBITS | 16:
        raise InvalidBody("trailing data after the compressed request body", code="bad_encoding")
    if decompressor.unused_data:
        # gzip allows several members back to back (what gzip.decompress accepts).
        return bytes(out) + _inflate(decompressor.unused_data, wbits, max_size - len(out))
    return bytes(out)


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
    try:
        # What json.loads(bytes) does: detect UTF-8/16/32 (BOM or not), decode with surrogatepass.
        text = data.decode(json.detect_encoding(data), "surrogatepass")
        if text.startswith("\ufeff"):
            raise ValueError("a BOM json.loads would refuse")
        return_value = _decoder(max_number_length).decode(text)
    except InvalidBody:
        raise
    except RecursionError as exc:
        raise InvalidBody("the JSON body is nested too deeply", code="too_deep") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        # The decoder's message quotes no body text, but keep ours fixed anyway.
        raise InvalidBody("the request body is not valid JSON", code="invalid_json") from exc
    # Brackets bound the depth from above (some may be in strings): most bodies need no walk.
    if data.count(b"[") + data.count(b"{") > max_depth:
        _check_depth(return_value, max_depth)
    return return_value


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


# -- forms -----------------------------------------------------------------------------------------


def parse_form(data: bytes) -> list[tuple[str, str]]:
    """The fields of an ``application/x-www-form-urlencoded`` body (values UTF-8, blanks kept)."""
    try:
        return parse_qsl(
            data.decode("latin-1"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError as exc:
        raise InvalidBody("the form body has too many fields", code="too_many_fields") from exc


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``type/subtype; a=1; b="x y"`` into the lowercased value and its parameters."""
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


def _is_text_part(content_type: str, filename: str | None) -> bool:
    if filename is None:
        return True
    media_type = content_type.split(";")[0].strip().lower()
    # A "file" of text is still text the app may pass to a model.
    return media_type.startswith("text/") or is_json_media_type(media_type) or not media_type


def parse_multipart(data: bytes, boundary: str) -> list[tuple[str, str]]:
    """The text fields of a ``multipart/form-data`` body, and its text files.

    Parts without a filename, and files whose type is text, JSON or unspecified, are returned as
    ``(name, text)``; binary files are left out.

    Raises:
        InvalidBody: no boundary, or the body has no closing delimiter.
    """
    if not boundary or len(boundary) > 200:
        raise InvalidBody("the multipart body has no usable boundary", code="invalid_multipart")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    # Prefixing CRLF lets the first delimiter be found like every other one.
    sections = (b"\r\n" + data).split(b"\r\n" + delimiter)
    if len(sections) < 2 or not sections[-1].startswith(b"--"):
        raise InvalidBody("the multipart body is malformed", code="invalid_multipart")
    fields: list[tuple[str, str]] = []
    for section in sections[1:-1]:
        head, sep, payload = section.partition(b"\r\n\r\n")
        if not sep:
            raise InvalidBody("a multipart part has no header block", code="invalid_multipart")
        name: str | None = None
        filename: str | None = None
        content_type = ""
        charset = "utf-8"
        for line in head.decode("utf-8", "replace").split("\r\n"):
            header, _, value = line.partition(":")
            header = header.strip().lower()
            if header == "content-disposition":
                _, params = _header_params(value)
                name = params.get("name")
                filename = params.get("filename")
            elif header == "content-type":
                content_type = value
                charset = _header_params(value)[1].get("charset", charset)
        if name is None or not _is_text_part(content_type, filename):
            continue
        fields.append((name, _decode_text(payload, charset)))
        if len(fields) > MAX_FORM_FIELDS:
            raise InvalidBody("the multipart body has too many fields", code="too_many_fields")
    return fields


def _decode_text(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def is_json_media_type(media_type: str) -> bool:
    """``application/json`` and every ``+json`` type (``application/vnd.api+json``)."""
    return media_type == "application/json" or media_type.endswith("+json")


# -- the request as extractors see it ------------------------------------------------------------

_UNSET: Any = object()


class HTTPBody:
    """One request body as an extractor sees it, parsed lazily and once.

    Args:
        method: the request method, upper case.
        path: the request path (as the app sees it).
        headers: the request headers, names lower case.
        body: the body, Content-Encoding already undone.
        max_depth: JSON nesting limit of `json`.
        max_number_length: JSON number length limit of `json`.
        metadata: context for the guard (e.g. ``route``), for extractors to put on the `Content`.

    Attributes:
        media_type: the Content-Type without parameters, lower case ("" if absent).
        charset: the Content-Type's charset parameter, if any.
    """

    __slots__ = (
        "_form",
        "_json",
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
    )

    def __init__(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_number_length: int = DEFAULT_MAX_NUMBER_LENGTH,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.metadata: Mapping[str, str] = metadata if metadata is not None else {}
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.max_depth = max_depth
        self.max_number_length = max_number_length
        self.media_type, self.params = _header_params(headers.get("content-type", ""))
        self.charset = self.params.get("charset")
        self._json: Any = _UNSET
        self._form: list[tuple[str, str]] | None = None

    @property
    def is_form(self) -> bool:
        """True for url-encoded and multipart form bodies."""
        return self.media_type in ("application/x-www-form-urlencoded", "multipart/form-data")

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
        """The text fields of a form body (url-encoded or multipart); empty for other bodies."""
        if self._form is None:
            if self.media_type == "application/x-www-form-urlencoded":
                self._form = parse_form(self.body)
            elif self.media_type == "multipart/form-data":
                self._form = parse_multipart(self.body, self.params.get("boundary", ""))
            else:
                self._form = []
        return self._form

    def text(self) -> str:
        """The body as text, in its declared charset (UTF-8 by default), undecodable bytes replaced."""
        return _decode_text(self.body, self.charset)

    def __repr__(self) -> str:
        return (
            f"HTTPBody({self.method} {self.path!r}, {self.media_type or 'no type'}, {len(self.body)} bytes)"
        )


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


def _document_content(document: Any, metadata: Mapping[str, str]) -> Content | None:
    """The OpenAI chat request, ``prompt``, ``input`` or ``guard`` of a document, else all its strings."""
    if isinstance(document, dict):
        messages = document.get("messages")
        if _is_messages(messages):
            return Content(messages=messages, metadata=metadata)
        user_input = document.get("input")
        if _is_messages(user_input):
            return Content(messages=user_input, metadata=metadata)
        for key in ("prompt", "input", "guard"):
            if key in document:
                text = _strings_text(document[key])
                if text is not None:
                    return Content(text, metadata=metadata)
    text = _strings_text(document)
    return Content(text, metadata=metadata) if text is not None else None


def default_body(body: HTTPBody) -> Content | None:
    """The default extractor of the middlewares: everything in the body the app could use.

    - Form bodies (url-encoded or multipart): every text field; a url-encoded body that is also
      a JSON document, its JSON content as well.
    - JSON, whatever the Content-Type says: an OpenAI chat request (every message's content and
      content parts, names, tool-call arguments), else ``prompt``, ``input`` or ``guard``, else
      every string value in the document.
    - Anything else: the body as text, except images, audio, video and fonts.

    Raises:
        InvalidBody: a JSON Content-Type with a body that is not JSON, or a JSON body over the
            limits (deep nesting, huge numbers) whatever its Content-Type.
    """
    if not body.body:
        return None
    if body.is_form:
        fields = body.form()
        texts = [value for _, value in fields if value]
        if body.media_type == "application/x-www-form-urlencoded":
            # Apps may parse any body as JSON (Starlette's request.json(), Flask's
            # get_json(force=True)): a JSON document sent as a form is scanned as JSON too.
            try:
                document = body.json()
            except InvalidBody as exc:
                if exc.code != "invalid_json":
                    raise
            else:
                as_json = _document_content(document, body.metadata)
                if as_json is not None:
                    texts.extend(as_json.iter_texts())
        return Content("\n".join(texts), metadata=body.metadata) if texts else None
    try:
        document = body.json()
    except InvalidBody as exc:
        if is_json_media_type(body.media_type) or exc.code != "invalid_json":
            raise
        if body.media_type.startswith(_BINARY_MEDIA_TYPES):
            return None
        text = body.text()
        return Content(text, metadata=body.metadata) if text.strip() else None
    return _document_content(document, body.metadata)


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
