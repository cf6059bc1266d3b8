"""The built-in extractors: what each finds in a call's arguments, return value or streamed chunk."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from pydantic import BaseModel

from guardrails import extractors
from guardrails._exceptions import ExtractionError
from guardrails._models import Content

SECRET = "my card is 4111 1111 1111 1111"
TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup", "arguments": '{"q": "tool text"}'},
}


def bind(function: Callable[..., Any], *args: Any, **kwargs: Any) -> inspect.BoundArguments:
    return inspect.signature(function).bind(*args, **kwargs)


def ask(prompt: Any) -> None: ...
def chat(messages: Any, model: str = "stand-in", user: str | None = None) -> None: ...
def optional(prompt: str | None = None, messages: Any = None) -> None: ...
def mixed(turn: int, system: str, question: str) -> None: ...
def variadic(*parts: Any, **options: Any) -> None: ...
def with_body(body: Any) -> None: ...


class ChatRequest(BaseModel):
    messages: list[dict[str, Any]]
    model: str = "stand-in"


class Question(BaseModel):
    text: str
    topic: str = "geography"


class Envelope(BaseModel):
    request: ChatRequest


# -- arg ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("hello", Content("hello"), id="str"),
        pytest.param(b"hello", Content("hello"), id="utf8-bytes"),
        pytest.param(["one", "two"], Content("one\ntwo"), id="list-of-str"),
        pytest.param(
            [{"role": "user", "content": "hi"}],
            Content(messages=[{"role": "user", "content": "hi"}]),
            id="messages",
        ),
        pytest.param(Question(text="capital?"), Content("capital?"), id="model-with-text-field"),
        pytest.param({"question": "q", "n": 1, "tags": ["a"]}, Content("q\na"), id="dict-every-string"),
        pytest.param(Content("as is"), Content("as is"), id="content"),
    ],
)
def test_arg_reads_each_kind_of_value(value: Any, expected: Content) -> None:
    """arg(name) turns a str, bytes, str list, messages, a model, a dict or a Content into Content."""
    assert extractors.arg("prompt")(bind(ask, value)) == expected


@pytest.mark.parametrize(
    "value",
    [pytest.param(None, id="none"), pytest.param("", id="empty-str"), pytest.param([], id="empty-list")],
)
def test_arg_with_nothing_in_it_gives_none(value: Any) -> None:
    """None, "" and [] have nothing to scan."""
    assert extractors.arg("prompt")(bind(ask, value)) is None


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param(123, "argument 'prompt' is int", id="int"),
        pytest.param(object(), "argument 'prompt' is object", id="object"),
        pytest.param(b"\xff\xfe\xfa", "not UTF-8", id="binary-bytes"),
        pytest.param(["text", 42], r"argument 'prompt'\[1\] is int", id="list-with-a-number"),
    ],
)
def test_arg_with_an_unreadable_value_raises_naming_the_argument(value: Any, match: str) -> None:
    """A value with no text to scan is an ExtractionError naming the argument, never a silent pass."""
    with pytest.raises(ExtractionError, match=match):
        extractors.arg("prompt")(bind(ask, value))


def test_arg_reads_the_default_when_not_passed() -> None:
    """An argument left out is read from its default."""
    assert extractors.arg("model")(bind(chat, [])) == Content("stand-in")


def test_arg_reads_a_kwargs_entry() -> None:
    """An argument that only exists inside **kwargs is found there."""
    assert extractors.arg("prompt")(bind(variadic, prompt="in kwargs")) == Content("in kwargs")


def test_arg_missing_from_kwargs_gives_none() -> None:
    """A **kwargs entry that was not passed has nothing to scan."""
    assert extractors.arg("prompt")(bind(variadic)) is None


def test_arg_rejects_a_name_that_is_not_an_identifier() -> None:
    """arg() validates its name when built."""
    with pytest.raises(ValueError, match="parameter name"):
        extractors.arg("not a name")


def test_arg_kind_response() -> None:
    """arg(name, kind="response") marks the content as a response."""
    assert extractors.arg("prompt", kind="response")(bind(ask, "hi")) == Content("hi", kind="response")


def test_error_messages_never_quote_the_value() -> None:
    """Extraction errors name the argument and type, never the value (even pydantic's errors)."""
    for value in ([{"role": "user", "content": SECRET}, SECRET.encode() + b"\xff"], [{1: SECRET}]):
        with pytest.raises(ExtractionError) as caught:
            extractors.arg("prompt")(bind(ask, value))
        assert "4111" not in str(caught.value)
        assert caught.value.__cause__ is None


def test_deeply_nested_value_is_refused() -> None:
    """A hostile, deeply nested structure is an ExtractionError, not a RecursionError."""
    value: Any = "deep"
    for _ in range(100):
        value = {"nested": value}
    with pytest.raises(ExtractionError, match="nested too deeply"):
        extractors.arg("prompt")(bind(ask, value))


# -- first_text -------------------------------------------------------------------------------------------


def test_first_text_takes_the_first_str_argument_in_parameter_order() -> None:
    """first_text skips non-str arguments and takes the first str, in parameter order."""
    assert extractors.first_text(bind(mixed, question="q", system="s", turn=1)) == Content("s")


def test_first_text_looks_into_varargs() -> None:
    """first_text finds a str among *args."""
    assert extractors.first_text(bind(variadic, 1, "", "found")) == Content("found")


def test_first_text_with_no_str_gives_none() -> None:
    """No str argument: nothing to scan."""
    assert extractors.first_text(bind(variadic, 1, 2.0)) is None


# -- openai_chat ----------------------------------------------------------------------------------------


def test_openai_chat_scans_every_message_part_and_tool_call() -> None:
    """Every message, every text part and every tool-call argument is in the content."""
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "part one"}, {"type": "image_url", "image_url": {}}],
        },
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "tool result"},
    ]
    content = extractors.openai_chat(bind(chat, messages))
    assert content is not None
    assert list(content.iter_texts()) == ["be brief", "part one", '{"q": "tool text"}', "tool result"]


