"""Trend Vision One AI Guard: the current API (v3.0, the default) and the beta API.

v3: ``POST {base}/v3.0/aiSecurity/applyGuardrails`` with ``Authorization: Bearer <key>``,
``TMV1-Application-Name`` (letters, digits, ``-``, ``_``; at most 64 characters),
``TMV1-Request-Type`` and ``Prefer``. The request type follows the `Content`:

- ``text``: ``SimpleRequestGuard``, body ``{"prompt": text}`` (one request per window);
- ``messages``: ``OpenAIChatCompletionRequestV1``, body ``{"model": ..., "messages": [...]}`` (the
  model from ``metadata["model"]``, omitted when unknown);
- ``completion``: ``OpenAIChatCompletionResponseV1``, body the chat completion as is;
- ``tool`` (a `ToolEvent`): ``OpenAIChatCompletionRequestV1`` with the assistant's tool call (its
  arguments) and, once the tool ran, the ``tool`` message holding its result.

beta: ``POST {base}/beta/aiSecurity/guard?detailedResponse=true|false`` with the bearer key; the
body is ``{"guard": text}`` for text, and the same OpenAI shapes for messages and completions.

A `Content` holding several of text, messages and completion is checked as several requests, and
long text as several overlapping windows (the service is most comfortable with prompts under
about 1024 characters); the verdicts are combined: any Block blocks, reasons are merged.

Responses are read leniently: ``reasons`` (v3) or ``reason`` (beta), the action in any case; the
detailed fields (``harmfulContent``, ``sensitiveInformation``, ``promptAttacks`` in v3;
``harmful_content``, ``sensitive_information``, ``prompt_attack`` in beta) stay in `Verdict.raw`.
A missing or unknown action is a `GuardResponseError`, never an Allow.

Categories (`Verdict.categories`), from the reasons and, when detailed, the detail fields; the raw
reasons stay in `Verdict.reasons`:

==============================================  ==========================  ====================
reason words (any case) / detail field          v3 and beta                 category
==============================================  ==========================  ====================
"prompt attack", "injection", "jailbreak"       ``promptAttacks[]`` /       ``prompt_attack``
                                                ``prompt_attack[]``
"sensitive", "pii", "dlp", "personal"           ``sensitiveInformation`` /  ``sensitive_data``
                                                ``sensitive_information``
"harmful", "toxic", "violence", "hate"...       ``harmfulContent[]`` /      ``harmful_content``
                                                ``harmful_content[]``
"url"                                                                       ``malicious_url``
"topic"                                                                     ``topic_violation``
==============================================  ==========================  ====================

A detail entry counts when it says ``hasPolicyViolation: true`` (v3) or ``content_violation:
true`` (beta). A Block that maps to nothing is ``other``.

Caching (``cache=``): the key covers the content (``metadata["model"]`` is the only metadata sent),
the API variant, application name, detailed flag, window settings, base URL and a digest of the
API key.
"""

from __future__ import annotations

import functools
import json
import re
from typing import TYPE_CHECKING, Any, Literal

import httpx
from pydantic import SecretStr
from typing_extensions import Unpack

from .._cache import secret_digest
from .._client import ConnectionKeywords, ConnectionOptions, RemoteGuard
from .._exceptions import GuardConfigurationError, GuardResponseError
from .._exchange import GuardRequest, GuardResponse, RequestHeaders
from .._models import Action, Category, Content, ToolEvent, Verdict, message_texts
from ._common import (
    FieldWindows,
    check_base_url,
    check_body_size,
    check_text_size,
    decode_json_object,
    encode_json,
    encode_json_string,
    parsed_verdict,
    region_url,
    resolve_api_key,
)

if TYPE_CHECKING:
    from .._settings import GuardSettings

__all__ = ["MAX_REQUEST_BYTES", "REGIONS", "TrendAIGuard"]

