"""guardrails: put an AI-guard service in front of every LLM call.

A `guarded` decorator and ASGI/WSGI middleware extract the text to scan, ask a guard (Trend Vision
One AI Guard, Palo Alto Prisma AIRS, or the in-process `LocalGuard`), and raise or answer 403 on
Block; a fail-open or fail-closed policy decides what happens when the guard is down.
"""

from typing import TYPE_CHECKING, Any

from ._exceptions import (
    Blocked,
    ContentTooLarge,
    ExtractionError,
    GuardAuthError,
    GuardConfigurationError,
    GuardError,
    GuardrailsError,
    GuardRateLimited,
    GuardResponseError,
    GuardTimeout,
    GuardUnavailable,
)
from ._version import __version__

if TYPE_CHECKING:
    from . import extractors, testing
    from ._budget import RateBudget, RateLimit
    from ._cache import LRUCache, VerdictCache
    from ._compose import Fallback, Parallel, Sequential
    from ._events import Decision, DecisionHook, add_hook, remove_hook, reset_stats, stats, usage
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

# Everything but the exceptions is imported at first use (PEP 562): `import guardrails` loads
# neither pydantic-settings, nor the middlewares, nor httpx, nor the test helpers. Each name maps
# to (module, attribute); attribute None means the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    "extractors": (".extractors", None),
    "testing": (".testing", None),
    "RateBudget": ("._budget", "RateBudget"),
    "Fallback": ("._compose", "Fallback"),
    "Parallel": ("._compose", "Parallel"),
    "Sequential": ("._compose", "Sequential"),
    "RateLimit": ("._budget", "RateLimit"),
    "LRUCache": ("._cache", "LRUCache"),
    "VerdictCache": ("._cache", "VerdictCache"),
    "Decision": ("._events", "Decision"),
    "DecisionHook": ("._events", "DecisionHook"),
    "add_hook": ("._events", "add_hook"),
    "remove_hook": ("._events", "remove_hook"),
    "reset_stats": ("._events", "reset_stats"),
    "stats": ("._events", "stats"),
    "usage": ("._events", "usage"),
    "Guard": ("._guard", "Guard"),
    "Action": ("._models", "Action"),
    "Content": ("._models", "Content"),
    "ToolEvent": ("._models", "ToolEvent"),
    "Verdict": ("._models", "Verdict"),
    "instrument": ("._otel", "instrument"),
    "uninstrument": ("._otel", "uninstrument"),
    "BreakerState": ("._policy", "BreakerState"),
    "CircuitBreaker": ("._policy", "CircuitBreaker"),
    "FailOpen": ("._policy", "FailOpen"),
    "Route": ("._routing", "Route"),
    "GuardSettings": ("._settings", "GuardSettings"),
    "guard_from_env": ("._settings", "guard_from_env"),
    "ASGIGuardMiddleware": (".asgi", "GuardMiddleware"),
    "guarded": (".decorator", "guarded"),
    "LocalGuard": (".guards", "LocalGuard"),
    "PaloAltoAIRS": (".guards", "PaloAltoAIRS"),
    "TrendAIGuard": (".guards", "TrendAIGuard"),
    "WSGIGuardMiddleware": (".wsgi", "GuardMiddleware"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    import importlib

    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # the next lookup is a plain global
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "Fallback",
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
    "Parallel",
    "RateBudget",
    "RateLimit",
    "Route",
    "Sequential",
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
