"""Configuration from the environment, and `guard_from_env` which builds the guard it describes.

========================  ========================================================================
variable                  meaning
========================  ========================================================================
GUARDRAILS_GUARD          ``local``, ``trend`` or ``palo-alto``: an explicit choice of guard; or a
                          composition in `guard_from_spec`'s grammar (``local,trend``)
GUARDRAILS_FALLBACK       a guard (or spec) that decides while the chosen guard fails: the chosen
                          guard is wrapped in ``Fallback(chosen, fallback)`` (e.g. ``local``)
GUARDRAILS_TIMEOUT        seconds allowed for one check, retries included (default 10)
V1_API_KEY                Trend Vision One API key: selects Trend AI Guard when no choice is made
V1_REGION                 Trend region: us (default), eu, jp, au, in, sg, mea, uk, usgov
V1_BASE_URL               Trend base URL, overriding the region (self-hosted or a proxy)
V1_APP_NAME               Trend ``TMV1-Application-Name`` (default ``guardrails``)
V1_AI_GUARD_API           Trend API version: ``v3`` (default) or ``beta``
PANW_AI_SEC_API_KEY       Palo Alto Prisma AIRS API key: selects it when no choice is made and
                          V1_API_KEY is not set
PANW_AI_SEC_API_ENDPOINT  Prisma AIRS base URL, overriding the region
PANW_AI_SEC_REGION        Prisma AIRS region: us (default), eu, in, sg
PANW_AI_PROFILE_NAME      Prisma AIRS AI security profile, by name ...
PANW_AI_PROFILE_ID        ... or by id (one of the two is required)
========================  ========================================================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, cast, get_args

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._exceptions import GuardConfigurationError

if TYPE_CHECKING:
    from ._guard import Guard

__all__ = ["GuardKind", "GuardSettings", "check_spec", "guard_from_env", "guard_from_spec"]

logger = logging.getLogger("guardrails")

GuardKind = Literal["local", "trend", "palo-alto"]

_KIND_ALIASES: dict[str, GuardKind] = {
    "local": "local",
    "trend": "trend",
    "palo-alto": "palo-alto",
    "paloalto": "palo-alto",
    "palo_alto": "palo-alto",
    "panw": "palo-alto",
}


# The operators of a guard spec, loosest first: "," and ">" Sequential, "+" Parallel, "|" Fallback.
_TOKEN = re.compile(r"\s*([,>+|()]|[^,>+|()\s]+)\s*")


def _tokens(spec: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    spec = spec.strip()
    while position < len(spec):
        match = _TOKEN.match(spec, position)
        if match is None:  # pragma: no cover - the pattern matches any non-space character
            raise ValueError(f"cannot read the guard spec {spec!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _is_composite(spec: str) -> bool:
    return any(operator in spec for operator in ",>+|()")


def check_spec(value: object) -> str | None:
    """Validate a guard spec without building it (ValueError says what is wrong).

    A ``GUARDRAILS_GUARD`` / ``GUARDRAILS_FALLBACK`` value: one guard name, or a spec whose
    names are all known (the guards are built later, by `guard_from_env`)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"a guard spec is a string, not {type(value).__name__}")
    if not _is_composite(value):
        return _parse_kind(value)
    _SpecParser(value, build=None).parse()
    return value.strip()


def _parse_kind(value: object) -> GuardKind | None:
    if value is None:
        return None
    if isinstance(value, str):
        kind = _KIND_ALIASES.get(value.strip().lower())
        if kind is not None:
            return kind
    raise ValueError(f"unknown guard {value!r}: choose one of {', '.join(get_args(GuardKind))}")


class GuardSettings(BaseSettings):
    """Guard configuration read from environment variables (see the module docstring).

    Values passed to the constructor override the environment; empty variables count as unset.
    API keys are held as `SecretStr` and never shown in a repr or a log line.
    """

    model_config = SettingsConfigDict(case_sensitive=False, env_ignore_empty=True, extra="ignore")

    guardrails_guard: str | None = None
    guardrails_fallback: str | None = None
    guardrails_timeout: float = Field(default=10.0, gt=0)

    v1_api_key: SecretStr | None = None
    v1_region: str = "us"
    v1_base_url: str | None = None
    v1_app_name: str = "guardrails"
    v1_ai_guard_api: Literal["v3", "beta"] = "v3"

    panw_ai_sec_api_key: SecretStr | None = None
    panw_ai_sec_api_endpoint: str | None = None
    panw_ai_sec_region: str = "us"
    panw_ai_profile_name: str | None = None
    panw_ai_profile_id: str | None = None

    @field_validator("guardrails_guard", "guardrails_fallback", mode="before")
    @classmethod
    def _known_kind(cls, value: object) -> str | None:
        return check_spec(value)

    @field_validator("v1_ai_guard_api", mode="before")
    @classmethod
    def _api_lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("v1_api_key", "panw_ai_sec_api_key", mode="after")
    @classmethod
    def _blank_key_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return value


