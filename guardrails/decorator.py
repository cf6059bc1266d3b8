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
from collections.abc import AsyncIterator, Callable, Collection, Generator, Iterable
from contextlib import aclosing, closing
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from . import extractors
from ._events import DecisionHook, hooks_of
from ._exceptions import Blocked, ExtractionError
from ._guard import GuardSource
from ._judge import Judge, MaskCallback, block_categories
from ._masking import replace_strings, replacements, same_texts
from ._models import Content, ToolEvent, _plain
from ._policy import FailOpen, validate_fail_open
from ._stream_options import StreamOptions
from .integrations._tools import tool_content

if TYPE_CHECKING:
    from ._guard import Guard
    from ._stream import FirstRefusal, ItemScanner, ItemWindow

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


class _Held:
    """A generator's streamed items, held by an `ItemScanner` until the text they add is checked."""

    __slots__ = ("_decoder", "_refusal", "core", "prompt", "scanner")

    def __init__(self, core: _Guarded, prompt: str | None) -> None:
        # The scanner's drivers (asyncio, threads) load with the first guarded stream, not at import.
        from ._stream import FirstRefusal, ItemScanner

        self.core = core
        self.prompt = prompt
        # Async checks run concurrently: the Blocked of the first window in stream order is kept.
        self._refusal: FirstRefusal[Blocked] = FirstRefusal()
        self._decoder: codecs.IncrementalDecoder | None = None
        self.scanner: ItemScanner[Any] = ItemScanner(core.stream, self.text_of)

    def text_of(self, chunk: Any) -> str:
        try:
            if isinstance(chunk, (bytes, bytearray)):
                if self._decoder is None:
                    self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                return self._decoder.decode(chunk)
            return extractors.chunk_text(chunk)
        except ExtractionError as exc:
            self.core._invalid("response", exc)  # raises, unless in monitor mode
            return ""

    def _content(self, window: ItemWindow[Any]) -> Content:
        return Content(window.text, kind="response", prompt=self.prompt)

    @property
    def blocked(self) -> Blocked | None:
        return self._refusal.value

    def check(self, window: ItemWindow[Any]) -> bool:
        ticket = self._refusal.ticket()
        blocked = self.core.check(self._content(window))
        if blocked is not None:
            self._refusal.record(ticket, blocked)
        return blocked is None

    async def acheck(self, window: ItemWindow[Any]) -> bool:
        ticket = self._refusal.ticket()
        blocked = await self.core.acheck(self._content(window))
        if blocked is not None:
            self._refusal.record(ticket, blocked)
        return blocked is None