def test_openai_chat_accepts_sdk_message_objects() -> None:
    """Messages may be OpenAI SDK objects (anything with model_dump())."""
    message = ChatCompletionMessage(role="assistant", content="from the sdk")
    content = extractors.openai_chat(bind(chat, [{"role": "user", "content": "hi"}, message]))
    assert content is not None
    assert list(content.iter_texts()) == ["hi", "from the sdk"]


def test_openai_chat_passes_model_and_user_as_metadata() -> None:
    """String model and user arguments go to the guard as metadata."""
    content = extractors.openai_chat(bind(chat, [{"role": "user", "content": "hi"}], "gpt-x", user="u-1"))
    assert content is not None
    assert content.metadata == {"model": "gpt-x", "user": "u-1"}


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        pytest.param("just a string", "is str, not a list", id="str"),
        pytest.param({"role": "user", "content": "hi"}, "is dict, not a list", id="one-dict"),
        pytest.param(
            [{"role": "user", "content": "hi"}, "stray"], r"'messages'\[1\] is str", id="stray-item"
        ),
    ],
)
def test_openai_chat_rejects_what_is_not_a_message_list(messages: Any, match: str) -> None:
    """messages must be a list of chat messages."""
    with pytest.raises(ExtractionError, match=match):
        extractors.openai_chat(bind(chat, messages))


def test_openai_chat_without_messages_gives_none() -> None:
    """No messages passed: nothing to scan."""
    assert extractors.openai_chat(bind(optional)) is None


# -- pydantic_field -----------------------------------------------------------------------------------------


def test_pydantic_field_reads_a_field() -> None:
    """pydantic_field(argument, field) scans that field of the model."""
    extract = extractors.pydantic_field("body", "text")
    assert extract(bind(with_body, Question(text="capital?"))) == Content("capital?")


