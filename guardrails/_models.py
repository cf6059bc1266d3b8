"""What is scanned (`Content`) and what the guard says about it (`Verdict`, `Action`)."""

from __future__ import annotations

import enum
import itertools
import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator

__all__ = [
    "CATEGORIES",
    "Action",
    "Category",
    "Content",
    "ToolEvent",
    "Verdict",
    "as_content",
    "combine_verdicts",
    "message_texts",
]

Kind = Literal["prompt", "response"]

# One vocabulary of findings, whatever the vendor: each guard maps its own reasons onto these and
# keeps its raw reasons in `Verdict.reasons`.
Category = Literal[
    "prompt_attack", "sensitive_data", "harmful_content", "malicious_url", "topic_violation", "other"
]
CATEGORIES: tuple[Category, ...] = (
    "prompt_attack",
    "sensitive_data",
    "harmful_content",
    "malicious_url",
    "topic_violation",
    "other",
)


class Action(str, enum.Enum):
    """What the guard recommends."""

    ALLOW = "allow"
    BLOCK = "block"

    @classmethod
    def parse(cls, value: object) -> Action | None:
        """Read a vendor's action leniently (any case, surrounding spaces); None if unknown."""
        if isinstance(value, str):
            folded = value.strip().lower()
            if folded == "allow":
                return cls.ALLOW
            if folded == "block":
                return cls.BLOCK
        return None

    def __str__(self) -> str:
        return self.value


# Module globals: an enum member read through its class costs several times a global's read (3.11),
# and every shell asks ``verdict.blocked`` once per check.
_ALLOW: Final = Action.ALLOW
_BLOCK: Final = Action.BLOCK


