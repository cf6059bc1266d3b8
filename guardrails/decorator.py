"""The `guarded` decorator: check a function's prompt (and optionally its output) with a guard.

All the policy lives in one `_Guarded` object per decorated function; the sync, async, parallel
and generator shells are a few lines each. A sync function calls ``guard.check``, an async one
``await guard.acheck``: no blocking call inside an event loop, no event loop inside a sync call.
The decorated object is a `wrapt.FunctionWrapper` (a `functools.wraps` closure for a plain ``def``
or ``async def``, which binds like any function and costs a quarter of wrapt's dispatch), so it
keeps the function's name, docstring, signature, type hints, ``__wrapped__`` and what `inspect`
says about it (coroutine function, generator function), and it binds like the function it wraps
(method, classmethod, staticmethod).
"""

from __future__ import annotations

import codecs
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from . import extractors
from ._events import DecisionHook, hooks_of
from ._exceptions import Blocked, ExtractionError
from ._guard import GuardSource
from ._judge import Judge
from ._models import Content
from ._policy import FailOpen, validate_fail_open
from ._windows import TextWindows

if TYPE_CHECKING:
    from ._guard import Guard

__all__ = ["OnBlock", "ResponseExtractor", "guarded"]

logger = logging.getLogger("guardrails")

F = TypeVar("F", bound="Callable[..., Any] | classmethod[Any, ..., Any] | staticmethod[..., Any]")

#: Called with the `Blocked` error instead of raising it; what it returns is the call's result.
OnBlock = Callable[[Blocked], Any]
#: Turns a function's return value into the `Content` to scan (None: nothing to scan).
ResponseExtractor = Callable[[Any], "Content | None"]

_P = inspect.Parameter


class _Binder:
    """Binds call arguments exactly as `inspect.Signature.bind` does, faster for plain signatures.

    ``Signature.bind`` costs about 2 µs, nearly half the decorator's budget. Signatures with no
    ``*args`` take a fast path; a call the fast path cannot prove valid goes to ``Signature.bind``,
    which raises the same `TypeError` calling the function would.
    """

    __slots__ = (
        "_enough",
        "_fast",
        "_keywords",
        "_order",
        "_positional",
        "_required",
        "_var_keyword",
        "signature",
    )

    def __init__(self, signature: inspect.Signature) -> None:
        parameters = list(signature.parameters.values())
        self.signature = signature
        self._fast = all(p.kind is not _P.VAR_POSITIONAL for p in parameters)
        self._positional = tuple(
            p.name for p in parameters if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
        )
        self._keywords = frozenset(
            p.name for p in parameters if p.kind in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)
        )
        self._required = frozenset(
            p.name for p in parameters if p.default is _P.empty and p.kind not in (_P.VAR_KEYWORD,)
        )
        self._var_keyword = next((p.name for p in parameters if p.kind is _P.VAR_KEYWORD), None)
        self._order = tuple(p.name for p in parameters)
        # Positional arguments enough to satisfy every required parameter (None: some are keyword-only).
        self._enough: int | None = None
        if self._fast and self._required.issubset(self._positional):
            self._enough = max((self._positional.index(name) + 1 for name in self._required), default=0)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        if not kwargs and self._enough is not None and self._enough <= len(args) <= len(self._positional):
            # The common call, f(prompt) or self.f(prompt): nothing else to verify.
            return inspect.BoundArguments(self.signature, dict(zip(self._positional, args, strict=False)))
        if not self._fast or len(args) > len(self._positional):
            return self.signature.bind(*args, **kwargs)
        arguments = dict(zip(self._positional, args, strict=False))
        if kwargs:
            extra: dict[str, Any] = {}
            for name, value in kwargs.items():
                if name in self._keywords:
                    if name in arguments:
                        return self.signature.bind(*args, **kwargs)
                    arguments[name] = value
                elif self._var_keyword is not None:
                    extra[name] = value
                else:
                    return self.signature.bind(*args, **kwargs)
            if extra and self._var_keyword is not None:
                arguments[self._var_keyword] = extra
            # Signature.bind orders the arguments like the parameters; extractors may rely on it.
            arguments = {name: arguments[name] for name in self._order if name in arguments}
        if not self._required.issubset(arguments):
            return self.signature.bind(*args, **kwargs)
        return inspect.BoundArguments(self.signature, arguments)


