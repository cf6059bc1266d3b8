"""@guarded on every form: function, method, classmethod, staticmethod x sync, async, generator,
async generator. What it keeps (name, docstring, signature, type hints, inspect flavour), how it binds
self and cls, FastAPI endpoints, and the argument binder against `inspect.Signature.bind`."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from starlette.requests import Request

from guardrails import extractors
from guardrails._exceptions import Blocked
from guardrails._models import Action, Content
from guardrails.decorator import _Binder, guarded
from guardrails.testing._fakes import FakeGuard, StaticGuard

pytestmark = pytest.mark.anyio

GUARD = FakeGuard(lambda content: "attack" in content.as_text())
CALLS: list[str] = []


@guarded(GUARD)
def function_sync(prompt: str) -> str:
    """Answer a prompt."""
    CALLS.append("function_sync")
    return f"echo: {prompt}"


@guarded(GUARD)
async def function_async(prompt: str) -> str:
    """Answer a prompt."""
    CALLS.append("function_async")
    return f"echo: {prompt}"


@guarded(GUARD)
def function_gen(prompt: str) -> Iterator[str]:
    """Answer a prompt."""
    CALLS.append("function_gen")
    yield "echo: "
    yield prompt


@guarded(GUARD)
async def function_agen(prompt: str) -> AsyncIterator[str]:
    """Answer a prompt."""
    CALLS.append("function_agen")
    yield "echo: "
    yield prompt


class Service:
    PREFIX = "echo: "

    def __init__(self) -> None:
        self.prefix = "echo: "

    @guarded(GUARD)
    def method_sync(self, prompt: str) -> str:
        """Answer a prompt."""
        CALLS.append("method_sync")
        return self.prefix + prompt

    @guarded(GUARD)
    async def method_async(self, prompt: str) -> str:
        """Answer a prompt."""
        CALLS.append("method_async")
        return self.prefix + prompt

    @guarded(GUARD)
    def method_gen(self, prompt: str) -> Iterator[str]:
        """Answer a prompt."""
        CALLS.append("method_gen")
        yield self.prefix
        yield prompt

    @guarded(GUARD)
    async def method_agen(self, prompt: str) -> AsyncIterator[str]:
        """Answer a prompt."""
        CALLS.append("method_agen")
        yield self.prefix
        yield prompt

    @guarded(GUARD)
    @classmethod
    def classmethod_sync(cls, prompt: str) -> str:
        """Answer a prompt."""
        CALLS.append("classmethod_sync")
        return cls.PREFIX + prompt

    @guarded(GUARD)
    @classmethod
    async def classmethod_async(cls, prompt: str) -> str:
        """Answer a prompt."""
        CALLS.append("classmethod_async")
        return cls.PREFIX + prompt

    @guarded(GUARD)
    @classmethod
    def classmethod_gen(cls, prompt: str) -> Iterator[str]:
        """Answer a prompt."""
        CALLS.append("classmethod_gen")
        yield cls.PREFIX
        yield prompt

    @guarded(GUARD)
    @classmethod
    async def classmethod_agen(cls, prompt: str) -> AsyncIterator[str]:
        """Answer a prompt."""
        CALLS.append("classmethod_agen")
        yield cls.PREFIX
        yield prompt

    @guarded(GUARD)
    @staticmethod
    def staticmethod_sync(prompt: str) -> str:
        """Answer a prompt."""
        CALLS.append("staticmethod_sync")
        return "echo: " + prompt

    @guarded(GUARD)
    @staticmethod
    async def staticmethod_async(prompt: str) -> str:
        """Answer a prompt."""
        CALLS.append("staticmethod_async")
        return "echo: " + prompt

    @guarded(GUARD)
    @staticmethod
    def staticmethod_gen(prompt: str) -> Iterator[str]:
        """Answer a prompt."""
        CALLS.append("staticmethod_gen")
        yield "echo: "
        yield prompt

    @guarded(GUARD)
    @staticmethod
    async def staticmethod_agen(prompt: str) -> AsyncIterator[str]:
        """Answer a prompt."""
        CALLS.append("staticmethod_agen")
        yield "echo: "
        yield prompt


FLAVOURS = ["sync", "async", "gen", "agen"]
# How each form is reached: (id, getter from flavour to the callable).
ACCESSES: list[tuple[str, Callable[[str], Any]]] = [
    ("function", lambda flavour: globals()[f"function_{flavour}"]),
    ("method", lambda flavour: getattr(Service(), f"method_{flavour}")),
    ("classmethod-on-class", lambda flavour: getattr(Service, f"classmethod_{flavour}")),
    ("classmethod-on-instance", lambda flavour: getattr(Service(), f"classmethod_{flavour}")),
    ("staticmethod-on-class", lambda flavour: getattr(Service, f"staticmethod_{flavour}")),
    ("staticmethod-on-instance", lambda flavour: getattr(Service(), f"staticmethod_{flavour}")),
]
MATRIX = [
    pytest.param(get, flavour, id=f"{name}-{flavour}") for name, get in ACCESSES for flavour in FLAVOURS
]
# (iscoroutinefunction, isgeneratorfunction, isasyncgenfunction) of each flavour.
INSPECTED = {
    "sync": (False, False, False),
    "async": (True, False, False),
    "gen": (False, True, False),
    "agen": (False, False, True),
}


async def invoke(function: Callable[..., Any], *args: Any) -> Any:
    """Call any flavour and collect its result: await a coroutine, drain a generator."""
    result = function(*args)
    if inspect.iscoroutine(result):
        return await result
    if inspect.isgenerator(result):
        return "".join(map(str, result))
    if inspect.isasyncgen(result):
        return "".join([str(item) async for item in result])
    return result


@pytest.fixture(autouse=True)
def fresh() -> None:
    GUARD.reset()
    CALLS.clear()


@pytest.mark.parametrize(("get", "flavour"), MATRIX)
async def test_allowed_call_returns_the_function_result(get: Callable[[str], Any], flavour: str) -> None:
    """Every form and flavour runs when allowed and returns (or yields) what the function does."""
    assert await invoke(get(flavour), "hello") == "echo: hello"
    assert len(CALLS) == 1


@pytest.mark.parametrize(("get", "flavour"), MATRIX)
async def test_blocked_call_raises_and_never_runs_the_function(
    get: Callable[[str], Any], flavour: str
) -> None:
    """Every form and flavour raises Blocked on Block without running the function body."""
    with pytest.raises(Blocked):
        await invoke(get(flavour), "an attack")
    assert CALLS == []


@pytest.mark.parametrize(("get", "flavour"), MATRIX)
async def test_guard_sees_the_prompt_not_self_or_cls(get: Callable[[str], Any], flavour: str) -> None:
    """self and cls are bound apart from the prompt: the guard is sent the prompt alone."""
    await invoke(get(flavour), "hello")
    assert GUARD.seen == [Content("hello")]


@pytest.mark.parametrize(("get", "flavour"), MATRIX)
def test_keeps_name_docstring_and_signature(get: Callable[[str], Any], flavour: str) -> None:
    """The decorated callable keeps the function's name, docstring and (bound) signature."""
    function = get(flavour)
    assert function.__name__.endswith(flavour)
    assert function.__doc__ == "Answer a prompt."
    assert list(inspect.signature(function).parameters) == ["prompt"]


