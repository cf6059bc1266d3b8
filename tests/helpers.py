"""Constants and small helpers shared by test modules (imported from here, never from a test file)."""

from __future__ import annotations

__all__ = ["PANW_KEY", "TREND_KEY"]

#: The keys the session's emulator accepts (its defaults, as the README says).
TREND_KEY = "test-v1-key"
PANW_KEY = "test-panw-key"
