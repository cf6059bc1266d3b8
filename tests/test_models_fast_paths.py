"""``Content(text)``'s fast path builds exactly what pydantic's validation builds."""

from __future__ import annotations

import pydantic
import pytest

from guardrails._models import Content


def validated(text: str) -> Content:
    """The same Content through pydantic's validation (the general path)."""
    return Content.model_validate({"text": text})


@pytest.mark.parametrize("text", ["hi", "", "x" * 10_000, "caf\u00e9 \U0001f600", "line\nbreak"])
def test_a_plain_prompt_equals_its_validated_twin(text: str) -> None:
    """Equal, same fields set, same dump, same repr."""
    fast, slow = Content(text), validated(text)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set == {"text"}
    assert fast.model_dump() == slow.model_dump()
    assert repr(fast) == repr(slow)


def test_a_plain_prompt_is_frozen_and_its_metadata_its_own() -> None:
    """Assignment is refused as on any Content; each one gets a fresh metadata dict."""
    first, second = Content("a"), Content("b")
    with pytest.raises(pydantic.ValidationError):
        first.text = "changed"
    assert first.metadata == {}
    assert first.metadata is not second.metadata


def test_a_plain_prompt_copies_and_revalidates_like_any_content() -> None:
    """model_copy and model_validate of its dump work as on a validated Content."""
    content = Content("hi")
    assert content.model_copy(update={"prompt": "p"}).prompt == "p"
    assert Content.model_validate(content.model_dump()) == content


def test_a_str_subclass_takes_the_validated_path() -> None:
    """Only an exact str skips validation: a subclass is validated (pydantic makes it a str)."""

    class Text(str):
        pass

    assert type(Content(Text("hi")).text) is str


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}',
        b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "part"}]}], "user": "u1"}',
        b'{"prompt": "just text"}',
    ],
)
def test_the_body_readers_content_equals_its_validated_twin(body: bytes) -> None:
    """What the middlewares' default extractor builds is what validation would build."""
    from guardrails._body import HTTPBody, default_body

    content = default_body(
        HTTPBody("POST", "/chat", {"content-type": "application/json"}, body, metadata={"route": "/chat"})
    )
    assert content is not None
    twin = Content.model_validate({name: getattr(content, name) for name in content.model_fields_set})
    assert content == twin
    assert content.model_fields_set == twin.model_fields_set
    assert content.model_dump() == twin.model_dump()


def test_text_with_a_tool_event_or_context_keeps_them() -> None:
    """The plain-prompt fast path is taken only when nothing but the text is given."""
    from guardrails import ToolEvent

    tool = ToolEvent(name="t", arguments={"a": 1})
    with_tool = Content("question", tool=tool)
    assert with_tool.tool == tool
    history = [{"role": "user", "content": "earlier"}]
    with_context = Content("question", context=history)
    assert with_context.context == history
