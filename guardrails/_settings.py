"""Configuration from the environment, and `guard_from_env` which builds the guard it describes.

========================  ========================================================================
variable                  meaning
========================  ========================================================================
GUARDRAILS_GUARD          ``local``, ``trend`` or ``palo-alto``: an explicit choice of guard
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
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._exceptions import GuardConfigurationError

if TYPE_CHECKING:
    from ._guard import Guard

__all__ = ["GuardKind", "GuardSettings", "guard_from_env", "guard_from_spec"]

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

    guardrails_guard: GuardKind | None = None
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

    @field_validator("guardrails_guard", mode="before")
    @classmethod
    def _known_kind(cls, value: object) -> GuardKind | None:
        return _parse_kind(value)

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

    Args:
        kind: ``"local"``, ``"trend"`` or ``"palo-alto"`` to force a guard.
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
    chosen = _parse_kind(kind) or settings.guardrails_guard
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

    if chosen == "trend":
        return _trend(settings)
    if chosen == "palo-alto":
        return _palo_alto(settings)
    from .guards.local import LocalGuard

    return LocalGuard()


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


def guard_from_spec(spec: str, *, settings: GuardSettings | None = None) -> Guard:
    """Build a guard from a short spec, as the CLI's ``--guard`` and ``guardrails eval`` take it.

    A spec names one guard the environment configures: ``local``, ``trend`` or ``panw`` (the
    aliases `guard_from_env` accepts). Compositions extend this grammar (see `Sequential`).

    Raises:
        ValueError: the spec names no known guard.
        GuardConfigurationError: the named vendor guard is not configured (the message says what
            to set).
    """
    return guard_from_env(spec.strip(), settings=settings)
