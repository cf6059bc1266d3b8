"""What the vendor guards share: key resolution, base-URL checks, text windows, JSON decoding.

Everything here is pure; the guards build requests and parse responses with it, and
`KeyedRemoteGuard` keeps their credential out of every exception message.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from .._client import RemoteGuard
from .._exceptions import ExtractionError, GuardError, GuardResponseError
from .._models import Content, Verdict

__all__ = [
    "KeyedRemoteGuard",
    "check_base_url",
    "decode_json_object",
    "encode_json",
    "region_url",
    "resolve_api_key",
    "split_windows",
    "window_spans",
]

_MAX_KEY_LENGTH = 4096
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
_REDACTED = "[redacted]"
# A truncated message may end with the start of the key: redact such a tail from this many chars.
_MIN_KEY_FRAGMENT = 4


def resolve_api_key(api_key: str | SecretStr | None, *, env_var: str, guard: str) -> SecretStr:
    """The key to send, from the argument or else from the environment, as a `SecretStr`.

    Raises:
        ValueError: no key anywhere, or a key that cannot travel in an HTTP header. The message
            never contains the key.
    """
    if isinstance(api_key, SecretStr):
        value = api_key.get_secret_value()
    elif api_key is not None:
        value = api_key
    else:
        value = os.environ.get(env_var, "")
    # Keys pasted into env files often carry a trailing newline.
    value = value.strip()
    if not value:
        raise ValueError(
            f"{guard} guard needs an API key: pass api_key= or set the {env_var} environment variable"
        )
    if len(value) > _MAX_KEY_LENGTH or not all("\x21" <= char <= "\x7e" for char in value):
        raise ValueError(
            f"{guard} guard API key is not a valid HTTP header value "
            "(printable ASCII without spaces expected; the key itself is not shown)"
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
        ValueError: the URL is not acceptable.
    """
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{guard} guard base_url is not a valid URL") from exc
    if url.userinfo:
        # Checked first, so that the messages below may quote the URL.
        raise ValueError(f"{guard} guard base_url must not contain user info: pass the key as api_key")
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{guard} guard base_url must be an absolute https URL, not {base_url!r}")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ValueError(
            f"{guard} guard base_url must use https (http is allowed for loopback hosts only), not {base_url!r}"
        )
    if url.query or url.fragment:
        raise ValueError(f"{guard} guard base_url must not have a query or a fragment")
    return str(url).rstrip("/")


def region_url(region: str, table: Mapping[str, str], *, guard: str) -> str:
    """The base URL of `region` in `table` (case-insensitive).

    Raises:
        ValueError: unknown region; the message lists the valid ones.
    """
    url = table.get(region.strip().lower()) if isinstance(region, str) else None
    if url is None:
        valid = ", ".join(table)
        raise ValueError(f"unknown {guard} region {region!r}: expected one of {valid}")
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


def _last_space(text: str, lo: int, hi: int) -> int | None:
    """Index of the last whitespace character in ``text[lo:hi]``, or None."""
    for index in range(hi - 1, lo - 1, -1):
        if text[index].isspace():
            return index
    return None


def encode_json(body: Any, *, guard: str) -> bytes:
    """Serialize a request body as compact UTF-8 JSON.

    Raises:
        ExtractionError: the content holds something JSON cannot represent.
    """
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ExtractionError(
            f"{guard} guard cannot send this content: it is not JSON-serializable ({type(exc).__name__})"
        ) from exc


def decode_json_object(response: httpx.Response, *, guard: str) -> dict[str, Any]:
    """The JSON object of a 2xx response.

    Raises:
        GuardResponseError: (transient) an empty body, malformed JSON, or JSON that is not an object.
    """
    status = response.status_code
    if not response.content.strip():
        raise GuardResponseError(f"{guard} guard answered an empty body", guard=guard, status_code=status)
    try:
        payload = json.loads(response.content)
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


def _redact(message: str, secret: str) -> str:
    if secret in message:
        message = message.replace(secret, _REDACTED)
    # Service messages are truncated: the start of the key may be the end of the message.
    for length in range(min(len(secret) - 1, len(message)), _MIN_KEY_FRAGMENT - 1, -1):
        if message.endswith(secret[:length]):
            return message[:-length] + _REDACTED
    return message


def _scrub(error: BaseException, secret: str) -> None:
    """Redact `secret` from the messages of `error` and of the errors it was raised from."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, GuardError):
            current.args = tuple(
                _redact(arg, secret) if isinstance(arg, str) else arg for arg in current.args
            )
        current = current.__cause__ or current.__context__


class KeyedRemoteGuard(RemoteGuard):
    """A `RemoteGuard` holding an API key, which no exception message it raises may contain.

    A service may echo the credential in an error body (``"invalid token abc..."``), and error
    messages quote the service: every `GuardError` leaving `check`/`acheck` is scrubbed.
    """

    _api_key: SecretStr

    def check(self, content: Content | str) -> Verdict:
        """Check `content`, blocking; returns a Verdict or raises a `GuardError`."""
        try:
            return super().check(content)
        except GuardError as exc:
            _scrub(exc, self._api_key.get_secret_value())
            raise

    async def acheck(self, content: Content | str) -> Verdict:
        """Check `content` without blocking the event loop; windows are checked concurrently."""
        try:
            return await super().acheck(content)
        except GuardError as exc:
            _scrub(exc, self._api_key.get_secret_value())
            raise