#: The guard of every `guarded` function given none: ``guard_from_env()``, made once and shared.
_default_guard = GuardSource()


def _describe(obj: object) -> str:
    name = getattr(obj, "__qualname__", None)
    return name if isinstance(name, str) else repr(obj)


class _Windows:
    """A generator's streamed output, decoded and cut into windows (`TextWindows`) to check."""

    __slots__ = ("_decoder", "prompt", "text")

    def __init__(self, size: int, overlap: int, prompt: str | None) -> None:
        self.text = TextWindows(size, overlap)
        self.prompt = prompt
        self._decoder: codecs.IncrementalDecoder | None = None

    @property
    def checked(self) -> int:
        return self.text.checked

    def feed(self, chunk: Any) -> Content | None:
        """Add one chunk; a window to check once enough text has come."""
        if isinstance(chunk, (bytes, bytearray)):
            if self._decoder is None:
                self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            text = self._decoder.decode(chunk)
        else:
            text = extractors.chunk_text(chunk)
        return self._window() if self.text.add(text) else None

    def flush(self) -> Content | None:
        """The last window, with whatever text is left."""
        if self._decoder is not None:
            self.text.add(self._decoder.decode(b"", final=True))
        return self._window() if self.text.pending else None

    def _window(self) -> Content:
        return Content(self.text.cut(), kind="response", prompt=self.prompt)


