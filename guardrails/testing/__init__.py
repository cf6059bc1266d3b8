"""Helpers for testing code that uses guardrails: fake guards and the vendor emulator.

`StaticGuard` and `FakeGuard` are in-process guards for your own test suites. The emulator
(`guardrails.testing.emulator`: `create_app()`, `Emulator`) is a Starlette app speaking the Trend
Vision One AI Guard (v3 and beta) and Palo Alto Prisma AIRS wire formats, deciding with
`LocalGuard`; it is imported on first use, so `import guardrails` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._fakes import FakeGuard, Rule, StaticGuard

if TYPE_CHECKING:
    from . import emulator
    from .emulator import Emulator, create_app

__all__ = ["Emulator", "FakeGuard", "Rule", "StaticGuard", "create_app", "emulator"]

_LAZY = {"emulator": None, "Emulator": "Emulator", "create_app": "create_app"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(".emulator", __name__)
    attribute = _LAZY[name]
    return module if attribute is None else getattr(module, attribute)