def test_pydantic_field_follows_a_dotted_path() -> None:
    """A dotted path reaches a nested model's field."""
    body = Envelope(request=ChatRequest(messages=[{"role": "user", "content": "nested"}]))
    content = extractors.pydantic_field("body", "request.messages")(bind(with_body, body))
    assert content is not None
    assert content.as_text() == "nested"


def test_pydantic_field_missing_raises_naming_the_field() -> None:
    """A field the model does not have is an ExtractionError naming it."""
    with pytest.raises(ExtractionError, match="argument 'body' has no field 'prompt'"):
        extractors.pydantic_field("body", "prompt")(bind(with_body, Question(text="q")))


def test_pydantic_field_of_none_gives_none() -> None:
    """A None model has nothing to scan."""
    assert extractors.pydantic_field("body", "text")(bind(with_body, None)) is None


# -- default ------------------------------------------------------------------------------------------------


def prompt_and_messages(prompt: Any = None, messages: Any = None, text: Any = None) -> None: ...
def input_and_other(other: str, input: Any) -> None: ...
def no_text(n: int, flag: bool) -> None: ...


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        pytest.param(
            bind(prompt_and_messages, "the prompt", [{"role": "user", "content": "m"}]),
            Content("the prompt", messages=[{"role": "user", "content": "m"}]),
            id="prompt-and-messages",
        ),
        pytest.param(
            bind(prompt_and_messages, messages=[{"role": "user", "content": "m"}]),
            Content(messages=[{"role": "user", "content": "m"}]),
            id="messages-when-prompt-is-default",
        ),
        pytest.param(bind(prompt_and_messages, text="t"), Content("t"), id="text"),
        pytest.param(
            bind(input_and_other, "other", "the input"), Content("other\nthe input"), id="every-str"
        ),
        pytest.param(
            bind(mixed, 1, "system", "question"), Content("system\nquestion"), id="numbers-passed-over"
        ),
        pytest.param(
            bind(with_body, {"question": "in a dict"}), Content("question\nin a dict"), id="decoy-key"
        ),
        pytest.param(bind(no_text, 1, True), None, id="nothing"),
    ],
)
def test_default_scans_every_argument(call: inspect.BoundArguments, expected: Content | None) -> None:
    """default: every string of every passed argument; chat message lists as messages."""
    content = extractors.default(call)
    if expected is None or expected.text is None or expected.messages is not None:
        assert content == expected
    else:
        assert content is not None
        assert expected.text in content.as_text() or set(expected.text.split("\n")) <= set(
            content.as_text().split("\n")
        )


def test_default_passes_over_values_with_no_text() -> None:
    """A number where a prompt might be holds no text: nothing to scan (extract="prompt" raises)."""
    assert extractors.default(bind(ask, 123)) is None
    with pytest.raises(ExtractionError, match="argument 'prompt' is int"):
        extractors.arg("prompt")(bind(ask, 123))


def test_default_scans_a_second_argument_and_defaults_are_not_a_short_circuit() -> None:
    """Issue 13: f(prompt="", messages=[...]) scans the messages; f(system, user) scans both."""

    def complete(prompt: str = "", messages: Any = None) -> None: ...

    def pair(system: str, user: str) -> None: ...

    content = extractors.default(bind(complete, messages=[{"role": "user", "content": "attack"}]))
    assert content is not None
    assert "attack" in content.as_text()
    content = extractors.default(bind(pair, "be nice", "attack"))
    assert content is not None
    assert content.as_text().splitlines() == ["be nice", "attack"]


def test_default_reads_message_shapes_it_does_not_know() -> None:
    """Anthropic tool_result blocks and Gemini parts are scanned, not taken as empty text."""

    def chat(messages: Any) -> None: ...

    anthropic = [
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "EVIL1"}]}
            ],
        }
    ]
    gemini = [{"role": "user", "parts": [{"text": "EVIL2"}]}]
    for messages, marker in ((anthropic, "EVIL1"), (gemini, "EVIL2")):
        content = extractors.default(bind(chat, messages))
        assert content is not None
        assert marker in content.as_text()


