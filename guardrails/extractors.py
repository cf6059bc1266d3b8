"""Built-in extractors: what `guarded` scans in a call's arguments and return value.

An extractor receives the call's `inspect.BoundArguments` and returns the `Content` to scan, or
None when there is nothing to scan (the call then proceeds and the decision is recorded as
``skipped``). An argument that holds something with no text the guard can read (``prompt=123``)
raises `ExtractionError`: a value the guard cannot see is never waved through.

- `default` (`args()`): every argument of the call, every string in it, recursively; chat
  message lists go as messages. `args(exclude=(...))` leaves arguments out.
- `arg` (one named argument), `first_text`, `openai_chat` (OpenAI chat ``messages``),
  `pydantic_field` (a field of a pydantic model argument).
- `response_content` and `chunk_text` read return values and streamed chunks for
  ``scan_response=True``.

The middlewares' extractors take an `HTTPBody` (the parsed request body) instead:

- `default_body`: an OpenAI chat request's messages, ``prompt``, ``input``, ``guard``, else every
  string of the JSON document; form and multipart text fields.
- `json_field` (one field of a JSON body, e.g. ``json_field("document")``).

Error messages name the argument, never its value.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal, Protocol, overload

from pydantic import ValidationError

from ._body import BodyExtractor, HTTPBody, default_body, json_field
from ._exceptions import ExtractionError
from ._models import Content, message_texts
from ._shapes import ALL_MESSAGES, MessageScope

__all__ = [
    "BodyExtractor",
    "Extractor",
    "MessageScope",
    "HTTPBody",
    "arg",
    "args",
    "body",
    "chunk_text",
    "default",
    "default_body",
    "first_text",
    "json_field",
    "openai_chat",
    "pydantic_field",
    "response_content",
    "to_content",
]

Kind = Literal["prompt", "response"]

#: Argument names the `default` extractor tries, in order.
DEFAULT_NAMES = ("prompt", "messages", "input", "text")

_MISSING: Any = object()
# Nesting deeper than this is not a chat payload; it bounds the walk over hostile structures.
_MAX_DEPTH = 32
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class Extractor(Protocol):
    """Finds the content to scan in a call's bound arguments.

    Returns None when there is nothing to scan; raises `ExtractionError` when an argument holds a
    value it cannot read.
    """

    def __call__(self, bound: inspect.BoundArguments, /) -> Content | None: ...


def _plain(value: Any) -> Any:
    """Plain data from a pydantic model (or an OpenAI SDK object); anything else unchanged."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump()
    return value


def _strings(value: Any, depth: int = 0) -> list[str]:
    """Every non-empty string in nested dicts and lists, in order."""
    if isinstance(value, str):
        return [value] if value else []
    if depth >= _MAX_DEPTH:
        raise ExtractionError("value is nested too deeply to scan")
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _strings(item, depth + 1)]
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [text for item in value for text in _strings(item, depth + 1)]
    return []


def _messages(value: Sequence[Any], where: str, kind: Kind, metadata: Mapping[str, str]) -> Content | None:
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(value):
        message = _plain(message)
        if not isinstance(message, Mapping):
            raise ExtractionError(
                f"{where}[{index}] is {type(message).__name__}, not a chat message (a dict with 'content')"
            )
        messages.append(dict(message))
    if not messages:
        return None
    try:
        return Content(messages=messages, kind=kind, metadata=metadata)
    except ValidationError:
        # Pydantic's message quotes the input: never let it reach a log line.
        raise ExtractionError(f"{where} is not a list of chat messages") from None


def _from_record(data: Mapping[str, Any], where: str, kind: Kind) -> Content | None:
    """A dict or a model dump: its prompt-like field if it has one, else every string in it."""
    if "messages" in data and data["messages"] is not None:
        return to_content(data["messages"], where=f"{where}.messages", kind=kind, metadata=_metadata(data))
    for name in ("prompt", "input", "text"):
        if data.get(name) is not None:
            return to_content(data[name], where=f"{where}.{name}", kind=kind)
    texts = _strings(data)
    return Content("\n".join(texts), kind=kind) if texts else None


