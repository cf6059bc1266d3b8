"""An httpx transport that puts a guard between the official ``openai`` client and the model.

Hand it to the client through its ``http_client``::

    import httpx
    import openai
    from guardrails.integrations.openai import GuardedTransport

    client = openai.OpenAI(http_client=httpx.Client(transport=GuardedTransport(guard)))
    aclient = openai.AsyncOpenAI(http_client=httpx.AsyncClient(transport=GuardedTransport(guard)))

It is an ``httpx`` transport. openai 3.x talks through ``httpx2`` by default and types
``http_client`` as an ``httpx2`` client, but takes an ``httpx`` client at run time: under mypy that
line needs ``# type: ignore[arg-type]``.

What is checked:

- Every POST to ``.../chat/completions`` or ``.../responses``, whatever the base path (``/v1``,
  Azure's ``/openai/deployments/<name>``), as a prompt, before it leaves: the chat ``messages``
  (as `Content` messages), or the Responses API ``instructions`` and ``input`` (a string, or a list
  of items: messages, tool calls, tool outputs). Tool outputs are checked as user text: they are
  where indirect prompt injection comes in.
- With ``scan_response`` (the default), the 2xx answer to it. A JSON chat completion or Responses
  object is read whole and checked before the client sees a byte. A ``text/event-stream`` is
  checked as it streams, in windows of ``stream_window`` characters of generated text: each
  window's events reach the client only once their text is allowed (the client runs at most one
  window behind the model), and each window's text starts with the end of the previous one, so a
  phrase cut by a boundary is still seen whole. Blocked text is never handed to the client.

Every other request (models, embeddings, files, a GET of a stored response...) passes through
untouched.

How the official client surfaces it (checked against openai 3.x, which re-raises its own errors
and lets any exception that is not an httpx transport error out of its retry loop unchanged):

- A Block raises `OpenAIBlocked`, a `guardrails.Blocked` that is also an ``openai.OpenAIError``:
  ``except guardrails.Blocked`` catches it, with the `Verdict` on ``.verdict``. For a prompt or a
  JSON answer it comes out of ``create(...)``; for a stream, out of the stream's iterator at the
  first blocked window. It is never retried: the guard has spoken, and ``max_retries`` is for the
  network. (Being an ``OpenAIError`` is what keeps openai releases whose retry loop catches every
  other exception from retrying it. A release older still would retry it and raise
  ``openai.APIConnectionError`` with the `Blocked` as its ``__cause__``; give such a client
  ``max_retries=0``.)
- A guard failure, failing closed (the default), raises the `GuardError` (as it is in openai 3.x;
  releases that retry every exception retry it, then wrap it in ``APIConnectionError``); failing
  open, the call goes on unscanned and a warning is logged. Configuration errors (bad
  credentials) fail closed unless ``fail_open="always"``.
- A request body on a checked path that cannot be read raises `ExtractionError` (never sent).

Every check is recorded as a `Decision` (target ``"POST /v1/chat/completions"``, kind ``prompt``
or ``response``; one per stream window) and logged like the middlewares do, never with the text.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import httpx

from .._body import is_json_media_type, json_strings
from .._events import DecisionHook, log_extra
from .._exceptions import Blocked, ExtractionError
from .._http import SSEScanner, SSEWindow, event_data
from .._judge import Judge, as_guard_error
from .._models import Content, Verdict, message_texts
from .._policy import FailOpen, validate_fail_open

try:
    from openai import OpenAIError as _SDKError
except ImportError:  # pragma: no cover - the transport serves any OpenAI-compatible client
    _SDKError = Exception  # type: ignore[misc,assignment]

if TYPE_CHECKING:
    from .._guard import Guard

__all__ = ["GuardedTransport", "OpenAIBlocked"]

logger = logging.getLogger("guardrails")

Endpoint = Literal["chat", "responses"]
Kind = Literal["prompt", "response"]

#: Bytes of events held back at most before their text is checked, whatever their text's length.
MAX_WINDOW_BYTES = 65536
_CHAT_ROLES = frozenset({"system", "developer", "user", "assistant"})
_ENCODING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_RESPONSE_DONE = frozenset({"response.completed", "response.incomplete", "response.failed"})


class OpenAIBlocked(Blocked, _SDKError):
    """The guard blocked a request to the model, or the model's answer.

    A `guardrails.Blocked` (``.verdict``) that is also an ``openai.OpenAIError`` when openai is
    installed, so that the client passes it through as it is instead of retrying it.
    """


# -- what is checked --------------------------------------------------------------------------------


def _endpoint(request: httpx.Request) -> Endpoint | None:
    if request.method != "POST":
        return None
    path = request.url.path.rstrip("/")
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/responses"):
        return "responses"
    return None


def _texts(value: Any) -> Iterator[str]:
    """The text of a Responses API item, content part or event (never ids, types or URLs)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for part in value:
            yield from _texts(part)
    elif isinstance(value, Mapping):
        for key in ("text", "refusal", "arguments", "input", "code"):
            text = value.get(key)
            if isinstance(text, str):
                yield text
        for key in ("content", "output", "summary", "part", "item"):
            if key in value:
                yield from _texts(value[key])


