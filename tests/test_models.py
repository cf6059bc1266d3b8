"""What is scanned (`Content`) and what a guard answers (`Verdict`, `Action`)."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.chat import ChatCompletion
from pydantic import ValidationError

from guardrails._models import Action, Content, Verdict, as_content, combine_verdicts

# Every string a user (or a model) controls carries a marker; roles, ids, types, URLs and function
# names do not, so "iter_texts yields exactly the markers" also says "and nothing else".
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "m-system"},
    {
        "role": "user",
        "name": "m-author-name",
        "content": [
            {"type": "text", "text": "m-text-part"},
            {"type": "image_url", "image_url": {"url": "https://img.test/cat.png", "detail": "low"}},
            {"type": "input_text", "input_text": "m-input-text-part"},
            "m-bare-string-part",
        ],
    },
    {
        "role": "assistant",
        "content": [{"type": "refusal", "refusal": "m-refusal-part"}],
        "refusal": "m-refusal",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "m-tool-args"}},
            {"id": "call_2", "type": "function", "function": {"name": "fetch", "arguments": "m-tool-args-2"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "legacy", "arguments": "m-function-args"},
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "m-tool-result"},
]
MESSAGE_TEXTS = [
    "m-system",
    "m-text-part",
    "m-input-text-part",
    "m-bare-string-part",
    "m-author-name",
    "m-refusal-part",
    "m-refusal",
    "m-tool-args",
    "m-tool-args-2",
    "m-function-args",
    "m-tool-result",
]

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-test",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": "c-message",
                "refusal": "c-refusal",
                "tool_calls": [
                    {"id": "call_9", "type": "function", "function": {"name": "run", "arguments": "c-args"}}
                ],
            },
        },
        {"index": 1, "delta": {"role": "assistant", "content": "c-delta"}},
        {"index": 2, "finish_reason": "stop", "text": "c-legacy-text"},
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
}
COMPLETION_TEXTS = ["c-message", "c-refusal", "c-args", "c-delta", "c-legacy-text"]


def sdk_completion() -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-test",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": "sdk-content",
                        "refusal": None,
                        "tool_calls": [
                            {
                                "id": "call_3",
                                "type": "function",
                                "function": {"name": "f", "arguments": "sdk-args"},
                            }
                        ],
                    },
                }
            ],
        }
    )


# -- Content: construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"text": "hello"}, id="text"),
        pytest.param({"text": ""}, id="empty-text"),
        pytest.param({"messages": MESSAGES}, id="messages"),
        pytest.param({"completion": COMPLETION}, id="completion"),
        pytest.param({"text": "t", "messages": MESSAGES, "completion": COMPLETION}, id="all-three"),
    ],
)
def test_content_accepts_text_messages_or_a_completion(options: dict[str, Any]) -> None:
    """Any one of text, messages and completion is enough."""
    Content(**options)


def test_content_needs_something_to_scan() -> None:
    """Neither text, messages nor completion is a validation error."""
    with pytest.raises(ValidationError, match="needs text, messages or completion"):
        Content(kind="response", metadata={"user": "u1"})


@pytest.mark.parametrize("kind", ["prompt", "response"])
def test_content_kind_is_prompt_or_response(kind: Any) -> None:
    """The two kinds are accepted and kept."""
    assert Content("x", kind=kind).kind == kind


def test_content_kind_defaults_to_prompt() -> None:
    """A Content is a prompt unless told otherwise."""
    assert Content("x").kind == "prompt"


@pytest.mark.parametrize("kind", ["request", "Prompt", "", None])
def test_content_rejects_other_kinds(kind: Any) -> None:
    """Any other kind is a validation error."""
    with pytest.raises(ValidationError):
        Content("x", kind=kind)


def test_content_rejects_unknown_fields_when_validated() -> None:
    """Extra fields are refused, not silently dropped."""
    # pydantic routes model_validate through the custom __init__, hence TypeError.
    with pytest.raises((TypeError, ValidationError), match="txt"):
        Content.model_validate({"text": "x", "txt": "typo"})


def test_content_rejects_unknown_keyword_arguments() -> None:
    """A misspelt keyword fails loudly."""
    with pytest.raises(TypeError):
        Content("x", mesages=[])  # type: ignore[call-arg]


def test_content_is_frozen() -> None:
    """A Content cannot be changed after the guard saw it."""
    content = Content("x")
    with pytest.raises(ValidationError):
        content.text = "y"


def test_content_metadata_is_kept() -> None:
    """Metadata (user, session, route...) travels with the content."""
    metadata = {"user": "u1", "session_id": "s1", "route": "POST /v1/chat/completions"}
    assert Content("x", metadata=metadata).metadata == metadata
    assert Content("x").metadata == {}


def test_content_takes_an_openai_sdk_completion() -> None:
    """An `openai` ChatCompletion object is stored as plain data and scanned."""
    content = Content(completion=sdk_completion(), kind="response")
    assert isinstance(content.completion, dict)
    assert list(content.iter_texts()) == ["sdk-content", "sdk-args"]


def test_content_takes_openai_sdk_messages() -> None:
    """SDK message objects in `messages` are scanned like dicts."""
    message = sdk_completion().choices[0].message
    content = Content(messages=[{"role": "user", "content": "question"}, message])
    assert list(content.iter_texts()) == ["question", "sdk-content", "sdk-args"]


# -- Content: what is scanned ----------------------------------------------------------------------


def test_iter_texts_of_text_is_the_text() -> None:
    """Plain text is scanned as it is."""
    assert list(Content("hello").iter_texts()) == ["hello"]


def test_iter_texts_covers_every_user_controllable_string_of_messages() -> None:
    """Content strings and parts, refusals, names, tool-call and function-call arguments; no roles."""
    assert list(Content(messages=MESSAGES).iter_texts()) == MESSAGE_TEXTS


def test_iter_texts_covers_every_choice_of_a_completion() -> None:
    """Every choice's message, streaming delta and legacy text; no ids, models or finish reasons."""
    assert list(Content(completion=COMPLETION, kind="response").iter_texts()) == COMPLETION_TEXTS


