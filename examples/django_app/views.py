# mypy: disable-error-code="untyped-decorator"
"""The views know nothing about the guard: the middleware wrapping the Django application checks
every POST /chat body before Django sees it, and answers 403 itself on Block."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from guardrails.wsgi import VERDICT_KEY


def verdict_of(request: HttpRequest) -> Any:
    """The guard's Allow verdict: in the WSGI environ (request.META), or in the ASGI scope's state."""
    if VERDICT_KEY in request.META:
        return request.META[VERDICT_KEY]
    scope = getattr(request, "scope", {})  # Django's ASGIRequest keeps the ASGI scope
    return scope.get("state", {}).get("guardrails")


@require_POST
def chat(request: HttpRequest) -> JsonResponse:
    message = json.loads(request.body).get("message", "")
    verdict = verdict_of(request)
    return JsonResponse(
        {
            "reply": f"You said: {message}",  # a stand-in for the LLM call
            "verdict_id": verdict.id if verdict is not None else None,
        }
    )


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})