def _plain(value: Any) -> Any:
    """Turn an SDK object (pydantic model, e.g. an `openai` ChatCompletion) into plain data."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump()
    return value


def _part_texts(content: Any) -> Iterator[str]:
    texts: list[str] = []
    _parts_into(content, texts)
    yield from texts


# The content parts of a message past this many are first tried as plain text parts in C passes.
_MANY = 16
_TYPE_KEY = operator.itemgetter("type")
_TEXT_KEY = operator.itemgetter("text")
_ROLE_KEY = operator.itemgetter("role")
_CONTENT_KEY = operator.itemgetter("content")
_DICT: Final = frozenset({dict})
_STR: Final = frozenset({str})
_TWO: Final = frozenset({2})


def _has_key(values: list[Any], key: str) -> bool:
    """Whether every value (all of them ``dict``) has `key`: one C pass."""
    return all(map(dict.__contains__, values, itertools.repeat(key, len(values))))


def _plain_text_parts(parts: list[Any]) -> list[str] | None:
    """The texts of `parts` if every part is a plain text part, ``{"type": ..., "text": <str>}``.

    None otherwise (the caller then walks the parts one by one). Each step is one pass in C
    (``map`` of a built-in): ~0.2 us a part in all, where the Python loop costs ~1.5 us a part,
    and a message of 65,536 parts is how 1 MB of content is made slow. A part with exactly the keys ``type`` and
    ``text`` has no other string `_parts_into` reads (``refusal``, ``input_text``).
    """
    if set(map(type, parts)) != _DICT or set(map(len, parts)) != _TWO:
        return None
    if not _has_key(parts, "type"):
        return None
    try:
        texts = list(map(_TEXT_KEY, parts))
    except KeyError:  # the other key is not "text"
        return None
    return texts if set(map(type, texts)) == _STR else None


def _parts_into(content: Any, texts: list[str]) -> None:
    """Append the strings of one message's ``content`` (a string, or a list of parts) to `texts`.

    A part is a string, or a mapping whose ``text``, ``refusal`` and ``input_text`` strings are
    read, in that order.
    """
    if type(content) is str:
        texts.append(content)
        return
    if type(content) is list and len(content) > _MANY:
        plain = _plain_text_parts(content)
        if plain is not None:
            texts += plain
            return
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            # type() first: an ABC's isinstance costs ~1 us, a part's whole walk otherwise.
            elif type(part) is dict or isinstance(part, Mapping):
                for key in ("text", "refusal", "input_text"):
                    text = part.get(key)
                    if isinstance(text, str):
                        texts.append(text)


def message_texts(message: Mapping[str, Any]) -> Iterator[str]:
    """Every user-controllable string of one OpenAI chat message.

    The content (a string, or every text part), the refusal, the author name, and the arguments of
    every tool call and legacy function call.
    """
    texts: list[str] = []
    _message_into(message, texts)
    yield from texts


def _message_into(message: Mapping[str, Any], texts: list[str]) -> None:
    """Append the strings of one chat message (see `message_texts`) to `texts`."""
    _parts_into(message.get("content"), texts)
    # The usual message has a role and a content only: no other key to look up.
    if type(message) is dict and len(message) == 2 and "role" in message and "content" in message:
        return
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        texts.append(refusal)
    name = message.get("name")
    if isinstance(name, str):
        texts.append(name)
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, Sequence) and not isinstance(tool_calls, str):
        for call in tool_calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    texts.append(arguments)
    function_call = message.get("function_call")
    if isinstance(function_call, Mapping):
        arguments = function_call.get("arguments")
        if isinstance(arguments, str):
            texts.append(arguments)


def _messages_into(messages: list[Any], texts: list[str], roles: list[str | None] | None) -> None:
    """Append the strings of chat messages to `texts`, and each string's role to `roles` if given.

    A role that is not a string is None. Messages that are all ``{"role": ..., "content":
    <str>}`` (the usual request) are read in C passes, as `_plain_text_parts` reads parts.
    """
    if len(messages) > _MANY and _plain_messages(messages):
        contents = list(map(_CONTENT_KEY, messages))
        if set(map(type, contents)) == _STR:
            texts += contents
            if roles is not None:
                named = list(map(_ROLE_KEY, messages))
                roles += named if set(map(type, named)) == _STR else map(_role_or_none, named)
            return
    for message in messages:
        start = len(texts)
        _message_into(message, texts)
        if roles is not None and len(texts) > start:
            role = message.get("role")
            roles += [role if isinstance(role, str) else None] * (len(texts) - start)


def _plain_messages(messages: list[Any]) -> bool:
    """Whether every message is a ``dict`` of a ``role`` and a ``content`` (C passes)."""
    return (
        set(map(type, messages)) == _DICT
        and set(map(len, messages)) == _TWO
        and _has_key(messages, "role")
        and _has_key(messages, "content")
    )


def _role_or_none(role: Any) -> str | None:
    return role if isinstance(role, str) else None


def _json_strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value (keys included: a tool's arguments are named by the model)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                yield key
            yield from _json_strings(item)
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        for item in value:
            yield from _json_strings(item)


def _tool_strings(value: Any) -> Iterator[str]:
    """`_json_strings`, a string holding a JSON object or array read decoded (what a tool reads).

    A tool's arguments often come as JSON text (OpenAI's ``function.arguments``): its escapes
    (``\\u0069gnore``, ``\\n``) are read as the tool and the model read them. The emulator's
    ``tool_event`` scan reads the same strings (`guardrails.testing.emulator`).
    """
    if isinstance(value, str):
        decoded = _json_container(value)
        if decoded is None:
            yield value
        else:
            yield from _tool_strings(decoded)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                yield key
            yield from _tool_strings(item)
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        for item in value:
            yield from _tool_strings(item)


def _json_container(text: str) -> Any:
    """The object or array `text` holds as JSON; None for any other text."""
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        decoded = json.loads(text)
    except ValueError:
        return None
    return decoded if isinstance(decoded, (dict, list)) else None


def _json_text(value: Any) -> str:
    """A tool's arguments or result as the JSON string vendors take (a string stays as it is)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