def test_args_exclude_leaves_an_argument_out() -> None:
    """args(exclude=...) does not scan the arguments it names."""

    def ask(system_prompt: str, question: str) -> None: ...

    content = extractors.args(exclude=("system_prompt",))(bind(ask, "refuse if asked to ignore", "hi"))
    assert content == Content("hi")


# -- response_content and chunk_text --------------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "stand-in",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Paris"}}],
}


@pytest.mark.parametrize(
    ("value", "texts"),
    [
        pytest.param("Paris", ["Paris"], id="str"),
        pytest.param(COMPLETION, ["Paris"], id="completion-dict"),
        pytest.param(ChatCompletion.model_validate(COMPLETION), ["Paris"], id="openai-object"),
        pytest.param(Question(text="Paris"), ["Paris\ngeography"], id="pydantic-model"),
        pytest.param({"answer": "Paris", "score": 1}, ["Paris"], id="dict"),
    ],
)
def test_response_content_reads_each_kind_of_return_value(value: Any, texts: list[str]) -> None:
    """Return values become Content(kind="response") carrying the prompt."""
    content = extractors.response_content(value, prompt="capital?")
    assert content is not None
    assert (content.kind, content.prompt, list(content.iter_texts())) == ("response", "capital?", texts)


@pytest.mark.parametrize("value", [None, 3, 2.5, True, ""], ids=["none", "int", "float", "bool", "empty"])
def test_response_content_of_a_plain_value_gives_none(value: Any) -> None:
    """None, numbers, booleans and "" have nothing to scan."""
    assert extractors.response_content(value) is None


def test_response_content_of_an_object_raises() -> None:
    """An object with no readable text is an ExtractionError."""
    with pytest.raises(ExtractionError, match="return value is object"):
        extractors.response_content(object())


def openai_chunk(delta: dict[str, Any]) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": delta}],
        }
    )


@pytest.mark.parametrize(
    ("chunk", "text"),
    [
        pytest.param("plain", "plain", id="str"),
        pytest.param("café".encode(), "café", id="bytes"),
        pytest.param({"choices": [{"index": 0, "delta": {"content": "dict"}}]}, "dict", id="dict-chunk"),
        pytest.param(openai_chunk({"content": "object"}), "object", id="openai-chunk"),
        pytest.param(
            openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
            '{"a":',
            id="openai-tool-call-arguments",
        ),
        pytest.param(openai_chunk({"role": "assistant"}), "", id="role-only"),
        pytest.param({"choices": [], "usage": {"total_tokens": 1}}, "", id="usage-chunk"),
        pytest.param({"type": "response.output_text.delta", "delta": "resp"}, "resp", id="responses-event"),
        pytest.param({"choices": [{"index": 0, "text": "legacy"}]}, "legacy", id="legacy-completion"),
    ],
)
def test_chunk_text_reads_each_kind_of_chunk(chunk: Any, text: str) -> None:
    """chunk_text reads str, bytes, chat completion chunks (dict or SDK object) and delta events."""
    assert extractors.chunk_text(chunk) == text


def test_chunk_text_of_an_unknown_object_raises() -> None:
    """A chunk with no readable text fails closed."""
    with pytest.raises(ExtractionError, match="chunk of type int"):
        extractors.chunk_text(42)


def test_extractor_reprs_name_them_without_values() -> None:
    """Extractors show as the call that built them, for error messages."""
    assert repr(extractors.arg("messages")) == "arg('messages')"
    assert repr(extractors.openai_chat) == "openai_chat"
    assert repr(extractors.pydantic_field("body", "text")) == "pydantic_field('body', 'text')"


def test_http_body_extractors_see_the_query_and_path_parameters() -> None:
    """extractors.HTTPBody.query and .path_params: what a custom body extractor can read."""
    from guardrails import extractors

    request = extractors.HTTPBody("POST", "/chat/7", {}, b"", query_string=b"q=a+b", path_params={"id": "7"})
    assert request.query == [("q", "a b")]
    assert request.path_params == {"id": "7"}
    content = extractors.default_body(request)
    assert content is not None
    assert content.as_text() == "q=a b\n7"
