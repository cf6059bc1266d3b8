"""The guards: one module per guard, each pure (requests in, Verdict out) on the shared core.

`LocalGuard` needs no HTTP client: the remote guards (and httpx) are imported at first use.
"""

from typing import TYPE_CHECKING, Any

from .local import Finding, LocalGuard

if TYPE_CHECKING:
    from .paloalto import PaloAltoAIRS
    from .trend import TrendAIGuard

__all__ = ["Finding", "LocalGuard", "PaloAltoAIRS", "TrendAIGuard"]

_REMOTE = {"PaloAltoAIRS": ".paloalto", "TrendAIGuard": ".trend"}


def __getattr__(name: str) -> Any:
    if name not in _REMOTE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_REMOTE[name], __name__), name)
    globals()[name] = value
    return value