def _metadata(values: Mapping[str, Any]) -> dict[str, str]:
    """The chat request's ``model`` and ``user``, when they are strings: context for the guard."""
    return {key: values[key] for key in ("model", "user") if isinstance(values.get(key), str)}


def to_content(
    value: Any,
    *,
    where: str = "value",
    kind: Kind = "prompt",
    metadata: Mapping[str, str] | None = None,
) -> Content | None:
    """Turn one value into the `Content` to scan.

    A str is text; a list of chat messages (dicts or SDK objects) is ``messages``; a list of str is
    their lines; a dict or pydantic model gives its ``messages``, ``prompt``, ``input`` or ``text``
    field, else every string it holds; a `Content` is taken as is. None, an empty string and an
    empty list give None (nothing to scan).

    Args:
        value: the argument's value.
        where: how error messages name the value (e.g. ``"argument 'prompt'"``).
        kind: ``"prompt"`` or ``"response"``.
        metadata: context for the guard, put on ``messages`` content.

    Raises:
        ExtractionError: the value holds no text a guard can scan (a number, an object).
    """
    if isinstance(value, str):
        return Content(value, kind=kind) if value else None
    if value is None:
        return None
    if isinstance(value, Content):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ExtractionError(f"{where} is bytes that are not UTF-8 text") from None
        return Content(text, kind=kind) if text else None
    value = _plain(value)
    if isinstance(value, Mapping):
        return _from_record(value, where, kind)
    if isinstance(value, Sequence):
        if not value:
            return None
        if isinstance(value[0], str):
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    raise ExtractionError(f"{where}[{index}] is {type(item).__name__}, not text")
            text = "\n".join(value)
            return Content(text, kind=kind) if text else None
        return _messages(value, where, kind, metadata or {})
    raise ExtractionError(f"{where} is {type(value).__name__}, which holds no text to scan")


def _lookup(bound: inspect.BoundArguments, name: str) -> Any:
    """The value of argument `name`: passed, defaulted, or inside ``**kwargs``; else _MISSING."""
    arguments = bound.arguments
    if name in arguments:
        return arguments[name]
    parameters = bound.signature.parameters
    parameter = parameters.get(name)
    if parameter is not None:
        if parameter.kind in _VARIADIC or parameter.default is inspect.Parameter.empty:
            return _MISSING
        return parameter.default
    for parameter in parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            extra = arguments.get(parameter.name)
            if extra and name in extra:
                return extra[name]
    return _MISSING


def _ordered_values(bound: inspect.BoundArguments) -> list[tuple[str, Any]]:
    """(name, value) of every passed argument in parameter order, ``*args`` and ``**kwargs`` spread."""
    values: list[tuple[str, Any]] = []
    arguments = bound.arguments
    for name, parameter in bound.signature.parameters.items():
        if name not in arguments:
            continue
        value = arguments[name]
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            values.extend((f"{name}[{index}]", item) for index, item in enumerate(value))
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            values.extend(value.items())
        else:
            values.append((name, value))
    return values


class _Arg:
    """The extractor `arg` returns."""

    __slots__ = ("kind", "name", "names")

    def __init__(self, name: str, kind: Kind) -> None:
        self.name = name
        self.kind: Kind = kind
        # Argument names this extractor reads; `guarded` checks them against the signature.
        self.names = (name,)

    def __call__(self, bound: inspect.BoundArguments, /) -> Content | None:
        value = _lookup(bound, self.name)
        if value is _MISSING:
            return None
        return to_content(
            value,
            where=f"argument {self.name!r}",
            kind=self.kind,
            metadata=_metadata(bound.arguments) if self.name == "messages" else None,
        )

    def __repr__(self) -> str:
        return f"arg({self.name!r})" if self.kind == "prompt" else f"arg({self.name!r}, kind={self.kind!r})"


