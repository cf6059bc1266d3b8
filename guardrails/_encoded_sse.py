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

On Block the stream ends with the SSE ``error`` event, encoded to continue the stream validly,
when the bytes released so far end at a point where that can be done: after a sync flush
(Starlette's GZipMiddleware flushes every chunk) a last stored block and the trailer, after a
whole gzip member a new member. Elsewhere (a compressor that does not flush, such as Django's
GZipMiddleware; stacked encodings) nothing can be appended in the middle of a compressed block,
so the stream just stops there (a truncated gzip stream), as it does on an undecodable one.
Decoding is capped (a decompression bomb raises `BodyTooLarge`); ``br``, ``zstd``
and unknown encodings cannot be decoded here (`UnsupportedEncoding`: the shells refuse them).
"""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass

from ._body import BodyTooLarge, InvalidBody, UnsupportedEncoding
from ._replies import Reply
from ._sse import SSEScanner, SSEWindow, sse_error_event

__all__ = [
    "EncodedSSEScanner",
    "EncodedWindow",
    "StreamDecoder",
    "event_stream_scanner",
    "stream_error_event",
]

_GZIP_WBITS = zlib.MAX_WBITS | 16
# A decoder's state (checksum, size, at a member's end), or None when it cannot end a stream.
_State = tuple[int, int, bool] | None


def _is_identity(content_encoding: str | None) -> bool:
    return all(coding.strip().lower() in ("", "identity") for coding in (content_encoding or "").split(","))


# An empty stored block, what a Z_SYNC_FLUSH ends with: the stream is byte-aligned after it.
_SYNC_MARK = b"\x00\x00\xff\xff"


class _Inflater:
    """One gzip or deflate layer, decoded incrementally (gzip members back to back included).

    Keeps the checksum of what it decoded (CRC-32 and size of the current gzip member; Adler-32
    of a zlib stream), so that a stream cut short can be ended validly (`ending`).
    """

    __slots__ = ("_decompressor", "_gzip", "_head", "_wrapped", "checksum", "size")

    def __init__(self, *, gzip: bool) -> None:
        self._gzip = gzip
        self._head = b""
        self._wrapped = gzip
        self._decompressor = zlib.decompressobj(_GZIP_WBITS) if gzip else None
        self.checksum = 0 if gzip else 1  # CRC-32 and Adler-32 start values
        self.size = 0

    @property
    def at_end(self) -> bool:
        """Whether the stream (the gzip member) ended exactly where the input did."""
        return self._decompressor is not None and self._decompressor.eof

    def feed(self, data: bytes, room: int) -> bytes:
        """Decode the next bytes; at most ``room`` bytes of output, else `BodyTooLarge`."""
        if self._decompressor is None:
            # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate: the first
            # two bytes tell (a zlib header is CM=8 and a multiple of 31).
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            self._wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._decompressor = zlib.decompressobj(zlib.MAX_WBITS if self._wrapped else -zlib.MAX_WBITS)
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
                    self.checksum, self.size = 0, 0
                # max_length bounds each step, so a bomb never expands past the cap in memory.
                step = decompressor.decompress(pending, room + 1 - len(out))
                out += step
                if len(out) > room:
                    raise BodyTooLarge("the decoded event stream is larger than the scanning cap")
                self._count(step)
                pending = decompressor.unused_data if decompressor.eof else decompressor.unconsumed_tail
        except zlib.error:
            raise InvalidBody(
                "the event stream is not valid for its Content-Encoding", code="bad_encoding"
            ) from None
        return bytes(out)

    def _count(self, data: bytes) -> None:
        if self._gzip:
            self.checksum = zlib.crc32(data, self.checksum)
        elif self._wrapped:
            self.checksum = zlib.adler32(data, self.checksum)
        self.size += len(data)

    def state(self) -> tuple[int, int, bool]:
        """What `ending` needs to know about the stream as decoded so far."""
        return self.checksum, self.size, self.at_end

    def ending(self, data: bytes, state: tuple[int, int, bool], sync_point: bool) -> bytes:
        """Bytes that end the stream, decoded so far to ``state``, validly with ``data`` appended.

        Possible after a sync flush (the stream is then byte-aligned: a last stored block and
        the trailer follow) and, for gzip, after a whole member (a new member follows); else
        b"" (the stream just stops).
        """
        checksum, size, at_end = state
        if at_end:
            return gzip_member(data) if self._gzip else b""
        if not sync_point or self._decompressor is None or len(data) > 0xFFFF:
            return b""
        # A final stored block: BFINAL=1, BTYPE=00, then LEN and its complement, little-endian.
        block = b"\x01" + len(data).to_bytes(2, "little") + (len(data) ^ 0xFFFF).to_bytes(2, "little") + data
        if self._gzip:
            crc = zlib.crc32(data, checksum)
            return block + crc.to_bytes(4, "little") + ((size + len(data)) & 0xFFFFFFFF).to_bytes(4, "little")
        if self._wrapped:
            return block + zlib.adler32(data, checksum).to_bytes(4, "big")
        return block


def gzip_member(data: bytes) -> bytes:
    """A whole gzip member holding ``data`` (no name, no time: the same bytes every time)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, _GZIP_WBITS)
    return compressor.compress(data) + compressor.flush()


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

    def state(self) -> _State:
        """A snapshot for `ending` (None for stacked encodings: those are not ended validly)."""
        return self._layers[0].state() if len(self._layers) == 1 else None

    def ending(self, data: bytes, state: _State, tail: bytes) -> bytes:
        """Encoded bytes ending the stream with ``data``, after a raw prefix ending in ``tail`` and
        decoded to ``state``; b"" when that cannot be done validly (see `_Inflater.ending`)."""
        if state is None:
            return b""
        _, size, _ = state
        sync_point = tail.endswith(_SYNC_MARK) and size > 0
        return self._layers[0].ending(data, state, sync_point)