@pytest.mark.parametrize(("get", "flavour"), MATRIX)
def test_keeps_what_inspect_says_about_it(get: Callable[[str], Any], flavour: str) -> None:
    """iscoroutinefunction, isgeneratorfunction and isasyncgenfunction are unchanged."""
    function = get(flavour)
    inspected = (
        inspect.iscoroutinefunction(function),
        inspect.isgeneratorfunction(function),
        inspect.isasyncgenfunction(function),
    )
    assert inspected == INSPECTED[flavour]


@pytest.mark.parametrize(("get", "flavour"), MATRIX)
def test_keeps_type_hints(get: Callable[[str], Any], flavour: str) -> None:
    """typing.get_type_hints resolves the function's annotations through the decorator."""
    assert typing.get_type_hints(get(flavour))["prompt"] is str


def test_method_called_through_the_class_binds_self() -> None:
    """Service.method(instance, prompt) binds like instance.method(prompt)."""
    assert Service.method_sync(Service(), "hello") == "echo: hello"
    assert GUARD.seen == [Content("hello")]


def test_wrapped_is_the_original_function() -> None:
    """__wrapped__ is the undecorated function."""
    assert function_sync.__wrapped__.__name__ == "function_sync"  # type: ignore[attr-defined]
    assert not hasattr(function_sync.__wrapped__, "__wrapped__")  # type: ignore[attr-defined]


def test_first_text_extractor_skips_self() -> None:
    """first_text on a method finds the first str argument after self."""
    guard = StaticGuard()

    class Bot:
        @guarded(guard, extract=extractors.first_text)
        def reply(self, turn: int, message: str) -> str:
            return message

    Bot().reply(1, "hi there")
    assert guard.seen == [Content("hi there")]


def test_keyword_only_and_var_keyword_arguments_are_bound() -> None:
    """Keyword-only arguments and **kwargs entries are visible to extractors."""
    guard = StaticGuard()

    @guarded(guard, extract="prompt")
    def complete(*, model: str, **options: Any) -> str:
        return model

    complete(model="stand-in", prompt="from kwargs", temperature=0)
    assert guard.seen == [Content("from kwargs")]


def two_arguments(model: str, prompt: str) -> str:
    return f"{model}: {prompt}"