def arg(name: str, *, kind: Kind = "prompt") -> Extractor:
    """Scan the argument called `name` (its default when not passed; a ``**kwargs`` entry too).

    The value is read as `to_content` says: a str, chat messages, a dict or a pydantic model.

    Args:
        name: the parameter's name.
        kind: ``"prompt"`` (default) or ``"response"``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"arg() takes a parameter name, not {name!r}")
    return _Arg(name, kind)


def first_text(bound: inspect.BoundArguments, /) -> Content | None:
    """Scan the first non-empty str argument, in parameter order (``*args`` included)."""
    for _, value in _ordered_values(bound):
        if isinstance(value, str) and value:
            return Content(value)
    return None


class _OpenAIChat:
    """Scan the ``messages`` argument of an OpenAI-style chat call.

    Every message, every text content part, author names, refusals and tool-call arguments are
    scanned. Messages may be dicts or SDK objects with ``model_dump()``. String ``model`` and
    ``user`` arguments go to the guard as metadata.

    Used bare (``extract=extractors.openai_chat``) it scans every message; called with options
    (``extractors.openai_chat(roles=("user", "tool"), last_turn=True)``) it returns an extractor
    scanning only those messages (see `MessageScope`).
    """

    __slots__ = ("scope",)
    names = ("messages",)

    def __init__(self, scope: MessageScope = ALL_MESSAGES) -> None:
        self.scope = scope

    @overload
    def __call__(self, bound: inspect.BoundArguments, /) -> Content | None: ...

    @overload
    def __call__(
        self, bound: None = None, /, *, roles: Iterable[str] | None = None, last_turn: bool = False
    ) -> _OpenAIChat: ...

    def __call__(
        self,
        bound: inspect.BoundArguments | None = None,
        /,
        *,
        roles: Iterable[str] | None = None,
        last_turn: bool = False,
    ) -> Content | _OpenAIChat | None:
        if bound is None:
            return _OpenAIChat(MessageScope(roles, last_turn=last_turn))
        value = _lookup(bound, "messages")
        if value is _MISSING or value is None:
            return None
        value = _plain(value)
        if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Sequence):
            raise ExtractionError(
                f"argument 'messages' is {type(value).__name__}, not a list of chat messages"
            )
        if self.scope.narrows:
            value = [value[index] for index in self.scope.select(value)]
        return _messages(value, "argument 'messages'", "prompt", _metadata(bound.arguments))

    def __repr__(self) -> str:
        if not self.scope.narrows:
            return "openai_chat"
        roles = None if self.scope.roles is None else tuple(sorted(self.scope.roles))
        return f"openai_chat(roles={roles!r}, last_turn={self.scope.last_turn})"


#: Scan the ``messages`` argument of an OpenAI-style chat call (every message, content part,
#: author name, refusal and tool-call argument; dicts or SDK objects). Call it with ``roles=``
#: and ``last_turn=`` to scan only some messages: ``openai_chat(roles=("user", "tool"))``.
openai_chat = _OpenAIChat()


class _PydanticField:
    """The extractor `pydantic_field` returns."""

    __slots__ = ("argument", "kind", "names", "path")

    def __init__(self, argument: str, path: str, kind: Kind) -> None:
        self.argument = argument
        self.path = path
        self.kind: Kind = kind
        self.names = (argument,)

    def __call__(self, bound: inspect.BoundArguments, /) -> Content | None:
        value = _lookup(bound, self.argument)
        if value is _MISSING:
            return None
        where = f"argument {self.argument!r}"
        for attribute in self.path.split("."):
            if value is None:
                return None
            if isinstance(value, Mapping):
                value = value.get(attribute, _MISSING)
            else:
                value = getattr(value, attribute, _MISSING)
            if value is _MISSING:
                raise ExtractionError(f"{where} has no field {attribute!r}")
            where = f"{where}.{attribute}"
        return to_content(value, where=where, kind=self.kind)

    def __repr__(self) -> str:
        return f"pydantic_field({self.argument!r}, {self.path!r})"


def pydantic_field(argument: str, field: str, *, kind: Kind = "prompt") -> Extractor:
    """Scan one field of a pydantic model (or dict) argument.

    Args:
        argument: the parameter holding the model.
        field: the field to scan; a dotted path reaches nested models (``"request.messages"``).
        kind: ``"prompt"`` (default) or ``"response"``.

    Example::

        @guarded(guard, extract=extractors.pydantic_field("body", "messages"))
        async def chat(body: ChatRequest) -> ChatResponse: ...
    """
    if not argument.isidentifier() or not all(part.isidentifier() for part in field.split(".")):
        raise ValueError(
            f"pydantic_field() takes a parameter name and a field path, not {argument!r}, {field!r}"
        )
    return _PydanticField(argument, field, kind)


def _is_chat_messages(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes, bytearray))
        and bool(value)
        and all(isinstance(item, Mapping) and ("role" in item or "content" in item) for item in value)
    )


def _walk(value: Any, texts: list[str], depth: int = 0) -> None:
    """Every string in `value`: dict keys and values, list items, pydantic models and dataclasses,
    bytes read as UTF-8; in order. Values of other types hold no text and are passed over."""
    if isinstance(value, str):
        if value:
            texts.append(value)
        return
    if depth >= _MAX_DEPTH:
        raise ExtractionError("an argument is nested too deeply to scan")
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", "replace")
        if text:
            texts.append(text)
        return
    if isinstance(value, (bool, int, float, complex, type(None))):
        return
    value = _plain(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and key:
                texts.append(key)
            _walk(item, texts, depth + 1)
    elif isinstance(value, (Sequence, AbstractSet)):
        for item in value:
            _walk(item, texts, depth + 1)


def _instance_parameter(signature: inspect.Signature) -> str | None:
    """``self`` or ``cls`` when a method's first parameter is one: the object, not an argument."""
    first = next(iter(signature.parameters), None)
    return first if first in ("self", "cls") else None