@dataclass(frozen=True, slots=True)
class EncodedWindow(SSEWindow):
    """An `SSEWindow` of an encoded stream; knows where the raw stream stood before its data.

    Attributes:
        state_before: the decoder's state after the raw bytes released before this window.
        tail_before: the last bytes released before this window (a sync flush ends in a mark).
    """

    state_before: _State = None
    tail_before: bytes = b""


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
        overlap: characters of the previous window repeated at the start of the next.
        first_window: characters of the first window (default ``window_chars``), doubling after.
    """

    __slots__ = ("_checked", "_decoder", "_raw", "_released", "_scanner", "_tail")

    def __init__(
        self,
        content_encoding: str,
        *,
        window_chars: int,
        max_decoded_size: int,
        overlap: int = 100,
        first_window: int | None = None,
    ) -> None:
        self._decoder = StreamDecoder(content_encoding, max_size=max_decoded_size)
        self._scanner = SSEScanner(window_chars=window_chars, overlap=overlap, first_window=first_window)
        # Raw chunks not yet released, each with the decoded offset its decoding reaches and the
        # decoder's state after it.
        self._raw: deque[tuple[bytes, int, _State]] = deque()
        # Decoded bytes handed out in windows so far (each is checked before the next is used).
        self._checked = 0
        # The decoder's state after the last raw byte released, and the last bytes released.
        self._released = self._decoder.state()
        self._tail = b""

    def _releasable(self) -> bytes:
        out = bytearray()
        while self._raw and self._raw[0][1] <= self._checked:
            chunk, _, self._released = self._raw.popleft()
            out += chunk
        if out:
            self._tail = (self._tail + out[-4:])[-4:]
        return bytes(out)

    def feed(self, chunk: bytes) -> list[SSEWindow]:
        """Take the next raw chunk; return the windows now complete (with what they release).

        Raises:
            BodyError: the stream cannot be decoded (invalid, or over the cap).
        """
        decoded = self._decoder.feed(chunk)
        self._raw.append((chunk, self._decoder.decoded, self._decoder.state()))
        windows: list[SSEWindow] = []
        for window in self._scanner.feed(decoded):
            self._checked += len(window.data)
            windows.append(self._window(window.text))
        if not windows and self._raw and self._raw[0][1] <= self._checked:
            windows.append(self._window(""))
        return windows

    @property
    def holding(self) -> bool:
        """Whether raw bytes are held back (waiting for their text's check)."""
        return bool(self._raw)

    def flush(self) -> SSEWindow | None:
        """The stream is idle: the complete events decoded so far, releasing the raw bytes they
        cover (None if nothing can be released)."""
        held = self._scanner.flush()
        if held is not None:
            self._checked += len(held.data)
        if held is None and not (self._raw and self._raw[0][1] <= self._checked):
            return None
        return self._window(held.text if held is not None else "")

    def _window(self, text: str) -> EncodedWindow:
        state, tail = self._released, self._tail
        return EncodedWindow(text, self._releasable(), state, tail)

    def finish(self) -> SSEWindow | None:
        """The stream ended: the last events' text, releasing every raw byte still held."""
        last = self._scanner.finish()
        self._checked = self._decoder.decoded
        if last is None and not self._raw:
            return None
        return self._window(last.text if last is not None else "")

    def error_event(self, reply: Reply, blocked: SSEWindow) -> bytes:
        """Encoded bytes ending the stream with the SSE ``error`` event in place of the window
        ``blocked`` (and all after it), if that can be done validly (after a sync flush or a whole
        gzip member: see `_Inflater.ending`), else b"" (the stream stops there)."""
        if not isinstance(blocked, EncodedWindow):
            return b""
        return self._decoder.ending(sse_error_event(reply), blocked.state_before, blocked.tail_before)


def event_stream_scanner(
    content_encoding: str | None,
    *,
    window_chars: int,
    max_decoded_size: int,
    overlap: int = 100,
    first_window: int | None = None,
) -> SSEScanner | EncodedSSEScanner:
    """The scanner for an event stream with this Content-Encoding.

    Raises:
        UnsupportedEncoding: an encoding that cannot be decoded here.
    """
    if _is_identity(content_encoding):
        return SSEScanner(window_chars=window_chars, overlap=overlap, first_window=first_window)
    assert content_encoding is not None
    return EncodedSSEScanner(
        content_encoding,
        window_chars=window_chars,
        max_decoded_size=max_decoded_size,
        overlap=overlap,
        first_window=first_window,
    )


def stream_error_event(scanner: SSEScanner | EncodedSSEScanner, reply: Reply, blocked: SSEWindow) -> bytes:
    """What ends a stream cut short: the SSE ``error`` event (encoded like the stream, when that
    can be done validly; else nothing: an encoded stream then just stops)."""
    if isinstance(scanner, EncodedSSEScanner):
        return scanner.error_event(reply, blocked)
    return sse_error_event(reply)
