"""Palo Alto Networks Prisma AIRS, AI Runtime Security API Intercept (synchronous scans).

``POST {base}/v1/scan/sync/request`` with ``x-pan-token: <key>`` and the body::

    {"tr_id"?, "session_id"?, "transaction_id"?,
     "ai_profile": {"profile_id": ...} | {"profile_name": ...},
     "metadata"?: {"app_name", "app_user", "ai_model", "user_ip"},
     "contents": [{"prompt": ...} | {"prompt"?: ..., "response": ...}]}

From the `Content`: a prompt is sent as ``prompt``; a response (``kind="response"``, or a chat
completion alone) as ``response``, with `Content.prompt` next to it as ``prompt`` when known.
``metadata["session_id"]`` (one conversation) becomes ``tr_id`` and ``session_id``,
``metadata["transaction_id"]`` (one turn) ``transaction_id``; ``metadata["user"]``,
``["model"]``, ``["app_name"]`` and ``["user_ip"]`` fill ``metadata`` and override the guard's
``app_user``, ``ai_model`` and ``app_name``. The profile id wins over the profile name.

Client-side limits (`ExtractionError`): a prompt or response over 2 MiB (UTF-8), a request body
over 2 MiB, an id over 100 characters.

Verdict reasons, from the detection flags that are true (unknown flags keep their own name)::

    prompt_detected.injection        -> "prompt_injection"
    prompt_detected.dlp              -> "dlp"
    prompt_detected.url_cats         -> "url_cats"
    prompt_detected.toxic_content    -> "toxic_content"
    prompt_detected.malicious_code   -> "malicious_code"
    prompt_detected.source_code      -> "source_code"
    prompt_detected.agent            -> "agent"
    prompt_detected.topic_violation  -> "topic_violation"
    response_detected.<flag>         -> "response_" + the name above, e.g. "response_dlp",
                                        "response_db_security", "response_ungrounded"

A Block with no true flag gets the ``category`` (e.g. ``"malicious"``) as its reason.
``scan_id`` is the verdict id; ``report_id`` and every other field stay in `Verdict.raw`;
``prompt_masked_data`` / ``response_masked_data`` are exposed as
``Verdict.masked_data == {"prompt": {...}, "response": {...}}`` (the keys present).

A ``category`` of ``"error"`` or ``"timeout"`` (or ``"error": true`` / ``"timeout": true``)
without a Block means the scan did not complete: a transient `GuardResponseError`, never an Allow.

Caching (``cache=``): the key covers the content, the profile, the metadata sent (``app_name``,
``app_user``, ``ai_model`` and the Content's ``session_id``, ``transaction_id``, ``user``,
``model``, ``app_name``, ``user_ip``), the base URL and a digest of the API key. A new
``transaction_id`` per turn therefore means a new scan per turn. Verdicts with masked data are
not cached: the masked copy is still the user's text.
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any

import httpx
from pydantic import SecretStr

from .._cache import VerdictCache, secret_digest
from .._client import DEFAULT_MAX_RESPONSE_BYTES, AsyncBackend
from .._exceptions import ExtractionError, GuardResponseError
from .._models import Action, Content, Verdict
from .._policy import CircuitBreaker
from ._common import (
    KeyedRemoteGuard,
    check_base_url,
    decode_json_object,
    encode_json,
    region_url,
    resolve_api_key,
)

__all__ = ["REGIONS", "PaloAltoAIRS"]

#: Base URL of each Prisma AIRS region.
REGIONS: dict[str, str] = {
    "us": "https://service.api.aisecurity.paloaltonetworks.com",
    "eu": "https://service-de.api.aisecurity.paloaltonetworks.com",
    "in": "https://service-in.api.aisecurity.paloaltonetworks.com",
    "sg": "https://service-sg.api.aisecurity.paloaltonetworks.com",
}

SCAN_PATH = "/v1/scan/sync/request"
ENV_API_KEY = "PANW_AI_SEC_API_KEY"
ENV_ENDPOINT = "PANW_AI_SEC_API_ENDPOINT"

MAX_CONTENT_BYTES = 2 * 1024 * 1024
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_ID_LENGTH = 100
MAX_PROFILE_NAME_LENGTH = 100

_FLAG_NAMES = {"injection": "prompt_injection"}


class PaloAltoAIRS(KeyedRemoteGuard):
    """Palo Alto Networks Prisma AIRS (AI Runtime Security: API Intercept).

    Args:
        api_key: the API key; defaults to the ``PANW_AI_SEC_API_KEY`` environment variable.
        profile_name: the AI security profile to scan with.
        profile_id: the profile's id; wins over `profile_name`.
        region: ``us`` (default), ``eu``, ``in`` or ``sg``.
        base_url: overrides the region's URL; defaults to the ``PANW_AI_SEC_API_ENDPOINT``
            environment variable when set. https, or http on loopback.
        app_name: ``metadata.app_name`` sent with every scan.
        app_user: ``metadata.app_user`` sent with every scan (a Content's ``metadata["user"]`` wins).
        ai_model: ``metadata.ai_model`` sent with every scan (a Content's ``metadata["model"]`` wins).
        timeout: overall deadline of one check in seconds, retries and backoff included.
        retries: retries after the first attempt, for transient failures only.
        transport: an httpx transport used instead of the network (e.g. `httpx.MockTransport`).
        linked_profile: the API key has a profile linked to it: no profile is sent.
        breaker: the circuit breaker; a fresh one per guard by default.
        limits: connection pool limits.
        backoff: base delay of the jittered exponential backoff, in seconds.
        max_response_bytes: cap on the service's response body.
        http2: use HTTP/2 (needs the ``h2`` extra).
        async_backend: how `acheck` sends: ``"auto"`` (aiohttp when installed, on asyncio: several
            times less CPU per check under concurrency), ``"aiohttp"`` or ``"httpx"``.
        verify: TLS verification: True (the default trust store), an `ssl.SSLContext` or a CA
            bundle path (a private CA), or False (not recommended).
        cache: cache verdicts: None (default) for no cache, True for an in-memory `LRUCache`, or
            any `VerdictCache`; concurrent identical checks then share one call. See "Caching" above.

    Raises:
        ValueError: no API key, no profile (and not `linked_profile`), an unknown region, or a
            base URL that is not https (or http on loopback).
    """

    name = "palo-alto"

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        profile_name: str | None = None,
        profile_id: str | None = None,
        region: str = "us",
        base_url: str | None = None,
        app_name: str | None = None,
        app_user: str | None = None,
        ai_model: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        linked_profile: bool = False,
        breaker: CircuitBreaker | None = None,
        limits: httpx.Limits | None = None,
        backoff: float = 0.1,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        http2: bool = False,
        async_backend: AsyncBackend = "auto",
        verify: ssl.SSLContext | str | bool = True,
        cache: VerdictCache | bool | None = None,
    ) -> None:
        if not profile_id and not profile_name and not linked_profile:
            raise ValueError(
                "PaloAltoAIRS needs profile_name or profile_id "
                "(or linked_profile=True when the API key has a profile linked to it)"
            )
        if profile_name is not None and len(profile_name) > MAX_PROFILE_NAME_LENGTH:
            raise ValueError(f"profile_name must be at most {MAX_PROFILE_NAME_LENGTH} characters")
        default_url = region_url(region, REGIONS, guard=self.name)
        self._api_key = resolve_api_key(api_key, env_var=ENV_API_KEY, guard=self.name)
        self._key_digest = secret_digest(self._api_key)
        if base_url is None:
            base_url = os.environ.get(ENV_ENDPOINT) or default_url
        super().__init__(
            base_url=check_base_url(base_url, guard=self.name),
            timeout=timeout,
            retries=retries,
            transport=transport,
            breaker=breaker,
            max_response_bytes=max_response_bytes,
            limits=limits,
            http2=http2,
            async_backend=async_backend,
            verify=verify,
            backoff=backoff,
            cache=cache,
        )
        self.region = region.strip().lower()
        self.profile_name = profile_name or None
        self.profile_id = profile_id or None
        self.linked_profile = linked_profile
        self.app_name = app_name
        self.app_user = app_user
        self.ai_model = ai_model

    # -- cache ----------------------------------------------------------------------------------

    _cache_metadata = ("session_id", "transaction_id", "app_name", "user", "model", "user_ip")

    def _cache_identity(self) -> tuple[object, ...]:
        return (
            *super()._cache_identity(),
            self._key_digest,
            self.profile_id,
            self.profile_name,
            self.linked_profile,
            self.app_name,
            self.app_user,
            self.ai_model,
        )

    # -- requests -------------------------------------------------------------------------------

    def _build_requests(self, content: Content) -> list[httpx.Request]:
        body: dict[str, Any] = {}
        session_id = content.metadata.get("session_id")
        if session_id:
            _check_id("session_id", session_id)
            body["tr_id"] = session_id
            body["session_id"] = session_id
        transaction_id = content.metadata.get("transaction_id")
        if transaction_id:
            _check_id("transaction_id", transaction_id)
            body["transaction_id"] = transaction_id
        if self.profile_id:
            body["ai_profile"] = {"profile_id": self.profile_id}
        elif self.profile_name:
            body["ai_profile"] = {"profile_name": self.profile_name}
        metadata = {
            "app_name": content.metadata.get("app_name") or self.app_name,
            "app_user": content.metadata.get("user") or self.app_user,
            "ai_model": content.metadata.get("model") or self.ai_model,
            "user_ip": content.metadata.get("user_ip"),
        }
        metadata = {key: value for key, value in metadata.items() if value}
        if metadata:
            body["metadata"] = metadata
        body["contents"] = [self._contents_item(content)]
        encoded = encode_json(body, guard=self.name)
        if len(encoded) > MAX_REQUEST_BYTES:
            raise ExtractionError(
                f"{self.name} guard: the scan request is {len(encoded)} bytes, "
                f"more than the {MAX_REQUEST_BYTES} bytes the service accepts"
            )
        headers = [
            ("x-pan-token", self._api_key.get_secret_value()),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ]
        return [httpx.Request("POST", self._url, headers=headers, content=encoded)]

    @functools.cached_property
    def _url(self) -> httpx.URL:
        # Parsed once: building an httpx.URL from a string costs more than the rest of a request.
        return httpx.URL(self.base_url + SCAN_PATH)

    def _contents_item(self, content: Content) -> dict[str, str]:
        text = content.as_text()
        is_response = content.kind == "response" or (
            content.completion is not None and content.text is None and content.messages is None
        )
        item: dict[str, str] = {}
        if is_response:
            if content.prompt is not None:
                item["prompt"] = _check_size("prompt", content.prompt)
            item["response"] = _check_size("response", text)
        else:
            item["prompt"] = _check_size("prompt", text)
        return item

    # -- responses ------------------------------------------------------------------------------

    def _parse_response(self, response: httpx.Response) -> Verdict:
        payload = decode_json_object(response, guard=self.name)
        action = Action.parse(payload.get("action"))
        category = payload.get("category")
        category = category.strip().lower() if isinstance(category, str) else None
        incomplete = (
            category in ("error", "timeout") or payload.get("error") is True or payload.get("timeout") is True
        )
        if action is not Action.BLOCK and incomplete:
            raise GuardResponseError(
                f"{self.name} guard could not complete the scan (category {category or 'error'})",
                guard=self.name,
                status_code=response.status_code,
            )
        if action is None:
            state = "an unknown" if "action" in payload else "no"
            raise GuardResponseError(
                f"{self.name} guard answered {state} action",
                guard=self.name,
                status_code=response.status_code,
            )
        reasons = _flags(payload.get("prompt_detected"), "") + _flags(
            payload.get("response_detected"), "response_"
        )
        if action is Action.BLOCK and not reasons and category:
            reasons = [category]
        masked = {
            side: payload[f"{side}_masked_data"]
            for side in ("prompt", "response")
            if isinstance(payload.get(f"{side}_masked_data"), dict)
        }
        scan_id = payload.get("scan_id")
        return Verdict(
            action=action,
            reasons=reasons,
            id=scan_id if isinstance(scan_id, str) and scan_id else None,
            guard=self.name,
            raw=payload,
            masked_data=masked or None,
        )

    def __repr__(self) -> str:
        profile = (
            f"profile_id={self.profile_id!r}" if self.profile_id else f"profile_name={self.profile_name!r}"
        )
        return f"PaloAltoAIRS({profile}, base_url={self.base_url!r}, timeout={self.timeout:g})"


def _check_id(field: str, value: str) -> None:
    if len(value) > MAX_ID_LENGTH:
        raise ExtractionError(f"palo-alto guard: {field} is longer than {MAX_ID_LENGTH} characters")


def _check_size(field: str, text: str) -> str:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CONTENT_BYTES:
        raise ExtractionError(
            f"palo-alto guard: the {field} is {size} bytes, more than the {MAX_CONTENT_BYTES} the service accepts"
        )
    return text


def _flags(detected: object, prefix: str) -> list[str]:
    """Reason names of the flags set to true in a ``*_detected`` object."""
    if not isinstance(detected, dict):
        return []
    return [
        prefix + _FLAG_NAMES.get(flag, flag)
        for flag, value in detected.items()
        if isinstance(flag, str) and value is True
    ]
