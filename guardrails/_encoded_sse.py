"""Event streams under a Content-Encoding, checked as they stream while their bytes pass unchanged.

Django's GZipMiddleware compresses ``text/event-stream`` responses (and Starlette's can be told
to); the client decodes them. `EncodedSSEScanner` undoes the encoding incrementally for checking
only: the client gets the app's compressed bytes, byte for byte.

The rule that keeps unchecked text from the client: a chunk of compressed bytes is released only
once everything it decodes to has been checked. Each raw chunk is queued with the decoded offset
its decoding reaches (zlib gives out everything a prefix of the stream decodes to, as the client's
decoder will); the decoded events are cut into windows by an `SSEScanner`; a window, once allowed,
releases the raw chunks whose decoded offset it covers. A chunk whose decoding ends inside an
event waits for the window that holds the rest of that event.

On Block (or an undecodable stream) the response ends there: an SSE ``error`` event cannot be
appended to a compressed stream in plain text, so the client sees the stream stop (a truncated
gzip stream). Decoding is capped (a decompression bomb raises `BodyTooLarge`); ``br``, ``zstd``
and unknown encodings cannot be decoded here (`UnsupportedEncoding`: the shells refuse them).
"""

from __future__ import annotations

import zlib
from collections import deque

from ._body import BodyTooLarge, InvalidBody, UnsupportedEncoding
from ._replies import Reply
from ._sse import SSEScanner, SSEWindow, sse_error_event

__all__ = ["EncodedSSEScanner", "StreamDecoder", "event_stream_scanner", "stream_error_event"]

_GZIP_WBITS = zlib.MAX_WBITS | 16


def _is_identity(content_encoding: str | None) -> bool:
    return all(coding.strip().lower() in ("", "identity") for coding in (content_encoding or "").split(","))


class _Inflater:
    """One gzip or deflate layer, decoded incrementally (gzip members back to back included)."""

    __slots__ = ("_decompressor", "_gzip", "_head")

    def __init__(self, *, gzip: bool) -> None:
        self._gzip = gzip
        self._head = b""
        self._decompressor = zlib.decompressobj(_GZIP_WBITS) if gzip else None

    def feed(self, data: bytes, room: int) -> bytes:
        """Decode the next bytes; at most ``room`` bytes of output, else `BodyTooLarge`."""
        if self._decompressor is None:
            # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate: the first
            # two bytes tell (a zlib header is CM=8 and a multiple of 31).
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            zlib_header = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._decompressor = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        decompressor = self._decompressor
        out = bytearray()
        pending = data
        try:
            while pending:
                if decompressor.eof:
                    if not self._gzip:
                        raise InvalidBody("trailing data after the compressed response", code="bad_encoding")
                    # gzip allows several members back to back (Django's async GZip sends one per chunk).
                    decompressor = self._decompressor = zlib.decompressobj(_GZIP_WBITS)
                # max_length bounds each step, so a bomb never expands past the cap in memory.
                out += decompressor.decompress(pending, room + 1 - len(out))
                if len(out) > room:
                    raise BodyTooLarge("the decoded event stream is larger than the scanning cap")
                pending = decompressor.unused_data if decompressor.eof else decompressor.unconsumed_tail
        except zlib.error:
            raise InvalidBody(
                "the event stream is not valid for its Content-Encoding", code="bad_encoding"
            ) from None
        return bytes(out)