class _Tool:
    """What ``kind="tool"`` checks: the tool's arguments before it runs, its result before it returns."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def arguments(self, bound: inspect.BoundArguments) -> Content:
        """The call as a `ToolEvent` without a result: every argument but ``self`` / ``cls``."""
        arguments = {
            name: _plain(value) for name, value in bound.arguments.items() if name not in ("self", "cls")
        }
        return tool_content(ToolEvent(name=self.name, arguments=arguments))  # kind "response"

    def result(self, result: Any, prompt: Content | None) -> Content | None:
        """The result as a `ToolEvent` with the call's arguments; None for a tool that returned None."""
        if result is None:
            return None
        arguments = prompt.tool.arguments if prompt is not None and prompt.tool is not None else None
        # A result enters the agent's model: kind "prompt" (the rule of `tool_content`).
        return tool_content(ToolEvent(name=self.name, arguments=arguments, result=_plain(result)))


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
        stream: StreamOptions,
        tool: _Tool | None = None,
        incremental: bool = False,
        block: frozenset[str] | None = None,
        mask: bool = False,
    ) -> None:
        self.tool = tool
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
        self.judge = Judge(
            target, hooks=hooks, fail_open=fail_open, monitor=monitor, incremental=incremental, block=block
        )
        self.mask = mask
        self.stream = stream
        # f(prompt) with the default extractor is one str argument: its Content needs no binding
        # (what the extractor does with exactly one argument, and a call Signature.bind accepts).
        enough = self.binder._enough
        self.one_prompt = (
            extract is extractors.default
            and enough is not None
            and enough <= 1 <= len(self.binder._positional)
        )
        # ... and nothing else to do about such a call: the closure's fast path (`_function_shell`).
        self.plain = self.one_prompt and not mask and not scan_response and tool is None

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
        if self.tool is not None and self.extract_response is None:
            return self.tool.result(result, prompt)
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

    def held(self, prompt: Content | None) -> _Held:
        return _Held(self, prompt.as_text() if prompt else None)

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

    def check(self, content: Content, mask: MaskCallback | None = None) -> Blocked | None:
        """Ask the guard synchronously; the `Blocked` to act on, or None if the call goes on.

        Raises:
            GuardError: the guard failed and the policy fails closed.
            ExtractionError: the guard refused the content (too long...), under every policy.
        """
        try:
            self.judge.ask(self.guard if self.guard is not None else _default_guard.get(), content, mask=mask)
        except Blocked as blocked:
            return blocked
        return None

    async def acheck(self, content: Content, mask: MaskCallback | None = None) -> Blocked | None:
        """Ask the guard asynchronously; the `Blocked` to act on, or None if the call goes on."""
        try:
            await self.judge.aask(
                self.guard if self.guard is not None else _default_guard.get(), content, mask=mask
            )
        except Blocked as blocked:
            return blocked
        return None

    # Masking (mask=True): the call goes on with the masked strings in place -----------------------

    def args_masker(
        self, prompt: Content, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Any]
    ) -> MaskCallback | None:
        """Rewrites the arguments with the masked strings into `out` (``[args, kwargs]``)."""
        if not self.mask:
            return None

        def rewrite(masked: Content) -> bool:
            pairs = replacements(prompt, masked)
            if pairs is None:
                return False
            new_args, new_kwargs = replace_strings(args, pairs), replace_strings(kwargs, pairs)
            bound_args = (instance, *new_args) if instance is not None and self.binds_instance else new_args
            try:
                reread = self.extract(self.binder.bind(bound_args, new_kwargs))
            except Exception:
                return False
            if not same_texts(reread, masked):
                return False  # an argument the rewrite cannot reach: the Block stands
            out[:] = [new_args, new_kwargs]
            return True

        return rewrite

    def result_masker(
        self, response: Content, result: Any, prompt: Content | None, out: list[Any]
    ) -> MaskCallback | None:
        """Rewrites the return value with the masked strings into `out` (``[result]``)."""
        if not self.mask:
            return None

        def rewrite(masked: Content) -> bool:
            pairs = replacements(response, masked)
            if pairs is None:
                return False
            new = replace_strings(result, pairs)
            try:
                if self.extract_response is None:
                    reread = extractors.response_content(new, prompt=prompt.as_text() if prompt else None)
                else:
                    reread = self.extract_response(new)
            except Exception:
                return False
            if not same_texts(reread, masked):
                return False
            out[:] = [new]
            return True

        return rewrite

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
        masked: list[Any] = []
        if prompt is None:
            self.skipped("prompt")
        elif (
            blocked := self.check(prompt, self.args_masker(prompt, instance, args, kwargs, masked))
        ) is not None:
            return self.blocked(blocked)
        if masked:
            args, kwargs = masked
        result = wrapped(*args, **kwargs)
        if not self.scan_response:
            return result
        response = self.response(result, prompt)
        if response is None:
            self.skipped("response")
        elif (
            blocked := self.check(response, self.result_masker(response, result, prompt, masked))
        ) is not None:
            return self.blocked(blocked)
        elif len(masked) == 1:
            return masked[0]
        return result

    async def acall(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        prompt = self.prompt(instance, args, kwargs)
        masked: list[Any] = []
        if prompt is None:
            self.skipped("prompt")
        elif (
            blocked := await self.acheck(prompt, self.args_masker(prompt, instance, args, kwargs, masked))
        ) is not None:
            return await self.ablocked(blocked)
        if masked:
            args, kwargs = masked
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
        masked: list[Any] = []
        if response is None:
            self.skipped("response")
        elif (
            blocked := await self.acheck(response, self.result_masker(response, result, prompt, masked))
        ) is not None:
            return await self.ablocked(blocked)
        elif masked:
            return masked[0]
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
        # Items are held until the text they add is checked: none is yielded unchecked.
        held = self.held(prompt)
        from ._stream import scan

        try:
            with closing(scan(stream, held.scanner, held.check)) as windows:
                for window in windows:
                    yield from window.data
            if held.blocked is not None:
                yield from self._fallback(self.blocked(held.blocked))
            elif not held.scanner.checked:
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
        try:
            if not self.scan_response:
                async for chunk in stream:
                    yield chunk
                return
            # Items are held until the text they add is checked (the held text is checked early
            # when the generator goes quiet for stream_idle_flush seconds).
            held = self.held(prompt)
            from ._stream import ascan

            windows = ascan(stream, held.scanner, held.acheck, idle_flush=self.stream.idle_flush)
            async with aclosing(windows):
                async for window in windows:
                    for item in window.data:
                        yield item
            if held.blocked is not None:
                for item in self._fallback(await self.ablocked(held.blocked)):
                    yield item
            elif not held.scanner.checked:
                self.skipped("response")
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    @staticmethod
    def _fallback(value: Any) -> Iterable[Any]:
        """A generator's on_block fallback: yielded as the stream's last item, unless None."""
        return () if value is None else (value,)


def _function_shell(
    function: Any, core: _Guarded, shell: Callable[..., Any], *, is_async: bool
) -> Callable[..., Any]:
    """The decorated plain function (a ``def`` or ``async def``, not a generator): a closure.

    wrapt's dispatch costs ~0.4 us a call, four times a closure's, and a plain function needs
    none of what it adds: the closure keeps the name, docstring, signature and ``__wrapped__``
    (`functools.wraps`), is a coroutine function when the function is one, and binds as a method
    like any function (the instance then comes first in ``args``, where the binder expects it).
    Methods wrapped as classmethod or staticmethod objects, callables and generators keep wrapt.

    The commonest call, ``f(prompt)`` with one non-empty str and the default extractor, nothing
    but the prompt checked and nothing to mask (`_Guarded.plain`), goes straight to the judge:
    the `Content` the shell would build, the judge's ask, the function; any other call takes the
    shell. Both ask the same judge, which decides and records alike.
    """
    if not core.plain or shell not in (core.call, core.acall):  # parallel=True: its own shell
        if is_async:

            @functools.wraps(function)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                return await shell(function, None, args, kwargs)

            return guarded_async

        @functools.wraps(function)
        def guarded_sync(*args: Any, **kwargs: Any) -> Any:
            return shell(function, None, args, kwargs)

        return guarded_sync

    guard, judge, source = core.guard, core.judge, _default_guard
    if is_async:
        aask = judge.aask

        @functools.wraps(function)
        async def guarded_plain_async(*args: Any, **kwargs: Any) -> Any:
            if len(args) == 1 and not kwargs:
                (prompt,) = args
                if type(prompt) is str and prompt:
                    try:
                        await aask(guard if guard is not None else source.get(), Content(prompt))
                    except Blocked as blocked:
                        return await core.ablocked(blocked)
                    return await function(prompt)
            return await shell(function, None, args, kwargs)

        return guarded_plain_async

    ask = judge.ask

    @functools.wraps(function)
    def guarded_plain(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs:
            (prompt,) = args
            if type(prompt) is str and prompt:
                try:
                    ask(guard if guard is not None else source.get(), Content(prompt))
                except Blocked as blocked:
                    return core.blocked(blocked)
                return function(prompt)
        return shell(function, None, args, kwargs)

    return guarded_plain


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
    stream_window: int = 1000,
    stream_first_window: int = 48,
    stream_overlap: int | None = None,
    stream_idle_flush: float | None = 0.05,
    kind: Literal["prompt", "tool"] = "prompt",
    incremental: bool = False,
    block: Collection[str] | None = None,
    mask: bool = False,
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
    stream_window: int = 1000,
    stream_first_window: int = 48,
    stream_overlap: int | None = None,
    stream_idle_flush: float | None = 0.05,
    kind: Literal["prompt", "tool"] = "prompt",
    incremental: bool = False,
    block: Collection[str] | None = None,
    mask: bool = False,
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
            model). A generator's items are held back until the text they add is checked, in
            windows (see ``stream_window``): nothing is yielded unchecked, and the generator
            raises `Blocked` at the first blocked window (the items of that window, and all
            after, are never yielded).
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
        stream_window: the most characters of streamed text per check.
        stream_first_window: characters of the first check; each next window doubles, up to
            ``stream_window`` (a short answer is released after one small check).
        stream_overlap: characters of the text before a window checked again with it (default
            100), so that a phrase cut by a window boundary is seen whole.
        stream_idle_flush: async generators: seconds of quiet after which the held text is
            checked and released without waiting for a window's worth (None: never). A sync
            generator runs on the caller's thread and cannot be waited on with a timeout: it
            has no idle flush.
        kind: ``"prompt"`` (the default) or ``"tool"``: the function is an agent's tool. Its
            arguments are checked before it runs, as a `ToolEvent` named after the function
            (unless ``extract`` is given), and its result, always, before it is returned (as a
            `ToolEvent` holding the arguments and the result, unless ``extract_response`` is
            given): a tool result is where indirect prompt injection comes in. The arguments
            are checked as ``kind="response"`` (the model wrote them), the result as
            ``kind="prompt"`` (it enters the model's context), as in every shell. With ``on_block``
            a blocked tool returns what it returns (e.g. ``"tool result withheld: ..."``) to the
            agent instead of raising. Generator functions are refused.
        incremental: chat messages this guard already allowed, exactly, are not checked again;
            every other message is (see `guardrails._incremental`). Which messages are scanned at
            all is the extractor's choice: ``extractors.openai_chat(roles=..., last_turn=...)``.
        block: the categories that block (`guardrails._models.CATEGORIES`); a Block whose
            categories are all outside it is recorded as ``monitored`` and the call goes on.
            None (default): every Block blocks; a Block with no category always blocks.
        mask: when a Block's only category is ``sensitive_data`` and the guard masked it, the
            function runs with the masked strings in its arguments (and a checked return value
            is returned masked); outcome ``masked``. Only strings inside str, dict, list and
            tuple arguments are rewritten, and the arguments are read again to make sure: when
            that does not give exactly the masked content (an object the rewrite cannot enter),
            or for a generator's stream, the Block stands. Not with ``parallel=True``: the
            function would already be running with the unmasked arguments.

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
    if kind not in ("prompt", "tool"):
        raise ValueError(f"kind must be 'prompt' or 'tool', not {kind!r}")
    if kind == "tool":
        if parallel:
            raise ValueError(
                "kind='tool' checks the arguments before the tool runs: parallel=True cannot be used"
            )
        scan_response = True
    blocking = block_categories(block)
    if mask and parallel:
        raise ValueError(
            "mask=True cannot go with parallel=True: the function would start with the unmasked arguments"
        )
    stream = StreamOptions.of(
        stream_window=stream_window,
        stream_first_window=stream_first_window,
        stream_overlap=stream_overlap,
        stream_idle_flush=stream_idle_flush,
    )

    def decorate(function: F) -> F:
        if inspect.isclass(function):
            raise TypeError("guarded decorates functions and methods, not classes")
        underlying: Any = function.__func__ if isinstance(function, (classmethod, staticmethod)) else function
        if not callable(underlying):
            raise TypeError(f"guarded decorates functions, not {type(function).__name__}")
        name = f"{getattr(underlying, '__module__', None) or '?'}.{_describe(underlying)}"
        signature = inspect.signature(underlying)
        tool: _Tool | None = None
        if kind == "tool":
            if inspect.isasyncgenfunction(underlying) or inspect.isgeneratorfunction(underlying):
                raise TypeError(
                    f"kind='tool' needs a function that returns its result, not a generator: {name}"
                )
            tool = _Tool(getattr(underlying, "__name__", name))
        chosen = (
            extract if extract is not None else tool.arguments if tool is not None else extractors.default
        )
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
            stream=stream,
            tool=tool,
            incremental=bool(incremental),
            block=blocking,
            mask=bool(mask),
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
            return cast(F, _function_shell(function, core, wrapper, is_async=wrapper != core.call))
        # Imported here: a plain function never needs it, and wrapt's import pulls in
        # importlib.metadata (tens of milliseconds).
        import wrapt

        wrapped: Any = function
        return cast(F, wrapt.FunctionWrapper(wrapped, wrapper))

    if target is None:
        return decorate
    return decorate(target)