class ToolEvent(BaseModel):
    """One tool call of an agent: the tool, where it runs, what it was given and what it gave back.

    Args:
        name: the tool's name (``tool_invoked`` for Palo Alto, the function name for Trend).
        server: the MCP server (or other host) the tool runs on, when known.
        arguments: what the tool was called with: a JSON string or JSON-like data.
        result: what the tool returned (JSON string, text or JSON-like data); None before it ran.
        ecosystem: the protocol the tool is reached by (``"mcp"``, ``"function"``...).
        method: the protocol method of the event (``"tools/call"``, ``"tools/list"``...).

    Guards see every string of the arguments and the result; vendors with a tool format get the
    event in it (Palo Alto ``tool_event``, Trend a chat request holding the tool call and its
    ``tool`` message).

    Every shell checks an event holding a result as ``kind="prompt"`` (a result enters the
    model's context) and one without as ``kind="response"`` (the arguments are the model's
    output): see `guardrails.integrations._tools.tool_content`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    server: str | None = None
    arguments: Any = None
    result: Any = None
    ecosystem: str = "function"
    method: str = "tools/call"

    def input_text(self) -> str | None:
        """The arguments as a JSON string (None when there are none)."""
        return None if self.arguments is None else _json_text(self.arguments)

    def output_text(self) -> str | None:
        """The result as a JSON string (text too: a JSON string literal); None before the tool ran."""
        if self.result is None:
            return None
        return json.dumps(self.result, ensure_ascii=False, default=str, separators=(",", ":"))

    def iter_texts(self) -> Iterator[str]:
        """Every string of the event: the tool's name, its arguments' strings, its result's strings.

        Keys included (a small superset); a string holding a JSON object or array is read decoded.
        """
        yield self.name
        yield from _tool_strings(self.arguments)
        yield from _tool_strings(self.result)

    def __repr__(self) -> str:
        # Arguments and results are user data: never shown.
        return f"ToolEvent(name={self.name!r}, server={self.server!r}, result={self.result is not None})"

    __str__ = __repr__


class Content(BaseModel):
    """What a guard scans: a prompt or a model response.

    Args:
        text: plain text.
        messages: OpenAI chat messages (``[{"role": "user", "content": "..."}]``, or SDK message objects).
        completion: an OpenAI chat completion (a dict, or an SDK object with ``model_dump()``).
        kind: ``"prompt"`` (default) or ``"response"``.
        metadata: optional context for the guard: ``user``, ``session_id`` (one conversation),
            ``transaction_id`` (one turn), ``route``, ``user_ip``, ``model``, ``app_name``.
        prompt: for a response, the prompt that produced it, when known.
        tool: a tool call (`ToolEvent`): its arguments (checked before it runs) and, once it ran,
            its result (checked before the agent sees it).
        context: chat messages already checked and allowed, sent along as context to a guard that
            takes context without scanning it (Palo Alto's ``context`` field); never scanned, and
            left out by guards that would scan it (see `guardrails._incremental`).

    At least one of ``text``, ``messages``, ``completion`` and ``tool`` is required.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    completion: dict[str, Any] | None = None
    kind: Kind = "prompt"
    metadata: dict[str, str] = Field(default_factory=dict)
    prompt: str | None = None
    tool: ToolEvent | None = None
    context: list[dict[str, Any]] | None = None

    def __init__(
        self,
        text: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any] | Any] | None = None,
        completion: Mapping[str, Any] | Any | None = None,
        kind: Kind = "prompt",
        metadata: Mapping[str, str] | None = None,
        prompt: str | None = None,
        tool: ToolEvent | None = None,
        context: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        if text is None and messages is None and completion is None and tool is None:
            # Here rather than in a model validator: a plain prompt is the hot path, and a model
            # validator costs a Python call on every Content.
            raise ValidationError.from_exception_data(
                "Content",
                [
                    {
                        "type": "value_error",
                        "loc": (),
                        "input": {},
                        "ctx": {"error": ValueError("Content needs text, messages or completion")},
                    }
                ],
            )
        if (
            type(text) is str
            and messages is None
            and completion is None
            and kind == "prompt"
            and not metadata
            and prompt is None
            and tool is None
            and context is None
            and type(self) is Content
            and _PLAIN_PROMPT is not None
        ):
            # The hot path, a plain prompt: a str needs no validation, and pydantic's would cost
            # twice the rest of this. The state is what validation leaves (same fields set).
            defaults, factories = _PLAIN_PROMPT
            state = {**defaults, "text": text}
            for name, factory in factories:
                state[name] = factory()
            _set = object.__setattr__
            _set(self, "__dict__", state)
            _set(self, "__pydantic_fields_set__", {"text"})
            _set(self, "__pydantic_extra__", None)
            _set(self, "__pydantic_private__", None)
            return
        # Only what was given: a field left out skips its validators.
        fields: dict[str, Any] = {"text": text} if text is not None else {}
        if messages is not None:
            fields["messages"] = messages
        if completion is not None:
            fields["completion"] = completion
        if kind != "prompt":
            fields["kind"] = kind
        if metadata:
            fields["metadata"] = metadata
        if prompt is not None:
            fields["prompt"] = prompt
        if tool is not None:
            fields["tool"] = tool
        if context is not None:
            fields["context"] = context
        super().__init__(**fields)

    @classmethod
    def _parsed(
        cls, text: str | None, messages: list[dict[str, Any]] | None, metadata: Mapping[str, str]
    ) -> Content:
        """A prompt Content of data this library just parsed, built without pydantic's validation.

        For the middlewares' body reader only: its messages are fresh ``dict``/``list`` values of
        JSON (``str`` keys), no one else holds them, so validation would only copy them (~7 us for
        a chat request). Anything else goes through `Content(...)`.
        """
        layout = _PARSED_LAYOUT
        plain = layout is not None and (text is not None or messages is not None)
        if plain:
            for key, value in metadata.items():  # a loop: no generator frame for a one-key dict
                if type(key) is not str or type(value) is not str:
                    plain = False
                    break
        if not plain or layout is None:
            return cls(text, messages=messages, metadata=dict(metadata))
        # What Content(text, messages=..., metadata=...) leaves, without its validation: the
        # state (the layout's defaults and these three), the fields set, no extra, no private.
        state, set_dict, set_fields, set_extra, set_private = layout
        state = state.copy()
        state["text"] = text
        state["messages"] = messages
        state["metadata"] = dict(metadata)  # a fresh dict when empty, as the default factory makes
        if text is not None and messages is not None and metadata:
            fields = {"text", "messages", "metadata"}  # the middlewares' chat request
        else:
            fields = {"text"} if text is not None else set()
            if messages is not None:
                fields.add("messages")
            if metadata:
                fields.add("metadata")
        content = _new_object(cls)
        set_dict(content, state)
        set_fields(content, fields)
        set_extra(content, None)
        set_private(content, None)
        return content

    @field_validator("messages", mode="before")
    @classmethod
    def _messages_plain(cls, value: Any) -> Any:
        if value is None or isinstance(value, (str, bytes)):
            return value
        if isinstance(value, Iterable):
            return [_plain(message) for message in value]
        return value

    @field_validator("completion", mode="before")
    @classmethod
    def _completion_plain(cls, value: Any) -> Any:
        return _plain(value)

    def iter_texts(self) -> Iterator[str]:
        """Every user-controllable string in this content, in order.

        Messages and completions yield every message's content and content parts, author names,
        refusals and tool-call arguments; a completion yields every choice.
        """
        if self.messages is None and self.completion is None and self.tool is None:
            return iter(() if self.text is None else (self.text,))
        return iter(self._texts(None))

    def _texts(self, roles: list[str | None] | None) -> list[str]:
        """The strings of `iter_texts`; with `roles`, each string's role appended to it.

        The role is the message's ``role`` (None if not a string), ``"assistant"`` for a
        completion, None for the text and a tool event. One walk, shared by every guard and by
        `LocalGuard`, which also needs the roles (`texts_and_roles`).
        """
        texts: list[str] = []
        if self.text is not None:
            texts.append(self.text)
            if roles is not None:
                roles.append(None)
        if self.messages is not None:
            _messages_into(self.messages, texts, roles)
        if self.completion is not None:
            before = len(texts)
            choices = self.completion.get("choices")
            if isinstance(choices, Sequence):
                for choice in choices:
                    if not isinstance(choice, Mapping):
                        continue
                    for key in ("message", "delta"):
                        part = choice.get(key)
                        if isinstance(part, Mapping):
                            _message_into(part, texts)
                    legacy = choice.get("text")
                    if isinstance(legacy, str):
                        texts.append(legacy)
            output = self.completion.get("output_text")
            if isinstance(output, str):
                texts.append(output)
            if roles is not None:
                roles += ["assistant"] * (len(texts) - before)
        if self.tool is not None:
            before = len(texts)
            texts.extend(self.tool.iter_texts())
            if roles is not None:
                roles += [None] * (len(texts) - before)
        return texts

    def as_text(self) -> str:
        """All the strings of `iter_texts` joined by newlines: what a plain-text guard scans."""
        if self.text is not None and self.messages is None and self.completion is None and self.tool is None:
            return self.text
        return "\n".join(self.iter_texts())

    def __repr__(self) -> str:
        # Never show the text itself: reprs end up in logs and tracebacks.
        parts = [f"kind={self.kind!r}"]
        if self.text is not None:
            parts.append(f"text=<{len(self.text)} chars>")
        if self.messages is not None:
            parts.append(f"messages=<{len(self.messages)} messages>")
        if self.completion is not None:
            parts.append("completion=<chat completion>")
        if self.tool is not None:
            parts.append(f"tool={self.tool!r}")
        return f"Content({', '.join(parts)})"

    __str__ = __repr__


