"""What the vendor guards share: key resolution, base-URL checks, text windows, JSON decoding.

Everything here is pure; the guards build requests and parse responses with it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import BaseModel, SecretStr

from .._exceptions import ContentTooLarge, ExtractionError, GuardConfigurationError, GuardResponseError
from .._exchange import GuardResponse
from .._models import Action, Category, Content, Verdict

__all__ = [
    "FieldWindows",
    "check_base_url",
    "check_body_size",
    "check_text_size",
    "guaranteed_chars",
    "text_chars",
    "decode_json_object",
    "encode_json",
    "encode_json_string",
    "parsed_verdict",
    "region_url",
    "resolve_api_key",
    "split_windows",
    "window_spans",
]

_MAX_KEY_LENGTH = 4096
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def resolve_api_key(api_key: str | SecretStr | None, *, env_var: str, guard: str) -> SecretStr:
    """The key to send (from the argument, or the environment through `GuardSettings`) as a `SecretStr`.

    Raises:
        GuardConfigurationError: no key anywhere (the message names `env_var`), or a key that cannot travel in an HTTP header. The message
            never contains the key.
    """
    value = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key or ""
    # Keys pasted into env files often carry a trailing newline.
    value = value.strip()
    if not value:
        raise GuardConfigurationError(
            f"{guard} guard needs an API key: pass api_key= or set the {env_var} environment variable",
            guard=guard,
        )
    if len(value) > _MAX_KEY_LENGTH or not all("\x21" <= char <= "\x7e" for char in value):
        raise GuardConfigurationError(
            f"{guard} guard API key is not a valid HTTP header value "
            "(printable ASCII without spaces expected; the key itself is not shown)",
            guard=guard,
        )
    return SecretStr(value)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, *, guard: str) -> str:
    """Validate a guard's base URL and return it without a trailing slash.

    The URL must be ``https``, except for loopback hosts (the emulator, tests), which may be
    ``http``: a credential never travels in clear text to a remote host. User info, a query or a
    fragment are refused: they would end up in every request URL.

    Raises:
        GuardConfigurationError: the URL is not acceptable.
    """
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise GuardConfigurationError(f"{guard} guard base_url is not a valid URL", guard=guard) from exc
    if url.userinfo:
        # Checked first, so that the messages below may quote the URL.
        raise GuardConfigurationError(
            f"{guard} guard base_url must not contain user info: pass the key as api_key", guard=guard
        )
    if url.scheme not in ("http", "https") or not url.host:
        raise GuardConfigurationError(
            f"{guard} guard base_url must be an absolute https URL, not {base_url!r}", guard=guard
        )
    if url.scheme == "http" and not _is_loopback(url.host):
        raise GuardConfigurationError(
            f"{guard} guard base_url must use https (http is allowed for loopback hosts only), not {base_url!r}",
            guard=guard,
        )
    if url.query or url.fragment:
        raise GuardConfigurationError(
            f"{guard} guard base_url must not have a query or a fragment", guard=guard
        )
    return str(url).rstrip("/")


def region_url(region: str, table: Mapping[str, str], *, guard: str) -> str:
    """The base URL of `region` in `table` (case-insensitive).

    Raises:
        GuardConfigurationError: unknown region; the message lists the valid ones.
    """
    url = table.get(region.strip().lower()) if isinstance(region, str) else None
    if url is None:
        valid = ", ".join(table)
        raise GuardConfigurationError(
            f"unknown {guard} region {region!r}: expected one of {valid}", guard=guard
        )
    return url


def split_windows(text: str, *, size: int, overlap: int) -> list[str]:
    """Split `text` into windows of at most `size` characters that overlap by at least `overlap`.

    Windows end on whitespace when there is some in their last quarter, and start on a word
    boundary when there is one in the overlap, so words are not cut in half where avoidable.
    Any run of up to `overlap` characters lies whole inside at least one window, so a phrase that
    straddles a boundary is still seen in one piece. Text of at most `size` characters is one
    window.
    """
    return [text[start:end] for start, end in window_spans(text, size=size, overlap=overlap)]


def window_spans(text: str, *, size: int, overlap: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` offsets of the windows `split_windows` cuts."""
    if size < 1:
        raise ValueError("window size must be at least 1")
    if not 0 <= overlap <= size // 4:
        raise ValueError("window overlap must be between 0 and a quarter of the window size")
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = start + size
        if end >= len(text):
            spans.append((start, len(text)))
            return spans
        cut = _last_space(text, end - size // 4, end)
        if cut is not None:
            end = cut + 1
        spans.append((start, end))
        # Start `overlap` characters back, then further back to a word boundary if one is near:
        # moving back only widens the overlap, it never loses coverage.
        next_start = end - overlap
        boundary = _last_space(text, max(start + 1, next_start - overlap), next_start)
        if boundary is not None:
            next_start = boundary + 1
        start = max(next_start, start + 1)


def guaranteed_chars(windows: int, *, size: int, overlap: int) -> int:
    """The longest text `split_windows` always cuts into at most `windows` windows.

    A window ends just after whitespace in its last quarter at the earliest (``size - size // 4 +
    1`` characters), and the next one starts ``overlap`` characters before that end, then back to
    a word boundary at most ``overlap - 1`` further, so every window but the last advances by at
    least ``size - size // 4 + 1 - overlap - max(0, overlap - 1)``.
    """
    if windows < 1:
        return 0
    advance = max(1, size - size // 4 + 1 - overlap - max(0, overlap - 1))
    return size + (windows - 1) * advance


class FieldWindows:
    """How one field of a vendor's request takes long text: windows of at most `size` characters.

    The one windowing rule of the vendor guards (Trend's ``prompt``, Palo Alto's ``prompt`` and
    ``response``): text over the field's limit is cut by `split_windows` into windows overlapping by
    `overlap` characters, one request each, sent at most ``window_concurrency`` at a time by
    `RemoteGuard`, the verdicts combined (any Block blocks). Text needing more than `max_windows`
    windows is refused with `ContentTooLarge` before any request.

    Args:
        size: the field's limit, in characters.
        overlap: characters shared by consecutive windows (at most a quarter of `size`).
        max_windows: the most windows of one field one check sends (the configurable cap).
        field: the field's name, for error messages.
    """

    __slots__ = ("field", "max_chars", "max_windows", "overlap", "size")

    def __init__(self, size: int, overlap: int, max_windows: int, *, field: str = "text") -> None:
        if size < 1 or not 0 <= overlap <= size // 4:
            raise ValueError("window size must be >= 1 and overlap between 0 and a quarter of it")
        if max_windows < 1:
            raise ValueError("max_windows must be at least 1")
        self.size = size
        self.overlap = overlap
        self.max_windows = max_windows
        self.field = field
        #: The longest text always cut into at most `max_windows` windows (read on every check).
        self.max_chars = guaranteed_chars(max_windows, size=size, overlap=overlap)

    def split(self, text: str, *, guard: str) -> list[str]:
        """The windows of `text` (one window when it fits the field).

        Raises:
            ContentTooLarge: more than `max_windows` windows; the message names the limits.
        """
        if len(text) <= self.size:
            return [text]
        windows = split_windows(text, size=self.size, overlap=self.overlap)
        if len(windows) > self.max_windows:
            raise ContentTooLarge(
                f"{guard} guard: the {self.field} needs {len(windows)} windows of {self.size} "
                f"characters, more than max_windows={self.max_windows}",
                limit=self.max_chars,
            )
        return windows

    def __repr__(self) -> str:
        return f"FieldWindows(size={self.size}, overlap={self.overlap}, max_windows={self.max_windows})"


def text_chars(content: Content) -> int:
    """Characters of every string of `content` together (what the size limits count)."""
    if (
        content.messages is None
        and content.completion is None
        and content.text is not None
        and content.tool is None
    ):
        return len(content.text)
    return sum(len(text) for text in content.iter_texts())


def check_text_size(content: Content, limit: int, *, guard: str) -> None:
    """Refuse content longer than `limit` characters, before any request.

    Raises:
        ContentTooLarge: the message names the limit, never the text.
    """
    size = text_chars(content)
    if size > limit:
        raise ContentTooLarge(
            f"{guard} guard: the content is {size} characters, more than the {limit} one check takes",
            limit=limit,
        )


def check_body_size(body: bytes, limit: int, *, guard: str) -> bytes:
    """Refuse a request body over the service's documented limit, before sending it.

    Raises:
        ContentTooLarge: the body is over `limit` bytes (the limit is in bytes here).
    """
    if len(body) > limit:
        raise ContentTooLarge(
            f"{guard} guard: a request of {len(body)} bytes is more than the {limit} bytes the service accepts",
            limit=limit,
        )
    return body


def _last_space(text: str, lo: int, hi: int) -> int | None:
    """Index of the last whitespace character in ``text[lo:hi]``, or None."""
    for index in range(hi - 1, lo - 1, -1):
        if text[index].isspace():
            return index
    return None


# One encoder for every request: json.dumps with options builds a new JSONEncoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_json(body: Any, *, guard: str) -> bytes:
    """Serialize a request body as compact UTF-8 JSON.

    Raises:
        ExtractionError: the content holds something JSON cannot represent.
    """
    try:
        return _ENCODER.encode(body).encode()
    except (TypeError, ValueError) as exc:
        raise ExtractionError(
            f"{guard} guard cannot send this content: it is not JSON-serializable ({type(exc).__name__})"
        ) from exc


# The C string encoder `_ENCODER` uses for every str (ensure_ascii=False): the JSON string literal.
_encode_string = json.encoder.encode_basestring


def encode_json_string(text: str, *, guard: str) -> bytes:
    """`text` as a JSON string literal in UTF-8: the bytes `encode_json` writes for it in a body.

    A guard whose body is a fixed frame around one string (``{"prompt": <text>}``) writes the
    frame once and this per check, instead of encoding the whole object again.

    Raises:
        ExtractionError: the text cannot be sent (a lone surrogate is not UTF-8), as `encode_json`.
    """
    try:
        return _encode_string(text).encode()
    except UnicodeEncodeError as exc:
        raise ExtractionError(
            f"{guard} guard cannot send this content: it is not JSON-serializable ({type(exc).__name__})"
        ) from exc


# The scanner `json.loads` runs (the default decoder's, in C where there is one).
_scan_once: Callable[[str, int], tuple[Any, int]] = json.decoder.JSONDecoder().scan_once  # type: ignore[attr-defined]


def decode_json_object(response: GuardResponse, *, guard: str) -> dict[str, Any]:
    """The JSON object of a 2xx response.

    Raises:
        GuardResponseError: (transient) an empty body, malformed JSON, or JSON that is not an object.
    """
    status = response.status_code
    content = response.content
    try:
        if content[:1] == b"{" and content[1:2] != b"\x00":
            # UTF-8, as `json.loads` would detect it (an object starts with "{" in any other
            # encoding it knows only with a BOM or a zero byte): decoded the same way, undetected.
            text = content.decode("utf-8", "surrogatepass")
            try:
                # What `json.loads` does for text with no whitespace around the value, without
                # its two whitespace matches: the decoder's own scanner, from the first character.
                payload, end = _scan_once(text, 0)
            except StopIteration:
                end = -1
            if end != len(text):  # malformed, or whitespace or more after the value: the full rules
                payload = json.loads(text)
        elif not content.strip():
            raise GuardResponseError(f"{guard} guard answered an empty body", guard=guard, status_code=status)
        else:
            payload = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        # Not chained: the decoder's exception holds the whole body, which may quote the prompt.
        raise GuardResponseError(
            f"{guard} guard answered malformed JSON", guard=guard, status_code=status
        ) from None
    if not isinstance(payload, dict):
        raise GuardResponseError(
            f"{guard} guard answered JSON that is not an object", guard=guard, status_code=status
        )
    return payload


# The fields `parsed_verdict` fills; every field in declaration order (the order validation
# leaves them in, which reprs and dumps follow), the others with their plain defaults.
_GIVEN = frozenset({"action", "reasons", "id", "guard", "raw", "categories", "masked_data"})
_fields = {
    name: None if name in _GIVEN else field.default
    for name, field in Verdict.model_fields.items()
    if name in _GIVEN or field.default_factory is None
}
# pydantic's per-instance slots besides the fields' ``__dict__``, set through their descriptors
# (a fraction of what ``object.__setattr__`` costs, which looks each one up again).
_SLOTS = ("__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
_slots = [getattr(vars(BaseModel).get(name), "__set__", None) for name in _SLOTS]
# A Verdict this does not know (a field with a factory, one more or less; other slots): validate.
_known = (
    set(Verdict.model_fields) == set(_fields)
    and set(_fields) >= _GIVEN
    and tuple(BaseModel.__slots__) == ("__dict__", *_SLOTS)
    and all(type(vars(BaseModel)[name]).__name__ == "member_descriptor" for name in _SLOTS)
)
_TEMPLATE: dict[str, Any] | None = _fields if _known else None
_set_fields_set, _set_extra, _set_private = _slots


def parsed_verdict(
    *,
    action: Action,
    reasons: list[str],
    id: str | None,
    guard: str,
    raw: dict[str, Any],
    categories: frozenset[Category],
    masked_data: dict[str, Any] | None = None,
) -> Verdict:
    """A `Verdict` of values a guard's parser has just checked, built without pydantic's validation.

    Validation would check again what the parser and the types here already hold (an `Action`, a
    fresh list of ``str``, a JSON object's ``dict`` with ``str`` keys no one else holds, categories
    from `CATEGORIES`) and copy `raw` and `reasons`, at twice the cost of the rest of the parse.
    The instance is what validation leaves: the same field values, the same fields set (these
    arguments; `masked_data` only when not None), frozen. `Verdict.model_construct` would keep the
    same invariants but costs more than validating. Should `Verdict` gain a field this does not
    know, it validates instead.
    """
    fields: dict[str, Any] = {
        "action": action,
        "reasons": reasons,
        "id": id,
        "guard": guard,
        "raw": raw,
        "categories": categories,
    }
    if masked_data is not None:
        fields["masked_data"] = masked_data
    template = _TEMPLATE
    if template is None:
        return Verdict(**fields)
    verdict = _new(Verdict)
    state = verdict.__dict__  # a fresh instance's empty dict: the fields in declaration order
    state.update(template)
    state.update(fields)
    _set_fields_set(verdict, set(fields))  # type: ignore[misc]
    _set_extra(verdict, None)  # type: ignore[misc]
    _set_private(verdict, None)  # type: ignore[misc]
    return verdict


_new = object.__new__