def _responses_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Responses API ``instructions`` and ``input`` as chat messages with string contents."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        for item in items:
            if not isinstance(item, Mapping):
                raise ExtractionError("a Responses API input item is not an object")
            text = "\n".join(text for text in _texts(item) if text)
            if not text:
                continue
            role = item.get("role")
            if role not in _CHAT_ROLES:
                # Tool outputs come from outside: check them as user input. Other items
                # (function calls, reasoning) are the model's own earlier output.
                item_type = item.get("type")
                output = isinstance(item_type, str) and item_type.endswith("_output")
                role = "user" if output else "assistant"
            messages.append({"role": role, "content": text})
    elif items is not None:
        raise ExtractionError("the Responses API input is neither a string nor a list")
    return messages


def _metadata(path: str, body: Mapping[str, Any]) -> dict[str, str]:
    metadata = {"route": path}
    model = body.get("model")
    if isinstance(model, str):
        metadata["model"] = model
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        metadata["user"] = user
    return metadata


def _prompt_of(endpoint: Endpoint, body: bytes, path: str) -> Content | None:
    """What to check in a request body; None when it holds no text (images only, say).

    Raises:
        ExtractionError: the body is not the JSON object the endpoint takes.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ExtractionError(f"the {endpoint} request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise ExtractionError(f"the {endpoint} request body is not a JSON object")
    metadata = _metadata(path, document)
    if endpoint == "chat":
        messages = document.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
            raise ExtractionError("the chat completions request has no list of messages")
        content = Content(messages=messages, metadata=metadata)
    else:
        responses_messages = _responses_messages(document)
        if not responses_messages:
            return None
        content = Content(messages=responses_messages, metadata=metadata)
    return content if any(content.iter_texts()) else None


def _answer_of(body: bytes, metadata: Mapping[str, str], prompt: str | None) -> Content | None:
    """What to check in a JSON answer: a chat completion as such, a Responses object by its output."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace")
        return Content(text, kind="response", metadata=metadata, prompt=prompt) if text.strip() else None
    if isinstance(document, dict) and isinstance(document.get("choices"), list):
        content = Content(completion=document, kind="response", metadata=metadata, prompt=prompt)
        return content if any(content.iter_texts()) else None
    if isinstance(document, dict) and isinstance(document.get("output"), list):
        # Only the output: the object also echoes the request's instructions and tools.
        texts = [text for text in _texts(document["output"]) if text]
    else:
        texts = [text for text in json_strings(document) if text]
    if not texts:
        return None
    return Content("\n".join(texts), kind="response", metadata=metadata, prompt=prompt)


# -- server-sent events -----------------------------------------------------------------------------


