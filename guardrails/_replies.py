"""The answers a middleware gives instead of the app's: one JSON error shape for every refusal.

``error_reply(status, type, message, ...)`` builds a JSON error in the OpenAI error shape
``{"error": {"message", "type", "code", "reasons", "verdict_id"}}``, so OpenAI SDK clients surface
it; `reply_for` maps whatever the check pipeline raised to the answer:

=====================================  =======  ==========================  ==========================
raised                                  status   ``error.type``              ``error.code``
=====================================  =======  ==========================  ==========================
`Blocked`                               403      ``guardrail_blocked``       ``content_blocked``
`ContentTooLarge` (request)             413      ``request_too_large``       ``content_too_large``
a body error (413, 415, 400)            its own  its own                     its own
`ExtractionError` (request)             400      ``invalid_request``         ``unreadable_content``
`ExtractionError` (response)            502      ``guardrail_unavailable``   ``response_unreadable``
`GuardError`, transient                 503      ``guardrail_unavailable``   ``guard_unavailable``
`GuardError`, configuration             503      ``guardrail_unavailable``   ``guard_misconfigured``
=====================================  =======  ==========================  ==========================

Answers that retrying cannot change (a configuration error, a response that cannot be checked)
carry ``x-should-retry: false``, which the OpenAI and Anthropic SDKs obey; a rate-limited guard's
``Retry-After`` is passed on. No message ever holds request text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ._body import BodyError
from ._exceptions import (
    Blocked,
    ContentTooLarge,
    ExtractionError,
    GuardError,
    GuardrailsError,
    GuardRateLimited,
)

__all__ = ["Reply", "error_reply", "reply_for"]

_NO_RETRY = (("x-should-retry", "false"),)


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer given instead of the app's.

    Attributes:
        status: the status code.
        headers: the headers, names lower case.
        body: the body (JSON).
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def error_reply(
    status: int,
    type: str,
    message: str,
    *,
    code: str | None = None,
    reasons: Sequence[str] = (),
    verdict_id: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> Reply:
    """A JSON error in the OpenAI error shape. ``message`` must never contain request text."""
    error: dict[str, object] = {"message": message, "type": type, "code": code or type}
    if reasons:
        error["reasons"] = list(reasons)
    if verdict_id is not None:
        error["verdict_id"] = verdict_id
    body = json.dumps({"error": error}, separators=(",", ":")).encode()
    return Reply(
        status,
        (
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("cache-control", "no-store"),
            *headers,
        ),
        body,
    )


def reply_for(error: GuardrailsError, kind: str = "prompt") -> Reply:
    """The answer to a check that ended in `error` (see the table above)."""
    what = "request" if kind == "prompt" else "response"
    if isinstance(error, Blocked):
        verdict = error.verdict
        return error_reply(
            403,
            "guardrail_blocked",
            f"The {what} was blocked by the {verdict.guard} guardrail.",
            code="content_blocked",
            reasons=verdict.reasons,
            verdict_id=verdict.id,
        )
    if isinstance(error, GuardError):
        if not error.transient:
            return error_reply(
                503,
                "guardrail_unavailable",
                f"The guardrail is misconfigured and could not check this {what}.",
                code="guard_misconfigured",
                headers=_NO_RETRY,
            )
        retry_after = error.retry_after if isinstance(error, GuardRateLimited) else None
        return error_reply(
            503,
            "guardrail_unavailable",
            f"The guardrail could not check this {what}; try again later.",
            code="guard_unavailable",
            headers=(("retry-after", str(math.ceil(retry_after))),) if retry_after else (),
        )
    if kind != "prompt":
        # The app's answer cannot be checked: nothing the client can change by retrying.
        return error_reply(
            502,
            "guardrail_unavailable",
            "The response could not be checked by the guardrail.",
            code="response_unreadable",
            headers=_NO_RETRY,
        )
    if isinstance(error, BodyError):
        return error_reply(error.status, error.type, str(error), code=error.code)
    if isinstance(error, ContentTooLarge):
        # Our own message: it names the limit, never the text.
        return error_reply(413, "request_too_large", str(error), code="content_too_large")
    if isinstance(error, ExtractionError):
        return error_reply(
            400, "invalid_request", str(error) or "The request could not be read.", code="unreadable_content"
        )
    return error_reply(
        500, "server_error", "The guardrail could not check this request.", code="guardrail_error"
    )