#: Base URL of each Trend Vision One region.
REGIONS: dict[str, str] = {
    "us": "https://api.xdr.trendmicro.com",
    "eu": "https://api.eu.xdr.trendmicro.com",
    "jp": "https://api.xdr.trendmicro.co.jp",
    "au": "https://api.au.xdr.trendmicro.com",
    "in": "https://api.in.xdr.trendmicro.com",
    "sg": "https://api.sg.xdr.trendmicro.com",
    "mea": "https://api.mea.xdr.trendmicro.com",
    "uk": "https://api.uk.xdr.trendmicro.com",
    "usgov": "https://api.usgov.xdr.trendmicro.com",
}

V3_PATH = "/v3.0/aiSecurity/applyGuardrails"
BETA_PATH = "/beta/aiSecurity/guard"
ENV_API_KEY = "V1_API_KEY"
#: Vision One's documented request limit (larger bodies are answered 413).
MAX_REQUEST_BYTES = 1_000_000
# Requests kept free in the budget of one check, for a chat request and a chat completion.
_NON_TEXT_REQUESTS = 2

_APP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

SIMPLE_REQUEST = "SimpleRequestGuard"
CHAT_REQUEST = "OpenAIChatCompletionRequestV1"
CHAT_RESPONSE = "OpenAIChatCompletionResponseV1"