def texts_and_roles(content: Content) -> tuple[list[str], list[str | None]]:
    """The strings of `Content.iter_texts`, and the role of each (see `Content._texts`)."""
    roles: list[str | None] = []
    return content._texts(roles), roles


def _plain_prompt_layout() -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]] | None:
    """The state of a ``Content(text)`` but its text: static defaults, and fields made by factories.

    None (no fast path) if some field other than ``text`` has no default, or Content has private
    attributes: then only pydantic knows how to build one.
    """
    if Content.__private_attributes__:
        return None
    defaults: dict[str, Any] = {}
    factories: list[tuple[str, Any]] = []
    for name, field in Content.model_fields.items():
        if name == "text":
            continue
        if field.default_factory is not None:
            factories.append((name, field.default_factory))
        elif field.is_required():
            return None
        else:
            defaults[name] = field.default
    return defaults, tuple(factories)


_PLAIN_PROMPT: tuple[dict[str, Any], tuple[tuple[str, Any], ...]] | None = None
_PLAIN_PROMPT = _plain_prompt_layout()


_Setter = Callable[[Any, Any], None]
_new_object = object.__new__


def _slot_setter(name: str) -> _Setter:
    """What ``object.__setattr__(content, name, value)`` calls for a `Content`: the data
    descriptor of `name` its class inherits (a slot of ``BaseModel``), called directly (no look-up
    by name per call); ``object.__setattr__`` itself when there is none."""
    for klass in Content.__mro__:
        descriptor = klass.__dict__.get(name)
        if descriptor is not None:
            setter = getattr(type(descriptor), "__set__", None)
            if setter is not None:
                return descriptor.__set__  # type: ignore[no-any-return]
            break
    return _attribute_setter(name)


