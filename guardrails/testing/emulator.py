"""An emulator of the guard services: Trend Vision One AI Guard (v3 and beta) and Palo Alto Prisma AIRS.

A Starlette app that speaks the three wire formats as the vendors document them, rejects what the real
services reject, decides Allow or Block with `LocalGuard`, and injects faults on request, so tests and
benchmarks can talk to a real HTTP server on 127.0.0.1::

    from guardrails.testing.emulator import create_app, serve

    app = create_app()                        # serve it with any ASGI server, or:
    serve(host="127.0.0.1", port=8080)        # also `guardrails emulator --port 8080`

    app.state.emulator.inject("status", status=429, times=2, retry_after=0.1)

Endpoints (paths exactly as documented):

- ``POST /v3.0/aiSecurity/applyGuardrails`` (Trend v3): ``Authorization: Bearer <key>``,
  ``TMV1-Application-Name`` (required: letters, digits, ``-``, ``_``, at most 64), ``TMV1-Request-Type``
  (``SimpleRequestGuard`` (default) with ``{"prompt": text}``, ``OpenAIChatCompletionRequestV1`` with an
  OpenAI chat request, ``OpenAIChatCompletionResponseV1`` with a chat completion), ``Prefer:
  return=minimal`` (default) or ``return=representation``.
- ``POST /beta/aiSecurity/guard?detailedResponse=true|false`` (Trend beta): ``Authorization: Bearer
  <key>``; body ``{"guard": text}``, an OpenAI chat request or a chat completion.
- ``POST /v1/scan/sync/request`` (Palo Alto): ``x-pan-token: <key>``; a JSON body of at most 2 MiB with
  ``ai_profile`` (``profile_id`` or ``profile_name``), optional ``metadata``, ids of at most 100
  characters, and a non-empty ``contents`` list. A ``tool_event`` item is read as documented
  (``metadata`` with ``ecosystem``, ``method`` and ``server_name``, optional ``tool_invoked``;
  ``input``/``output`` as JSON strings; anything else is a 400); its strings are scanned, and the
  answer gains ``tool_detected`` (``verdict``, ``metadata``, ``input_detected``, ``output_detected``).
  Fields stay within the documented limits (``prompt`` 10,000 characters, ``response`` 20,000,
  ``context`` 100,000; 413 above). ``context`` is taken as context: it is not scanned.
  A profile named in ``panw_mask_profiles`` (by
  default ``dlp-mask``) masks what its DLP finds, as a DLP profile set to Block does: the answer
  carries ``prompt_masked_data`` / ``response_masked_data`` with ``data`` (the text with each
  sensitive span filled with ``X``, same length, line breaks kept) and ``pattern_detections``
  (``[{"pattern": name, "locations": [[start, end], ...]}]``). The spans are found by the
  emulator's own patterns (cards passing Luhn, US SSNs, IBANs, private keys, common API keys).

Rejections: a missing or malformed credential answers 401, an unknown key 403 (Trend documents 403
for "an authentication issue"; 401 for an absent credential is what both gateways answer in
practice, and both are `GuardAuthError` to the client). Bad JSON or a bad field answers 400, a Palo
Alto body that is not JSON 415, one over 2 MiB or with a field over its limit 413, a Trend body over
1 MiB 413. Error bodies are ``{"error": {"message": ...}}``
(Trend adds a ``code``).

Faults (`Fault`), injected with `Emulator.inject` or ``POST /_emulator/faults``, apply to the vendor
endpoints, optionally to one API only, for a number of requests or until reset. Latency delays the
answer (without blocking other requests); the other kinds replace it: ``status`` (with an optional
``Retry-After``), ``malformed`` JSON, an ``empty`` body, a ``redirect``, an ``oversized`` body, or a
``drop`` of the connection after the status line. Faults apply before any validation, as a load
balancer's would.

Admin endpoints: ``POST /_emulator/faults`` (a fault or a list of faults), ``GET /_emulator/faults``,
``POST /_emulator/reset``, ``GET /_emulator/requests`` (counts per API and the recent requests, with
credentials redacted and no body text), ``GET /_emulator/health``.

The emulator never logs or records prompt text.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .._models import Content, message_texts
from ..guards.local import Finding, LocalGuard

__all__ = [
    "APIS",
    "PANW_FIELD_LIMITS",
    "PANW_MAX_REQUEST_BYTES",
    "PANW_PATH",
    "TREND_BETA_PATH",
    "TREND_REQUEST_TYPES",
    "TREND_V3_PATH",
    "Api",
    "ConnectionDropped",
    "Emulator",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "create_app",
    "serve",
]

Api = Literal["trend-v3", "trend-beta", "panw"]
APIS: tuple[Api, ...] = ("trend-v3", "trend-beta", "panw")
FaultKind = Literal["latency", "status", "malformed", "empty", "redirect", "oversized", "drop"]

TREND_V3_PATH = "/v3.0/aiSecurity/applyGuardrails"
TREND_BETA_PATH = "/beta/aiSecurity/guard"
PANW_PATH = "/v1/scan/sync/request"
TREND_REQUEST_TYPES = frozenset(
    {"SimpleRequestGuard", "OpenAIChatCompletionRequestV1", "OpenAIChatCompletionResponseV1"}
)
PANW_MAX_REQUEST_BYTES = 2 * 1024 * 1024
PANW_MAX_ID_CHARS = 100
# Vision One's general API limit: 1 MB per request (413 above), read as the lenient 1 MiB. The
# ~1,024 characters of SimpleRequestGuard come from a tool schema, not the API reference: not enforced.
TREND_MAX_REQUEST_BYTES = 1024 * 1024
# Palo Alto's documented per-field limits (pan.dev), in characters; a field over its limit is a 413.
PANW_FIELD_LIMITS = {"prompt": 10_000, "response": 20_000, "context": 100_000}
DEFAULT_OVERSIZED_BYTES = 2 * 1024 * 1024 + 1

_APP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PANW_CONTENT_KEYS = ("prompt", "response", "context", "code_prompt", "code_response")
_PANW_SCANNED_KEYS = ("prompt", "response", "code_prompt", "code_response", "tool_event")
_REDIRECT_TARGET = "/_emulator/redirected"
_REDACTED_HEADERS = frozenset({"authorization", "x-pan-token", "cookie"})
_TREND_HARMFUL_CATEGORIES = (
    "Sexual",
    "Hate",
    "Violence",
    "Harassment",
    "Self-harm",
    "Sexual/minors",
    "Hate/threatening",
    "Violence/graphic",
)
# LocalGuard's harmful-content rules in Trend's categories; the others are reported under their own name.
_TREND_HARMFUL_RULES = {"weapons": "Violence", "self_harm": "Self-harm"}
_TREND_REASON_PREFIX = {
    "prompt_attack": "Prompt Attack Scanner exceeding threshold",
    "sensitive_information": "Sensitive Information Scanner match",
    "harmful_content": "Harmful Scanner exceeding threshold",
}


class Fault(BaseModel):
    """A fault the emulator injects into the vendor endpoints.

    Args:
        kind: ``"latency"`` (wait ``seconds``, then answer normally), ``"status"`` (answer ``status``
            with the vendor's error body, and ``Retry-After`` if ``retry_after`` is set),
            ``"malformed"`` (200 with truncated JSON), ``"empty"`` (200 with no body), ``"redirect"``
            (307 to another path), ``"oversized"`` (200 with a valid Allow padded to ``size`` bytes)
            or ``"drop"`` (the status line, then the connection closes without a body).
        times: how many requests it applies to; None until reset.
        api: the API it applies to (``"trend-v3"``, ``"trend-beta"``, ``"panw"``); None for all.
        status: the status of a ``"status"`` fault.
        retry_after: seconds sent in ``Retry-After`` with a ``"status"`` fault.
        seconds: the delay of a ``"latency"`` fault.
        size: the body size of an ``"oversized"`` fault.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind
    times: int | None = Field(default=None, ge=1)
    api: Api | None = None
    status: int = Field(default=503, ge=200, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    seconds: float = Field(default=0.0, ge=0)
    size: int = Field(default=DEFAULT_OVERSIZED_BYTES, ge=1)


@dataclass(frozen=True)
class RecordedRequest:
    """One request to a vendor endpoint, as the emulator saw it (credentials redacted, no body text).

    Attributes:
        api: which API was called.
        method: the HTTP method.
        path: the URL path.
        query: the raw query string.
        headers: the request headers, lower-cased, with credentials replaced by ``"<redacted>"``.
        body_keys: the top-level keys of the JSON body, when it was a JSON object.
        body_bytes: the size of the body read.
        status: the status answered; None when the connection was dropped or the client went away.
        fault: the kind of the fault that replaced the answer, if any.
    """

    api: Api
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body_keys: tuple[str, ...]
    body_bytes: int
    status: int | None
    fault: FaultKind | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "api": self.api,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body_keys": list(self.body_keys),
            "body_bytes": self.body_bytes,
            "status": self.status,
            "fault": self.fault,
        }


class ConnectionDropped(Exception):
    """Raised inside the server to close a connection mid-response (the ``"drop"`` fault)."""


class _DropFilter(logging.Filter):
    # uvicorn logs every exception escaping the app; a drop the test asked for is not an error.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


_DROP_FILTER = _DropFilter()


class _Rejected(Exception):
    def __init__(self, status: int, message: str, code: str = "BadRequest") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class _Pending:
    __slots__ = ("fault", "remaining")

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.remaining = fault.times


class Emulator:
    """The state of one emulator app: credentials, faults, request counts and the request log.

    Reachable from the app as ``app.state.emulator``. Thread-safe: tests drive it from their own
    thread while the server runs in another.

    Args:
        trend_keys: API keys the Trend endpoints accept.
        panw_keys: API keys the Palo Alto endpoint accepts.
        panw_linked_keys: Palo Alto keys with a profile linked to them: requests made with one may
            leave out ``ai_profile``.
        latency: seconds every vendor request waits before it is answered.
        log_size: how many recent requests `requests` keeps.
        guard: the detector deciding Allow or Block (a default `LocalGuard`).
        panw_mask_profiles: Palo Alto profile names (or ids) whose DLP masks what it finds.
    """

    def __init__(
        self,
        *,
        trend_keys: Iterable[str] = ("test-v1-key",),
        panw_keys: Iterable[str] = ("test-panw-key",),
        panw_linked_keys: Iterable[str] = (),
        latency: float = 0.0,
        log_size: int = 200,
        guard: LocalGuard | None = None,
        panw_mask_profiles: Iterable[str] = ("dlp-mask",),
    ) -> None:
        if latency < 0:
            raise ValueError("latency must not be negative")
        self.panw_mask_profiles = frozenset(panw_mask_profiles)
        self.trend_keys = tuple(trend_keys)
        self.panw_linked_keys = tuple(panw_linked_keys)
        self.panw_keys = (*tuple(panw_keys), *self.panw_linked_keys)
        self.latency = float(latency)
        self.guard = guard if guard is not None else LocalGuard()
        self._lock = threading.Lock()
        self._faults: list[_Pending] = []
        self._counts: dict[Api, int] = dict.fromkeys(APIS, 0)
        self._log: deque[RecordedRequest] = deque(maxlen=log_size)
        self._redirects_followed = 0

    # -- faults -------------------------------------------------------------------------------

    def inject(
        self,
        kind: FaultKind,
        *,
        times: int | None = None,
        api: Api | None = None,
        status: int = 503,
        retry_after: float | None = None,
        seconds: float = 0.0,
        size: int = DEFAULT_OVERSIZED_BYTES,
    ) -> Fault:
        """Add a fault (see `Fault` for the arguments) and return it."""
        fault = Fault(
            kind=kind,
            times=times,
            api=api,
            status=status,
            retry_after=retry_after,
            seconds=seconds,
            size=size,
        )
        self.add(fault)
        return fault

    def add(self, fault: Fault) -> None:
        """Add a fault built elsewhere (e.g. parsed from JSON)."""
        with self._lock:
            self._faults.append(_Pending(fault))

    @property
    def faults(self) -> list[Fault]:
        """The faults still pending, ``times`` showing what is left."""
        with self._lock:
            return [p.fault.model_copy(update={"times": p.remaining}) for p in self._faults]

    def reset(self) -> None:
        """Forget every fault, count and recorded request (credentials and base latency stay)."""
        with self._lock:
            self._faults.clear()
            self._counts = dict.fromkeys(APIS, 0)
            self._log.clear()
            self._redirects_followed = 0

    def _take(self, api: Api, *, latency: bool) -> Fault | None:
        with self._lock:
            for pending in self._faults:
                fault = pending.fault
                if (fault.kind == "latency") != latency or fault.api not in (None, api):
                    continue
                if pending.remaining is not None:
                    pending.remaining -= 1
                    if pending.remaining == 0:
                        self._faults.remove(pending)
                return fault
        return None

    # -- what was asked -----------------------------------------------------------------------

    def count(self, api: Api | None = None) -> int:
        """Requests received by one API's endpoint, or by all of them."""
        with self._lock:
            return self._counts[api] if api is not None else sum(self._counts.values())

    @property
    def counts(self) -> dict[Api, int]:
        """Requests received per API (faulted and rejected ones included)."""
        with self._lock:
            return dict(self._counts)

    @property
    def redirects_followed(self) -> int:
        """Requests that followed a ``"redirect"`` fault's Location (a client must not)."""
        with self._lock:
            return self._redirects_followed

    @property
    def requests(self) -> list[RecordedRequest]:
        """The recent requests, oldest first."""
        with self._lock:
            return list(self._log)

    def _arrived(self, api: Api) -> None:
        with self._lock:
            self._counts[api] += 1

    def _record(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    # -- credentials --------------------------------------------------------------------------

    def _trend_auth(self, request: Request) -> None:
        header = request.headers.get("authorization")
        scheme, _, key = (header or "").partition(" ")
        if not header or scheme.lower() != "bearer" or not key.strip():
            raise _Rejected(401, "Authorization header with a Bearer token is required", "Unauthorized")
        if not _known(key.strip(), self.trend_keys):
            raise _Rejected(403, "Invalid API key or insufficient permissions", "AccessDenied")

    def _panw_auth(self, request: Request) -> bool:
        """Check the key; True when it has a linked profile."""
        key = request.headers.get("x-pan-token", "").strip()
        if not key:
            raise _Rejected(401, "Not Authenticated: the x-pan-token header is required")
        if not _known(key, self.panw_keys):
            raise _Rejected(403, "Forbidden: invalid API key")
        return _known(key, self.panw_linked_keys)

    # -- decisions ----------------------------------------------------------------------------

    def _findings(self, texts: Iterable[str]) -> list[Finding]:
        return [finding for text in texts for finding in self.guard.findings(text)]


def _known(key: str, keys: Sequence[str]) -> bool:
    matched = False
    for candidate in keys:
        matched |= hmac.compare_digest(key.encode(), candidate.encode())
    return matched


@dataclass(frozen=True)
class _Body:
    raw: bytes
    too_large: bool
    payload: Any
    valid_json: bool


def _decode(raw: bytes) -> tuple[Any, bool]:
    try:
        return json.loads(raw), True
    except (ValueError, UnicodeDecodeError):
        return None, False


def _json_object(body: _Body) -> dict[str, Any]:
    if not body.valid_json:
        raise _Rejected(400, "request body is not valid JSON")
    if not isinstance(body.payload, dict):
        raise _Rejected(400, "request body must be a JSON object")
    return body.payload


def _chat_request_texts(payload: Mapping[str, Any]) -> list[str]:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise _Rejected(400, "messages must be a non-empty list of message objects")
    return [text for message in messages for text in message_texts(message)]


def _chat_response_texts(payload: dict[str, Any]) -> list[str]:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise _Rejected(400, "choices must be a list of choice objects")
    return list(Content(completion=payload).iter_texts())


def _by_category(findings: Sequence[Finding]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for finding in findings:
        rules = grouped.setdefault(finding.category, [])
        if finding.rule not in rules:
            rules.append(finding.rule)
    return grouped


def _evaluation_id() -> str:
    return uuid.uuid4().hex


# -- Trend v3 ---------------------------------------------------------------------------------


def _trend_v3(emulator: Emulator, request: Request, body: _Body) -> Response:
    emulator._trend_auth(request)
    app_name = request.headers.get("tmv1-application-name")
    if app_name is None:
        raise _Rejected(400, "TMV1-Application-Name header is required")
    if not _APP_NAME.fullmatch(app_name):
        raise _Rejected(400, "TMV1-Application-Name must be 1 to 64 letters, digits, hyphens or underscores")
    request_type = request.headers.get("tmv1-request-type", "SimpleRequestGuard")
    if request_type not in TREND_REQUEST_TYPES:
        raise _Rejected(400, f"TMV1-Request-Type must be one of {', '.join(sorted(TREND_REQUEST_TYPES))}")
    if body.too_large:
        raise _Rejected(413, "request body is too large", "RequestEntityTooLarge")
    payload = _json_object(body)
    if request_type == "SimpleRequestGuard":
        prompt = payload.get("prompt")
        if not isinstance(prompt, str):
            raise _Rejected(400, "prompt must be a string")
        texts = [prompt]
    elif request_type == "OpenAIChatCompletionRequestV1":
        texts = _chat_request_texts(payload)
    else:
        texts = _chat_response_texts(payload)
    detailed = _prefers_representation(request.headers.getlist("prefer"))
    grouped = _by_category(emulator._findings(texts))
    result: dict[str, Any] = {
        "id": _evaluation_id(),
        "action": "Block" if grouped else "Allow",
        "reasons": [
            f"{_TREND_REASON_PREFIX.get(category, category)}: {', '.join(rules)}"
            for category, rules in grouped.items()
        ],
    }
    if detailed:
        harmful = grouped.get("harmful_content", [])
        attacks = grouped.get("prompt_attack", [])
        sensitive = grouped.get("sensitive_information", [])
        result["harmfulContent"] = _trend_harmful_content(harmful)
        result["sensitiveInformation"] = {"hasPolicyViolation": bool(sensitive), "rules": sensitive}
        result["promptAttacks"] = [
            {"name": rule, "hasPolicyViolation": True, "confidence_score": 0.98} for rule in attacks
        ] or [{"hasPolicyViolation": False, "confidence_score": 0.01}]
    applied = "return=representation" if detailed else "return=minimal"
    return JSONResponse(result, headers={"Preference-Applied": applied})


def _trend_harmful_content(rules: Sequence[str]) -> list[dict[str, Any]]:
    violated = {_TREND_HARMFUL_RULES.get(rule, rule) for rule in rules}
    categories = [*_TREND_HARMFUL_CATEGORIES, *sorted(violated - set(_TREND_HARMFUL_CATEGORIES))]
    return [
        {
            "category": category,
            "hasPolicyViolation": category in violated,
            "confidenceScore": 0.97 if category in violated else 0.01,
        }
        for category in categories
    ]


def _prefers_representation(values: Sequence[str]) -> bool:
    # RFC 7240: preferences are comma-separated and unknown ones are ignored; the last return= wins.
    detailed = False
    for value in values:
        for preference in value.split(","):
            name, _, setting = preference.strip().partition("=")
            if name.strip().lower() == "return":
                detailed = setting.strip().strip('"').lower() == "representation"
    return detailed


# -- Trend beta -------------------------------------------------------------------------------


def _trend_beta(emulator: Emulator, request: Request, body: _Body) -> Response:
    emulator._trend_auth(request)
    flag = request.query_params.get("detailedResponse", "false").lower()
    if flag not in ("true", "false"):
        raise _Rejected(400, "detailedResponse must be true or false")
    if body.too_large:
        raise _Rejected(413, "request body is too large", "RequestEntityTooLarge")
    payload = _json_object(body)
    if "guard" in payload:
        guard = payload["guard"]
        if not isinstance(guard, str):
            raise _Rejected(400, "guard must be a string")
        texts = [guard]
    elif "messages" in payload:
        texts = _chat_request_texts(payload)
    elif "choices" in payload:
        texts = _chat_response_texts(payload)
    else:
        raise _Rejected(400, 'body must be {"guard": text}, an OpenAI chat completion request or response')
    grouped = _by_category(emulator._findings(texts))
    result: dict[str, Any] = {
        "id": _evaluation_id(),
        "action": "Block" if grouped else "Allow",
        "reason": (
            "; ".join(f"[Violation] Policy Name: {category}" for category in grouped)
            if grouped
            else "No policy violations detected"
        ),
    }
    if flag == "true":
        harmful = grouped.get("harmful_content", [])
        attacks = grouped.get("prompt_attack", [])
        sensitive = grouped.get("sensitive_information", [])
        result["harmful_content"] = [
            {
                "name": "harmful_content",
                "content_violation": bool(harmful),
                "confidence_score": 0.97 if harmful else 0.05,
            }
        ]
        result["sensitive_information"] = {"content_violation": bool(sensitive), "rule": ", ".join(sensitive)}
        result["prompt_attack"] = [
            {
                "name": "prompt_injection",
                "content_violation": bool(attacks),
                "confidence_score": 0.98 if attacks else 0.02,
            }
        ]
    return JSONResponse(result)


# -- Palo Alto --------------------------------------------------------------------------------


def _panw(emulator: Emulator, request: Request, body: _Body) -> Response:
    linked = emulator._panw_auth(request)
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise _Rejected(415, "Content-Type must be application/json")
    if body.too_large:
        raise _Rejected(413, f"request body is larger than {PANW_MAX_REQUEST_BYTES} bytes")
    payload = _json_object(body)
    profile = payload.get("ai_profile")
    if profile is None and linked:
        profile = {"profile_name": "linked-profile"}
    if not isinstance(profile, dict) or not any(
        isinstance(profile.get(key), str) and profile[key] for key in ("profile_id", "profile_name")
    ):
        raise _Rejected(400, "ai_profile with profile_id or profile_name is required")
    for key in ("tr_id", "session_id", "transaction_id"):
        value = payload.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > PANW_MAX_ID_CHARS):
            raise _Rejected(400, f"{key} must be a string of at most {PANW_MAX_ID_CHARS} characters")
    metadata = payload.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise _Rejected(400, "metadata must be an object of strings")
    contents = payload.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _Rejected(400, "contents must be a non-empty list")
    prompts: list[str] = []
    responses: list[str] = []
    tool_events: list[dict[str, Any]] = []
    for item in contents:
        if not isinstance(item, dict) or not any(item.get(key) is not None for key in _PANW_SCANNED_KEYS):
            raise _Rejected(400, "each contents item needs a prompt, response, code or tool_event")
        for key in _PANW_CONTENT_KEYS:
            if item.get(key) is not None and not isinstance(item[key], str):
                raise _Rejected(400, f"contents.{key} must be a string")
        for key, limit in PANW_FIELD_LIMITS.items():
            if isinstance(item.get(key), str) and len(item[key]) > limit:
                raise _Rejected(413, f"contents.{key} is longer than {limit} characters")
        prompts += [item[key] for key in ("prompt", "code_prompt") if item.get(key) is not None]
        responses += [item[key] for key in ("response", "code_response") if item.get(key) is not None]
        if item.get("tool_event") is not None:
            tool_events.append(_panw_tool_event(item["tool_event"]))
    prompt_findings = emulator._findings(prompts)
    response_findings = emulator._findings(responses)
    tool_findings = [
        (
            emulator._findings(_panw_tool_texts(event, "input")),
            emulator._findings(_panw_tool_texts(event, "output")),
        )
        for event in tool_events
    ]
    blocked = bool(prompt_findings or response_findings or any(i or o for i, o in tool_findings))
    scan_id = str(uuid.uuid4())
    name = profile.get("profile_name") or "emulator-profile"
    result: dict[str, Any] = {
        "action": "block" if blocked else "allow",
        "category": "malicious" if blocked else "benign",
        "profile_id": profile.get("profile_id") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"emulator:{name}")),
        "profile_name": name,
        "scan_id": scan_id,
        "report_id": f"R{scan_id}",
        "prompt_detected": _panw_flags(prompt_findings) if prompts else {},
        "response_detected": _panw_flags(response_findings, response=True) if responses else {},
        # The service reports its own scan failures here; the official SDK requires the fields.
        "timeout": False,
        "error": False,
        "errors": [],
    }
    if tool_events:
        # One report for the request's tool event (the service takes one per contents item).
        event = tool_events[0]
        inputs, outputs = tool_findings[0]
        tool_blocked = bool(inputs or outputs)
        result["tool_detected"] = {
            "verdict": "malicious" if tool_blocked else "benign",
            "metadata": event["metadata"],
            "summary": {"detections": sorted({f.category for f in (*inputs, *outputs)})},
            "input_detected": _panw_flags(inputs) if "input" in event else {},
            "output_detected": _panw_flags(outputs) if "output" in event else {},
        }
    if isinstance(payload.get("tr_id"), str):
        result["tr_id"] = payload["tr_id"]
    masks = {profile.get("profile_name"), profile.get("profile_id")} & emulator.panw_mask_profiles
    if blocked and masks:
        for side, texts, findings in (
            ("prompt", prompts, prompt_findings),
            ("response", responses, response_findings),
        ):
            if texts and any(finding.category == "sensitive_information" for finding in findings):
                masked = _panw_masked(texts[0])
                if masked is not None:
                    result[f"{side}_masked_data"] = masked
    return JSONResponse(result)