class _StreamText:
    """The generated text of each event of one stream (chat completion chunks or Responses events).

    Responses streams repeat their text: the deltas, then ``*.done`` events, then the whole
    response in ``response.completed``. The text of an item is taken from its deltas; its done
    events are read only when it had none, so no text goes unchecked and none is checked twice.
    """

    __slots__ = ("_streamed",)

    def __init__(self) -> None:
        self._streamed: set[str] = set()

    def __call__(self, event: bytes) -> str:
        payload = event_data(event).strip()
        if not payload or payload == "[DONE]":
            return ""
        try:
            document = json.loads(payload)
        except ValueError:
            return payload
        if not isinstance(document, dict):
            return "\n".join(text for text in json_strings(document) if text)
        choices = document.get("choices")
        if isinstance(choices, list):
            return "".join(
                text
                for choice in choices
                if isinstance(choice, Mapping) and isinstance(choice.get("delta"), Mapping)
                for text in message_texts(choice["delta"])
            )
        event_type = document.get("type")
        if isinstance(event_type, str) and event_type.startswith("response."):
            return self._responses_event(event_type, document)
        return "\n".join(text for text in json_strings(document) if text)

    def _responses_event(self, event_type: str, document: Mapping[str, Any]) -> str:
        item_id = document.get("item_id")
        if event_type.endswith(".delta"):
            delta = document.get("delta")
            # Audio deltas are base64 sound, not text (its transcript has events of its own).
            if not isinstance(delta, str) or event_type.endswith("audio.delta"):
                return ""
            if isinstance(item_id, str):
                self._streamed.add(item_id)
            return delta
        if event_type in _RESPONSE_DONE:
            response = document.get("response")
            output = response.get("output") if isinstance(response, Mapping) else None
            items = output if isinstance(output, list) else []
            return "\n".join(
                text for item in items if not self._was_streamed(item) for text in _texts(item) if text
            )
        if not event_type.endswith(".done") or item_id in self._streamed:
            return ""
        item = document.get("item")
        if item is not None and self._was_streamed(item):
            return ""
        fields = {key: value for key, value in document.items() if key not in ("type", "item_id")}
        return "\n".join(text for text in _texts(fields) if text)

    def _was_streamed(self, item: Any) -> bool:
        return isinstance(item, Mapping) and item.get("id") in self._streamed


# -- one call ---------------------------------------------------------------------------------------


class _Call:
    """One guarded API call: where it goes, and the policy applied to each of its checks."""

    __slots__ = ("guard", "guard_name", "judge", "metadata", "prompt", "target")

    def __init__(
        self,
        guard: Guard,
        request: httpx.Request,
        *,
        fail_open: FailOpen,
        hooks: tuple[DecisionHook, ...],
    ) -> None:
        self.guard = guard
        self.guard_name: str = getattr(guard, "name", type(guard).__name__)
        self.target = f"{request.method} {request.url.path}"
        self.judge = Judge(self.target, hooks=hooks, fail_open=fail_open)
        self.metadata: dict[str, str] = {"route": request.url.path}
        self.prompt: str | None = None

    def prompt_content(self, endpoint: Endpoint, body: bytes, path: str) -> Content | None:
        try:
            content = _prompt_of(endpoint, body, path)
        except ExtractionError as exc:
            decision = self.judge.record("invalid", guard=self.guard_name, error=exc)
            logger.error(
                "guardrails could not read the request of %s: refusing to send it",
                self.target,
                extra=log_extra(decision),
            )
            raise
        if content is None:
            self.judge.record("skipped", guard=self.guard_name)
            return None
        self.metadata = content.metadata
        self.prompt = content.as_text()
        return content

    def response_content(self, body: bytes) -> Content | None:
        content = _answer_of(body, self.metadata, self.prompt)
        if content is None:
            self.judge.record("skipped", guard=self.guard_name, kind="response")
        return content

    def window_content(self, text: str) -> Content:
        return Content(text, kind="response", metadata=self.metadata)

    def settle(self, kind: Kind, verdict: Verdict | None, error: Exception | None, latency: float) -> None:
        """Apply the policy to one check: return to go on, or raise `OpenAIBlocked` / the `GuardError`."""
        if error is not None:
            failure = as_guard_error(error, self.guard_name)
            if self.judge.failure(failure, kind=kind, latency=latency):
                return
            if failure is error:
                raise failure
            raise failure from error
        assert verdict is not None
        if self.judge.verdict(verdict, kind=kind, latency=latency):
            raise OpenAIBlocked(verdict)


def _ask(guard: Guard, content: Content) -> tuple[Verdict | None, Exception | None, float]:
    started = time.perf_counter()
    try:
        verdict = guard.check(content)
    except Exception as exc:
        return None, exc, time.perf_counter() - started
    return verdict, None, time.perf_counter() - started


async def _aask(guard: Guard, content: Content) -> tuple[Verdict | None, Exception | None, float]:
    started = time.perf_counter()
    try:
        verdict = await guard.acheck(content)
    except Exception as exc:
        return None, exc, time.perf_counter() - started
    return verdict, None, time.perf_counter() - started


def _media_type(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "")).split(";")[0].strip().lower()


def _decoded_headers(response: httpx.Response) -> list[tuple[str, str]]:
    # The body handed on is decoded: its encoding headers no longer describe it.
    return [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _ENCODING_HEADERS]