class _Args:
    """The extractor `args` returns (and `default` is)."""

    __slots__ = ("exclude", "names", "scope")

    def __init__(self, exclude: tuple[str, ...], scope: MessageScope = ALL_MESSAGES) -> None:
        self.exclude = frozenset(exclude)
        self.scope = scope
        # Argument names this extractor reads; `guarded` checks them against the signature.
        self.names = exclude

    def __call__(self, bound: inspect.BoundArguments, /) -> Content | None:
        arguments = bound.arguments
        if len(arguments) == 1 and not self.exclude:
            # The common call, f(prompt): one str argument, without the general walk.
            (only,) = arguments.values()
            if type(only) is str:
                return Content(only) if only else None
        messages: list[dict[str, Any]] | None = None
        covered: set[str] = set()
        texts: list[str] = []
        instance = _instance_parameter(bound.signature)
        values = [
            (name, value)
            for name, value in _ordered_values(bound)
            if name not in self.exclude and name != instance
        ]
        skip_system = False
        if self.scope.narrows:
            # Anthropic's shape: the system prompt is an argument beside the messages, not one of them.
            chat = next((_plain(v) for _, v in values if _is_chat_messages(_plain(v))), None)
            if chat is not None:
                any_assistant = any(_is_role(_plain(m), "assistant") for m in chat)
                skip_system = not self.scope.keeps_role("system") or (self.scope.last_turn and any_assistant)
        for name, value in values:
            if skip_system and name == "system":
                continue
            plain = _plain(value)
            if messages is None and _is_chat_messages(plain):
                messages = [dict(_plain(message)) for message in plain]
                if self.scope.narrows:
                    messages = [messages[index] for index in self.scope.select(messages)]
                covered = {text for message in messages for text in message_texts(message)}
                # Shapes the chat reading does not know (Anthropic tool_result blocks, Gemini parts,
                # a dict as content) still reach the guard: every other string of the messages.
                _walk([{k: v for k, v in m.items() if k not in ("role", "content")} for m in messages], texts)
                for message in messages:
                    content = message.get("content")
                    if not isinstance(content, str):
                        _walk(content, texts)
                continue
            _walk(value, texts)
        rest = [text for text in texts if text not in covered and text not in _SHAPE_WORDS]
        if not messages:
            messages = None
        if messages is None and not rest:
            return None
        try:
            return Content(
                "\n".join(rest) if rest else None,
                messages=messages,
                metadata=_metadata(arguments) if messages is not None else None,
            )
        except ValidationError:
            # Pydantic's message quotes the input: never let it reach a log line.
            raise ExtractionError("the messages argument is not a list of chat messages") from None

    def __repr__(self) -> str:
        options = []
        if self.exclude:
            options.append(f"exclude={tuple(sorted(self.exclude))!r}")
        if self.scope.roles is not None:
            options.append(f"roles={tuple(sorted(self.scope.roles))!r}")
        if self.scope.last_turn:
            options.append("last_turn=True")
        return f"args({', '.join(options)})" if options else "default"


