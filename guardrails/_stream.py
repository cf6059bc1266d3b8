"""Streams checked as they stream: one scanner and one set of options for every shell.

The rule, the same everywhere: **no part of a stream is released before the text holding it has
been checked.** What a stream adds is held back and cut into windows of text (`TextWindows`:
a small first window, then windows doubling up to the maximum, each starting with the end of the
one before so a phrase cut by a boundary is still seen whole); a window is checked, then what it
holds is released, in order. When the stream goes quiet for ``idle_flush`` seconds with text held,
that text is cut into a window at once (checked, then released), so a slow stream is not held
until a window's worth of text has come.

Public API for the shells (the decorator's generators, both middlewares' event streams, the OpenAI
transport; reuse it for other integrations, such as Anthropic's or MCP's streams):

- `StreamOptions` (``window``, ``first_window``, ``overlap``, ``idle_flush``): the options, with
  one spelling in every shell's signature (``stream_window``, ``stream_first_window``,
  ``stream_overlap``, ``stream_idle_flush``: `StreamOptions.of` validates those).
- A scanner, sans I/O, with ``feed(chunk) -> list[window]`` (windows now due), ``flush() ->
  window | None`` (the stream is idle: cut what is held now), ``finish() -> window | None`` (the
  stream ended) and ``holding`` (whether anything is held). A window has ``text`` (to check;
  may be empty, then it is released unchecked) and ``data`` (what it releases). `ItemScanner`
  holds Python objects (a generator's items: ``data`` is a tuple of them);
  `guardrails._sse.SSEScanner` holds server-sent events (``data`` is their bytes);
  `guardrails._encoded_sse.EncodedSSEScanner` a gzip or deflate event stream.
- Drivers that feed a scanner from a source, check each window with a ``check(window) -> bool``
  (False: blocked, the stream stops there; or raise) and yield the windows allowed, in order:
  `scan` (a sync iterable, on the caller's thread: no idle flush), `ascan` (an async iterable;
  idle flush and concurrent checks on asyncio, released in order), `ScanThread` (a sync
  iterable read by a helper thread into a bounded queue, so the caller can wait with a timeout:
  idle flush for WSGI and sync HTTP clients; checks one at a time on the caller's thread).
  With concurrent checks, a shell that keeps what a refused window was refused with uses a
  `FirstRefusal` (the first in stream order wins).

An integration reads the text of its stream's events in `guardrails._shapes` (OpenAI chat
chunks and Responses events: `StreamText`; Anthropic Messages events: `AnthropicStreamText`) and
hands that reader to the scanner as its ``event_text``. An async httpx stream, say::

    options = StreamOptions.of(stream_window=..., ...)  # the shell's keyword arguments
    scanner = SSEScanner(
        window_chars=options.window,
        overlap=options.overlap,
        first_window=options.first_window,
        event_text=AnthropicStreamText(),
    )

    async def allowed(window: SSEWindow) -> bool:
        await judge.aask(guard, Content(window.text, kind="response"))  # raises Blocked
        return True

    windows = ascan(response.aiter_bytes(), scanner, allowed, idle_flush=options.idle_flush)
    async with contextlib.aclosing(windows):
        async for window in windows:
            yield window.data  # checked bytes only, in order

A sync one: ``ScanThread(response.iter_bytes(), scanner, allowed, idle_flush=...)``, iterated,
then closed (after closing the response) in a ``finally``.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import time
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import anyio

from ._stream_options import CHECK_CONCURRENCY, DEFAULT_OPTIONS, StreamOptions

__all__ = [
    "CHECK_CONCURRENCY",
    "DEFAULT_OPTIONS",
    "FirstRefusal",
    "ItemScanner",
    "ItemWindow",
    "ScanThread",
    "Scanner",
    "StreamOptions",
    "ascan",
    "scan",
]

C = TypeVar("C")
C_contra = TypeVar("C_contra", contravariant=True)
T = TypeVar("T")
W = TypeVar("W", bound="Window")
W_co = TypeVar("W_co", covariant=True)


class Window(Protocol):
    """What a scanner hands out: ``text`` to check, then its data to release."""

    @property
    def text(self) -> str: ...


class Scanner(Protocol[C_contra, W_co]):
    """A sans-I/O stream scanner (see the module docstring)."""

    @property
    def holding(self) -> bool: ...

    def feed(self, chunk: C_contra, /) -> Sequence[W_co]: ...

    def flush(self) -> W_co | None: ...

    def finish(self) -> W_co | None: ...


@dataclass(frozen=True, slots=True)
class ItemWindow(Generic[T]):
    """Items held back until ``text`` (the text they add, after the overlap) is checked."""

    text: str
    data: tuple[T, ...]


class ItemScanner(Generic[T]):
    """Holds a stream of Python objects (a generator's items) until their text is checked.

    Args:
        options: how windows are cut.
        text_of: the text one item adds.
    """

    __slots__ = ("_held", "_text_of", "_windows")

    def __init__(self, options: StreamOptions, text_of: Callable[[T], str]) -> None:
        self._windows = options.windows()
        self._text_of = text_of
        self._held: list[T] = []

    @property
    def checked(self) -> int:
        """How many windows of text were cut."""
        return self._windows.checked

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def feed(self, item: T) -> list[ItemWindow[T]]:
        self._held.append(item)
        return [self._cut()] if self._windows.add(self._text_of(item)) else []

    def flush(self) -> ItemWindow[T] | None:
        return self._cut() if self._held else None

    finish = flush

    def _cut(self) -> ItemWindow[T]:
        window = ItemWindow(self._windows.cut(), tuple(self._held))
        self._held.clear()
        return window


# -- drivers --------------------------------------------------------------------------------------


def scan(source: Iterable[C], scanner: Scanner[C, W], check: Callable[[W], bool]) -> Generator[W, None, None]:
    """Feed ``source`` to ``scanner`` on this thread; yield each window once ``check`` allows it.

    No idle flush: a sync iterable cannot be waited on with a timeout without another thread
    (see `ScanThread`). Stops at the first window ``check`` refuses (False). Does not close
    ``source``.
    """
    for chunk in source:
        for window in scanner.feed(chunk):
            if window.text and not check(window):
                return
            yield window
    last = scanner.finish()
    if last is not None and (not last.text or check(last)):
        yield last


_END: Any = object()


async def _next(items: AsyncIterator[C]) -> C:
    try:
        return await items.__anext__()
    except StopAsyncIteration:
        # A task cannot end with StopAsyncIteration cleanly: a sentinel instead.
        return _END  # type: ignore[no-any-return]


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # pragma: no cover - another event loop (trio)
        return False
    return True


async def ascan(
    source: AsyncIterable[C],
    scanner: Scanner[C, W],
    check: Callable[[W], Awaitable[bool]],
    *,
    idle_flush: float | None,
    concurrency: int = CHECK_CONCURRENCY,
) -> AsyncGenerator[W, None]:
    """Feed ``source`` to ``scanner``; yield each window once ``check`` allows it, in order.

    Checks of successive windows run concurrently (``concurrency`` at most, each in a task: a
    remote guard's latency is paid about once on a fast stream, not once per window), but a
    window is released only after its own check and after every window before it. While
    chunks are awaited with text held, ``idle_flush`` seconds after the last chunk the held
    text is flushed (cut into a window and checked); the read itself runs in a task that the
    timeout never cancels. On an event loop other than asyncio, checks run one at a time and
    there is no idle flush. Stops at the first window (in order) ``check`` refuses (False), or
    raises what the first failing check raised; the checks still running are cancelled. Does
    not close ``source``.

    Shells that record which window was refused should use a `FirstRefusal`: checks may
    finish out of order.
    """
    items = aiter(source)
    if not _on_asyncio():  # pragma: no cover - trio: plain sequential scanning
        async for chunk in items:
            for window in scanner.feed(chunk):
                if window.text and not await check(window):
                    return
                yield window
        last = scanner.finish()
        if last is not None and (not last.text or await check(last)):
            yield last
        return
    loop = asyncio.get_running_loop()
    # An anyio memory stream (the ASGI shell's) says whether a chunk is ready: then no task is needed.
    ready: Callable[[], C] | None = getattr(source, "receive_nowait", None)
    reading: asyncio.Future[C] | None = None
    # Windows cut, in order, each with its check (None: no text, nothing to check).
    inflight: deque[tuple[W, asyncio.Future[bool] | None]] = deque()
    ended = False
    last_chunk = loop.time()
    polled: asyncio.Future[bool] | None = None

    def start(window: W | None) -> None:
        if window is not None:
            inflight.append((window, asyncio.ensure_future(check(window)) if window.text else None))

    def take(chunk: C) -> None:
        nonlocal ended, last_chunk
        if chunk is _END:
            ended = True
            start(scanner.finish())
        else:
            last_chunk = loop.time()
            for window in scanner.feed(chunk):
                start(window)

    try:
        while True:
            while inflight and (inflight[0][1] is None or inflight[0][1].done()):
                window, verdict = inflight.popleft()
                if verdict is not None and not verdict.result():
                    return
                yield window
            head = inflight[0][1] if inflight else None
            if ended or len(inflight) >= concurrency:
                if head is None:
                    return
                await asyncio.wait((head,))
                continue
            if reading is None and ready is not None:
                try:
                    take(ready())
                    continue
                except anyio.WouldBlock:
                    pass
                except anyio.EndOfStream:
                    take(_END)
                    continue
            if reading is None and head is None and not scanner.holding:
                take(await _next(items))  # nothing to wait for but the source
                continue
            if reading is None and head is not None and head is not polled:
                # One turn of the loop first: a check that needs no I/O (an in-process guard) is
                # done by then, and a blocked window stops the source before it is read further.
                polled = head
                await asyncio.sleep(0)
                continue
            if reading is None:
                reading = asyncio.ensure_future(_next(items))
            timeout = None
            if idle_flush is not None and scanner.holding:
                timeout = max(0.0, last_chunk + idle_flush - loop.time())
            waits: set[asyncio.Future[Any]] = {reading} if head is None else {reading, head}
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if reading in done:
                chunk, reading = reading.result(), None
                take(chunk)
            elif not done:
                start(scanner.flush())
    finally:
        abandoned: list[asyncio.Future[Any]] = [
            future for _, future in inflight if future is not None and not future.done()
        ]
        if reading is not None and not reading.done():
            abandoned.append(reading)
        for future in abandoned:
            future.cancel()
        if abandoned:
            # Wait for what was abandoned to end (how is of no interest).
            await asyncio.wait(abandoned)


class FirstRefusal(Generic[T]):
    """What the first window (in stream order) refused by a check was refused with.

    Concurrent checks (`ascan`) may finish out of order: each check takes a `ticket` when it
    starts (checks start in window order) and `record`s its refusal under it.
    """

    __slots__ = ("_next", "_ticket", "value")

    def __init__(self) -> None:
        self._next = 0
        self._ticket = -1
        self.value: T | None = None

    def ticket(self) -> int:
        self._next += 1
        return self._next - 1

    def record(self, ticket: int, value: T) -> None:
        if self.value is None or ticket < self._ticket:
            self.value, self._ticket = value, ticket


_CHUNK, _END_OF_SOURCE, _SOURCE_ERROR, _CHECKED = range(4)


class ScanThread(Generic[C, W]):
    """`scan` with an idle flush, for a sync source: a helper thread reads it ahead.

    The caller's thread waits for the next chunk, ``idle_flush`` seconds at most while text is
    held, and releases the windows in order. The helper thread owns the source from the start:
    it iterates it (in a copy of the caller's context variables, ``buffer`` chunks ahead at most)
    and closes it (``close()``, if it has one) when it ends, fails or is told to stop, then
    exits; its errors are raised on the caller's thread. `close` tells it to stop and waits for
    it (a second at most): it stops as soon as the source's current ``next()`` returns (a
    thread cannot interrupt a blocked read; closing what the source reads from, such as an HTTP
    response, makes it return). Iterate it (one iterator), then `close` it on every path.

    With ``concurrency`` 1 (the default) windows are checked on the caller's thread, one at a
    time; with more (for a remote guard), up to that many checks run at once on worker threads
    (in copies of the caller's context), and each window is still released only after its own
    check and every earlier one (keep what a refused window was refused with in a
    `FirstRefusal`).

    Args:
        source: the iterable read by the helper thread.
        scanner: the scanner fed on the caller's thread.
        check: called with each window with text; False stops the stream (so does raising).
        idle_flush: seconds of quiet before held text is flushed (None: never).
        buffer: chunks read ahead at most.
        close: what ends the source, called by the helper thread (default: ``source.close``).
        concurrency: checks run at once at most.
    """

    def __init__(
        self,
        source: Iterable[C],
        scanner: Scanner[C, W],
        check: Callable[[W], bool],
        *,
        idle_flush: float | None,
        buffer: int = 4,
        close: Callable[[], object] | None = None,
        concurrency: int = 1,
    ) -> None:
        self._scanner = scanner
        self._check = check
        self._idle = idle_flush
        self._concurrency = max(1, concurrency)
        # Unbounded: the helper's read-ahead is bounded by the slots, and check completions (at
        # most ``concurrency``) must never block a worker thread.
        self._queue: queue.Queue[tuple[int, Any]] = queue.Queue()
        self._slots = threading.Semaphore(max(1, buffer))
        self._stop = threading.Event()
        self._source = source
        self._close_source = close if close is not None else getattr(source, "close", None)
        context = contextvars.copy_context()
        self.thread = threading.Thread(
            target=context.run, args=(self._pump,), name="guardrails-stream", daemon=True
        )
        self.thread.start()

    # The helper thread ----------------------------------------------------------------------------

    def _pump(self) -> None:
        source = self._source
        error: BaseException | None = None
        try:
            for chunk in source:
                self._slots.acquire()
                if self._stop.is_set():
                    break
                self._queue.put((_CHUNK, chunk))
                if self._stop.is_set():
                    break
        except BaseException as exc:
            error = exc
        finally:
            close = self._close_source
            if close is not None:
                try:
                    close()
                except BaseException as exc:
                    error = error or exc
            self._queue.put((_SOURCE_ERROR, error) if error is not None else (_END_OF_SOURCE, None))

    # The caller's thread --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[W]:
        scanner = self._scanner
        inflight: deque[tuple[W, Future[bool] | None]] = deque()
        backlog: deque[tuple[int, Any]] = deque()
        workers: ThreadPoolExecutor | None = None
        ended = False
        last_chunk = time.monotonic()

        first = True

        def start(window: W | None) -> None:
            nonlocal workers, first
            if window is None:
                return
            verdict: Future[bool] | None = None
            if window.text:
                # The first check runs here: nothing overlaps it yet, and a worker thread would
                # only delay the first byte.
                if self._concurrency == 1 or first:
                    verdict = Future()
                    verdict.set_result(self._check(window))
                else:
                    if workers is None:
                        workers = ThreadPoolExecutor(self._concurrency, thread_name_prefix="guardrails-check")
                    verdict = workers.submit(contextvars.copy_context().run, self._check, window)
                    verdict.add_done_callback(lambda _: self._queue.put((_CHECKED, None)))
                first = False
            inflight.append((window, verdict))

        try:
            while True:
                while inflight and (inflight[0][1] is None or inflight[0][1].done()):
                    window, verdict = inflight.popleft()
                    if verdict is not None and not verdict.result():
                        return
                    yield window
                if ended and not inflight:
                    return
                if ended or len(inflight) >= self._concurrency:
                    # Only a check's end can move things on: keep what else comes for later.
                    kind, value = self._queue.get()
                    if kind != _CHECKED:
                        backlog.append((kind, value))
                    continue
                if backlog:
                    kind, value = backlog.popleft()
                else:
                    timeout = None
                    if self._idle is not None and scanner.holding:
                        timeout = max(0.0, last_chunk + self._idle - time.monotonic())
                    try:
                        kind, value = self._queue.get(timeout=timeout)
                    except queue.Empty:
                        start(scanner.flush())
                        continue
                if kind == _CHUNK:
                    self._slots.release()
                    last_chunk = time.monotonic()
                    windows = scanner.feed(value)
                    while not windows:
                        # Below the window: feed what the helper has read already, without a wait
                        # (one wake-up of each thread per batch, not per chunk).
                        try:
                            kind, value = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if kind != _CHUNK:
                            backlog.append((kind, value))
                            break
                        self._slots.release()
                        windows = scanner.feed(value)
                    for window in windows:
                        start(window)
                elif kind == _END_OF_SOURCE:
                    ended = True
                    start(scanner.finish())
                elif kind == _SOURCE_ERROR:
                    raise value
        finally:
            if workers is not None:
                # Checks still running end on their own; their results are of no interest.
                workers.shutdown(wait=False, cancel_futures=True)

    def close(self, wait: float = 1.0) -> None:
        """Tell the helper thread to stop (and close the source), and wait for it ``wait`` seconds
        at most: it stops at once unless the source is inside a slow ``next()``, and then stops as
        soon as that returns (the wait only bounds how long the caller is held)."""
        self._stop.set()
        # A free slot wakes a helper waiting for one; it then sees the stop.
        self._slots.release()
        if self.thread is not threading.current_thread():
            self.thread.join(wait)