def _rebuilt(
    response: httpx.Response,
    request: httpx.Request,
    *,
    stream: httpx.SyncByteStream | httpx.AsyncByteStream | None = None,
    body: bytes = b"",
) -> httpx.Response:
    """The response handed on: decoded, with a checked body or a stream that checks as it goes."""
    return httpx.Response(
        response.status_code,
        headers=_decoded_headers(response),
        content=None if stream is not None else body,
        stream=stream,
        extensions=response.extensions,
        request=request,
    )


class _SyncEventStream(httpx.SyncByteStream):
    def __init__(self, response: httpx.Response, call: _Call, windows: SSEScanner) -> None:
        self._response = response
        self._call = call
        self._windows = windows

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._response.iter_bytes():
                for window in self._windows.feed(chunk):
                    yield self._release(window)
            last = self._windows.finish()
            if last is not None:
                yield self._release(last)
        finally:
            self._response.close()

    def _release(self, window: SSEWindow) -> bytes:
        if window.text:
            verdict, error, latency = _ask(self._call.guard, self._call.window_content(window.text))
            self._call.settle("response", verdict, error, latency)
        return window.data

    def close(self) -> None:
        self._response.close()


class _AsyncEventStream(httpx.AsyncByteStream):
    def __init__(self, response: httpx.Response, call: _Call, windows: SSEScanner) -> None:
        self._response = response
        self._call = call
        self._windows = windows

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                for window in self._windows.feed(chunk):
                    yield await self._release(window)
            last = self._windows.finish()
            if last is not None:
                yield await self._release(last)
        finally:
            await self._response.aclose()

    async def _release(self, window: SSEWindow) -> bytes:
        if window.text:
            verdict, error, latency = await _aask(self._call.guard, self._call.window_content(window.text))
            self._call.settle("response", verdict, error, latency)
        return window.data

    async def aclose(self) -> None:
        await self._response.aclose()


# -- the transport ------------------------------------------------------------------------------------


class GuardedTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport, sync and async, that checks OpenAI API calls with a guard.

    Args:
        guard: the guard asked; None: `guard_from_env()`, resolved at the first checked call.
        transport: the transport that sends the requests (``httpx.MockTransport`` in tests, an
            ``httpx.HTTPTransport(retries=..., proxy=...)`` to configure the network); by default
            an ``httpx.HTTPTransport()`` for `httpx.Client` and an ``httpx.AsyncHTTPTransport()``
            for `httpx.AsyncClient`, each made at first use.
        scan_response: also check the model's answers (JSON and streamed).
        fail_open: what a guard failure does: False (raise the `GuardError`, the default), True
            (the call goes on unscanned on transient errors) or ``"always"`` (also on
            configuration errors).
        stream_window: characters of streamed text checked at a time. Smaller windows reach the
            client sooner and ask the guard more often.
        stream_overlap: characters of a window's end checked again at the start of the next, so
            that a phrase cut by a boundary is seen whole (at most half a window).
        on_decision: a hook, or hooks, called with every `Decision` of this transport.

    Closing the httpx client closes the wrapped transport of its side (and the guard, when it
    was made from the environment).
    """

    def __init__(
        self,
        guard: Guard | None = None,
        *,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        scan_response: bool = True,
        fail_open: FailOpen = False,
        stream_window: int = 1000,
        stream_overlap: int = 100,
        on_decision: DecisionHook | Iterable[DecisionHook] | None = None,
    ) -> None:
        if isinstance(stream_window, bool) or not isinstance(stream_window, int) or stream_window < 1:
            raise ValueError("stream_window must be a positive number of characters")
        if isinstance(stream_overlap, bool) or not isinstance(stream_overlap, int) or stream_overlap < 0:
            raise ValueError("stream_overlap must be a number of characters, 0 or more")
        if transport is not None and not isinstance(
            transport, (httpx.BaseTransport, httpx.AsyncBaseTransport)
        ):
            raise TypeError(f"transport must be an httpx transport, not {type(transport).__name__}")
        self.scan_response = scan_response
        self.fail_open = validate_fail_open(fail_open)
        self.stream_window = stream_window
        self.stream_overlap = min(stream_overlap, stream_window // 2)
        if on_decision is None:
            self.hooks: tuple[DecisionHook, ...] = ()
        elif callable(on_decision):
            self.hooks = (on_decision,)
        else:
            self.hooks = tuple(on_decision)
        self._guard = guard
        self._owns_guard = False
        self._transport = transport
        self._sync: httpx.BaseTransport | None = (
            transport if isinstance(transport, httpx.BaseTransport) else None
        )
        self._async: httpx.AsyncBaseTransport | None = (
            transport if isinstance(transport, httpx.AsyncBaseTransport) else None
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        guard = self._guard if self._guard is not None else "guard_from_env()"
        return (
            f"GuardedTransport(guard={guard!r}, scan_response={self.scan_response!r}, "
            f"fail_open={self.fail_open!r}, stream_window={self.stream_window}, stream_overlap={self.stream_overlap})"
        )

    # -- parts made at first use ----------------------------------------------------------------

    @property
    def guard(self) -> Guard:
        """The guard asked (made from the environment at first use when none was given)."""
        guard = self._guard
        if guard is None:
            with self._lock:
                if self._guard is None:
                    # Imported here: reading the environment is the first call's job, not import's.
                    from .._settings import guard_from_env

                    self._guard = guard_from_env()
                    self._owns_guard = True
                guard = self._guard
        return guard

    def _sync_transport(self) -> httpx.BaseTransport:
        inner = self._sync
        if inner is None:
            with self._lock:
                if self._sync is None:
                    if self._transport is not None:
                        raise TypeError("the wrapped transport is async only: use it with httpx.AsyncClient")
                    self._sync = httpx.HTTPTransport()
                inner = self._sync
        return inner

    def _async_transport(self) -> httpx.AsyncBaseTransport:
        inner = self._async
        if inner is None:
            with self._lock:
                if self._async is None:
                    if self._transport is not None:
                        raise TypeError("the wrapped transport is sync only: use it with httpx.Client")
                    self._async = httpx.AsyncHTTPTransport()
                inner = self._async
        return inner

    def _windows(self) -> SSEScanner:
        return SSEScanner(
            window_chars=self.stream_window,
            overlap=self.stream_overlap,
            max_window_bytes=MAX_WINDOW_BYTES,
            event_text=_StreamText(),
        )

    # -- sync ------------------------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Check the request, send it, and hand back the response (checked as it is read)."""
        inner = self._sync_transport()
        endpoint = _endpoint(request)
        if endpoint is None:
            return inner.handle_request(request)
        call = _Call(self.guard, request, fail_open=self.fail_open, hooks=self.hooks)
        content = call.prompt_content(endpoint, request.read(), request.url.path)
        if content is not None:
            verdict, error, latency = _ask(call.guard, content)
            call.settle("prompt", verdict, error, latency)
        response = inner.handle_request(request)
        if not self.scan_response or not response.is_success:
            return response
        media_type = _media_type(response)
        if media_type == "text/event-stream":
            return _rebuilt(response, request, stream=_SyncEventStream(response, call, self._windows()))
        if not is_json_media_type(media_type):
            return response
        try:
            body = response.read()
        finally:
            response.close()
        content = call.response_content(body)
        if content is not None:
            verdict, error, latency = _ask(call.guard, content)
            call.settle("response", verdict, error, latency)
        return _rebuilt(response, request, body=body)

    def close(self) -> None:
        """Close the sync side: the wrapped transport (and a guard made from the environment)."""
        with self._lock:
            inner = self._sync
            guard = self._guard if self._owns_guard else None
        if inner is not None:
            inner.close()
        if guard is not None:
            guard.close()

    # -- async -----------------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Check the request, send it, and hand back the response (checked as it is read)."""
        inner = self._async_transport()
        endpoint = _endpoint(request)
        if endpoint is None:
            return await inner.handle_async_request(request)
        call = _Call(self.guard, request, fail_open=self.fail_open, hooks=self.hooks)
        content = call.prompt_content(endpoint, await request.aread(), request.url.path)
        if content is not None:
            verdict, error, latency = await _aask(call.guard, content)
            call.settle("prompt", verdict, error, latency)
        response = await inner.handle_async_request(request)
        if not self.scan_response or not response.is_success:
            return response
        media_type = _media_type(response)
        if media_type == "text/event-stream":
            return _rebuilt(response, request, stream=_AsyncEventStream(response, call, self._windows()))
        if not is_json_media_type(media_type):
            return response
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        content = call.response_content(body)
        if content is not None:
            verdict, error, latency = await _aask(call.guard, content)
            call.settle("response", verdict, error, latency)
        return _rebuilt(response, request, body=body)

    async def aclose(self) -> None:
        """Close the async side: the wrapped transport (and a guard made from the environment)."""
        with self._lock:
            inner = self._async
            guard = self._guard if self._owns_guard else None
        if inner is not None:
            await inner.aclose()
        if guard is not None:
            await guard.aclose()
