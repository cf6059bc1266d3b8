"""How a stream is cut into windows: the options every shell takes (``stream_*``).

Apart from `guardrails._stream` so that a shell can read its options at construction without
importing the scanner's drivers (asyncio, threads) until a stream is scanned.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._windows import TextWindows

__all__ = ["CHECK_CONCURRENCY", "DEFAULT_OPTIONS", "StreamOptions"]

_DEFAULT_OVERLAP = 100
#: Checks of successive windows of one stream run at once at most (remote guards).
CHECK_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How a stream is cut into windows to check.

    Attributes:
        window: the most characters of new text per check.
        first_window: characters of the first check (at most ``window``); each next window
            doubles, up to ``window``. Small: the first bytes go out after one fast check.
        overlap: characters of the previous window checked again at the start of the next.
        idle_flush: seconds of quiet after which held text is checked and released without
            waiting for a window's worth (None: never; only where the shell can wait with a
            timeout, see the module docstring).
    """

    window: int = 1000
    first_window: int = 48
    overlap: int = _DEFAULT_OVERLAP
    idle_flush: float | None = 0.05

    def __post_init__(self) -> None:
        for name in ("window", "first_window", "overlap"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (0 if name == "overlap" else 1)
            ):
                raise ValueError(
                    f"stream_{name} must be {'an int, 0 or more' if name == 'overlap' else 'a positive int'}, not {value!r}"
                )
        idle = self.idle_flush
        if idle is not None and (
            isinstance(idle, bool) or not isinstance(idle, (int, float)) or not idle >= 0
        ):
            raise ValueError(f"stream_idle_flush must be seconds (0 or more) or None, not {idle!r}")

    @classmethod
    def of(
        cls,
        *,
        stream_window: int = 1000,
        stream_first_window: int = 48,
        stream_overlap: int | None = None,
        stream_idle_flush: float | None = 0.05,
    ) -> StreamOptions:
        """The options from a shell's keyword arguments (``stream_overlap`` None: 100).

        Raises:
            ValueError: an option out of range.
        """
        if stream_overlap is None:
            stream_overlap = _DEFAULT_OVERLAP
        return cls(stream_window, stream_first_window, stream_overlap, stream_idle_flush)

    def windows(self) -> TextWindows:
        """A new `TextWindows` cutting text by these options."""
        return TextWindows(self.window, self.overlap, first=self.first_window)


#: The options every shell uses unless told otherwise.
DEFAULT_OPTIONS = StreamOptions()