def _panw_tool_texts(event: Mapping[str, Any], side: str) -> list[str]:
    """The strings scanned on one side of a checked ``tool_event``: those `ToolEvent.iter_texts`
    gives LocalGuard, so that the emulator and LocalGuard judge the same text.

    ``output`` is JSON (decoded); ``input`` is read decoded when it holds a JSON object or array
    (a client may send plain text there). Every string of the value is read, keys included, a
    string that holds a JSON object or array decoded in turn. ``tool_invoked`` goes with the
    input (with the output when there is no input).
    """
    if side not in event:
        return []
    text: str = event[side]
    value: Any = text
    try:
        decoded = json.loads(text)
    except ValueError:
        decoded = None
    if side == "output" or isinstance(decoded, (dict, list)):
        value = decoded if decoded is not None or text.strip() == "null" else text
    texts = list(_strings(value))
    name = event["metadata"].get("tool_invoked")
    if isinstance(name, str) and (side == "input" or "input" not in event):
        texts.insert(0, name)
    return texts


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        stripped = value.lstrip()
        decoded: Any = None
        if stripped.startswith(("{", "[")):
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = None
        if isinstance(decoded, (dict, list)):
            yield from _strings(decoded)
        else:
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _panw_tool_event(event: object) -> dict[str, Any]:
    """A ``tool_event`` as documented: ``metadata`` (``ecosystem``, ``method``, ``server_name``
    required, ``tool_invoked`` optional, strings) and ``input``/``output`` as JSON strings."""
    if not isinstance(event, dict):
        raise _Rejected(400, "contents.tool_event must be an object")
    metadata = event.get("metadata")
    if not isinstance(metadata, dict):
        raise _Rejected(400, "contents.tool_event.metadata must be an object")
    for key in ("ecosystem", "method", "server_name"):
        if not isinstance(metadata.get(key), str) or not metadata[key]:
            raise _Rejected(400, f"contents.tool_event.metadata.{key} must be a non-empty string")
    if metadata.get("tool_invoked") is not None and not isinstance(metadata["tool_invoked"], str):
        raise _Rejected(400, "contents.tool_event.metadata.tool_invoked must be a string")
    for key in ("input", "output"):
        if event.get(key) is not None and not isinstance(event[key], str):
            raise _Rejected(400, f"contents.tool_event.{key} must be a JSON string")
    if event.get("input") is None and event.get("output") is None:
        raise _Rejected(400, "contents.tool_event needs an input or an output")
    return {key: event[key] for key in ("metadata", "input", "output") if event.get(key) is not None}


