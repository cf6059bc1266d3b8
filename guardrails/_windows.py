"""Cutting a stream of text into overlapping windows: one rule for every shell.

The decorator's generators, both middlewares' event streams and the OpenAI transport's streams
hold text back until a window of it is checked. Each window starts with the last ``overlap``
characters of the window before, so a phrase cut by a window boundary is still seen whole.
"""

from __future__ import annotations

__all__ = ["TextWindows"]


class TextWindows:
    """Collects text and cuts it into windows of about ``size`` characters.

    Args:
        size: characters of new text per window (`add` says when they have come).
        overlap: characters of the previous window repeated at the start of the next.

    Attributes:
        checked: how many windows were cut.
    """

    __slots__ = ("_length", "_pending", "_tail", "checked", "overlap", "size")

    def __init__(self, size: int, overlap: int) -> None:
        if size < 1 or not overlap >= 0:
            raise ValueError("a window needs a positive size and an overlap of 0 or more")
        self.size = size
        self.overlap = overlap
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
        return self._length >= self.size

    def cut(self) -> str:
        """The next window: the previous window's tail, then all new text ("" if none came)."""
        if not self._length:
            return ""
        text = self._tail + "".join(self._pending)
        self._tail = text[-self.overlap :] if self.overlap else ""
        self._pending.clear()
        self._length = 0
        self.checked += 1
        return text
