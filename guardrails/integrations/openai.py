"""An httpx transport that puts a guard between the official ``openai`` client and the model.

Hand it to the client through its ``http_client``::

    import httpx
    import openai
    from guardrails.integrations.openai import GuardedTransport

    client = openai.OpenAI(http_client=httpx.Client(transport=GuardedTransport(guard)))
    aclient = openai.AsyncOpenAI(http_client=httpx.AsyncClient(transport=GuardedTransport(guard)))

It is an ``httpx`` transport. openai 3.x talks through ``httpx2`` and types ``http_client`` as
an ``httpx2`` client: give it `GuardedHttpx2Transport`, the same checks as an httpx2 transport
(``pip install guardrails-middleware[openai]``)::

    import httpx2
    from guardrails.integrations.openai import GuardedHttpx2Transport

    client = openai.OpenAI(http_client=httpx2.Client(transport=GuardedHttpx2Transport(guard)))

What is checked:

- Every POST to ``.../chat/completions``, ``.../responses`` or legacy ``.../completions``,
  whatever the base path (``/v1``, Azure's ``/openai/deployments/<name>``), as a prompt, before it
  leaves: the chat ``messages`` (as `Content` messages), or the Responses API ``instructions`` and
  ``input`` (a string, or a list of items: messages, tool calls, tool outputs; tool outputs are
  checked as user text: they are where indirect prompt injection comes in; the current turn's tool
  outputs, ``tool`` messages and ``function_call_output`` items, are also checked each on its own
  as a tool's output, a `ToolEvent`), and with them every
  other string of the request (tool descriptions, a stored prompt's ``variables``, a legacy
  ``prompt``), but for the settings that never reach the model (``model``, ``temperature``...).
- Every other POST, PUT or PATCH with a JSON body (conversations and their items, threads and
  their messages, runs with ``additional_messages``, embeddings, an endpoint newer than this
  library), by every string it holds: text that reaches the model through a side door (a
  conversation created first, then ``responses.create(conversation=..., input="continue")``) was
  checked when it went in. A JSON body that cannot be parsed is refused (`ExtractionError`).
- With ``scan_response`` (the default), the 2xx answer to a generating call. A JSON chat
  completion or Responses object is read whole and checked before the client sees a byte. A
  ``text/event-stream`` is checked as it streams, in windows of generated text (a small first
  window, ``stream_first_window`` characters, then windows doubling up to ``stream_window``; and
  whatever is held when the model goes quiet for ``stream_idle_flush`` seconds): each window's
  events reach the client only once their text is allowed (the client runs at most one window
  behind the model), and each window's text starts with the end of the previous one, so a
  phrase cut by a boundary is still seen whole. Blocked text is never handed to the client. The
  scanner is `guardrails._stream`'s, shared with the middlewares and the decorator.

GETs, DELETEs and uploads (multipart or octet-stream: files, audio) pass through untouched. A
file uploaded for the Batch API or a vector store is not read here.

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

from typing import TYPE_CHECKING, Any

import httpx

from .._exceptions import Blocked
from .._shapes import (
    GENERATING,
    StreamText,
    answer_content,
    endpoint_of,
    request_content,
)
from ._tools import openai_tool_calls, openai_tool_results
from ._transport_core import MAX_WINDOW_BYTES as MAX_WINDOW_BYTES  # kept importable from here
from ._transport_core import Api, TransportCore, wire_of

try:
    from openai import OpenAIError as _SDKError
except ImportError:  # pragma: no cover - the transport serves any OpenAI-compatible client
    _SDKError = Exception  # type: ignore[misc,assignment]

if TYPE_CHECKING:
    from ._openai2 import GuardedHttpx2Transport as GuardedHttpx2Transport

__all__ = ["GuardedHttpx2Transport", "GuardedTransport", "OpenAIBlocked"]


def __getattr__(name: str) -> Any:
    # The httpx2 transport needs httpx2 (the "openai" extra): imported only when asked for.
    if name == "GuardedHttpx2Transport":
        from ._openai2 import GuardedHttpx2Transport

        return GuardedHttpx2Transport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class OpenAIBlocked(Blocked, _SDKError):
    """The guard blocked a request to the model, or the model's answer.

    A `guardrails.Blocked` (``.verdict``) that is also an ``openai.OpenAIError`` when openai is
    installed, so that the client passes it through as it is instead of retrying it.
    """


#: How OpenAI API calls are read (`guardrails._shapes`): the same for httpx and httpx2 clients.
OPENAI_API = Api(
    generating=GENERATING,
    endpoint=endpoint_of,
    request=request_content,
    tool_results=openai_tool_results,
    answer=answer_content,
    tool_calls=openai_tool_calls,
    event_text=StreamText,
)


class GuardedTransport(
    TransportCore[httpx.Request, httpx.Response], httpx.BaseTransport, httpx.AsyncBaseTransport
):
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
        stream_window: the most characters of streamed text per check. Smaller windows reach
            the client sooner and ask the guard more often.
        stream_first_window: characters of a stream's first check; each next window doubles, up
            to ``stream_window`` (a short answer reaches the client after one small check).
        stream_overlap: characters of the text before a window checked again with it (default
            100), so that a phrase cut by a boundary is seen whole.
        stream_idle_flush: seconds of quiet from the model after which the held text is checked
            and handed to the client without waiting for a window's worth (None: never).
        on_decision: a hook, or hooks, called with every `Decision` of this transport.
        roles: the roles of the chat messages checked (None: every role, the default: an API
            client controls every role it sends); every other string of a request is still checked.
        last_turn: check only the messages after the last assistant message.
        incremental: a chat message this guard already allowed, exactly, is not checked again;
            every other message is (see `guardrails._incremental`).
        block: the categories that block; a Block whose categories are all outside it is
            recorded as ``monitored`` and the call goes on (None, the default: every Block
            blocks; a Block with no category always blocks).
        mask: when a Block's only category is ``sensitive_data`` and the guard masked it, the
            request is sent with the masked strings in its JSON body (and a JSON answer handed
            back masked); outcome ``masked``. A body that does not read back as exactly the
            masked content, and a stream window, stay blocked.

    Closing the httpx client closes what this transport made (its default inner transport, and
    the guard when it was made from the environment), never what it was given: a `transport=` or
    `guard` passed in is its owner's to close.
    """

    wire = wire_of(httpx)
    api = OPENAI_API
    blocked = OpenAIBlocked
