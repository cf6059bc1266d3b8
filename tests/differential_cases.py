"""The differential harness's two halves: requests with a marker hidden in them, and the frameworks' readings.

`requests()` is a hypothesis strategy of whole requests (method, query string, headers, body) in the
shapes the frameworks disagree on: multipart bodies (boundaries, quoting, RFC 2231, duplicate and
folded headers, LF-only lines, transfer encodings, per-part and request charsets, delimiter-like
lines in values), url-encoded bodies and query strings (raw and escaped bytes, ``+``, ``;``),
JSON documents (escapes, duplicate keys, UTF-16/32, long numbers) under any Content-Type, and
text in declared and undeclared charsets. Some text in them is the marker, ASCII or not.

`framework_readings()` runs Starlette's, werkzeug's and Django's own parsers on a request and
returns every text an app could get from each: form names, values, filenames and file contents,
query names and values, the JSON document's strings and keys, the raw body as text.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_from_bytes

from hypothesis import strategies as st

MARKER = "QMARKERQ"
#: A marker with letters outside ASCII (all in Latin-1, cp1252 and cp037) for the charset cases.
WIDE_MARKER = "QMÄRKÉRQ"

CHARSETS = ["utf-8", "utf-16-le", "utf-16", "latin-1", "cp1252", "cp037", "x-bogus", "UTF-8", "utf-32"]


@dataclass(frozen=True)
class HTTPRequest:
    """One generated request, as bytes on the wire (minus framing)."""

    method: str
    query: bytes
    headers: tuple[tuple[str, str], ...]
    body: bytes
    marker: str
    shape: str = field(default="")

    @property
    def header_map(self) -> dict[str, str]:
        """Headers as the middlewares give them to extractors (lower-case names, last wins)."""
        return {name.lower(): value for name, value in self.headers}


# -- pieces of text ------------------------------------------------------------------------------------

_FILLER = st.sampled_from(
    ["", "a", "hello world", "x=y", "&", ";", "%", "%2", "+", '"', "\\", "é", "東", " ", "--", "=?", "*", "'"]
)


@st.composite
def text_with(draw: st.DrawFn, marker: str, chance: float = 0.5) -> str:
    """A short text, holding the marker about half the time."""
    before = "".join(draw(st.lists(_FILLER, max_size=3)))
    after = "".join(draw(st.lists(_FILLER, max_size=3)))
    if draw(st.floats(0, 1)) < chance:
        return before + marker + after
    return before + after


def _encode(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset, "replace")
    except LookupError:
        return text.encode("utf-8")


# -- url-encoded forms and query strings ---------------------------------------------------------------


def _form_piece(text: str, mode: str) -> bytes:
    if mode == "quote":
        return quote(text, safe="").encode()
    if mode == "quote_plus":
        return quote(text, safe=" ").replace(" ", "+").encode()
    if mode == "quote-latin1":
        return quote_from_bytes(text.encode("latin-1", "replace"), safe="").encode()
    if mode == "raw-latin1":
        return text.encode("latin-1", "replace")
    if mode == "partial":
        return "".join(quote(c, safe="") if i % 2 else c for i, c in enumerate(text)).encode()
    return text.encode()  # raw UTF-8


_FORM_MODES = st.sampled_from(["quote", "quote_plus", "quote-latin1", "raw-latin1", "partial", "raw"])


@st.composite
def urlencoded(draw: st.DrawFn, marker: str) -> bytes:
    """A url-encoded string: pairs (names and values may hold the marker), ``&`` or ``;``."""
    pairs = draw(st.lists(st.tuples(text_with(marker, 0.3), text_with(marker, 0.5)), max_size=4))
    separator = draw(st.sampled_from([b"&", b";", b"&&"]))
    items = []
    for name, value in pairs:
        mode = draw(_FORM_MODES)
        item = _form_piece(name, mode)
        if draw(st.booleans()) or value:
            item += b"=" + _form_piece(value, draw(_FORM_MODES))
        items.append(item)
    return separator.join(items)


@st.composite
def form_requests(draw: st.DrawFn) -> HTTPRequest:
    marker = draw(st.sampled_from([MARKER, WIDE_MARKER]))
    body = draw(urlencoded(marker))
    content_type = "application/x-www-form-urlencoded"
    charset = draw(st.sampled_from([None, None, "utf-8", "latin-1", "cp037"]))
    if charset:
        content_type += f"; charset={charset}"
    return HTTPRequest(
        draw(_METHODS), draw(_QUERY(marker)), (("Content-Type", content_type),), body, marker, "form"
    )


# -- JSON ---------------------------------------------------------------------------------------------


def _json_string(draw: st.DrawFn, text: str) -> str:
    escape = draw(st.sampled_from(["none", "some", "all"]))
    out = []
    for index, char in enumerate(text):
        if char in '"\\' or ord(char) < 0x20:
            out.append(json.dumps(char)[1:-1])
        elif escape == "all" or (escape == "some" and index % 3 == 0):
            out.append(
                f"\\u{ord(char):04x}" if ord(char) < 0x10000 else json.dumps(char, ensure_ascii=True)[1:-1]
            )
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@st.composite
def json_text(draw: st.DrawFn, marker: str, depth: int = 0) -> str:
    """A JSON document written by hand: duplicate keys, escapes, long numbers allowed."""
    kind = draw(
        st.sampled_from(["object", "array", "string", "number"] if depth < 3 else ["string", "number"])
    )
    if kind == "string":
        return _json_string(draw, draw(text_with(marker, 0.3)))
    if kind == "number":
        return draw(st.sampled_from(["1", "-2.5", "1e3", "9" * 120, "true", "null"]))
    size = draw(st.integers(0, 3))
    if kind == "array":
        return "[" + ", ".join(draw(json_text(marker, depth + 1)) for _ in range(size)) + "]"
    keys = [draw(st.sampled_from(["prompt", "messages", "content", "q", "x"])) for _ in range(size)]
    members = []
    for key in keys:
        name = _json_string(draw, key + draw(text_with(marker, 0.15)))
        members.append(f"{name}: {draw(json_text(marker, depth + 1))}")
    if draw(st.booleans()) and members:
        members.append(members[0].split(":")[0] + ": " + _json_string(draw, draw(text_with(marker, 0.5))))
    return "{" + ", ".join(members) + "}"


@st.composite
def json_requests(draw: st.DrawFn) -> HTTPRequest:
    marker = draw(st.sampled_from([MARKER, WIDE_MARKER]))
    if draw(st.booleans()):
        message = _json_string(draw, draw(text_with(marker)))
        document = (
            '{"model": "m", "messages": [{"role": "user", "content": '
            + message
            + "}], "
            + _json_string(draw, draw(text_with(marker, 0.3)))
            + ": "
            + draw(json_text(marker, 1))
            + "}"
        )
    else:
        document = draw(json_text(marker))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "utf-16-be", "utf-32-le", "utf-8-sig"]))
    content_type = draw(
        st.sampled_from(
            [
                "application/json",
                "application/vnd.api+json",
                "text/plain",
                None,
                "application/x-www-form-urlencoded",
                "application/octet-stream",
            ]
        )
    )
    headers = (("Content-Type", content_type),) if content_type else ()
    return HTTPRequest(
        draw(_METHODS), draw(_QUERY(marker)), headers, document.encode(encoding), marker, "json"
    )


# -- text -----------------------------------------------------------------------------------------------


@st.composite
def text_requests(draw: st.DrawFn) -> HTTPRequest:
    marker = draw(st.sampled_from([MARKER, WIDE_MARKER]))
    text = draw(text_with(marker, 0.8))
    declared = draw(st.sampled_from([None, *CHARSETS]))
    actual = draw(st.sampled_from([declared or "utf-8", "utf-8", "latin-1", "utf-16-le"]))
    media = draw(st.sampled_from(["text/plain", "image/png", "application/octet-stream", "text/html"]))
    quote_mark = draw(st.sampled_from(["", '"']))
    content_type = media + (f"; charset={quote_mark}{declared}{quote_mark}" if declared else "")
    body = _encode(text, actual)
    if draw(st.booleans()):
        body = draw(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xfe", b"\x00\x01"])) + body
    return HTTPRequest(draw(_METHODS), b"", (("Content-Type", content_type),), body, marker, "text")


# -- multipart ------------------------------------------------------------------------------------------

_BOUNDARIES = st.sampled_from(
    ["B", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a'b(c)+_,-./:=?", "b;c", "x y", "Q"]
)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def _disposition(draw: st.DrawFn, marker: str) -> str:
    name = draw(text_with(marker, 0.25))
    style = draw(st.sampled_from(["quoted", "quoted", "token", "rfc2231", "both", "semicolon"]))
    if style == "token":
        params = f"name={name.replace(';', '').replace(' ', '') or 'n'}"
    elif style == "rfc2231":
        params = "name*=utf-8''" + quote(name, safe="")
    elif style == "both":
        params = f"name={_quoted('n')}; name*=UTF-8''" + quote(name, safe="")
    elif style == "semicolon":
        params = f"name={_quoted(name + ';filename=x.png')}"
    else:
        params = f"name={_quoted(name)}"
    filename = draw(st.sampled_from([None, None, "", "a.png", "notes.txt", "x;y.bin", "MARK"]))
    if filename is not None:
        if filename == "MARK":
            filename = draw(text_with(marker, 0.9))
        if draw(st.booleans()):
            params += f"; filename={_quoted(filename)}"
        else:
            params += "; filename*=utf-8''" + quote(filename, safe="")
    fold = draw(st.sampled_from(["", "", "\r\n\t", "\n "]))
    return f"Content-Disposition: form-data;{fold} {params}"


@st.composite
def _part(draw: st.DrawFn, marker: str, boundary: str, request_charset: str | None) -> bytes:
    newline = draw(st.sampled_from(["\r\n", "\r\n", "\n"]))
    headers = [draw(_disposition(marker))]
    if draw(st.integers(0, 5)) == 0:
        headers.append(draw(_disposition(marker)))  # a duplicate Content-Disposition
    part_charset = draw(st.sampled_from([None, None, None, *CHARSETS]))
    media = draw(st.sampled_from([None, "text/plain", "image/png", "application/octet-stream"]))
    if media or part_charset:
        headers.append(
            f"Content-Type: {media or 'text/plain'}" + (f"; charset={part_charset}" if part_charset else "")
        )
    transfer = draw(st.sampled_from([None, None, "base64", "BASE64", "quoted-printable", "8bit"]))
    if transfer:
        headers.append(f"Content-Transfer-Encoding: {transfer}")
    if draw(st.booleans()):
        headers.reverse()
    value = draw(text_with(marker, 0.6))
    if draw(st.integers(0, 6)) == 0:
        value += (
            draw(st.sampled_from([f"\r\n--{boundary}X\r\n", f"\n--{boundary}\r\n", f"\r\n--{boundary}"]))
            + marker
        )
    charset = draw(st.sampled_from([part_charset or request_charset or "utf-8", "utf-8", "latin-1"]))
    payload = _encode(value, charset)
    if transfer and transfer.lower() == "base64":
        encoded = base64.b64encode(payload)
        wrap = draw(st.sampled_from([0, 4, 76, 5]))
        if wrap:
            encoded = b"\r\n".join(encoded[i : i + wrap] for i in range(0, len(encoded), wrap))
        payload = encoded
    elif transfer == "quoted-printable":
        payload = binascii.b2a_qp(payload)
    header_charset = draw(st.sampled_from(["utf-8", "latin-1", request_charset or "utf-8"]))
    head = newline.join(headers).encode(header_charset if header_charset != "x-bogus" else "utf-8", "replace")
    return head + (newline * 2).encode() + payload


@st.composite
def multipart_requests(draw: st.DrawFn) -> HTTPRequest:
    marker = draw(st.sampled_from([MARKER, WIDE_MARKER]))
    boundary = draw(_BOUNDARIES)
    request_charset = draw(
        st.sampled_from([None, None, None, "utf-16-le", "latin-1", "cp037", "x-bogus", "utf-8"])
    )
    parts = draw(st.lists(_part(marker, boundary, request_charset), max_size=3))
    newline = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    delimiter = b"--" + boundary.encode()
    body = draw(st.sampled_from([b"", b"preamble\r\n", marker.encode() + b"\r\n"]))
    for part in parts:
        body += delimiter + newline + part + newline
    if draw(st.integers(0, 5)):
        body += delimiter + b"--" + newline
        body += draw(st.sampled_from([b"", b"epilogue", marker.encode()]))
    quoted = draw(st.booleans()) or any(c in boundary for c in " ;,'()+/:=?")
    value = _quoted(boundary) if quoted else boundary
    style = draw(st.sampled_from(["plain", "plain", "upper", "spaces", "decoy-first", "decoy-last"]))
    if style == "upper":
        content_type = f"Multipart/Form-Data; BOUNDARY={value}"
    elif style == "spaces":
        content_type = f"multipart/form-data ;  boundary = {value}"
    elif style == "decoy-first":
        content_type = f"multipart/form-data; boundary=decoy; boundary={value}"
    elif style == "decoy-last":
        content_type = f"multipart/form-data; boundary={value}; boundary=decoy"
    else:
        content_type = f"multipart/form-data; boundary={value}"
    if request_charset:
        content_type += (
            f"; charset={request_charset}" if draw(st.booleans()) else f'; charset="{request_charset}"'
        )
    return HTTPRequest(
        draw(_METHODS), draw(_QUERY(marker)), (("Content-Type", content_type),), body, marker, "multipart"
    )


_METHODS = st.sampled_from(["POST", "POST", "POST", "PUT", "PATCH", "DELETE"])


def _QUERY(marker: str) -> st.SearchStrategy[bytes]:
    return st.one_of(st.just(b""), urlencoded(marker))


@st.composite
def query_requests(draw: st.DrawFn) -> HTTPRequest:
    marker = draw(st.sampled_from([MARKER, WIDE_MARKER]))
    return HTTPRequest(
        draw(st.sampled_from(["GET", "POST"])), draw(urlencoded(marker)), (), b"", marker, "query"
    )


def requests() -> st.SearchStrategy[HTTPRequest]:
    """Every shape of request, multipart most often (where parsers disagree most)."""
    return st.one_of(
        multipart_requests(),
        multipart_requests(),
        form_requests(),
        json_requests(),
        text_requests(),
        query_requests(),
    )


# -- the frameworks' readings ----------------------------------------------------------------------------


def _document_texts(document: Any) -> Iterator[str]:
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for key, value in item.items():
                yield key
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _bytes_texts(data: bytes) -> list[str]:
    """What an app can make of bytes it is handed (a file, a raw body): UTF-8 or Latin-1 text."""
    return [data.decode("utf-8", "replace"), data.decode("latin-1")]


def _json_texts(data: bytes) -> list[str]:
    try:
        return list(_document_texts(json.loads(data)))
    except (ValueError, RecursionError):
        return []


def _environ(request: HTTPRequest, path: str) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": request.query.decode("latin-1"),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(request.body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "HTTP_HOST": "127.0.0.1",
    }
    for name, value in request.headers:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ[f"HTTP_{key}"] = value
    return environ


def werkzeug_readings(request: HTTPRequest, path: str = "/x") -> list[str]:
    """werkzeug (Flask): ``request.form``, ``files``, ``args``, ``get_json(force=True)``, ``get_data``."""
    from werkzeug.wrappers import Request

    texts: list[str] = []
    wz = Request(_environ(request, path))
    with contextlib.suppress(Exception):
        texts.extend(text for pair in wz.args.items(multi=True) for text in pair)
    try:
        texts.extend(text for pair in wz.form.items(multi=True) for text in pair)
        for name, storage in wz.files.items(multi=True):
            texts.extend([name, storage.filename or "", *_bytes_texts(storage.read())])
            texts.extend(value for _, value in storage.headers.items())
    except Exception:
        pass
    finally:
        wz.close()
    wz = Request(_environ(request, path))
    try:
        document = wz.get_json(force=True, silent=True)
        texts.extend(_document_texts(document))
        texts.extend(_bytes_texts(wz.get_data()))
    except Exception:
        pass
    finally:
        wz.close()
    return texts


def django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")
    import django

    django.setup()


def django_readings(request: HTTPRequest, path: str = "/x") -> list[str]:
    """Django: ``request.POST``, ``FILES``, ``GET``, ``json.loads(request.body)``, ``request.body``."""
    django_setup()
    from django.core.handlers.wsgi import WSGIRequest

    texts: list[str] = []
    dj = WSGIRequest(_environ(request, path))
    body = dj.body
    texts.extend(_json_texts(body))
    texts.extend(_bytes_texts(body))
    with contextlib.suppress(Exception):
        texts.extend(text for key, values in dj.GET.lists() for text in [key, *values])
    try:
        texts.extend(text for key, values in dj.POST.lists() for text in [key, *values])
        for key, files in dj.FILES.lists():
            for upload in files:
                texts.extend([key, upload.name or "", *_bytes_texts(upload.read())])
    except Exception:
        pass
    finally:
        dj.close()
    return texts


async def _starlette(request: HTTPRequest, path: str) -> list[str]:
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": request.body, "more_body": False}

    scope = {
        "type": "http",
        "method": request.method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": request.query,
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers
        ],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
    }
    st_request = Request(scope, receive)
    texts: list[str] = []
    texts.extend(text for pair in st_request.query_params.multi_items() for text in pair)
    body = await st_request.body()
    texts.extend(_json_texts(body))
    texts.extend(_bytes_texts(body))
    try:
        async with st_request.form() as form:
            for key, value in form.multi_items():
                texts.append(key)
                if isinstance(value, UploadFile):
                    texts.extend([value.filename or "", *_bytes_texts(await value.read())])
                    texts.extend(value.headers.values())
                else:
                    texts.append(value)
    except Exception:
        pass
    return texts


def starlette_readings(request: HTTPRequest, loop: asyncio.AbstractEventLoop, path: str = "/x") -> list[str]:
    """Starlette (FastAPI): ``request.form()`` (python-multipart), ``query_params``, ``json()``, ``body()``."""
    return loop.run_until_complete(_starlette(request, path))


def framework_readings(request: HTTPRequest, loop: asyncio.AbstractEventLoop) -> dict[str, list[str]]:
    """Every text each framework can hand the app, by framework."""
    readings = {
        "starlette": starlette_readings(request, loop),
        "werkzeug": werkzeug_readings(request),
        "django": django_readings(request),
    }
    # Some parsers hand out None for an absent name or filename: not text.
    return {name: [text for text in texts if isinstance(text, str)] for name, texts in readings.items()}