class Replier:
    def reply(self, prompt: str) -> str:
        return f"echo: {prompt}"


class AsyncModel:
    async def __call__(self, prompt: str) -> str:
        return f"echo: {prompt}"


async def test_bound_methods_partials_and_callable_objects_are_guarded() -> None:
    """A bound method, a functools.partial and an object with async __call__ bind their own way."""
    bound = guarded(GUARD)(Replier().reply)
    partial = guarded(GUARD)(functools.partial(two_arguments, "stand-in"))
    model = guarded(GUARD)(AsyncModel())

    assert bound("one") == "echo: one"
    assert partial("two") == "stand-in: two"
    assert await model("three") == "echo: three"
    assert [content.text for content in GUARD.seen] == ["one", "two", "three"]


# -- FastAPI ----------------------------------------------------------------------------------------------


class ChatRequest(BaseModel):
    prompt: str
    temperature: float = 0.0


class ChatReply(BaseModel):
    answer: str


def chat_app(decorate: Callable[[Any], Any]) -> FastAPI:
    """A FastAPI app with a sync and an async endpoint, each passed through `decorate`."""
    app = FastAPI()

    @app.exception_handler(Blocked)
    async def blocked(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": {"type": "guardrail_blocked"}}, status_code=403)

    @app.post("/chat")
    @decorate
    async def chat(body: ChatRequest, user: str | None = None) -> ChatReply:
        """Chat with the model."""
        return ChatReply(answer=f"echo: {body.prompt}")

    @app.post("/complete")
    @decorate
    def complete(body: ChatRequest) -> ChatReply:
        """Complete a prompt."""
        return ChatReply(answer=f"echo: {body.prompt}")

    return app


async def test_fastapi_openapi_schema_is_unchanged() -> None:
    """A FastAPI app's OpenAPI schema is the same with and without @guarded on its endpoints."""
    assert chat_app(guarded(GUARD)).openapi() == chat_app(lambda endpoint: endpoint).openapi()


@pytest.mark.parametrize("path", ["/chat", "/complete"], ids=["async", "sync"])
async def test_fastapi_endpoint_is_guarded(path: str) -> None:
    """A decorated FastAPI endpoint answers when allowed and raises Blocked (here: 403) when blocked."""
    transport = httpx.ASGITransport(app=chat_app(guarded(GUARD)))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        allowed = await client.post(path, json={"prompt": "hello"})
        blocked = await client.post(path, json={"prompt": "an attack"})
    assert (allowed.status_code, allowed.json()) == (200, {"answer": "echo: hello"})
    assert blocked.status_code == 403
    seen = [content.as_text().splitlines() for content in GUARD.seen]
    assert ["hello" in lines for lines in seen] == [True, False]
    assert ["an attack" in lines for lines in seen] == [False, True]


# -- the argument binder -----------------------------------------------------------------------------


def plain(a: Any, b: Any = 1) -> None: ...
def positional_only(a: Any, /, b: Any, *, c: Any = 3) -> None: ...
def var_keyword(a: Any, **kw: Any) -> None: ...
def positional_only_and_var_keyword(a: Any, /, b: Any = 2, **kw: Any) -> None: ...
def var_positional(*args: Any, b: Any) -> None: ...
def keyword_only(*, a: Any, b: Any = None) -> None: ...
def nothing() -> None: ...


SIGNATURES = [
    plain,
    positional_only,
    var_keyword,
    positional_only_and_var_keyword,
    var_positional,
    keyword_only,
    nothing,
]


@given(
    function=st.sampled_from(SIGNATURES),
    args=st.lists(st.integers(), max_size=4).map(tuple),
    kwargs=st.dictionaries(st.sampled_from(["a", "b", "c", "kw", "args", "x"]), st.integers(), max_size=4),
)
def test_binder_agrees_with_signature_bind(
    function: Callable[..., None], args: tuple[int, ...], kwargs: dict[str, int]
) -> None:
    """The fast binder gives exactly Signature.bind's arguments, in order, or the same TypeError."""
    signature = inspect.signature(function)
    try:
        expected: list[tuple[str, Any]] | str = list(signature.bind(*args, **kwargs).arguments.items())
    except TypeError as exc:
        expected = str(exc)
    try:
        actual: list[tuple[str, Any]] | str = list(_Binder(signature).bind(args, kwargs).arguments.items())
    except TypeError as exc:
        actual = str(exc)
    assert actual == expected


def test_static_guard_blocks_every_form() -> None:
    """A StaticGuard BLOCK blocks a method too (not only FakeGuard rules)."""

    class Bot:
        @guarded(StaticGuard(Action.BLOCK))
        def reply(self, prompt: str) -> str:
            return prompt

    with pytest.raises(Blocked):
        Bot().reply("hello")
