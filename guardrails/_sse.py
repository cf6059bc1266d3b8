"""Server-sent event streams checked window by window as they stream (every shell's reader).

`SSEScanner` holds complete events back until the text they add fills a window (one
`TextWindows` rule for every shell), then hands them out as an `SSEWindow` to check and release;
``sse_error_event(reply)`` is the event sent in place of the rest of the stream on Block. It is a
scanner in the sense of `guardrails._stream` (``feed``, ``flush``, ``finish``, ``holding``): the
drivers there check its windows and release them, with an idle flush.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ._replies import Reply
from ._shapes import StreamText
from ._windows import TextWindows

__all__ = ["SSEScanner", "SSEWindow", "sse_error_event"]

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass(frozen=True, slots=True)
class SSEWindow:
    """A run of complete events, held back until ``text`` is checked.

    Attributes:
        text: the text to check (the overlap with the previous window first); may be empty.
        data: the events' bytes, to send once the text is allowed.
    """

    text: str
    data: bytes


class SSEScanner:
    """Cuts a server-sent-event stream into windows of text to check as it streams.

    Complete events are held back until their text reaches ``window_chars`` (or their bytes
    ``max_window_bytes``); then `feed` returns them as an `SSEWindow`. Each window's text starts
    with the last ``overlap`` characters of the previous one, so a phrase cut by a window boundary is
    still seen whole. The text of an event is read by a `StreamText` (one per stream): from OpenAI
    chat-completion chunks the deltas, from Responses streams each item's text once, from other
    JSON its strings, from other data the data itself.

    Args:
        window_chars: characters of text per window.
        overlap: characters of the previous window repeated at the start of the next.
        max_window_bytes: bytes of events held back at most, text or not.
        event_text: what text one event (its raw bytes) adds, if not a new `StreamText`.
        first_window: characters of the first window (default ``window_chars``); each next
            window doubles it, up to ``window_chars``.
    """

    __slots__ = ("_event_text", "_held", "_partial", "_windows", "max_window_bytes")

    def __init__(
        self,
        *,
        window_chars: int = 1000,
        overlap: int = 100,
        max_window_bytes: int = 65536,
        event_text: Callable[[bytes], str] | None = None,
        first_window: int | None = None,
    ) -> None:
        if window_chars < 1 or overlap < 0 or max_window_bytes < 1:
            raise ValueError("window_chars and max_window_bytes must be positive, overlap not negative")
        self._event_text = event_text or StreamText()
        self._windows = TextWindows(window_chars, overlap, first=first_window)
        self.max_window_bytes = max_window_bytes
        self._partial = bytearray()
        self._held = bytearray()

    @property
    def window_chars(self) -> int:
        return self._windows.size

    @property
    def overlap(self) -> int:
        return self._windows.overlap

    @property
    def holding(self) -> bool:
        """Whether complete events are held back (an incomplete one is not released by `flush`)."""
        return bool(self._held)

    def _cut(self) -> SSEWindow:
        window = SSEWindow(self._windows.cut(), bytes(self._held))
        self._held.clear()
        return window

    def feed(self, chunk: bytes) -> list[SSEWindow]:
        """Take the next piece of the stream; return the windows now complete (often none)."""
        if self._partial:
            self._partial += chunk
            data = bytes(self._partial)
            self._partial.clear()
        else:
            # The usual case: the chunk starts with an event (no copy of what it holds).
            data = chunk if type(chunk) is bytes else bytes(chunk)
        windows: list[SSEWindow] = []
        held = self._held
        add = self._windows.add
        text_of = self._event_text
        start = 0
        for end in _EVENT_END.finditer(data):
            stop = end.end()
            event = data[start:stop]
            start = stop
            held += event
            if add(text_of(event)) or len(held) >= self.max_window_bytes:
                windows.append(self._cut())
        if start < len(data):
            self._partial += data[start:]
        return windows

    def flush(self) -> SSEWindow | None:
        """The stream is idle: the complete events held, as a window now (None if none)."""
        return self._cut() if self._held else None

    def finish(self) -> SSEWindow | None:
        """The stream ended: everything still held, the last incomplete event included."""
        if self._partial:
            event = bytes(self._partial)
            self._partial.clear()
            self._held += event
            self._windows.add(self._event_text(event))
        if not self._held:
            return None
        return self._cut()


def sse_error_event(reply: Reply) -> bytes:
    """The ``error`` event that ends a stream in place of a blocked window (OpenAI SDKs raise it)."""
    return b"event: error\ndata: " + reply.body + b"\n\n"
