"""guardrails: put an AI-guard service in front of every LLM call.

A `guarded` decorator and ASGI/WSGI middleware extract the text to scan, ask a guard (Trend Vision
One AI Guard, Palo Alto Prisma AIRS, or the in-process `LocalGuard`), and raise or answer 403 on
Block; a fail-open or fail-closed policy decides what happens when the guard is down.
"""

from . import extractors, testing
from ._cache import LRUCache, VerdictCache
from ._events import Decision, DecisionHook, add_hook, remove_hook, reset_stats, stats
from ._exceptions import (
    Blocked,
    ContentTooLarge,
    ExtractionError,
    GuardAuthError,
    GuardError,
    GuardrailsError,
    GuardRateLimited,
    GuardResponseError,
    GuardTimeout,
    GuardUnavailable,
)
from ._guard import Guard
from ._models import Action, Content, Verdict
from ._otel import instrument, uninstrument
from ._policy import BreakerState, CircuitBreaker, FailOpen
from ._routing import Route
from ._settings import GuardSettings, guard_from_env
from .asgi import GuardMiddleware as ASGIGuardMiddleware
from .decorator import guarded
from .guards import LocalGuard, PaloAltoAIRS, TrendAIGuard
from .wsgi import GuardMiddleware as WSGIGuardMiddleware

__version__ = "0.1.0"

__all__ = [
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
]