class StreamDecoder:
    """Undoes a response's Content-Encoding (gzip, x-gzip, deflate, identity; stacked) incrementally.

    Args:
        content_encoding: the Content-Encoding header.
        max_size: the most decoded bytes, over the whole stream.

    Raises:
        UnsupportedEncoding: an encoding other than those (``br``, ``zstd``...).
    """

    __slots__ = ("_layers", "decoded", "max_size")

    def __init__(self, content_encoding: str, *, max_size: int) -> None:
        self.max_size = max_size
        self.decoded = 0
        self._layers: list[_Inflater] = []
        # Codings are listed in the order they were applied: undo them last first.
        for coding in reversed([coding.strip().lower() for coding in content_encoding.split(",")]):
            if coding in ("", "identity"):
                continue
            if coding in ("gzip", "x-gzip", "deflate"):
                self._layers.append(_Inflater(gzip=coding != "deflate"))
            else:
                raise UnsupportedEncoding("the event stream's Content-Encoding cannot be decoded")

    def feed(self, data: bytes) -> bytes:
        """The bytes the next raw chunk decodes to (all of them: what the client can decode too).

        Raises:
            BodyTooLarge: the stream decodes to more than ``max_size`` bytes.
            InvalidBody: the bytes are not valid for the encoding.
        """
        room = self.max_size - self.decoded
        for layer in self._layers:
            data = layer.feed(data, room)
        self.decoded += len(data)
        return data


class EncodedSSEScanner:
    """`SSEScanner` for an encoded stream: windows of decoded text, releasing raw bytes.

    Same use as `SSEScanner`: ``feed(raw)`` returns windows whose ``text`` is to be checked and
    whose ``data`` (raw, still encoded bytes) is sent once it is allowed, in order; ``finish()``
    the last one. A window may carry no text: raw bytes that decode to nothing unchecked (the gzip
    header, the trailer) go out with no check.

    Args:
        content_encoding: the response's Content-Encoding.
        window_chars: characters of text per window.
        max_decoded_size: the most bytes the stream may decode to (a bomb is refused).
    """

    __slots__ = ("_checked", "_decoder", "_raw", "_scanner")

    def __init__(self, content_encoding: str, *, window_chars: int, max_decoded_size: int) -> None:
        self._decoder = StreamDecoder(content_encoding, max_size=max_decoded_size)
        self._scanner = SSEScanner(window_chars=window_chars)
        # Raw chunks not yet released, each with the decoded offset its decoding reaches.
        self._raw: deque[tuple[bytes, int]] = deque()
        # Decoded bytes handed out in windows so far (each is checked before the next is used).
        self._checked = 0

    def _releasable(self) -> bytes:
        out = bytearray()
        while self._raw and self._raw[0][1] <= self._checked:
            out += self._raw.popleft()[0]
        return bytes(out)

    def feed(self, chunk: bytes) -> list[SSEWindow]:
        """Take the next raw chunk; return the windows now complete (with what they release).

        Raises:
            BodyError: the stream cannot be decoded (invalid, or over the cap).
        """
        decoded = self._decoder.feed(chunk)
        self._raw.append((chunk, self._decoder.decoded))
        windows: list[SSEWindow] = []
        for window in self._scanner.feed(decoded):
            self._checked += len(window.data)
            windows.append(SSEWindow(window.text, self._releasable()))
        if not windows:
            data = self._releasable()
            if data:
                windows.append(SSEWindow("", data))
        return windows

    def finish(self) -> SSEWindow | None:
        """The stream ended: the last events' text, releasing every raw byte still held."""
        last = self._scanner.finish()
        self._checked = self._decoder.decoded
        data = self._releasable()
        if last is None and not data:
            return None
        return SSEWindow(last.text if last is not None else "", data)


def event_stream_scanner(
    content_encoding: str | None, *, window_chars: int, max_decoded_size: int
) -> SSEScanner | EncodedSSEScanner:
    """The scanner for an event stream with this Content-Encoding.

    Raises:
        UnsupportedEncoding: an encoding that cannot be decoded here.
    """
    if _is_identity(content_encoding):
        return SSEScanner(window_chars=window_chars)
    assert content_encoding is not None
    return EncodedSSEScanner(content_encoding, window_chars=window_chars, max_decoded_size=max_decoded_size)


def stream_error_event(scanner: SSEScanner | EncodedSSEScanner, reply: Reply) -> bytes:
    """What ends a stream cut short: the SSE ``error`` event, or nothing on an encoded stream."""
    if isinstance(scanner, EncodedSSEScanner):
        return b""
    return sse_error_event(reply)