def _is_role(message: Any, role: str) -> bool:
    value = message.get("role") if isinstance(message, Mapping) else None
    return isinstance(value, str) and value.lower() == role


# Keys and type tags of chat payloads: structure, not text (checked when they are values elsewhere).
_SHAPE_WORDS = frozenset({"role", "content", "type", "text", "name", "parts", "tool_use_id", "image_url"})


def args(
    *, exclude: Sequence[str] = (), roles: Iterable[str] | None = None, last_turn: bool = False
) -> Extractor:
    """Scan every argument of the call, but those named in `exclude`.

    Every string is scanned, wherever it is: plain str arguments, bytes (as UTF-8), the keys and
    values of dicts, lists and tuples, pydantic models and dataclasses, recursively. The first
    argument that is a list of chat messages (OpenAI, Anthropic or Gemini shaped: dicts with a
    ``role`` or ``content``) goes to the guard as ``messages``, so a vendor gets its chat format,
    and every string of it the chat reading does not know (tool results, Gemini ``parts``) goes
    with the rest. Arguments that hold no text (numbers, clients) are passed over. Defaults that
    were not passed are the function's own constants and are not scanned.

    Args:
        exclude: names of arguments not to scan, e.g. a system prompt the function builds itself:
            ``extract=extractors.args(exclude=("system_prompt",))``.
        roles: the roles of the chat messages scanned (None: every role; see `MessageScope`).
            A ``system`` argument beside the messages (Anthropic's shape) counts as the system
            role. Every argument that is not a chat message is still scanned.
        last_turn: scan only the messages after the last assistant message.
    """
    if isinstance(exclude, str):
        raise TypeError("exclude takes a sequence of argument names, e.g. exclude=('system_prompt',)")
    names = tuple(exclude)
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"args(exclude=...) takes parameter names, not {name!r}")
    return _Args(names, MessageScope(roles, last_turn=last_turn))


class _Body:
    """The body extractor `body` returns."""

    __slots__ = ("scope",)

    def __init__(self, scope: MessageScope) -> None:
        self.scope = scope

    def __call__(self, request: HTTPBody, /) -> Content | None:
        return default_body(request, self.scope)

    def __repr__(self) -> str:
        roles = None if self.scope.roles is None else tuple(sorted(self.scope.roles))
        return f"body(roles={roles!r}, last_turn={self.scope.last_turn})"


