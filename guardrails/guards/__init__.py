"""The guards: one module per guard, each pure (requests in, Verdict out) on the shared core."""

from .local import Finding, LocalGuard
from .paloalto import PaloAltoAIRS
from .trend import TrendAIGuard

__all__ = ["Finding", "LocalGuard", "PaloAltoAIRS", "TrendAIGuard"]