def guard_from_env(kind: str | None = None, *, settings: GuardSettings | None = None) -> Guard:
    """Build the guard the environment describes.

    The choice, first match wins: `kind` if given; else ``GUARDRAILS_GUARD``; else Trend AI Guard
    when ``V1_API_KEY`` is set; else Palo Alto Prisma AIRS when ``PANW_AI_SEC_API_KEY`` is set; else
    `LocalGuard`, with a warning on the ``guardrails`` logger (it is a baseline, not a vendor guard).
    `kind` and ``GUARDRAILS_GUARD`` may be compositions (``local,trend``: see `guard_from_spec`).
    With ``GUARDRAILS_FALLBACK`` set (``local``), the chosen guard is wrapped in
    ``Fallback(chosen, fallback)``: the fallback decides while the chosen guard fails.

    Args:
        kind: ``"local"``, ``"trend"`` or ``"palo-alto"`` (or a spec) to force a guard.
        settings: the configuration to use instead of reading the environment.

    Returns:
        A guard ready to use; call its ``close()`` (or ``await aclose()``) when done.

    Raises:
        ValueError: `kind` is unknown.
        GuardConfigurationError: (a `ValueError` and a `GuardrailsError`) the chosen vendor guard
            lacks its API key or (Palo Alto) its AI security profile, or has a bad region or URL.
            The message names the environment variable to set.
    """
    settings = settings if settings is not None else GuardSettings()
    guard = _chosen(kind, settings)
    if settings.guardrails_fallback is None:
        return guard
    from ._compose import Fallback

    try:
        fallback = guard_from_spec(settings.guardrails_fallback, settings=settings)
    except BaseException:
        guard.close()
        raise
    return Fallback(guard, fallback)


def _chosen(kind: str | None, settings: GuardSettings) -> Guard:
    """The guard `guard_from_env` chooses, before any ``GUARDRAILS_FALLBACK``."""
    spec = kind if kind is not None else settings.guardrails_guard
    if spec is not None and _is_composite(spec):
        return guard_from_spec(spec, settings=settings)
    chosen = _parse_kind(spec)
    if chosen is None:
        if settings.v1_api_key is not None:
            if settings.panw_ai_sec_api_key is not None:
                logger.info(
                    "both V1_API_KEY and PANW_AI_SEC_API_KEY are set: using Trend AI Guard "
                    "(set GUARDRAILS_GUARD to choose)"
                )
            chosen = "trend"
        elif settings.panw_ai_sec_api_key is not None:
            chosen = "palo-alto"
        else:
            logger.warning(
                "no guard configured (neither V1_API_KEY nor PANW_AI_SEC_API_KEY is set): using "
                "LocalGuard, an in-process baseline; configure a vendor guard for production"
            )
            chosen = "local"

    return _single(chosen, settings)


def _trend(settings: GuardSettings) -> Guard:
    if settings.v1_api_key is None:
        raise GuardConfigurationError("the Trend AI Guard needs an API key: set V1_API_KEY", guard="trend")
    from .guards.trend import TrendAIGuard

    # The constructor reads what it needs from `settings`: one reading of the environment.
    return TrendAIGuard(settings=settings, timeout=settings.guardrails_timeout)


def _palo_alto(settings: GuardSettings) -> Guard:
    if settings.panw_ai_sec_api_key is None:
        raise GuardConfigurationError(
            "Palo Alto Prisma AIRS needs an API key: set PANW_AI_SEC_API_KEY", guard="palo-alto"
        )
    from .guards.paloalto import PaloAltoAIRS

    return PaloAltoAIRS(settings=settings, timeout=settings.guardrails_timeout)


def _single(kind: GuardKind, settings: GuardSettings) -> Guard:
    if kind == "trend":
        return _trend(settings)
    if kind == "palo-alto":
        return _palo_alto(settings)
    from .guards.local import LocalGuard

    return LocalGuard()


