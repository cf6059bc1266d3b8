"""Cutting a stream of text into overlapping windows: one rule for every shell.

The decorator's generators, both middlewares' event streams and the OpenAI transport's streams
hold text back until a window of it is checked. Each window starts with the last ``overlap``
characters of the window before, so a phrase cut by a window boundary is still seen whole.

Windows grow: the first is ``first`` characters, each next one twice the last, up to ``size``.
A short answer goes out after one small, fast check; a long one costs few checks (about
``log2(size / first)`` small windows, then one per ``size`` characters).
"""

from __future__ import annotations

__all__ = ["TextWindows"]


class TextWindows:
    """Collects text and cuts it into windows of up to ``size`` characters.

    Args:
        size: the most characters of new text per window (`add` says when they have come).
        overlap: characters of the previous windows repeated at the start of the next.
        first: characters of new text in the first window (default ``size``); each later
            window doubles it, up to ``size``.

    Attributes:
        checked: how many windows were cut.
    """

    __slots__ = ("_length", "_pending", "_tail", "checked", "current", "overlap", "size")

    def __init__(self, size: int, overlap: int, *, first: int | None = None) -> None:
        if size < 1 or not overlap >= 0 or (first is not None and first < 1):
            raise ValueError("a window needs a positive size and an overlap of 0 or more")
        self.size = size
        self.overlap = overlap
        #: The size of the next window.
        self.current = size if first is None else min(first, size)
        self.checked = 0
        self._pending: list[str] = []
        self._length = 0
        self._tail = ""

    @property
    def pending(self) -> int:
        """Characters of new text not yet in a window."""
        return self._length

    def add(self, text: str) -> bool:
        """Take more text; True once a window's worth has come (then `cut` it)."""
        if text:
            self._pending.append(text)
            self._length += len(text)
        return self._length >= self.current

    def cut(self) -> str:
        """The next window: the previous windows' tail, then all new text ("" if none came).

        Also what an idle flush calls, before a window's worth has come.
        """
        if not self._length:
            return ""
        text = self._tail + "".join(self._pending)
        self._tail = text[-self.overlap :] if self.overlap else ""
        self._pending.clear()
        self._length = 0
        self.checked += 1
        self.current = min(self.current * 2, self.size)
        return text
