"""Constants and small helpers shared by test modules (imported from here, never from a test file)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["EXAMPLES", "PANW_KEY", "TREND_KEY", "load_example"]

#: The runnable examples, each exercised by a test.
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: The keys the session's emulator accepts (its defaults, as the README says).
TREND_KEY = "test-v1-key"
PANW_KEY = "test-panw-key"


def load_example(filename: str) -> ModuleType:
    """Import ``examples/<filename>`` as a module (registered, so dataclasses and pickling work)."""
    path = EXAMPLES / filename
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
