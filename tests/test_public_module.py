"""Public classes say `guardrails`, not their private module, and still pickle (issue 20)."""

from __future__ import annotations

import pickle
import traceback
from typing import Any

import pytest

import guardrails
from guardrails import (
    Action,
    Blocked,
    Content,
    ContentTooLarge,
    Decision,
    ExtractionError,
    GuardAuthError,
    GuardConfigurationError,
    GuardError,
    GuardrailsError,
    GuardRateLimited,
    GuardResponseError,
    GuardTimeout,
    GuardUnavailable,
    Route,
    Verdict,
)

PUBLIC = [
    GuardrailsError,
    Blocked,
    ExtractionError,
    ContentTooLarge,
    GuardError,
    GuardTimeout,
    GuardUnavailable,
    GuardRateLimited,
    GuardAuthError,
    GuardConfigurationError,
    GuardResponseError,
    Action,
    Content,
    Verdict,
    Route,
    Decision,
]


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda cls: cls.__name__)
def test_public_classes_live_in_guardrails(cls: type[Any]) -> None:
    """Each public class names the public module, which exports it under that name."""
    assert cls.__module__ == "guardrails"
    assert getattr(guardrails, cls.__qualname__) is cls


def _blocked() -> Blocked:
    verdict = Verdict(action=Action.BLOCK, reasons=["prompt_attack: instruction_override"], guard="local")
    return Blocked(verdict)


def test_a_traceback_shows_guardrails_blocked() -> None:
    """The last line of a traceback reads `guardrails.Blocked: ...`."""
    try:
        raise _blocked()
    except Blocked as exc:
        last = traceback.format_exception(exc)[-1]
    assert last.startswith("guardrails.Blocked: ")


def test_reprs_show_the_public_path() -> None:
    """repr of a class and of an enum member use the public module."""
    assert repr(Blocked) == "<class 'guardrails.Blocked'>"
    assert repr(Verdict) == "<class 'guardrails.Verdict'>"


def test_exceptions_pickle_and_come_back_equal() -> None:
    """pickle finds guardrails.Blocked and friends, with their attributes."""
    blocked = pickle.loads(pickle.dumps(_blocked()))
    assert type(blocked) is Blocked
    assert blocked.verdict.reasons == ["prompt_attack: instruction_override"]
    error = pickle.loads(pickle.dumps(GuardUnavailable("down", guard="trend")))
    assert type(error) is GuardUnavailable
    assert error.guard == "trend"
    assert str(error) == "down"


def test_models_pickle_and_come_back_equal() -> None:
    """Content, Verdict, Action, Route and Decision round-trip through pickle."""
    content = Content(messages=[{"role": "user", "content": "hi"}], metadata={"user": "u"})
    verdict = Verdict(action=Action.ALLOW, categories=frozenset({"prompt_attack"}), masked=content)
    route = Route("/v1/chat/completions")
    for value in (content, verdict, Action.BLOCK, route):
        assert pickle.loads(pickle.dumps(value)) == value
