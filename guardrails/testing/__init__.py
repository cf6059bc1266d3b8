"""Helpers for testing code that uses guardrails: fake guards and the vendor emulator.

`StaticGuard` and `FakeGuard` are in-process guards for your own test suites. The emulator
(`guardrails.testing.emulator`) is a Starlette app speaking the Trend Vision One AI Guard (v3 and
beta) and Palo Alto Prisma AIRS wire formats, deciding with `LocalGuard`.
"""

from ._fakes import FakeGuard, Rule, StaticGuard

__all__ = ["FakeGuard", "Rule", "StaticGuard"]