def body(
    *, roles: Iterable[str] | None = None, last_turn: bool = False
) -> Callable[[HTTPBody], Content | None]:
    """`default_body` scanning only some chat messages of a request (a middleware extractor).

    Only the chat messages the app reads (``messages``, a Responses ``input``, and Anthropic's
    ``system`` beside ``messages``) are narrowed; every other string of the request is scanned as
    `default_body` scans it. A body not declared JSON is also scanned whole as text, so narrowing
    takes effect on JSON bodies (what chat clients send).

    Args:
        roles: the roles scanned (None: every role; see `MessageScope`).
        last_turn: scan only the messages after the last assistant message.
    """
    return _Body(MessageScope(roles, last_turn=last_turn))


#: The extractor `guarded` uses unless told otherwise: every argument (see `args`).
default: Extractor = _Args(())


def response_content(value: Any, *, prompt: str | None = None) -> Content | None:
    """The `Content` of a function's return value, for ``scan_response=True``.

    A str is text; an OpenAI chat completion (a dict with ``choices`` or the SDK object) is a
    ``completion``; any other dict or pydantic model gives every string it holds. None, numbers and
    booleans give None (nothing to scan).

    Args:
        value: what the function returned.
        prompt: the prompt that produced it, when known, passed on to the guard.

    Raises:
        ExtractionError: the value is an object with no text a guard can read.
    """
    if isinstance(value, str):
        return Content(value, kind="response", prompt=prompt) if value else None
    if value is None or isinstance(value, (bool, int, float)):
        return None
    if isinstance(value, Content):
        return value
    data = _plain(value)
    if isinstance(data, Mapping) and isinstance(data.get("choices"), Sequence):
        try:
            return Content(completion=data, kind="response", prompt=prompt)
        except ValidationError:
            raise ExtractionError("the return value is not a chat completion") from None
    if isinstance(data, (Mapping, list, tuple)):
        texts = _strings(data)
        return Content("\n".join(texts), kind="response", prompt=prompt) if texts else None
    raise ExtractionError(f"the return value is {type(value).__name__}, which holds no text to scan")


def _get(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key)
    return getattr(value, key, None)


def _delta_texts(delta: Any) -> list[str]:
    if isinstance(delta, Mapping):
        return list(message_texts(delta))
    # SDK objects: attribute access, because a model_dump() per chunk costs more than the chunk.
    texts = [text for key in ("content", "refusal") if isinstance(text := getattr(delta, key, None), str)]
    for call in getattr(delta, "tool_calls", None) or ():
        arguments = _get(_get(call, "function"), "arguments")
        if isinstance(arguments, str):
            texts.append(arguments)
    return texts


def chunk_text(chunk: Any) -> str:
    """The text of one streamed chunk: a str, bytes (UTF-8), or an OpenAI chat completion chunk.

    For chunks, every choice's ``delta`` (content, refusal, tool-call arguments) and legacy
    ``text``; a Responses API event's string ``delta``. A chunk with no text (a role-only delta, a
    usage chunk) gives ``""``.

    Raises:
        ExtractionError: the chunk is of a type with no text a guard can read.
    """
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, (bytes, bytearray)):
        return bytes(chunk).decode("utf-8", errors="replace")
    choices = _get(chunk, "choices")
    if isinstance(choices, Sequence) and not isinstance(choices, str):
        texts: list[str] = []
        for choice in choices:
            delta = _get(choice, "delta")
            if delta is not None:
                texts.extend(_delta_texts(delta))
            legacy = _get(choice, "text")
            if isinstance(legacy, str):
                texts.append(legacy)
        return "".join(texts)
    delta = _get(chunk, "delta")
    if isinstance(delta, str):
        return delta
    if choices is not None or delta is not None or isinstance(chunk, Mapping):
        return ""
    if isinstance(_get(chunk, "type"), str):
        # A stream event with no text of its own (e.g. the Responses API's "response.created").
        return ""
    raise ExtractionError(f"a streamed chunk of type {type(chunk).__name__} holds no text to scan")
