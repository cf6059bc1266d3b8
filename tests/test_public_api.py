"""The public surface: `guardrails.__all__` is sorted, complete and importable."""

from __future__ import annotations

import guardrails

# The contract: names users import from `guardrails`. One per line, so adding one is a one-line change.
PUBLIC_NAMES = [
    "ASGIGuardMiddleware",
    "Action",
    "Blocked",
    "BreakerState",
    "CircuitBreaker",
    "Content",
    "ContentTooLarge",
    "Decision",
    "DecisionHook",
    "ExtractionError",
    "FailOpen",
    "Guard",
    "GuardAuthError",
    "GuardConfigurationError",
    "GuardError",
    "GuardRateLimited",
    "GuardResponseError",
    "GuardSettings",
    "GuardTimeout",
    "GuardUnavailable",
    "GuardrailsError",
    "LRUCache",
    "LocalGuard",
    "PaloAltoAIRS",
    "Route",
    "ToolEvent",
    "TrendAIGuard",
    "Verdict",
    "VerdictCache",
    "WSGIGuardMiddleware",
    "__version__",
    "add_hook",
    "extractors",
    "guard_from_env",
    "guarded",
    "instrument",
    "remove_hook",
    "reset_stats",
    "stats",
    "testing",
    "uninstrument",
    "usage",
]


def test_all_is_sorted() -> None:
    """__all__ is kept in sorted order, so diffs show what was added."""
    assert guardrails.__all__ == sorted(guardrails.__all__)


def test_all_has_no_duplicates() -> None:
    """Each name appears once."""
    assert len(set(guardrails.__all__)) == len(guardrails.__all__)


def test_all_contains_every_contract_name() -> None:
    """No public name disappears."""
    assert sorted(set(PUBLIC_NAMES) - set(guardrails.__all__)) == []


def test_every_name_in_all_is_importable() -> None:
    """`from guardrails import *` gives every name __all__ promises."""
    namespace: dict[str, object] = {}
    exec("from guardrails import *", namespace)
    assert sorted(set(guardrails.__all__) - set(namespace)) == []


def test_version_is_a_string() -> None:
    """__version__ is a PEP 440 style string."""
    assert isinstance(guardrails.__version__, str)
    assert guardrails.__version__[0].isdigit()