def guard_from_spec(spec: str, *, settings: GuardSettings | None = None) -> Guard:
    """Build a guard from a short spec, as the CLI's ``--guard`` and ``guardrails eval`` take it.

    A name is one guard the environment configures: ``local``, ``trend`` or ``panw`` (the aliases
    `guard_from_env` accepts). Names combine into compositions (`guardrails.Sequential`,
    `guardrails.Parallel`, `guardrails.Fallback`) with these operators, loosest first:

    ==========  ============  ===========================================================
    operator    composition   example
    ==========  ============  ===========================================================
    ``,`` ``>``  Sequential   ``local,trend`` = ``local>trend``: local first, then trend
    ``+``       Parallel      ``trend+panw``: both at once, any Block blocks
    ``|``       Fallback      ``trend|local``: local decides while trend fails
    ==========  ============  ===========================================================

    ``|`` binds tightest, then ``+``, then ``,`` / ``>``: ``local,trend|local`` is
    ``Sequential(local, Fallback(trend, local))``, ``trend+panw|local`` is
    ``Parallel(trend, Fallback(panw, local))``; ``a|b|c`` is ``Fallback(a, Fallback(b, c))``.
    Parentheses group: ``(trend+panw)|local``. Spaces are ignored.

    Raises:
        ValueError: the spec is malformed or names no known guard (the message says where).
        GuardConfigurationError: a named vendor guard is not configured (the message says what
            to set).
    """
    settings = settings if settings is not None else GuardSettings()
    if not _is_composite(spec):
        kind = _parse_kind(spec)
        assert kind is not None
        return _single(kind, settings)
    built: list[Guard] = []

    def build(kind: GuardKind) -> Guard:
        guard = _single(kind, settings)
        built.append(guard)
        return guard

    try:
        return _SpecParser(spec, build=build).parse()
    except BaseException:
        for guard in built:
            guard.close()
        raise


#: What the parser returns when it only validates a spec.
_UNBUILT = cast("Guard", object())


class _SpecParser:
    """Recursive descent over a guard spec: ``seq := par ((","|">") par)*``, ``par := alt ("+"
    alt)*``, ``alt := atom ("|" alt)?``, ``atom := NAME | "(" seq ")"``. With ``build=None`` it only
    validates."""

    def __init__(self, spec: str, *, build: Callable[[GuardKind], Guard] | None) -> None:
        self.spec = spec
        self.tokens = _tokens(spec)
        self.position = 0
        self.build = build

    def parse(self) -> Guard:
        if not self.tokens:
            raise ValueError("the guard spec is empty")
        guard = self._sequence()
        if self.position < len(self.tokens):
            self._fail(f"unexpected {self.tokens[self.position]!r}")
        return guard

    def _fail(self, problem: str) -> None:
        raise ValueError(f"bad guard spec {self.spec.strip()!r}: {problem}")

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _sequence(self) -> Guard:
        guards = [self._parallel()]
        while self._peek() in (",", ">"):
            self.position += 1
            guards.append(self._parallel())
        return guards[0] if len(guards) == 1 else self._compose("sequential", guards)

    def _parallel(self) -> Guard:
        guards = [self._fallback()]
        while self._peek() == "+":
            self.position += 1
            guards.append(self._fallback())
        return guards[0] if len(guards) == 1 else self._compose("parallel", guards)

    def _fallback(self) -> Guard:
        primary = self._atom()
        if self._peek() != "|":
            return primary
        self.position += 1
        return self._compose("fallback", [primary, self._fallback()])

    def _atom(self) -> Guard:
        item = self._peek()
        if item is None:
            self._fail("a guard name is missing at the end")
        assert item is not None
        self.position += 1
        if item == "(":
            guard = self._sequence()
            if self._peek() != ")":
                self._fail("a ')' is missing")
            self.position += 1
            return guard
        if item in (",", ">", "+", "|", ")"):
            self._fail(f"a guard name is missing before {item!r}")
        kind = _parse_kind(item)
        assert kind is not None
        if self.build is None:
            return _UNBUILT
        return self.build(kind)

    def _compose(self, how: str, guards: list[Guard]) -> Guard:
        if self.build is None:
            return _UNBUILT
        from ._compose import Fallback, Parallel, Sequential

        if how == "sequential":
            return Sequential(*guards)
        if how == "parallel":
            return Parallel(*guards)
        return Fallback(guards[0], guards[1])