def _attribute_setter(name: str) -> _Setter:
    """``object.__setattr__`` of `name`, as a two-argument setter."""

    def set_attribute(instance: Any, value: Any) -> None:
        object.__setattr__(instance, name, value)

    return set_attribute


def _parsed_layout() -> tuple[dict[str, Any], _Setter, _Setter, _Setter, _Setter] | None:
    """What `Content._parsed` copies and calls: the state of a ``Content`` with every field at its
    default, and the setters of its ``__dict__`` and pydantic's three slots.

    None (``_parsed`` validates) unless ``metadata`` is the one field made by a factory (``_parsed``
    always sets it) and every other field but ``text`` and ``messages`` has a static default.
    """
    if _PLAIN_PROMPT is None:
        return None
    defaults, factories = _PLAIN_PROMPT
    if [name for name, _ in factories] != ["metadata"]:
        return None
    state = {name: defaults.get(name) for name in Content.model_fields}
    return (
        state,
        _slot_setter("__dict__"),
        _slot_setter("__pydantic_fields_set__"),
        _slot_setter("__pydantic_extra__"),
        _slot_setter("__pydantic_private__"),
    )


_PARSED_LAYOUT = _parsed_layout()


class Verdict(BaseModel):
    """A guard's decision about one `Content`.

    Attributes:
        action: `Action.ALLOW` or `Action.BLOCK`.
        reasons: why, in the guard's words (category names, policy names), never the scanned text.
        id: the guard's identifier for this evaluation (Trend ``id``, Palo Alto ``scan_id``), if any.
        guard: name of the guard that decided.
        raw: the guard's full response payload (detailed fields included).
        masked_data: masked text the guard returned (Palo Alto ``prompt_masked_data`` /
            ``response_masked_data``), if any.
        cached: True when this check did not ask the guard itself: the verdict came from the
            guard's verdict cache, or from an identical check it joined while in flight.
        categories: the findings in one vocabulary (`CATEGORIES`), whatever the vendor; empty
            when nothing was found.
        masked: the checked content with its sensitive spans masked, when the guard masked it.
        degraded: True when a fallback guard decided because the primary one failed (set by
            `Fallback`; the judge copies it into `Decision.degraded`).
    """

    model_config = ConfigDict(frozen=True)

    action: Action
    reasons: list[str] = Field(default_factory=list)
    id: str | None = None
    guard: str = "unknown"
    raw: dict[str, Any] = Field(default_factory=dict)
    masked_data: dict[str, Any] | None = None
    cached: bool = False
    categories: frozenset[Category] = frozenset()
    masked: Content | None = None
    degraded: bool = False

    @field_serializer("categories", when_used="json")
    def _sorted_categories(self, categories: frozenset[Category]) -> list[str]:
        # A frozenset's order depends on how it was built; JSON (logs, caches, diffs) should not.
        return sorted(categories)

    @property
    def blocked(self) -> bool:
        """True when the action is Block."""
        return self.action is _BLOCK

    @property
    def allowed(self) -> bool:
        """True when the action is Allow."""
        return self.action is _ALLOW