class TrendAIGuard(RemoteGuard):
    """Trend Vision One AI Guard.

    Every argument left out is read from the environment (through `GuardSettings`, like
    `guard_from_env`): ``V1_API_KEY``, ``V1_REGION``, ``V1_BASE_URL``, ``V1_APP_NAME``,
    ``V1_AI_GUARD_API``. Explicit arguments win.

    Args:
        api_key: the Vision One API key (``V1_API_KEY``).
        region: ``us`` (default), ``eu``, ``jp``, ``au``, ``in``, ``sg``, ``mea``, ``uk`` or ``usgov``
            (``V1_REGION``).
        base_url: overrides the region's URL (self-hosted, the emulator); https, or http on
            loopback (``V1_BASE_URL``).
        app_name: the ``TMV1-Application-Name`` sent with v3 requests: letters, digits, ``-`` and
            ``_``, at most 64 characters (``V1_APP_NAME``, default ``guardrails``). Checked here,
            once: a Content's ``metadata["app_name"]`` does not change it.
        api: ``"v3"`` (the current API, default) or ``"beta"`` (``V1_AI_GUARD_API``).
        detailed: ask for the detailed response (per-category scores, kept in `Verdict.raw`).
        window_size: plain text longer than this many characters is checked in windows.
        window_overlap: characters shared by consecutive windows (at most a quarter of a window).
        max_windows: the most windows of text one check sends; None: as many as the deadline
            allows (see `max_text_chars`).
        settings: where the arguments left out are read from (default: the environment).
        options: the connection options, as one `ConnectionOptions`.
        **connection: any `ConnectionOptions` field as a keyword: ``timeout``, ``retries``,
            ``backoff``, ``transport``, ``breaker``, ``limits``, ``http2``, ``async_backend``,
            ``verify``, ``cache`` (see "Caching" above), ``max_response_bytes``,
            ``window_concurrency``, ``expected_latency``.

    Attributes:
        max_text_chars: the most characters (every string of a Content together) one check
            takes; longer content raises `ContentTooLarge` before any request.

    Raises:
        GuardConfigurationError: (a `ValueError`) no API key, an invalid application name, an
            unknown region or API, or a base URL that is not https (or http on loopback).
    """

    name = "trend"

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        region: str | None = None,
        base_url: str | None = None,
        app_name: str | None = None,
        api: Literal["v3", "beta"] | None = None,
        detailed: bool = False,
        window_size: int = 1024,
        window_overlap: int = 128,
        max_windows: int | None = 128,
        settings: GuardSettings | None = None,
        options: ConnectionOptions | None = None,
        **connection: Unpack[ConnectionKeywords],
    ) -> None:
        if None in (api_key, app_name, api) or region is None:
            env = settings if settings is not None else _settings()
            api_key = api_key if api_key is not None else env.v1_api_key
            if region is None:
                # An explicit region means that region's URL, whatever V1_BASE_URL says.
                region = env.v1_region
                base_url = base_url if base_url is not None else env.v1_base_url
            app_name = app_name if app_name is not None else env.v1_app_name
            api = api if api is not None else env.v1_ai_guard_api
        if api not in ("v3", "beta"):
            raise GuardConfigurationError(f"api must be 'v3' or 'beta', not {api!r}", guard=self.name)
        if not isinstance(app_name, str) or not _APP_NAME.fullmatch(app_name):
            raise GuardConfigurationError(
                f"app_name {app_name!r} is not a valid TMV1-Application-Name: "
                "use 1 to 64 letters, digits, '-' or '_'",
                guard=self.name,
            )
        if window_size < 1 or not 0 <= window_overlap <= window_size // 4:
            raise ValueError("window_size must be >= 1 and window_overlap between 0 and window_size // 4")
        if max_windows is not None and max_windows < 1:
            raise ValueError("max_windows must be at least 1 (or None)")
        default_url = region_url(region, REGIONS, guard=self.name)
        key = resolve_api_key(api_key, env_var=ENV_API_KEY, guard=self.name)
        self._key_digest = secret_digest(key)
        url = check_base_url(base_url if base_url is not None else default_url, guard=self.name)
        super().__init__(base_url=url, api_key=key, options=options, **connection)
        self.region = region.strip().lower()
        self.app_name = app_name
        self.api: Literal["v3", "beta"] = api
        self.detailed = detailed
        self.window_size = window_size
        self.window_overlap = window_overlap
        budget = self.max_requests - _NON_TEXT_REQUESTS
        self.max_windows = max(1, budget if max_windows is None else min(max_windows, budget))
        self._windows = FieldWindows(window_size, window_overlap, self.max_windows, field="prompt")

    @property
    def max_text_chars(self) -> int:
        """The most characters (every string of a Content together) one check takes."""
        return self._windows.max_chars

    # -- cache ----------------------------------------------------------------------------------

    _cache_metadata = ("model",)

    def _cache_identity(self) -> tuple[object, ...]:
        return (
            *super()._cache_identity(),
            self._key_digest,
            self.api,
            self.app_name,
            self.detailed,
            self.window_size,
            self.window_overlap,
        )

    # -- requests -------------------------------------------------------------------------------

    def _build_requests(self, content: Content) -> list[GuardRequest]:
        check_text_size(content, self.max_text_chars, guard=self.name)
        requests: list[GuardRequest] = []
        messages = content.messages
        # Text beside chat messages (the other strings of a request body: a model name, settings)
        # rides in the chat request as one more user message when it fits one window: one vendor
        # call instead of two, and the text is scanned all the same.
        if messages is not None and content.text is not None and len(content.text) <= self.window_size:
            messages = [*messages, {"role": "user", "content": content.text}]
        elif content.text is not None:
            # Not reached past max_text_chars; kept as the bound on the windows of one field.
            windows = self._windows.split(content.text, guard=self.name)
            requests.extend(self._window_request(window) for window in windows)
        if content.messages is not None:
            # Trend's chat request type scans every message it is given (it has no context-only
            # field): messages an incremental check already allowed (`Content.context`) stay out.
            body: dict[str, Any] = {}
            model = content.metadata.get("model")
            if model:
                body["model"] = model
            body["messages"] = messages
            scanned = sum(len(text) for message in messages or () for text in message_texts(message))
            requests.append(self._request(CHAT_REQUEST, body, scanned))
        if content.completion is not None:
            scanned = sum(len(text) for text in Content(completion=content.completion).iter_texts())
            requests.append(self._request(CHAT_RESPONSE, content.completion, scanned))
        if content.tool is not None:
            tool_messages = _tool_messages(content.tool)
            scanned = sum(len(text) for message in tool_messages for text in message_texts(message))
            requests.append(self._request(CHAT_REQUEST, {"messages": tool_messages}, scanned))
        return requests

    def _text_request(self, text: str) -> GuardRequest | None:
        url, headers, prefix, suffix, unbounded = self._text_shape
        if len(text) > self.window_size or unbounded:
            return None  # windows, or a window whose body may pass the limit: `_build_requests`
        try:
            encoded = _encode_string(text).encode()
        except UnicodeEncodeError:
            encoded = encode_json_string(text, guard=self.name)  # raises the `ExtractionError`
        return GuardRequest("POST", url, headers, prefix + encoded + suffix, scanned=len(text))

    def _window_request(self, text: str) -> GuardRequest:
        prefix, suffix = self._text_shape[2:4]
        body = prefix + encode_json_string(text, guard=self.name) + suffix
        return GuardRequest(
            "POST",
            self._url,
            self._headers[SIMPLE_REQUEST],
            check_body_size(body, MAX_REQUEST_BYTES, guard=self.name),
            scanned=len(text),
        )

    @functools.cached_property
    def _text_shape(self) -> tuple[str, RequestHeaders, bytes, bytes, bool]:
        """What a request of one window of text is made of: URL, headers, and the body's frame.

        The body is a fixed frame around the one string, ``{"prompt":<text>}`` (beta: ``guard``):
        the frame is encoded once per guard and the text per check, the same bytes `encode_json`
        gives for the whole object. The last item says whether a window's body may pass the
        service's limit (a JSON string takes at most 6 bytes per character, ``\\u001f``), so that
        only then is it measured.
        """
        key = "prompt" if self.api == "v3" else "guard"
        prefix, suffix = f'{{"{key}":'.encode(), b"}"
        unbounded = len(prefix) + 2 + 6 * self.window_size + len(suffix) > MAX_REQUEST_BYTES
        return self._url, self._headers[SIMPLE_REQUEST], prefix, suffix, unbounded

    def _request(self, request_type: str, body: Any, scanned: int) -> GuardRequest:
        return GuardRequest(
            "POST",
            self._url,
            self._headers[request_type],
            check_body_size(encode_json(body, guard=self.name), MAX_REQUEST_BYTES, guard=self.name),
            scanned=scanned,
        )

    @functools.cached_property
    def _url(self) -> str:
        # Computed once, as every header below: none depends on the content.
        if self.api == "v3":
            return self.base_url + V3_PATH
        query = {"detailedResponse": "true" if self.detailed else "false"}
        return str(httpx.URL(self.base_url + BETA_PATH, params=query))

    @functools.cached_property
    def _headers(self) -> dict[str, RequestHeaders]:
        """The headers of each request type (`RequestHeaders`: the repr shows no value)."""
        headers = [
            ("Authorization", f"Bearer {self._key.get_secret_value()}"),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ]
        if self.api == "v3":
            headers += [
                ("TMV1-Application-Name", self.app_name),
                ("Prefer", "return=representation" if self.detailed else "return=minimal"),
            ]
        kinds = (SIMPLE_REQUEST, CHAT_REQUEST, CHAT_RESPONSE)
        if self.api != "v3":
            return dict.fromkeys(kinds, RequestHeaders(headers))
        return {kind: RequestHeaders([*headers, ("TMV1-Request-Type", kind)]) for kind in kinds}

    # -- responses ------------------------------------------------------------------------------

    def _parse_response(self, response: GuardResponse) -> Verdict:
        payload = decode_json_object(response, guard=self.name)
        value = payload.get("action")
        action = _ACTIONS.get(value) if type(value) is str else None
        if action is None:
            action = Action.parse(value)
        if action is None:
            state = "an unknown" if "action" in payload else "no"
            raise GuardResponseError(
                f"{self.name} guard answered {state} action",
                guard=self.name,
                status_code=response.status_code,
            )
        verdict_id = payload.get("id")
        reasons = _reasons(payload)
        return parsed_verdict(
            action=action,
            reasons=reasons,
            id=str(verdict_id) if isinstance(verdict_id, (str, int)) and verdict_id != "" else None,
            guard=self.name,
            raw=payload,
            categories=_categories(action, reasons, payload),
        )

    def __repr__(self) -> str:
        return (
            f"TrendAIGuard(api={self.api!r}, base_url={self.base_url!r}, app_name={self.app_name!r}, "
            f"detailed={self.detailed}, timeout={self.timeout:g})"
        )