# The emulator's own patterns of sensitive data, for masking: independent of the client's.
_PANW_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "private-key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
    ),
    ("credit-card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")),
    ("ssn", re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")),
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")),
    (
        "api-key",
        re.compile(
            r"\b(?:sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36}|xox[abprs]-[A-Za-z0-9-]{10,})"
        ),
    ),
)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _panw_masked(text: str) -> dict[str, Any] | None:
    """``*_masked_data`` for one text: every sensitive span filled with X; None if none found."""
    chars = list(text)
    detections: list[dict[str, Any]] = []
    for name, pattern in _PANW_PATTERNS:
        locations: list[list[int]] = []
        for match in pattern.finditer(text):
            if name == "credit-card" and not _luhn(re.sub(r"\D", "", match.group())):
                continue
            locations.append([match.start(), match.end()])
            for index in range(match.start(), match.end()):
                if chars[index] != "\n":
                    chars[index] = "X"
        if locations:
            detections.append({"pattern": name, "locations": locations})
    if not detections:
        return None
    return {"data": "".join(chars), "pattern_detections": detections}


def _panw_flags(findings: Sequence[Finding], *, response: bool = False) -> dict[str, bool]:
    categories = {finding.category for finding in findings}
    flags = {
        "url_cats": False,
        "dlp": "sensitive_information" in categories,
        "injection": "prompt_attack" in categories,
        "toxic_content": "harmful_content" in categories,
        "malicious_code": False,
        "agent": False,
        "topic_violation": False,
    }
    if response:
        # Responses are not scanned for injection; they are for grounding and database security.
        del flags["injection"]
        flags.update(db_security=False, ungrounded=False)
    return flags