def test_iter_texts_reads_a_responses_api_output_text() -> None:
    """A Responses-API style ``output_text`` is scanned too."""
    content = Content(completion={"id": "resp_1", "output_text": "r-output"}, kind="response")
    assert list(content.iter_texts()) == ["r-output"]


def test_iter_texts_yields_text_then_messages_then_completion() -> None:
    """With all three, the order is text, messages, completion."""
    content = Content("t-text", messages=MESSAGES, completion=COMPLETION)
    assert list(content.iter_texts()) == ["t-text", *MESSAGE_TEXTS, *COMPLETION_TEXTS]


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"role": "user"}, id="no-content"),
        pytest.param({"role": "user", "content": 42}, id="number-content"),
        pytest.param(
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}, id="image"
        ),
        pytest.param({"role": "assistant", "tool_calls": "not-a-list"}, id="bad-tool-calls"),
        pytest.param({"role": "assistant", "tool_calls": [{"function": None}]}, id="no-function"),
        pytest.param({"role": "assistant", "function_call": "not-a-dict"}, id="bad-function-call"),
    ],
)
def test_iter_texts_skips_what_holds_no_text(message: dict[str, Any]) -> None:
    """Odd or text-free message shapes yield nothing rather than raising."""
    assert list(Content(messages=[message]).iter_texts()) == []


def test_as_text_of_plain_text_is_the_text() -> None:
    """A plain-text content is its text, unchanged."""
    assert Content("line 1\nline 2").as_text() == "line 1\nline 2"


def test_as_text_joins_every_string_with_newlines() -> None:
    """Messages are flattened into one text for plain-text guards."""
    assert Content(messages=MESSAGES).as_text() == "\n".join(MESSAGE_TEXTS)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(Content("s3cr3t-prompt"), id="text"),
        pytest.param(Content(messages=[{"role": "user", "content": "s3cr3t-prompt"}]), id="messages"),
        pytest.param(
            Content(completion={"choices": [{"message": {"content": "s3cr3t-prompt"}}]}), id="completion"
        ),
        pytest.param(Content("x", prompt="s3cr3t-prompt", kind="response"), id="prompt"),
    ],
)
def test_repr_never_shows_the_text(content: Content) -> None:
    """repr() and str() describe the content without quoting it."""
    for text in (repr(content), str(content), f"{content}"):
        assert "s3cr3t" not in text
        assert text.startswith("Content(")


# -- as_content ------------------------------------------------------------------------------------


def test_as_content_returns_a_content_unchanged() -> None:
    """A Content is passed through as the same object."""
    content = Content("x", kind="response")
    assert as_content(content) is content


def test_as_content_takes_a_string_as_a_prompt() -> None:
    """A plain string is a prompt, or the kind asked for."""
    assert as_content("hello") == Content("hello")
    assert as_content("hello", kind="response").kind == "response"


@pytest.mark.parametrize("value", [b"bytes", None, 42, ["a"]])
def test_as_content_rejects_anything_else(value: Any) -> None:
    """Bytes, None, numbers and lists are a TypeError naming the type only."""
    with pytest.raises(TypeError, match=type(value).__name__):
        as_content(value)