# The C encoder of a JSON string literal (what `encode_json_string` runs).
_encode_string = json.encoder.encode_basestring

# The actions as the service spells them, read before `Action.parse`'s lenient reading (an enum
# member read through its class costs several times a dict lookup on 3.11).
_ACTIONS: dict[str, Action] = {"Allow": Action.ALLOW, "Block": Action.BLOCK}


def _tool_messages(tool: ToolEvent) -> list[dict[str, Any]]:
    """A tool event as chat messages: the assistant's tool call, then the ``tool`` message of its result."""
    call_id = "call_guardrails"
    messages: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": tool.name, "arguments": tool.input_text() or "{}"},
                }
            ],
        }
    ]
    if tool.result is not None:
        # A text result is the tool message's text; anything else, its JSON.
        result = tool.result if isinstance(tool.result, str) else tool.output_text()
        messages.append({"role": "tool", "tool_call_id": call_id, "content": result})
    return messages


def _reasons(payload: dict[str, Any]) -> list[str]:
    """``reasons`` (a list, v3) or ``reason`` (a string, beta), as a list of non-empty strings."""
    value = payload.get("reasons", payload.get("reason"))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [str(item) for item in value if isinstance(item, (str, int, float)) and str(item).strip()]


# Words of a reason, and the category they mean; checked in this order, so "sensitive" wins
# over "harmful" only when both appear (each reason may name several scanners: all count).
_REASON_WORDS: tuple[tuple[re.Pattern[str], Category], ...] = (
    (re.compile(r"prompt[ _-]?attack|injection|jailbreak", re.IGNORECASE), "prompt_attack"),
    (re.compile(r"sensitive|\bpii\b|\bdlp\b|personal", re.IGNORECASE), "sensitive_data"),
    (
        re.compile(r"harm|toxic|violen|hate|sexual|harass|self[ _-]?harm", re.IGNORECASE),
        "harmful_content",
    ),
    (re.compile(r"\burls?\b|malicious[ _-]?url", re.IGNORECASE), "malicious_url"),
    (re.compile(r"topic", re.IGNORECASE), "topic_violation"),
)
# "No policy violations detected" and the like name a scanner without finding anything.
_NO_FINDING = re.compile(r"\bno\b.*\bviolation|\bnot\b.*\bdetected", re.IGNORECASE)
# The detail fields of each API, and the category each one reports.
_DETAIL_FIELDS: tuple[tuple[str, Category], ...] = (
    ("promptAttacks", "prompt_attack"),
    ("prompt_attack", "prompt_attack"),
    ("sensitiveInformation", "sensitive_data"),
    ("sensitive_information", "sensitive_data"),
    ("harmfulContent", "harmful_content"),
    ("harmful_content", "harmful_content"),
)