# -- plumbing ---------------------------------------------------------------------------------

_Handler = Callable[[Emulator, Request, _Body], Response]


def _error(api: Api, status: int, message: str, code: str = "BadRequest") -> JSONResponse:
    error: dict[str, str] = {"message": message}
    if api != "panw":
        error = {"code": code, "message": message}
    return JSONResponse({"error": error}, status_code=status)


class _DropConnection(Response):
    """Sends the status line and headers, then fails: the server closes the connection."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # No Content-Length: the server frames the body as chunked, so the close is a truncation.
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise ConnectionDropped("connection dropped by an injected fault")


def _fault_response(api: Api, fault: Fault) -> Response:
    if fault.kind == "status":
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        response = _error(api, fault.status, f"injected fault: status {fault.status}", "InjectedFault")
        response.headers.update(headers)
        return response
    if fault.kind == "malformed":
        return Response(b'{"id": "malformed", "action": "Al', media_type="application/json")
    if fault.kind == "empty":
        return Response(b"", media_type="application/json")
    if fault.kind == "redirect":
        return Response(status_code=307, headers={"Location": _REDIRECT_TARGET})
    if fault.kind == "oversized":
        # A valid Allow, padded: a client that does not cap the body would accept it.
        head = b'{"id": "oversized", "action": "Allow", "reasons": [], "reason": "", "padding": "'
        tail = b'"}'
        padding = max(0, fault.size - len(head) - len(tail))
        return Response(head + b"x" * padding + tail, media_type="application/json")
    return _DropConnection()


async def _read_body(request: Request, cap: int) -> tuple[bytes, bool]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        return b"", True
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            return bytes(body), True
    return bytes(body), False


async def _wait(request: Request, seconds: float) -> bool:
    """Wait `seconds`; False if the client went away first (no point answering then)."""
    with anyio.move_on_after(seconds):
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return False
    return True


def _endpoint(emulator: Emulator, api: Api, handler: _Handler, cap: int) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        emulator._arrived(api)
        try:
            raw, too_large = await _read_body(request, cap)
        except ClientDisconnect:
            return Response(status_code=499)  # never sent: the client left mid-body
        payload, valid_json = _decode(raw) if not too_large else (None, False)
        status: int | None = None
        fault_kind: FaultKind | None = None
        try:
            latency = emulator.latency
            slow = emulator._take(api, latency=True)
            if slow is not None:
                latency += slow.seconds
            if latency > 0 and not await _wait(request, latency):
                fault_kind = "latency" if slow is not None else None
                return Response(status_code=499)  # never sent: the client is gone
            fault = emulator._take(api, latency=False)
            if fault is not None:
                fault_kind = fault.kind
                response = _fault_response(api, fault)
            else:
                try:
                    response = handler(emulator, request, _Body(raw, too_large, payload, valid_json))
                except _Rejected as rejected:
                    response = _error(api, rejected.status, rejected.message, rejected.code)
            if not isinstance(response, _DropConnection):
                status = response.status_code
            return response
        finally:
            emulator._record(
                RecordedRequest(
                    api=api,
                    method=request.method,
                    path=request.url.path,
                    query=request.url.query,
                    headers={
                        k: "<redacted>" if k in _REDACTED_HEADERS else v for k, v in request.headers.items()
                    },
                    body_keys=tuple(payload) if isinstance(payload, dict) else (),
                    body_bytes=len(raw),
                    status=status,
                    fault=fault_kind,
                )
            )

    return endpoint


def _admin_routes(emulator: Emulator) -> list[Route]:
    async def add_faults(request: Request) -> Response:
        payload, valid = _decode(await request.body())
        items = payload if isinstance(payload, list) else [payload]
        try:
            if not valid:
                raise ValueError("request body is not valid JSON")
            faults = [Fault.model_validate(item) for item in items]
        except (ValueError, ValidationError) as exc:
            return JSONResponse({"error": {"message": str(exc)}}, status_code=400)
        for fault in faults:
            emulator.add(fault)
        return JSONResponse({"faults": [f.model_dump() for f in emulator.faults]}, status_code=201)

    async def list_faults(request: Request) -> Response:
        return JSONResponse({"faults": [f.model_dump() for f in emulator.faults]})

    async def reset(request: Request) -> Response:
        emulator.reset()
        return JSONResponse({"reset": True})

    async def requests(request: Request) -> Response:
        return JSONResponse(
            {
                "counts": emulator.counts,
                "redirects_followed": emulator.redirects_followed,
                "requests": [entry.to_json() for entry in emulator.requests],
            }
        )

    async def redirected(request: Request) -> Response:
        # A trap: a client that follows the redirect gets an Allow it must never have seen.
        with emulator._lock:
            emulator._redirects_followed += 1
        return JSONResponse({"id": "redirected", "action": "Allow", "reasons": [], "reason": ""})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return [
        Route("/_emulator/faults", add_faults, methods=["POST"]),
        Route("/_emulator/faults", list_faults, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/requests", requests, methods=["GET"]),
        Route("/_emulator/health", health, methods=["GET"]),
        Route(_REDIRECT_TARGET, redirected, methods=["GET", "POST"]),
    ]


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    logging.getLogger("uvicorn.error").addFilter(_DROP_FILTER)
    yield


def create_app(
    *,
    trend_keys: Iterable[str] = ("test-v1-key",),
    panw_keys: Iterable[str] = ("test-panw-key",),
    panw_linked_keys: Iterable[str] = (),
    latency: float = 0.0,
    log_size: int = 200,
    guard: LocalGuard | None = None,
    panw_mask_profiles: Iterable[str] = ("dlp-mask",),
) -> Starlette:
    """The emulator as a Starlette app; its state is ``app.state.emulator`` (an `Emulator`).

    Args:
        trend_keys: API keys the Trend endpoints accept (``Authorization: Bearer <key>``).
        panw_keys: API keys the Palo Alto endpoint accepts (``x-pan-token``).
        panw_linked_keys: Palo Alto keys with a linked profile (``ai_profile`` may be left out).
        latency: seconds every vendor request waits before it is answered.
        log_size: how many recent requests are kept for ``GET /_emulator/requests``.
        guard: the detector deciding Allow or Block (a default `LocalGuard`).
        panw_mask_profiles: Palo Alto profiles whose DLP masks what it finds (``*_masked_data``).
    """
    emulator = Emulator(
        trend_keys=trend_keys,
        panw_keys=panw_keys,
        panw_linked_keys=panw_linked_keys,
        latency=latency,
        log_size=log_size,
        guard=guard,
        panw_mask_profiles=panw_mask_profiles,
    )
    routes = [
        Route(
            TREND_V3_PATH,
            _endpoint(emulator, "trend-v3", _trend_v3, TREND_MAX_REQUEST_BYTES),
            methods=["POST"],
        ),
        Route(
            TREND_BETA_PATH,
            _endpoint(emulator, "trend-beta", _trend_beta, TREND_MAX_REQUEST_BYTES),
            methods=["POST"],
        ),
        Route(PANW_PATH, _endpoint(emulator, "panw", _panw, PANW_MAX_REQUEST_BYTES), methods=["POST"]),
        *_admin_routes(emulator),
    ]
    app = Starlette(routes=routes, lifespan=_lifespan)
    app.state.emulator = emulator
    return app


def serve(host: str = "127.0.0.1", port: int = 8080, *, log_level: str = "info", **options: Any) -> None:
    """Run the emulator with uvicorn until interrupted (``guardrails emulator``).

    Args:
        host: the interface to listen on; loopback by default.
        port: the TCP port.
        log_level: uvicorn's log level (its access log shows paths, never bodies).
        **options: passed to `create_app` (``trend_keys``, ``panw_keys``, ``latency``, ...).
    """
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - uvicorn is a dev dependency
        raise RuntimeError("the emulator server needs uvicorn: pip install uvicorn") from exc
    uvicorn.run(create_app(**options), host=host, port=port, log_level=log_level)