class _Task:
    """The function's half of ``parallel=True``: runs it in its own cancel scope."""

    __slots__ = ("error", "result", "scope")

    def __init__(self) -> None:
        import anyio  # here: only parallel=True needs it, and importing it costs milliseconds

        self.scope = anyio.CancelScope()
        self.result: Any = None
        self.error: Exception | None = None

    async def run(self, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with self.scope:
            if self.scope.cancel_called:
                # The prompt was judged before this task got to run: never start the function.
                return
            try:
                self.result = await wrapped(*args, **kwargs)
            except Exception as exc:
                # Kept for the caller: a task group would wrap it in an ExceptionGroup.
                self.error = exc


class _Guarded:
    """The policy of one decorated function; the shells below call it."""

    def __init__(
        self,
        *,
        target: str,
        signature: inspect.Signature,
        binds_instance: bool,
        guard: Guard | None,
        extract: extractors.Extractor,
        extract_response: ResponseExtractor | None,
        fail_open: FailOpen,
        scan_response: bool,
        on_block: OnBlock | None,
        monitor: bool,
        hooks: tuple[DecisionHook, ...],
        stream_window: int,
        stream_overlap: int,
    ) -> None:
        self.target = target
        self.binds_instance = binds_instance
        self.binder = _Binder(signature)
        self.guard = guard
        self.extract = extract
        self.extract_response = extract_response
        self.fail_open = fail_open
        self.scan_response = scan_response
        self.on_block = on_block
        self.monitor = monitor
        self.judge = Judge(target, hooks=hooks, fail_open=fail_open, monitor=monitor)
        # f(prompt) with the default extractor is one str argument: its Content needs no binding
        # (what the extractor does with exactly one argument, and a call Signature.bind accepts).
        enough = self.binder._enough
        self.one_prompt = (
            extract is extractors.default
            and enough is not None
            and enough <= 1 <= len(self.binder._positional)
        )
        self.stream_window = stream_window
        self.stream_overlap = stream_overlap

    # Extraction ---------------------------------------------------------------------------------

    def prompt(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Content | None:
        """The content to scan in the call's arguments; None if there is none."""
        if (
            self.one_prompt
            and len(args) == 1
            and not kwargs
            and (instance is None or not self.binds_instance)
        ):
            (only,) = args
            if type(only) is str:
                return Content(only) if only else None
        if instance is not None and self.binds_instance:
            # wrapt hands over self / cls apart from the arguments: bind them back in.
            args = (instance, *args)
        bound = self.binder.bind(args, kwargs)
        try:
            return self.extract(bound)
        except Exception as exc:
            self._invalid("prompt", exc)
            return None

    def response(self, result: Any, prompt: Content | None) -> Content | None:
        """The content to scan in the function's return value; None if there is none."""
        prompt_text = prompt.as_text() if prompt is not None else None
        try:
            if self.extract_response is None:
                return extractors.response_content(result, prompt=prompt_text)
            content = self.extract_response(result)
        except Exception as exc:
            self._invalid("response", exc)
            return None
        if content is not None and content.prompt is None and prompt_text is not None:
            content = content.model_copy(update={"prompt": prompt_text})
        return content

    def windows(self, prompt: Content | None) -> _Windows:
        return _Windows(self.stream_window, self.stream_overlap, prompt.as_text() if prompt else None)

    def feed(self, windows: _Windows, chunk: Any) -> Content | None:
        try:
            return windows.feed(chunk)
        except ExtractionError as exc:
            self._invalid("response", exc)
            return None

    def _invalid(self, kind: str, exc: Exception) -> None:
        """An extractor failed: raise an `ExtractionError` naming the function (log it, in monitor mode)."""
        if isinstance(exc, ExtractionError):
            message = f"cannot extract the {kind} to scan from {self.target}(): {exc}"
        else:
            # Not str(exc): a foreign exception's message may quote the argument.
            message = (
                f"cannot extract the {kind} to scan from {self.target}(): "
                f"extractor {_describe(self.extract if kind == 'prompt' else self.extract_response)} "
                f"raised {type(exc).__name__}"
            )
        # Raised unless in monitor mode; the cause stays on __context__ but is not printed: its
        # message may quote the argument.
        self.judge.refused(ExtractionError(message), kind=kind)

    # Judging ------------------------------------------------------------------------------------

    def skipped(self, kind: str) -> None:
        self.judge.record("skipped", kind=kind)

    def check(self, content: Content) -> Blocked | None:
        """Ask the guard synchronously; the `Blocked` to act on, or None if the call goes on.

        Raises:
            GuardError: the guard failed and the policy fails closed.
            ExtractionError: the guard refused the content (too long...), under every policy.
        """
        try:
            self.judge.ask(self.guard if self.guard is not None else _default_guard.get(), content)
        except Blocked as blocked:
            return blocked
        return None

    async def acheck(self, content: Content) -> Blocked | None:
        """Ask the guard asynchronously; the `Blocked` to act on, or None if the call goes on."""
        try:
            await self.judge.aask(self.guard if self.guard is not None else _default_guard.get(), content)
        except Blocked as blocked:
            return blocked
        return None

    def blocked(self, blocked: Blocked) -> Any:
        if self.on_block is None:
            raise blocked
        return self.on_block(blocked)

    async def ablocked(self, blocked: Blocked) -> Any:
        if self.on_block is None:
            raise blocked
        fallback = self.on_block(blocked)
        if inspect.isawaitable(fallback):
            fallback = await fallback
        return fallback

    # Shells: wrapt calls them with (wrapped, instance, args, kwargs) -------------------------------

    def call(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        prompt = self.prompt(instance, args, kwargs)
        if prompt is None:
            self.skipped("prompt")
        elif (blocked := self.check(prompt)) is not None:
            return self.blocked(blocked)
        result = wrapped(*args, **kwargs)
        if not self.scan_response:
            return result
        response = self.response(result, prompt)
        if response is None:
            self.skipped("response")
        elif (blocked := self.check(response)) is not None:
            return self.blocked(blocked)
        return result

    async def acall(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        prompt = self.prompt(instance, args, kwargs)
        if prompt is None:
            self.skipped("prompt")
        elif (blocked := await self.acheck(prompt)) is not None:
            return await self.ablocked(blocked)
        result = await wrapped(*args, **kwargs)
        return await self._aresponse(result, prompt) if self.scan_response else result

    async def acall_parallel(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        prompt = self.prompt(instance, args, kwargs)
        if prompt is None:
            self.skipped("prompt")
            result = await wrapped(*args, **kwargs)
            return await self._aresponse(result, prompt) if self.scan_response else result
        task = _Task()
        failure: Exception | None = None
        blocked: Blocked | None = None
        import anyio

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(task.run, wrapped, args, kwargs)
            try:
                blocked = await self.acheck(prompt)
            except Exception as exc:
                # Raised after the task group, which would wrap it in an ExceptionGroup.
                failure = exc
            if failure is not None or blocked is not None:
                task.scope.cancel()
        if failure is not None:
            raise failure
        if blocked is not None:
            return await self.ablocked(blocked)
        if task.error is not None:
            raise task.error
        return await self._aresponse(task.result, prompt) if self.scan_response else task.result

    async def _aresponse(self, result: Any, prompt: Content | None) -> Any:
        response = self.response(result, prompt)
        if response is None:
            self.skipped("response")
        elif (blocked := await self.acheck(response)) is not None:
            return await self.ablocked(blocked)
        return result

    def gen(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Generator[Any, Any, Any]:
        # Extract now, so a bad call fails at the call like any generator function; check at the
        # first next(), when the generator body would start.
        return self._gen(wrapped, args, kwargs, self.prompt(instance, args, kwargs))

    def _gen(
        self,
        wrapped: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        prompt: Content | None,
    ) -> Generator[Any, Any, Any]:
        if prompt is None:
            self.skipped("prompt")
        elif (blocked := self.check(prompt)) is not None:
            yield from self._fallback(self.blocked(blocked))
            return None
        stream = wrapped(*args, **kwargs)
        if not self.scan_response:
            return (yield from stream)
        windows = self.windows(prompt)
        try:
            for chunk in stream:
                window = self.feed(windows, chunk)
                if window is not None and (blocked := self.check(window)) is not None:
                    yield from self._fallback(self.blocked(blocked))
                    return None
                yield chunk
            window = windows.flush()
            if window is not None and (blocked := self.check(window)) is not None:
                yield from self._fallback(self.blocked(blocked))
            elif not windows.checked:
                self.skipped("response")
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return None

    def agen(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        return self._agen(wrapped, args, kwargs, self.prompt(instance, args, kwargs))

    async def _agen(
        self,
        wrapped: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        prompt: Content | None,
    ) -> AsyncIterator[Any]:
        if prompt is None:
            self.skipped("prompt")
        elif (blocked := await self.acheck(prompt)) is not None:
            for item in self._fallback(await self.ablocked(blocked)):
                yield item
            return
        stream = wrapped(*args, **kwargs)
        windows = self.windows(prompt) if self.scan_response else None
        try:
            async for chunk in stream:
                if windows is not None:
                    window = self.feed(windows, chunk)
                    if window is not None and (blocked := await self.acheck(window)) is not None:
                        for item in self._fallback(await self.ablocked(blocked)):
                            yield item
                        return
                yield chunk
            if windows is not None:
                window = windows.flush()
                if window is not None and (blocked := await self.acheck(window)) is not None:
                    for item in self._fallback(await self.ablocked(blocked)):
                        yield item
                elif not windows.checked:
                    self.skipped("response")
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    @staticmethod
    def _fallback(value: Any) -> Iterable[Any]:
        """A generator's on_block fallback: yielded as the stream's last item, unless None."""
        return () if value is None else (value,)


def _function_shell(function: Any, shell: Callable[..., Any], *, is_async: bool) -> Callable[..., Any]:
    """The decorated plain function (a ``def`` or ``async def``, not a generator): a closure.

    wrapt's dispatch costs ~0.4 us a call, four times a closure's, and a plain function needs
    none of what it adds: the closure keeps the name, docstring, signature and ``__wrapped__``
    (`functools.wraps`), is a coroutine function when the function is one, and binds as a method
    like any function (the instance then comes first in ``args``, where the binder expects it).
    Methods wrapped as classmethod or staticmethod objects, callables and generators keep wrapt.
    """
    if is_async:

        @functools.wraps(function)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            return await shell(function, None, args, kwargs)

        return guarded_async

    @functools.wraps(function)
    def guarded_sync(*args: Any, **kwargs: Any) -> Any:
        return shell(function, None, args, kwargs)

    return guarded_sync


def _is_guard(value: object) -> bool:
    return callable(getattr(value, "check", None)) and callable(getattr(value, "acheck", None))


def _is_async(function: Any) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    # A callable object with an `async def __call__`.
    return not inspect.isroutine(function) and inspect.iscoroutinefunction(type(function).__call__)


def _check_reads(extract: object, signature: inspect.Signature, target: str) -> None:
    """Fail at decoration when an extractor reads an argument the function does not have."""
    names = getattr(extract, "names", ())
    parameters = signature.parameters
    if any(p.kind is _P.VAR_KEYWORD for p in parameters.values()):
        return
    for name in names:
        if name not in parameters:
            raise ValueError(f"extract={extract!r} reads argument {name!r}, which {target}() does not have")


@overload
def guarded(target: F, /) -> F: ...


@overload
def guarded(
    target: Guard | None = None,
    /,
    *,
    guard: Guard | None = None,
    extract: extractors.Extractor | str | None = None,
    fail_open: FailOpen = False,
    scan_response: bool = False,
    on_block: OnBlock | None = None,
    monitor: bool = False,
    parallel: bool = False,
    on_decision: DecisionHook | Iterable[DecisionHook] | None = None,
    extract_response: ResponseExtractor | None = None,
    stream_window: int = 512,
    stream_overlap: int = 64,
) -> Callable[[F], F]: ...


def guarded(
    target: Any = None,
    /,
    *,
    guard: Guard | None = None,
    extract: extractors.Extractor | str | None = None,
    fail_open: FailOpen = False,
    scan_response: bool = False,
    on_block: OnBlock | None = None,
    monitor: bool = False,
    parallel: bool = False,
    on_decision: DecisionHook | Iterable[DecisionHook] | None = None,
    extract_response: ResponseExtractor | None = None,
    stream_window: int = 512,
    stream_overlap: int = 64,
) -> Any:
    """Check a function's prompt with a guard before it runs, and raise `Blocked` on Block.

    Works on sync and async functions, sync and async generator functions, methods, and
    classmethods and staticmethods (apply it outside ``@classmethod`` / ``@staticmethod``)::

        @guarded                            # guard_from_env(), default extractor, fail closed
        def ask(prompt: str) -> str: ...

        @guarded(guard, extract=extractors.openai_chat, fail_open=True, scan_response=True)
        async def chat(messages: list[dict[str, Any]], model: str) -> dict[str, Any]: ...

    Args:
        target: the function (``@guarded``) or the guard (``@guarded(guard)``).
        guard: the `Guard` to ask; by default ``guard_from_env()``, made when the first function
            is decorated (bad settings raise there, with the reason) and shared by every function
            decorated without a guard.
        extract: finds the content to scan in the bound arguments (an `extractors.Extractor`, or
            an argument name); `extractors.default` unless given. None from it skips the check.
        fail_open: what a guard failure does: ``False`` raises the `GuardError` (the default);
            ``True`` runs the function (logged at WARNING) on transient errors only, while
            configuration errors (bad credentials, a 400) still raise; ``"always"`` runs it on
            every guard error.
        scan_response: also check the return value (a str, an OpenAI chat completion, a pydantic
            model); a generator's streamed text is checked in windows as it goes, and the generator
            raises `Blocked` as soon as a window is blocked (what was already yielded stays yielded).
        on_block: called with the `Blocked` error instead of raising it; its return value (awaited
            if awaitable) becomes the call's result. A generator yields it as its last item.
        monitor: shadow mode: check and log, never block or fail (outcome ``monitored``).
        parallel: async functions only: start the function and the prompt check together, and
            cancel the function if the prompt is blocked or the check fails closed. Saves the
            guard's latency on allowed calls; suitable only where the function has no side effect
            before its LLM call completes (it runs while the prompt is being checked).
        on_decision: a hook (or hooks) receiving every `Decision` of this function.
        extract_response: turns the return value into the `Content` to scan
            (`extractors.response_content` unless given).
        stream_window: characters of streamed text per check.
        stream_overlap: characters each stream window repeats from the one before.

    Raises:
        TypeError: at decoration, for a target that is not a function, a guard that is not a
            `Guard`, or ``parallel=True`` on anything but an ``async def`` function.
        ValueError: at decoration, for an invalid option.
    """
    if target is not None and _is_guard(target) and not inspect.isroutine(target):
        if guard is not None:
            raise TypeError("guarded() got a guard twice: positionally and as guard=")
        guard, target = target, None
    if guard is not None and not _is_guard(guard):
        raise TypeError(f"guard must be a Guard (with check() and acheck()), not {type(guard).__name__}")
    fail_open = validate_fail_open(fail_open)
    if isinstance(extract, str):
        extract = extractors.arg(extract)
    if extract is not None and not callable(extract):
        raise TypeError(f"extract must be an extractor (a callable), not {type(extract).__name__}")
    for name, option in (("on_block", on_block), ("extract_response", extract_response)):
        if option is not None and not callable(option):
            raise TypeError(f"{name} must be callable, not {type(option).__name__}")
    hooks = hooks_of(on_decision)
    if not isinstance(stream_window, int) or stream_window < 1:
        raise ValueError(f"stream_window must be a positive int, not {stream_window!r}")
    if not isinstance(stream_overlap, int) or not 0 <= stream_overlap < stream_window:
        raise ValueError(f"stream_overlap must be an int in [0, stream_window), not {stream_overlap!r}")

    def decorate(function: F) -> F:
        if inspect.isclass(function):
            raise TypeError("guarded decorates functions and methods, not classes")
        underlying: Any = function.__func__ if isinstance(function, (classmethod, staticmethod)) else function
        if not callable(underlying):
            raise TypeError(f"guarded decorates functions, not {type(function).__name__}")
        name = f"{getattr(underlying, '__module__', None) or '?'}.{_describe(underlying)}"
        signature = inspect.signature(underlying)
        chosen = extract if extract is not None else extractors.default
        _check_reads(chosen, signature, name)
        core = _Guarded(
            target=name,
            signature=signature,
            # A plain function's signature has self / cls; a bound method's or a callable's has not.
            binds_instance=inspect.isfunction(underlying),
            guard=guard,
            extract=chosen,
            extract_response=extract_response,
            fail_open=fail_open,
            scan_response=scan_response,
            on_block=on_block,
            monitor=monitor,
            hooks=hooks,
            stream_window=stream_window,
            stream_overlap=stream_overlap,
        )
        wrapper: Callable[..., Any]
        if inspect.isasyncgenfunction(underlying):
            wrapper = core.agen
        elif inspect.isgeneratorfunction(underlying):
            wrapper = core.gen
        elif _is_async(underlying):
            wrapper = core.acall_parallel if parallel else core.acall
        elif parallel:
            raise TypeError(f"parallel=True needs an async function (async def); {name} is not one")
        else:
            wrapper = core.call
        if parallel and wrapper != core.acall_parallel:
            raise TypeError(f"parallel=True needs an async function (async def), not a generator: {name}")
        if guard is None:
            # Bad settings fail here, where the function is defined, with the reason: not on
            # every call. The guard is shared by every function decorated without one.
            _default_guard.get()
        if inspect.isfunction(function) and wrapper in (core.call, core.acall, core.acall_parallel):
            return cast(F, _function_shell(function, wrapper, is_async=wrapper != core.call))
        # Imported here: a plain function never needs it, and wrapt's import pulls in
        # importlib.metadata (tens of milliseconds).
        import wrapt

        wrapped: Any = function
        return cast(F, wrapt.FunctionWrapper(wrapped, wrapper))

    if target is None:
        return decorate
    return decorate(target)