_DETAIL_KEYS = frozenset(field for field, _ in _DETAIL_FIELDS)
_NOTHING: frozenset[Category] = frozenset()
_OTHER: frozenset[Category] = frozenset({"other"})
_BLOCK = Action.BLOCK


def _violates(entry: object) -> bool:
    if isinstance(entry, list):
        return any(_violates(item) for item in entry)
    if isinstance(entry, dict):
        return entry.get("hasPolicyViolation") is True or entry.get("content_violation") is True
    return False


def _categories(action: Action, reasons: list[str], payload: dict[str, Any]) -> frozenset[Category]:
    """The findings of a Trend answer in the common vocabulary (see the module docstring)."""
    found: set[Category] = set()
    for reason in reasons:
        if _NO_FINDING.search(reason):
            continue
        # "<scanner>: <details>": the scanner's name says the category; the details (rule names,
        # codes) only when the name does not ("[Violation] Policy Name: harmful_content").
        head, _, _ = reason.partition(":")
        named = {category for pattern, category in _REASON_WORDS if pattern.search(head)}
        found.update(named or (category for pattern, category in _REASON_WORDS if pattern.search(reason)))
    if not _DETAIL_KEYS.isdisjoint(payload):  # most answers have none of these fields
        for field, category in _DETAIL_FIELDS:
            entry = payload.get(field)
            if entry is not None and _violates(entry):
                found.add(category)
    if not found:
        return _OTHER if action is _BLOCK else _NOTHING
    return frozenset(found)


def _settings() -> GuardSettings:
    from .._settings import GuardSettings

    return GuardSettings()