# -- Action and Verdict ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("allow", Action.ALLOW, id="allow"),
        pytest.param("Allow", Action.ALLOW, id="title-case"),
        pytest.param(" BLOCK\n", Action.BLOCK, id="upper-padded"),
        pytest.param("bLoCk", Action.BLOCK, id="mixed-case"),
        pytest.param("allowed", None, id="near-miss"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="none"),
        pytest.param(1, None, id="number"),
        pytest.param(True, None, id="bool"),
    ],
)
def test_action_parse_is_lenient_on_case_and_strict_on_words(value: object, expected: Action | None) -> None:
    """Any case and padding of allow/block is read; anything else is None, never Allow."""
    assert Action.parse(value) is expected


def test_action_str_is_its_value() -> None:
    """str(Action.BLOCK) is "block", for logs and JSON."""
    assert (str(Action.ALLOW), str(Action.BLOCK)) == ("allow", "block")


@pytest.mark.parametrize(
    ("action", "blocked", "allowed"),
    [
        pytest.param(Action.BLOCK, True, False, id="block"),
        pytest.param(Action.ALLOW, False, True, id="allow"),
    ],
)
def test_verdict_blocked_and_allowed_follow_the_action(action: Action, blocked: bool, allowed: bool) -> None:
    """.blocked and .allowed read the action."""
    verdict = Verdict(action=action)
    assert (verdict.blocked, verdict.allowed) == (blocked, allowed)


def test_verdict_defaults() -> None:
    """Only the action is required."""
    verdict = Verdict(action="block")  # type: ignore[arg-type]
    assert verdict == Verdict(
        action=Action.BLOCK, reasons=[], id=None, guard="unknown", raw={}, masked_data=None
    )


def test_verdict_is_frozen() -> None:
    """A verdict cannot be changed after the guard gave it."""
    verdict = Verdict(action=Action.ALLOW)
    with pytest.raises(ValidationError):
        verdict.action = Action.BLOCK


def test_verdict_rejects_an_unknown_action() -> None:
    """Verdict(action="maybe") is a validation error."""
    with pytest.raises(ValidationError):
        Verdict(action="maybe")  # type: ignore[arg-type]


# -- combine_verdicts ------------------------------------------------------------------------------


def window(
    action: Action, *reasons: str, id: str | None = None, masked: dict[str, Any] | None = None
) -> Verdict:
    return Verdict(action=action, reasons=list(reasons), id=id, guard="w", raw={"id": id}, masked_data=masked)


def test_combining_one_verdict_returns_it() -> None:
    """A single window's verdict is the verdict."""
    verdict = window(Action.BLOCK, "r1", id="v1")
    assert combine_verdicts([verdict], guard="g") is verdict


def test_combining_no_verdicts_is_an_error() -> None:
    """There is nothing to decide from zero windows."""
    with pytest.raises(ValueError):
        combine_verdicts([], guard="g")


def test_any_block_blocks() -> None:
    """One blocking window blocks the whole content, and its id leads."""
    combined = combine_verdicts(
        [window(Action.ALLOW, id="v1"), window(Action.BLOCK, "r", id="v2"), window(Action.ALLOW, id="v3")],
        guard="g",
    )
    assert combined.blocked
    assert combined.id == "v2"
    assert combined.guard == "g"


def test_all_allow_allows() -> None:
    """Every window allows: the content is allowed, with the first window's id."""
    combined = combine_verdicts([window(Action.ALLOW, id="v1"), window(Action.ALLOW, id="v2")], guard="g")
    assert combined.allowed
    assert combined.id == "v1"


def test_block_reasons_come_from_blocking_windows_in_order_without_duplicates() -> None:
    """The blocking windows' reasons, first seen first, each once; an allowing window's are left out."""
    combined = combine_verdicts(
        [window(Action.BLOCK, "b", "a"), window(Action.ALLOW, "c"), window(Action.BLOCK, "a", "d")], guard="g"
    )
    assert combined.reasons == ["b", "a", "d"]


def test_allow_reasons_are_merged_from_every_window() -> None:
    """When every window allows, every window's reasons are kept, each once."""
    combined = combine_verdicts([window(Action.ALLOW, "x", "y"), window(Action.ALLOW, "y", "z")], guard="g")
    assert combined.reasons == ["x", "y", "z"]


def test_combined_raw_keeps_every_window() -> None:
    """The raw payload lists every window's raw payload, in order."""
    combined = combine_verdicts([window(Action.ALLOW, id="v1"), window(Action.BLOCK, id="v2")], guard="g")
    assert combined.raw == {"windows": [{"id": "v1"}, {"id": "v2"}]}


def test_combined_masked_data_is_the_first_windows_that_has_some() -> None:
    """Masked data comes from the first window that returned any."""
    combined = combine_verdicts(
        [
            window(Action.ALLOW),
            window(Action.ALLOW, masked={"data": "m2"}),
            window(Action.ALLOW, masked={"data": "m3"}),
        ],
        guard="g",
    )
    assert combined.masked_data == {"data": "m2"}