def as_content(value: Content | str, *, kind: Kind = "prompt") -> Content:
    """Accept a `Content` or a plain string (a prompt)."""
    if isinstance(value, Content):
        return value
    if isinstance(value, str):
        return Content(value, kind=kind)
    raise TypeError(f"a guard checks a Content or a str, not {type(value).__name__}")


def combine_verdicts(verdicts: Sequence[Verdict], *, guard: str) -> Verdict:
    """Merge the verdicts of several windows of one content.

    Any Block blocks; the reasons are those of the blocking windows (of every window when all
    allow), first seen first, each once.
    """
    if len(verdicts) == 1:
        return verdicts[0]
    if not verdicts:
        raise ValueError("no verdicts to combine")
    blocking = [v for v in verdicts if v.blocked]
    # A Block is explained by the blocking windows; an Allow window's "no violation" would only
    # muddle it.
    explaining = blocking or verdicts
    reasons = list(dict.fromkeys(reason for v in explaining for reason in v.reasons))
    lead = blocking[0] if blocking else verdicts[0]
    masked = next((v.masked_data for v in verdicts if v.masked_data), None)
    return Verdict(
        action=Action.BLOCK if blocking else Action.ALLOW,
        reasons=reasons,
        id=lead.id,
        guard=guard,
        raw={"windows": [v.raw for v in verdicts]},
        masked_data=masked,
        categories=frozenset(category for v in explaining for category in v.categories),
    )


# Reprs and tracebacks show the public path (``guardrails.Verdict``), as for the exceptions.
for _public in (Action, Content, Verdict):
    _public.__module__ = "guardrails"
del _public
