"""examples/agent_tool.py: a tool with a poisoned result is withheld; a leaking call never runs."""

from __future__ import annotations

import pytest

from guardrails import Blocked
from tests.helpers import load_example


def test_a_clean_page_reaches_the_agent() -> None:
    example = load_example("agent_tool.py")
    assert example.fetch_page("https://example.com/weather").startswith("Sunny")


def test_a_poisoned_page_is_withheld_with_the_reasons() -> None:
    example = load_example("agent_tool.py")
    result = example.fetch_page("https://example.com/poisoned")
    assert result == "tool result withheld: prompt_attack: instruction_override"


def test_an_email_leaking_a_card_number_is_never_sent() -> None:
    example = load_example("agent_tool.py")
    with pytest.raises(Blocked) as caught:
        example.send_email("a@example.com", body="my card is 4111 1111 1111 1111")
    assert caught.value.verdict.reasons == ["sensitive_information: credit_card"]


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    load_example("agent_tool.py").main()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["clean", "poisoned", "blocked"]
    assert "Ignore all" not in "".join(lines)
