"""Palo Alto Networks Prisma AIRS, AI Runtime Security API Intercept (synchronous scans).

``POST {base}/v1/scan/sync/request`` with ``x-pan-token: <key>`` and the body::

    {"tr_id"?, "session_id"?, "transaction_id"?,
     "ai_profile": {"profile_id": ...} | {"profile_name": ...},
     "metadata"?: {"app_name", "app_user", "ai_model", "user_ip"},
     "contents": [{"prompt": ...} | {"prompt"?: ..., "response": ...}]}

From the `Content`: a tool event (`Content.tool`) is sent as ``tool_event``; a prompt as ``prompt``; a response (``kind="response"``, or a chat
completion alone) as ``response``, with `Content.prompt` next to it as ``prompt`` when known.
``metadata["session_id"]`` (one conversation) becomes ``tr_id`` and ``session_id``,
``metadata["transaction_id"]`` (one turn) ``transaction_id``; ``metadata["user"]``,
``["model"]``, ``["app_name"]`` and ``["user_ip"]`` fill ``metadata`` and override the guard's
``app_user``, ``ai_model`` and ``app_name``. The profile id wins over the profile name.

Field limits (pan.dev): a prompt takes at most 10,000 characters, a response 20,000, a request
2 MB. Longer text is checked like Trend's, in overlapping windows (prompt windows of 10,000
characters, response windows of 20,000), one scan per window, the verdicts combined (any Block
blocks). The prompt sent next to a response is context: its last 10,000 characters go with every
response window. More text than one check takes (`PaloAltoAIRS.max_text_chars`, or more windows
than ``max_windows``) raises `ContentTooLarge` before any scan; an id over 100 characters raises
`ExtractionError`. Messages an incremental check already allowed (`Content.context`) go in the
``context`` field of every ``contents`` entry (its newest 100,000 characters), which the service
takes as context rather than as a prompt to scan; they are not counted as scanned characters.

Cost: each scan records the characters of its scanned fields (``prompt``, ``response``) and the
billing units the service documents for them, one token per four characters.

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

    tool_detected.input_detected.<flag>  -> "tool_input_" + the name above, e.g.
                                            "tool_input_dlp" (a tool's arguments)
    tool_detected.output_detected.<flag> -> "tool_output_" + the name above, e.g.
                                            "tool_output_prompt_injection" (a tool's result)

The flags of ``tool_detected`` are read directly on ``input_detected`` / ``output_detected``
and, in the newer shape, in their ``detection_entries[].detections``. A Block with no true flag
gets ``"tool_malicious"`` when ``tool_detected.verdict`` is ``"malicious"``, else the
``category`` (e.g. ``"malicious"``) as its reason.

Categories (`Verdict.categories`), from the same flags of any side (prompt, response, tool
input, tool output): ``injection`` and
``agent`` -> ``prompt_attack``; ``dlp`` -> ``sensitive_data``; ``toxic_content`` ->
``harmful_content``; ``url_cats`` -> ``malicious_url``; ``topic_violation`` ->
``topic_violation``; any other flag (``malicious_code``, ``source_code``, ``db_security``,
``ungrounded``, flags added later) -> ``other``, as is a Block with no true flag.
``scan_id`` is the verdict id; ``report_id`` and every other field stay in `Verdict.raw`;
``prompt_masked_data`` / ``response_masked_data`` are exposed as
``Verdict.masked_data == {"prompt": {...}, "response": {...}}`` (the keys present). When the
side checked (``prompt``, or ``response`` for a response) came back masked in one scan, its
``data`` (same-length X fill, as the service masks) becomes `Verdict.masked`: the checked
`Content` with each string masked, so that ``mask=True`` in the shells can let the call go on
masked. Text checked in several windows, or masked data of another length, gives no
`Verdict.masked` (the Block then stands).

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
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from typing_extensions import Unpack

from .._cache import secret_digest
from .._client import ConnectionKeywords, ConnectionOptions, RemoteGuard
from .._exceptions import ExtractionError, GuardConfigurationError, GuardResponseError
from .._exchange import GuardRequest, GuardResponse, RequestHeaders
from .._masking import masked_text_content
from .._models import Action, Category, Content, ToolEvent, Verdict, as_content, message_texts
from ._common import (
    FieldWindows,
    check_base_url,
    check_body_size,
    check_text_size,
    decode_json_object,
    encode_json,
    parsed_verdict,
    region_url,
    resolve_api_key,
)

if TYPE_CHECKING:
    from .._settings import GuardSettings

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

#: Documented field limits, in characters, and the request limit in bytes.
MAX_PROMPT_CHARS = 10_000
MAX_RESPONSE_CHARS = 20_000
MAX_CONTEXT_CHARS = 100_000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_ID_LENGTH = 100
MAX_PROFILE_NAME_LENGTH = 100

_FLAG_NAMES = {"injection": "prompt_injection"}
_FLAG_CATEGORIES: dict[str, Category] = {
    "injection": "prompt_attack",
    "agent": "prompt_attack",
    "dlp": "sensitive_data",
    "toxic_content": "harmful_content",
    "url_cats": "malicious_url",
    "topic_violation": "topic_violation",
}


class PaloAltoAIRS(RemoteGuard):
    """Palo Alto Networks Prisma AIRS (AI Runtime Security: API Intercept).

    Every argument left out is read from the environment (through `GuardSettings`, like
    `guard_from_env`): ``PANW_AI_SEC_API_KEY``, ``PANW_AI_PROFILE_NAME`` / ``PANW_AI_PROFILE_ID``
    (when neither profile argument is given), ``PANW_AI_SEC_REGION``, ``PANW_AI_SEC_API_ENDPOINT``.
    Explicit arguments win.

    Args:
        api_key: the API key (``PANW_AI_SEC_API_KEY``).
        profile_name: the AI security profile to scan with (``PANW_AI_PROFILE_NAME``).
        profile_id: the profile's id; wins over `profile_name` (``PANW_AI_PROFILE_ID``).
        region: ``us`` (default), ``eu``, ``in`` or ``sg`` (``PANW_AI_SEC_REGION``).
        base_url: overrides the region's URL (``PANW_AI_SEC_API_ENDPOINT``); https, or http on
            loopback.
        app_name: ``metadata.app_name`` sent with every scan.
        app_user: ``metadata.app_user`` sent with every scan (a Content's ``metadata["user"]`` wins).
        ai_model: ``metadata.ai_model`` sent with every scan (a Content's ``metadata["model"]`` wins).
        linked_profile: the API key has a profile linked to it: no profile is sent.
        max_windows: the most windows of one field (10,000-character prompt windows, 20,000-character
            response windows) one check sends; None (default): as many as the deadline allows.
        settings: where the arguments left out are read from (default: the environment).
        options: the connection options, as one `ConnectionOptions`.
        **connection: any `ConnectionOptions` field as a keyword: ``timeout``, ``retries``,
            ``backoff``, ``transport``, ``breaker``, ``limits``, ``http2``, ``async_backend``,
            ``verify``, ``cache`` (see "Caching" above), ``max_response_bytes``,
            ``window_concurrency``, ``expected_latency``.

    Attributes:
        max_text_chars: the most characters (every string of a Content together) one check
            takes; longer content raises `ContentTooLarge` before any scan.

    Raises:
        GuardConfigurationError: (a `ValueError`) no API key, no profile (and not
            `linked_profile`), an unknown region, or a base URL that is not https (or http on
            loopback). The message says what to set.
    """

    name = "palo-alto"
    billing_chars_per_unit = 4

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        profile_name: str | None = None,
        profile_id: str | None = None,
        region: str | None = None,
        base_url: str | None = None,
        app_name: str | None = None,
        app_user: str | None = None,
        ai_model: str | None = None,
        linked_profile: bool = False,
        max_windows: int | None = None,
        settings: GuardSettings | None = None,
        options: ConnectionOptions | None = None,
        **connection: Unpack[ConnectionKeywords],
    ) -> None:
        no_profile = not profile_id and not profile_name and not linked_profile
        if api_key is None or region is None or no_profile:
            env = settings if settings is not None else _settings()
            api_key = api_key if api_key is not None else env.panw_ai_sec_api_key
            if region is None:
                # An explicit region means that region's URL, whatever the endpoint variable says.
                region = env.panw_ai_sec_region
                base_url = base_url if base_url is not None else env.panw_ai_sec_api_endpoint
            if no_profile:
                profile_name, profile_id = env.panw_ai_profile_name, env.panw_ai_profile_id
        key = resolve_api_key(api_key, env_var=ENV_API_KEY, guard=self.name)
        if not profile_id and not profile_name and not linked_profile:
            raise GuardConfigurationError(
                "Palo Alto Prisma AIRS needs an AI security profile: set PANW_AI_PROFILE_NAME or "
                "PANW_AI_PROFILE_ID (or pass profile_name=, profile_id=, or linked_profile=True when "
                "the API key has a profile linked to it)",
                guard=self.name,
            )
        if profile_name is not None and len(profile_name) > MAX_PROFILE_NAME_LENGTH:
            raise GuardConfigurationError(
                f"profile_name must be at most {MAX_PROFILE_NAME_LENGTH} characters", guard=self.name
            )
        default_url = region_url(region, REGIONS, guard=self.name)
        self._key_digest = secret_digest(key)
        url = check_base_url(base_url if base_url is not None else default_url, guard=self.name)
        super().__init__(base_url=url, api_key=key, options=options, **connection)
        self.region = region.strip().lower()
        self.profile_name = profile_name or None
        self.profile_id = profile_id or None
        self.linked_profile = linked_profile
        self.app_name = app_name
        self.app_user = app_user
        self.ai_model = ai_model
        if max_windows is not None and max_windows < 1:
            raise ValueError("max_windows must be at least 1 (or None)")
        self.max_windows = self.max_requests if max_windows is None else min(max_windows, self.max_requests)
        self._prompt_windows = FieldWindows(
            MAX_PROMPT_CHARS, _overlap(MAX_PROMPT_CHARS), self.max_windows, field="prompt"
        )
        self._response_windows = FieldWindows(
            MAX_RESPONSE_CHARS, _overlap(MAX_RESPONSE_CHARS), self.max_windows, field="response"
        )

    @property
    def max_text_chars(self) -> int:
        """The most characters (every string of a Content together) one check takes."""
        return self._prompt_windows.max_chars

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

    def _build_requests(self, content: Content) -> list[GuardRequest]:
        check_text_size(content, self.max_text_chars, guard=self.name)
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
        requests = []
        context = _context(content.context)
        for item in self._contents_items(content):
            scanned = sum(len(text) for text in item.values())
            if context:
                item["context"] = context
            body["contents"] = [item]
            encoded = check_body_size(encode_json(body, guard=self.name), MAX_REQUEST_BYTES, guard=self.name)
            requests.append(GuardRequest("POST", self._url, self._headers, encoded, scanned=scanned))
        return requests

    @functools.cached_property
    def _url(self) -> str:
        return self.base_url + SCAN_PATH

    @functools.cached_property
    def _headers(self) -> RequestHeaders:
        """Every scan's headers, built once (`RequestHeaders`: the repr shows no value)."""
        return RequestHeaders(
            [
                ("x-pan-token", self._key.get_secret_value()),
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
            ]
        )

    def _contents_items(self, content: Content) -> list[dict[str, Any]]:
        """One ``contents`` item per window: every string of the content, within the field limits.

        A tool event is one ``tool_event`` item of its own (the documented shape: ``metadata``
        with ``ecosystem``, ``method``, ``server_name`` and ``tool_invoked``; ``input`` and
        ``output`` as JSON strings), next to the windows of any other text of the content.
        """
        if content.tool is not None:
            event = {"tool_event": self._tool_event(content.tool)}
            if content.text is None and content.messages is None and content.completion is None:
                return [event]
            rest = content.model_copy(update={"tool": None})
            return [event, *self._contents_items(rest)]
        text = content.as_text()
        is_response = content.kind == "response" or (
            content.completion is not None and content.text is None and content.messages is None
        )
        if not is_response:
            return [{"prompt": window} for window in self._prompt_windows.split(text, guard=self.name)]
        context = {"prompt": content.prompt[-MAX_PROMPT_CHARS:]} if content.prompt else {}
        windows = self._response_windows.split(text, guard=self.name)
        return [{**context, "response": window} for window in windows]

    def _tool_event(self, tool: ToolEvent) -> dict[str, Any]:
        metadata = {
            "ecosystem": tool.ecosystem,
            "method": tool.method,
            # Required by the service: the guard's application stands in for a local function.
            "server_name": tool.server or self.app_name or "local",
            "tool_invoked": tool.name,
        }
        event: dict[str, Any] = {"metadata": metadata}
        arguments = tool.input_text()
        if arguments is not None:
            event["input"] = arguments
        result = tool.output_text()
        if result is not None:
            event["output"] = result
        return event

    # -- masking --------------------------------------------------------------------------------

    def check(self, content: Content | str) -> Verdict:
        """Check `content`, blocking; a masked Block carries `Verdict.masked` (see the module docs)."""
        content = as_content(content)
        return _with_masked(content, super().check(content))

    async def acheck(self, content: Content | str) -> Verdict:
        """Check `content` without blocking the event loop (see `check`)."""
        content = as_content(content)
        return _with_masked(content, await super().acheck(content))

    # -- responses ------------------------------------------------------------------------------

    def _parse_response(self, response: GuardResponse) -> Verdict:
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
        tool_flags = _tool_flags(payload.get("tool_detected"))
        reasons = (
            _flags(payload.get("prompt_detected"), "")
            + _flags(payload.get("response_detected"), "response_")
            + [f"tool_{side}_{_FLAG_NAMES.get(flag, flag)}" for side, flag in tool_flags]
        )
        tool = payload.get("tool_detected")
        tool_verdict = tool.get("verdict") if isinstance(tool, dict) else None
        if action is Action.BLOCK and not reasons and str(tool_verdict).lower() == "malicious":
            reasons = ["tool_malicious"]
        if action is Action.BLOCK and not reasons and category:
            reasons = [category]
        masked = {
            side: payload[f"{side}_masked_data"]
            for side in ("prompt", "response")
            if isinstance(payload.get(f"{side}_masked_data"), dict)
        }
        scan_id = payload.get("scan_id")
        categories = {
            _FLAG_CATEGORIES.get(flag, "other")
            for side in ("prompt_detected", "response_detected")
            for flag in _true_flags(payload.get(side))
        } | {_FLAG_CATEGORIES.get(flag, "other") for _, flag in tool_flags}
        if action is Action.BLOCK and not categories:
            categories.add("other")
        return parsed_verdict(
            action=action,
            reasons=reasons,
            id=scan_id if isinstance(scan_id, str) and scan_id else None,
            guard=self.name,
            raw=payload,
            masked_data=masked or None,
            categories=frozenset(categories),
        )

    def __repr__(self) -> str:
        profile = (
            f"profile_id={self.profile_id!r}" if self.profile_id else f"profile_name={self.profile_name!r}"
        )
        return f"PaloAltoAIRS({profile}, base_url={self.base_url!r}, timeout={self.timeout:g})"


def _with_masked(content: Content, verdict: Verdict) -> Verdict:
    """`verdict` with `Verdict.masked` when the service masked the side that was checked."""
    if not verdict.blocked or not verdict.masked_data:
        return verdict
    is_response = content.kind == "response" or (
        content.completion is not None and content.text is None and content.messages is None
    )
    side = verdict.masked_data.get("response" if is_response else "prompt")
    data = side.get("data") if isinstance(side, dict) else None
    if not isinstance(data, str):
        return verdict
    masked = masked_text_content(content, data)
    return verdict if masked is None else verdict.model_copy(update={"masked": masked})


def _check_id(field: str, value: str) -> None:
    if len(value) > MAX_ID_LENGTH:
        raise ExtractionError(f"palo-alto guard: {field} is longer than {MAX_ID_LENGTH} characters")


def _overlap(size: int) -> int:
    return size // 8


def _context(messages: list[dict[str, Any]] | None) -> str:
    """Messages already allowed, as the ``context`` text: ``role: text`` lines, the newest kept."""
    if not messages:
        return ""
    lines = [
        f"{message.get('role', 'user')}: {text}"
        for message in messages
        for text in message_texts(message)
        if text
    ]
    return "\n".join(lines)[-MAX_CONTEXT_CHARS:]


def _true_flags(detected: object) -> list[str]:
    """The flags set to true in a ``*_detected`` object."""
    if not isinstance(detected, dict):
        return []
    return [flag for flag, value in detected.items() if isinstance(flag, str) and value is True]


def _tool_flags(detected: object) -> list[tuple[str, str]]:
    """``(side, flag)`` of every true flag of a ``tool_detected`` report, side ``input``/``output``.

    Both documented shapes are read: the flags directly on ``input_detected`` /
    ``output_detected``, and the newer ``detection_entries[].detections`` under them (one entry
    per tool invocation). Each flag is named once per side, in the order first seen.
    """
    if not isinstance(detected, dict):
        return []
    found: list[tuple[str, str]] = []
    for side in ("input", "output"):
        report = detected.get(f"{side}_detected")
        if not isinstance(report, dict):
            continue
        entries = report.get("detection_entries")
        flags = _true_flags(report) + [
            flag
            for entry in (entries if isinstance(entries, list) else ())
            if isinstance(entry, dict)
            for flag in _true_flags(entry.get("detections"))
        ]
        found += [(side, flag) for flag in dict.fromkeys(flags)]
    return found


def _flags(detected: object, prefix: str) -> list[str]:
    """Reason names of the flags set to true in a ``*_detected`` object."""
    return [prefix + _FLAG_NAMES.get(flag, flag) for flag in _true_flags(detected)]


def _settings() -> GuardSettings:
    from .._settings import GuardSettings

    return GuardSettings()
